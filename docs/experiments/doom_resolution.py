"""ViZDoom at 320x240 vs 160x120 (`doom_resolution`, docs/doom-resolution.md): bare steps/s, the same random
episodes collected both ways (lengths, actions, frame difference, wall time), and zlib's cost on their frames.

    python docs/experiments/doom_resolution.py [EPISODES]      # default 100 episodes per resolution
"""

import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from worldmodels.bench import time_bare_env
from worldmodels.data.episodes import list_episodes, read_episode

RESOLUTIONS = ("320x240", "160x120")


def main() -> None:
    episodes = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    for _ in range(2):  # alternating, so that a change in the machine's load shows
        rates = [time_bare_env("doom", 2000, r) for r in RESOLUTIONS]
        print("bare steps/s (one process, random actions):", " / ".join(f"{r:,.0f}" for r in rates),
              f"= {rates[1] / rates[0]:.2f}x", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for resolution in RESOLUTIONS:
            run = Path(tmp) / resolution
            tic = time.perf_counter()
            subprocess.run(["worldmodels", "collect", "--preset", "doom-quick", "--run-dir", str(run), "--quiet",
                            "--set", f"collect.episodes={episodes}", "--set", f"doom_resolution={resolution}"],
                           check=True)
            print(f"collect {episodes} episodes at {resolution}: {time.perf_counter() - tic:.1f} s wall", flush=True)
            runs.append([read_episode(p) for p in list_episodes(run / "episodes")])
        same = all(len(a.obs) == len(b.obs) and np.array_equal(a.action, b.action) for a, b in zip(*runs))
        difference = [np.abs(a.obs.astype(np.float32) - b.obs).mean() for a, b in zip(*runs)]
        print(f"same lengths and actions: {same}; mean |frame difference| {np.mean(difference):.2f} of 255 "
              f"(episodes {min(difference):.2f}-{max(difference):.2f}); frame std {runs[0][0].obs.std():.1f}")
        raw = runs[0][0].obs.tobytes()
        for level in (1, 6):
            tic = time.perf_counter()
            size = len(zlib.compress(raw, level))
            print(f"zlib level {level}: {1000 * (time.perf_counter() - tic):.0f} ms for {len(runs[0][0].obs)} frames, "
                  f"ratio {len(raw) / size:.2f}")


if __name__ == "__main__":  # collection's worker pool imports this module
    main()
