"""Synthetic run directories for dream and controller tests: no environment, a hand-built M.

`make_dream_run(path)` writes config.yaml (doom-smoke sizes shrunk), a finished M whose done logit is a
known function of the action (so a controller can learn to survive), V, and initial_z. Survival rule:
M's cell reads a through tanh(3a), so h ~ tanh(tanh(3a)), and the episode ends when 1 - 5h > 0, i.e.
unless the controller keeps a above roughly 0.07.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldmodels.artifacts import INITIAL_Z, SERIES_DIR, mdnrnn_checkpoint, vae_checkpoint
from worldmodels.checkpoint import save_checkpoint
from worldmodels.config import resolve, save_run_config
from worldmodels.data.episodes import write_arrays
from worldmodels.models.mdnrnn import MDNRNN
from worldmodels.models.vae import ConvVAE

LATENT, HIDDEN = 4, 8


def survival_mdnrnn(latent_dim: int = LATENT, hidden_size: int = HIDDEN) -> MDNRNN:
    model = MDNRNN(latent_dim, 1, hidden_size, restart_input=True, done_head=True)
    H = hidden_size
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        bias = model.lstm.bias_ih_l0
        bias[0:H] = 10.0  # input gate open
        bias[H : 2 * H] = -10.0  # forget gate shut: the cell holds this step's input only
        bias[3 * H : 4 * H] = 10.0  # output gate open
        model.lstm.weight_ih_l0[2 * H : 3 * H, latent_dim] = 3.0  # cell input g = tanh(3a)
        model.output_layer.weight[0, :] = -5.0 / H  # done logit = 1 - 5 * mean(h)
        model.output_layer.bias[0] = 1.0
        # mixture rows stay zero: uniform weights, mu 0, sigma 1
    return model.eval()


def save_mdnrnn(path: Path, mdnrnn: MDNRNN) -> Path:
    """A finished M checkpoint of `mdnrnn` (the run's M, or a controller's snapshot of the M it trained in)."""
    return save_checkpoint(path, "mdnrnn", {
        "model": mdnrnn.state_dict(), "complete": True, "epoch": 0, "step": 0, "parameters": 0,
        "paper_parameters": 0, "model_args": {"latent_dim": mdnrnn.latent_dim, "action_dim": mdnrnn.action_dim,
                                              "hidden_size": mdnrnn.hidden_size, "num_mixtures": mdnrnn.num_mixtures,
                                              "restart_input": mdnrnn.restart_input, "done_head": mdnrnn.done_head,
                                              "reward_head": mdnrnn.reward_head}})


def make_dream_run(run_dir: Path, overrides: list[str] | None = None) -> Path:
    config = resolve("doom-smoke", [
        f"vae.latent_dim={LATENT}", f"mdnrnn.hidden_size={HIDDEN}", "controller.population_size=16",
        "controller.rollouts=4", "controller.max_steps=50", "controller.generations=8",
        "controller.eval_every=4", "controller.eval_rollouts=16", *(overrides or []),
    ])
    save_run_config(run_dir, config)
    save_mdnrnn(mdnrnn_checkpoint(run_dir), survival_mdnrnn())
    vae = ConvVAE(LATENT)
    save_checkpoint(vae_checkpoint(run_dir), "vae", {"model": vae.state_dict(), "complete": True,
                                                     "model_args": {"latent_dim": LATENT}, "epoch": 0, "step": 0,
                                                     "parameters": 0})
    rng = np.random.default_rng(0)
    write_arrays(Path(run_dir) / SERIES_DIR / INITIAL_Z, compress=False,
                 mu=rng.normal(size=(20, LATENT)).astype(np.float16),
                 logvar=np.full((20, LATENT), -2.0, np.float16))
    return Path(run_dir)
