"""`worldmodels encode`: V's (mu, logvar) for every frame, one series file per episode (docs/faithfulness.md#v).

M trains on these instead of frames, resampling z = mu + exp(logvar / 2) * eps every batch, as the
original did from its float16 `series` files. Also writes `series/initial_z.npz`, the first-frame
statistics of the first 1000 episodes, where every dream episode starts (`doomrnn/rnn_train.py` L123-132).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodels.artifacts import INITIAL_Z, SERIES_DIR, load_vae, require_episodes, vae_checkpoint
from worldmodels.checkpoint import load_checkpoint
from worldmodels.data.episodes import (
    clean_directory,
    episode_index,
    episode_path,
    list_episodes,
    read_arrays,
    read_episode,
    write_arrays,
)
from worldmodels.errors import UserError
from worldmodels.logger import progress_bar
from worldmodels.models.vae import frames_to_tensor
from worldmodels.runtime import Runtime

INITIAL_Z_EPISODES = 1000
ENCODE_BATCH = 500


@torch.no_grad()
def encode_frames(vae, obs: np.ndarray, device) -> tuple[np.ndarray, np.ndarray]:
    """(T, 64, 64, 3) uint8 -> mu, logvar (T, Z) float16 (the original stored float16 too)."""
    mus, logvars = [], []
    for start in range(0, len(obs), ENCODE_BATCH):
        mu, logvar = vae.encode(frames_to_tensor(obs[start : start + ENCODE_BATCH], device))
        mus.append(mu.cpu())
        logvars.append(logvar.cpu())
    return torch.cat(mus).half().numpy(), torch.cat(logvars).half().numpy()


def vae_version(run_dir: Path) -> int:
    """The training step of the current V; series encoded by another V are stale."""
    path = vae_checkpoint(run_dir)
    if not path.is_file():
        raise UserError(f"{path} does not exist: run `worldmodels train-vae` first")
    return int(load_checkpoint(path, "vae")["step"])


def is_current(path: Path, version: int) -> bool:
    return path.is_file() and read_arrays(path, ("meta",))["meta"].get("vae_step") == version


def run(rt: Runtime, episodes: list[Path] | None = None) -> None:
    """Encode `episodes` (default: the collected ones) with the current V, skipping up-to-date series."""
    episodes = require_episodes(rt.run_dir, rt.config) if episodes is None else episodes
    series_dir = rt.run_dir / SERIES_DIR
    series_dir.mkdir(parents=True, exist_ok=True)
    clean_directory(series_dir)
    version = vae_version(rt.run_dir)
    todo = [p for p in episodes if not is_current(series_dir / p.name, version)]
    if todo:
        device = rt.torch_device
        vae = load_vae(rt.run_dir, device)
        bar = progress_bar(len(episodes), "encode", unit="ep", initial=len(episodes) - len(todo), quiet=rt.quiet)
        for path in bar.wrap(todo):
            episode = read_episode(path)
            mu, logvar = encode_frames(vae, episode.obs, device)
            # Uncompressed: series files are small and M reads them every step.
            write_arrays(series_dir / path.name, compress=False, mu=mu, logvar=logvar,
                         action=episode.action, reward=episode.reward, done=episode.done,
                         meta={**episode.meta, "vae_step": version})
    initial = series_dir / INITIAL_Z
    if todo or not initial.is_file():
        count = min(INITIAL_Z_EPISODES, len(episodes))
        first = [read_arrays(episode_path(series_dir, i), ("mu", "logvar")) for i in range(count)]
        write_arrays(initial, compress=False, mu=np.stack([f["mu"][0] for f in first]),
                     logvar=np.stack([f["logvar"][0] for f in first]))
    print(f"encode: {len(episodes)} episodes in {series_dir}")


def status(run_dir: Path, config) -> dict[str, Any]:
    series = [p for p in list_episodes(run_dir / SERIES_DIR) if episode_index(p) < config.collect.episodes]
    if not series:
        return {"status": "missing", "episodes": 0}
    current = vae_checkpoint(run_dir).is_file() and is_current(series[0], vae_version(run_dir))
    complete = len(series) == config.collect.episodes and (run_dir / SERIES_DIR / INITIAL_Z).is_file() and current
    return {"status": "done" if complete else "partial", "episodes": len(series)}
