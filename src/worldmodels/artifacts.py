"""Where each stage's artifacts live in a run directory, and how later stages load them.

    config.yaml                      the resolved config
    episodes/000000.npz ...          collect: frames, actions, rewards, dones
    vae/checkpoint.pt                train-vae: V (+ metrics.jsonl, loss.png, reconstructions.png)
    series/000000.npz ...            encode: (mu, logvar) per frame (+ series/initial_z.npz)
    mdnrnn/checkpoint.pt             train-mdnrnn: M (+ metrics.jsonl, loss.png, open_loop.png)
    controller/es.pt, best.npz       train-controller: the CMA-ES state and the best C (+ fitness.png)
    rounds/NN/                       iterative training: round NN's C, and mdnrnn.pt, the M it was trained
                                     with (controller/mdnrnn.pt: the first pass's), which its agent loads;
                                     siblings/S/ (mdnrnn/, C, sibling.json) with iterate.siblings > 1
    eval.json                        evaluate: returns over real episodes
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldmodels.checkpoint import load_checkpoint
from worldmodels.errors import UserError

VAE_DIR, SERIES_DIR, MDNRNN_DIR, CONTROLLER_DIR = "vae", "series", "mdnrnn", "controller"
CHECKPOINT = "checkpoint.pt"
INITIAL_Z = "initial_z.npz"


def vae_checkpoint(run_dir: Path) -> Path:
    return Path(run_dir) / VAE_DIR / CHECKPOINT


def mdnrnn_checkpoint(run_dir: Path) -> Path:
    return Path(run_dir) / MDNRNN_DIR / CHECKPOINT


def _load_model(path: Path, kind: str, stage: str, model_class, device: torch.device | str):
    """The model of a finished stage's checkpoint, in eval mode on `device`."""
    if not path.is_file():
        raise UserError(f"{path} does not exist: run `worldmodels {stage}` first")
    state = load_checkpoint(path, kind)
    if not state.get("complete"):
        raise UserError(f"{path} is from an unfinished `{stage}`: run `worldmodels {stage}` again to finish it")
    model = model_class(**state["model_args"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def load_vae(run_dir: Path, device: torch.device | str = "cpu"):
    """V of a finished `train-vae`."""
    from worldmodels.models.vae import ConvVAE

    return _load_model(vae_checkpoint(run_dir), "vae", "train-vae", ConvVAE, device)


def load_mdnrnn(run_dir: Path, device: torch.device | str = "cpu", path: Path | None = None):
    """M of a finished `train-mdnrnn` (or the snapshot at `path` that a round's controller was trained with)."""
    from worldmodels.models.mdnrnn import MDNRNN

    return _load_model(path or mdnrnn_checkpoint(run_dir), "mdnrnn", "train-mdnrnn", MDNRNN, device)


def load_initial_z(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar), each (N, Z) float32: V's statistics of first frames, where dream episodes start."""
    from worldmodels.data.episodes import read_arrays

    path = Path(run_dir) / SERIES_DIR / INITIAL_Z
    if not path.is_file():
        raise UserError(f"{path} does not exist: run `worldmodels encode` first")
    data = read_arrays(path, ("mu", "logvar"))
    return data["mu"].astype(np.float32), data["logvar"].astype(np.float32)
