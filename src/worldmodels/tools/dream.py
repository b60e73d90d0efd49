"""`worldmodels dream RUN_DIR`: a video of the trained controller acting inside M's dream, decoded by V."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from worldmodels.artifacts import agent_mdnrnn, controller_spec, load_best, load_vae
from worldmodels.config import load_run_config
from worldmodels.envs.dream import DreamBatch, DreamWorld
from worldmodels.media import save_gif
from worldmodels.models.controller import controller_actions
from worldmodels.models.vae import tensor_to_frames
from worldmodels.runtime import resolve_device


@torch.no_grad()
def write_dream_video(run_dir: Path, out: Path, temperature: float | None = None, steps: int | None = None,
                      seed: int = 0, device: str = "auto") -> tuple[Path, float, int]:
    """One dream episode of the best controller as a GIF; returns (path, return, length)."""
    config = load_run_config(run_dir)
    torch_device = resolve_device(device)
    params, meta = load_best(run_dir, config)
    spec = controller_spec(config)
    world = DreamWorld.from_run(run_dir, torch_device, mdnrnn_path=agent_mdnrnn(run_dir, config))
    vae = load_vae(run_dir, torch_device)
    tau = float(meta["temperature"]) if temperature is None else temperature  # the one C was trained at
    batch = DreamBatch(world, tau, steps or config.controller.max_steps)
    batch.reset(torch.tensor([seed]))
    weights = torch.as_tensor(params, dtype=torch.float32, device=torch_device)[None]  # (1, num_params)
    frames = [tensor_to_frames(vae.decode(batch.z))[0]]
    while bool(batch.alive.any()):
        action = controller_actions(spec, weights, batch.features(spec))
        batch.step(action)
        frames.append(tensor_to_frames(vae.decode(batch.z))[0])
    save_gif(out, np.stack(frames), fps=25)
    return out, float(batch.returns[0]), len(frames) - 1
