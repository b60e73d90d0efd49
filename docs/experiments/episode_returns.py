"""The returns of a run's collected episodes, per policy that collected them (random, or `collect.driver`'s agent).

    python docs/experiments/episode_returns.py RUN_DIR [RUN_DIR ...] [--block 100]

A return counts the rewards up to and including an episode's first terminal step (CarRacing's collection drives
on past it). With `--block N` the episodes are grouped also by index // N, so that the episodes each round of
`worldmodels iterate` collected with its controller show apart. Beside each group's returns: the mean of each
action dimension and of its absolute value (CarRacing: steer, gas, brake). Reads only each episode's rewards,
dones, actions and meta, not its frames.
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
    parser.add_argument("--block", type=int, default=0, help="also group by episode index // BLOCK (0: no)")
    args = parser.parse_args()
    for run_dir in args.run_dirs:
        returns: dict[str, list[float]] = {}
        actions: dict[str, list[np.ndarray]] = {}  # per group, each episode's (2, A): mean action, mean |action|
        for path in list_episodes(run_dir / "episodes"):
            data = read_arrays(path, ("reward", "done", "action", "meta"))
            meta, action = data["meta"], data["action"].reshape(len(data["reward"]), -1).astype(np.float64)
            name = meta["policy"]
            if args.block:
                start = meta["index"] // args.block * args.block
                name = f"episodes {start}-{start + args.block - 1}, {name}"
            returns.setdefault(name, []).append(episode_return(data["reward"], data["done"]))
            actions.setdefault(name, []).append(np.stack([action.mean(axis=0), np.abs(action).mean(axis=0)]))
        for name, values in returns.items():
            mean, magnitude = np.mean(actions[name], axis=0).round(2).tolist()
            print(
                f"{run_dir}: {name}: {len(values)} episodes, return {np.mean(values):.1f} ± {np.std(values):.1f}; "
                f"action mean {mean}, mean |action| {magnitude}"
            )


if __name__ == "__main__":
    main()
