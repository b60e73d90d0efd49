"""The returns of a run's collected episodes, per policy that collected them (random, or `collect.driver`'s agent).

    python docs/experiments/episode_returns.py RUN_DIR [RUN_DIR ...]

A return counts the rewards up to and including an episode's first terminal step (CarRacing's collection drives
on past it). Reads only each episode's rewards, dones and meta, not its frames.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from worldmodels.data.episodes import list_episodes, read_arrays


def episode_return(reward: np.ndarray, done: np.ndarray) -> float:
    ends = np.flatnonzero(done)
    return float(reward[: ends[0] + 1 if ends.size else None].astype(np.float64).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    args = parser.parse_args()
    for run_dir in args.run_dirs:
        returns: dict[str, list[float]] = {}
        for path in list_episodes(run_dir / "episodes"):
            data = read_arrays(path, ("reward", "done", "meta"))
            returns.setdefault(data["meta"]["policy"], []).append(episode_return(data["reward"], data["done"]))
        for policy, values in returns.items():
            print(f"{run_dir}: {policy}: {len(values)} episodes, return {np.mean(values):.1f} ± {np.std(values):.1f}")


if __name__ == "__main__":
    main()
