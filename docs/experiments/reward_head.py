"""What M's reward head predicts on a run's own training episodes, against what the environment paid.

    python docs/experiments/reward_head.py RUN_DIR [RUN_DIR ...] [--episodes 10]

M runs teacher-forced (V's mean z and the actions taken) over the first `--episodes` encoded episodes of each
run, split by the policy that collected them (`collect.driver`'s agent or the random policy), up to each
episode's first terminal step. Prints per policy the mean return earned and the sum M predicted, and M's mean
prediction on the steps that paid a tile (reward > 0) and on the others (CarRacing's -0.1).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from worldmodels.artifacts import load_mdnrnn
from worldmodels.data.episodes import episode_path, read_arrays
from worldmodels.data.sequences import load_series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run_dir in args.run_dirs:
        model = load_mdnrnn(run_dir, "cpu")
        rows: dict[str, list] = {}
        for path in sorted((run_dir / "series").glob("[0-9]*.npz"))[: args.episodes]:
            policy = read_arrays(episode_path(run_dir / "episodes", int(path.stem)), ("meta",))["meta"]["policy"]
            data = load_series(path)
            z, action = (
                torch.from_numpy(data["mu"])[None],
                torch.from_numpy(data["action"].reshape(len(data["mu"]), -1))[None],
            )
            with torch.no_grad():
                out, _, _ = model(z[:, :-1], action[:, :-1])
            alive = data["alive"][:-1] > 0
            predicted, paid = out.reward[0].numpy()[alive], data["reward"][:-1][alive]
            rows.setdefault(policy, []).append(
                (
                    paid.sum(),
                    predicted.sum(),
                    predicted[paid > 0].mean() if (paid > 0).any() else np.nan,
                    predicted[paid <= 0].mean(),
                )
            )
        for policy, values in rows.items():
            paid, predicted, on_tiles, elsewhere = np.nanmean(np.array(values, dtype=np.float64), axis=0)
            print(
                f"{run_dir}: {policy} ({len(values)} episodes): earned {paid:.1f}, M predicted {predicted:.1f}; "
                f"per step on tile steps {on_tiles:.2f}, on the others {elsewhere:.3f}"
            )


if __name__ == "__main__":
    main()
