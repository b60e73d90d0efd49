"""`worldmodels encode`: V's (mu, logvar) for every frame, one series file per episode (SPEC.md section 1).

M trains on these instead of frames, resampling z = mu + exp(logvar / 2) * eps every batch, as the
original did from its float16 `series` files. Also writes `series/initial_z.npz`, the first-frame
statistics of the first 1000 episodes, where every dream episode starts (`doomrnn/rnn_train.py` L123-132).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodels.artifacts import INITIAL_Z, SERIES_DIR, load_vae
from worldmodels.data.episodes import (
    clean_directory,
    episode_index,
    episode_path,
    list_episodes,
    read_arrays,
    read_episode,
    write_arrays,
)
from worldmodels.logger import progress_bar
from worldmodels.models.vae import frames_to_tensor
from worldmodels.runtime import Runtime
from worldmodels.stages.common import require_episodes

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


def run(rt: Runtime) -> None:
    episodes = require_episodes(rt)
    series_dir = rt.run_dir / SERIES_DIR
    series_dir.mkdir(parents=True, exist_ok=True)
    clean_directory(series_dir)
    done = {episode_index(p) for p in list_episodes(series_dir)}
    todo = [p for p in episodes if episode_index(p) not in done]
    if todo:
        device = rt.torch_device
        vae = load_vae(rt.run_dir, device)
        for path in progress_bar(len(episodes), "encode", unit="ep", initial=len(done), quiet=rt.quiet).wrap(todo):
            episode = read_episode(path)
            mu, logvar = encode_frames(vae, episode.obs, device)
            # Uncompressed: series files are small and M reads them every step.
            write_arrays(series_dir / path.name, compress=False, mu=mu, logvar=logvar,
                         action=episode.action, reward=episode.reward, done=episode.done, meta=episode.meta)
    initial = series_dir / INITIAL_Z
    if todo or not initial.is_file():
        first = [read_arrays(episode_path(series_dir, i), ("mu", "logvar")) for i in range(min(INITIAL_Z_EPISODES, len(episodes)))]
        write_arrays(initial, compress=False, mu=np.stack([f["mu"][0] for f in first]),
                     logvar=np.stack([f["logvar"][0] for f in first]))
    print(f"encode: {len(episodes)} episodes in {series_dir}")


def status(run_dir: Path, config) -> dict[str, Any]:
    count = sum(1 for p in list_episodes(run_dir / SERIES_DIR) if episode_index(p) < config.collect.episodes)
    complete = count == config.collect.episodes and (run_dir / SERIES_DIR / INITIAL_Z).is_file()
    return {"status": "done" if complete else ("partial" if count else "missing"), "episodes": count}
