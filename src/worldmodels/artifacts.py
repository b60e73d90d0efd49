"""The run directory: where every stage's artifacts live, and how later stages and tools load them.

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

This module is the only one that knows these names; stages and tools ask it for paths and models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from worldmodels.checkpoint import load_checkpoint
from worldmodels.config import CONFIG_FILE, Config, load_run_config
from worldmodels.data.episodes import episode_index, list_episodes, read_arrays
from worldmodels.envs import task_spec
from worldmodels.errors import UserError
from worldmodels.models.controller import ControllerSpec
from worldmodels.models.mdnrnn import MDNRNN
from worldmodels.models.vae import ConvVAE

EPISODES_DIR, VAE_DIR, SERIES_DIR, MDNRNN_DIR, CONTROLLER_DIR = "episodes", "vae", "series", "mdnrnn", "controller"
CHECKPOINT, INITIAL_Z = "checkpoint.pt", "initial_z.npz"
ES_CHECKPOINT, BEST = "es.pt", "best.npz"  # a controller directory: CMA-ES state, best distribution mean
ROUNDS_DIR, ROUND_FILE, M_SNAPSHOT = "rounds", "round.json", "mdnrnn.pt"
SIBLINGS_DIR, SIBLING_FILE, M_START = "siblings", "sibling.json", "mdnrnn-start.pt"
EVAL_FILE = "eval.json"

Model = TypeVar("Model", ConvVAE, MDNRNN)


# --- episodes ------------------------------------------------------------------------------------------


def missing_episodes(run_dir: Path, config: Config, indices: range | None = None) -> list[int]:
    """The episode indices among `indices` (default: the random ones) that have no file yet."""
    have = {episode_index(p) for p in list_episodes(Path(run_dir) / EPISODES_DIR)}
    return [i for i in (indices or range(config.collect.episodes)) if i not in have]


def require_episodes(run_dir: Path, config: Config) -> list[Path]:
    """The complete set of collected random episodes, or a UserError telling what to run."""
    missing = missing_episodes(run_dir, config)
    if missing:
        raise UserError(
            f"{Path(run_dir) / EPISODES_DIR} lacks {len(missing)} of {config.collect.episodes} episodes: "
            "run `worldmodels collect` first"
        )
    return list_episodes(Path(run_dir) / EPISODES_DIR)[: config.collect.episodes]


# --- V and M -------------------------------------------------------------------------------------------


def vae_checkpoint(run_dir: Path) -> Path:
    return Path(run_dir) / VAE_DIR / CHECKPOINT


def mdnrnn_checkpoint(run_dir: Path) -> Path:
    return Path(run_dir) / MDNRNN_DIR / CHECKPOINT


def _load_model(path: Path, kind: str, stage: str, model_class: type[Model], device: torch.device | str) -> Model:
    """The model of a finished stage's checkpoint, in eval mode on `device`."""
    if not path.is_file():
        raise UserError(f"{path} does not exist: run `worldmodels {stage}` first")
    state = load_checkpoint(path, kind)
    if not state.get("complete"):
        raise UserError(f"{path} is from an unfinished `{stage}`: run `worldmodels {stage}` again to finish it")
    model = model_class(**state["model_args"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def load_vae(run_dir: Path, device: torch.device | str = "cpu") -> ConvVAE:
    """V of a finished `train-vae`."""
    return _load_model(vae_checkpoint(run_dir), "vae", "train-vae", ConvVAE, device)


def load_mdnrnn(run_dir: Path, device: torch.device | str = "cpu", path: Path | None = None) -> MDNRNN:
    """M of a finished `train-mdnrnn` (or the snapshot at `path` that a round's controller was trained with)."""
    return _load_model(path or mdnrnn_checkpoint(run_dir), "mdnrnn", "train-mdnrnn", MDNRNN, device)


def load_initial_z(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar), each (N, Z) float32: V's statistics of first frames, where dream episodes start."""
    path = Path(run_dir) / SERIES_DIR / INITIAL_Z
    if not path.is_file():
        raise UserError(f"{path} does not exist: run `worldmodels encode` first")
    data = read_arrays(path, ("mu", "logvar"))
    return data["mu"].astype(np.float32), data["logvar"].astype(np.float32)


# --- C and the rounds of iterative training ------------------------------------------------------------


def controller_spec(config: Config, mode: str | None = None) -> ControllerSpec:
    """The run's controller layout (`mode` overrides controller.mode)."""
    task = task_spec(config.env)
    return ControllerSpec(mode=mode or config.controller.mode, latent_dim=config.vae.latent_dim,
                          hidden_size=config.mdnrnn.hidden_size, action_dim=task.action_dim, env=config.env)


def round_dir(run_dir: Path, index: int) -> Path:
    return Path(run_dir) / ROUNDS_DIR / f"{index:02d}"


def round_state(run_dir: Path, index: int) -> dict[str, Any]:
    """Round `index`'s round.json ({} while it is unfinished; round 0: the first pass's real score)."""
    path = round_dir(run_dir, index) / ROUND_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def round_controller(run_dir: Path, index: int) -> Path:
    """The directory of round `index`'s controller (round 0: the first pass, controller/)."""
    return round_dir(run_dir, index) if index else Path(run_dir) / CONTROLLER_DIR


def controller_dir(run_dir: Path, config: Config) -> Path:
    """Where the run's controller lives: the last finished round's (or controller/), or the best-scoring one."""
    states = [round_state(run_dir, i) for i in range(config.iterate.rounds + 1)]
    last = max((i for i in range(1, len(states)) if states[i].get("complete")), default=0)
    if config.iterate.keep == "best":
        scored = [i for i in range(last + 1) if "real_mean" in states[i]]
        last = max(scored, key=lambda i: states[i]["real_mean"], default=last)
    return round_controller(run_dir, last)


def controller_name(run_dir: Path, config: Config) -> str:
    """`controller_dir` relative to the run directory, as eval.json records it ("controller", "rounds/01")."""
    return str(controller_dir(run_dir, config).relative_to(run_dir))


def agent_mdnrnn(run_dir: Path, config: Config) -> Path | None:
    """The M checkpoint the run's controller was trained with, when it is not the run's current M."""
    path = controller_dir(run_dir, config) / M_SNAPSHOT
    return path if path.is_file() else None


def load_params(directory: Path) -> np.ndarray:
    """The best controller's flat parameters in a controller directory."""
    return read_arrays(directory / BEST, ("params",))["params"]


def has_controller(run_dir: Path, config: Config) -> bool:
    """Whether the run has a trained controller (`controller_dir`'s best.npz)."""
    return (controller_dir(run_dir, config) / BEST).is_file()


def load_best(run_dir: Path, config: Config | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """(params, meta) of the run's controller (`controller_dir`; `config` defaults to the run's)."""
    path = controller_dir(run_dir, config or load_run_config(run_dir)) / BEST
    if not path.is_file():
        raise UserError(f"{path} does not exist: run `worldmodels train-controller` first")
    data = read_arrays(path, ("params", "meta"))
    return data["params"], data["meta"]


def controller_start(config: Config) -> np.ndarray | None:
    """CMA-ES's starting point from `controller.init` (None: x0 = 0), checked against this run's layout."""
    source = config.controller.init
    if not source:
        return None
    path = Path(source)
    if (path / CONFIG_FILE).is_file():
        params, _ = load_best(path)
    elif (path / BEST).is_file():
        params = load_params(path)
    else:
        raise UserError(f"controller.init={source!r} is neither a run directory nor a directory with {BEST}: "
                        "give one, e.g. runs/NAME or runs/NAME/rounds/04")
    spec = controller_spec(config)
    if params.shape != (spec.num_params,):
        raise UserError(f"controller.init={source!r} has {params.size} parameters, this run's C has "
                        f"{spec.num_params} (mode {spec.mode}, z {spec.latent_dim}, h {spec.hidden_size}): start "
                        "from a controller trained with this run's V and M")
    return params.astype(np.float64)


def agent_temperature(run_dir: Path, config: Config) -> float:
    """The dream temperature the run's controller was trained at (a round's may be iterate.temperature), or
    controller.temperature before there is a controller."""
    if not has_controller(run_dir, config):
        return config.controller.temperature
    return float(load_best(run_dir, config)[1]["temperature"])
