"""How reliably C's training rollouts rank a generation's candidates (CarRacing in the real environment).

    python docs/experiments/carracing_rank_noise.py RUN_DIR [--rollouts 4] [--workers 2]

Draws one generation's candidates from the run's CMA-ES state (controller/es.pt, as training would next ask)
and scores each on 2 x `--rollouts` tracks shared by all candidates, as `controller.shared_seeds` does, with the
run's `controller.negative_stop` and training engine. Prints the Spearman correlation between the candidates'
mean returns on the first and on the second half of the tracks: near 1, CMA-ES sees the candidates' order;
near 0, it sees noise. Also the spread of the candidates' true means against the noise of one half's mean.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from worldmodels.artifacts import ES_CHECKPOINT, controller_dir, controller_spec
from worldmodels.checkpoint import load_checkpoint
from worldmodels.config import load_run_config
from worldmodels.es import CMAES
from worldmodels.runtime import Runtime
from worldmodels.stages.train_controller import RealScorer
from worldmodels.tools.diagnose import rank_correlation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--rollouts", type=int, default=4, help="tracks in each half")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    config = load_run_config(args.run_dir)
    state = load_checkpoint(controller_dir(args.run_dir, config) / ES_CHECKPOINT, "es")
    es = CMAES.from_state_dict(state["es"])
    candidates = es.ask()
    P, R = len(candidates), args.rollouts
    seeds = np.tile(np.arange(900_000, 900_000 + 2 * R), (P, 1))  # tracks no generation trains on
    rt = Runtime(args.run_dir, config, workers=args.workers, quiet=True)
    scorer = RealScorer(rt, controller_spec(config))
    tic = time.perf_counter()
    try:
        returns = scorer(candidates, seeds)  # (P, 2R), training rollouts (negative_stop as configured)
    finally:
        scorer.close()
    first, second = returns[:, :R].mean(axis=1), returns[:, R:].mean(axis=1)
    noise = float(np.sqrt(np.mean(returns[:, :R].var(axis=1, ddof=1) / R)))  # standard error of one half's mean
    print(f"{P} candidates of generation {state['es']['generation'] + 1}, sigma {es.sigma:.4f}, 2 x {R} shared "
          f"tracks, negative_stop {config.controller.negative_stop}: {scorer.env_steps} env steps in "
          f"{time.perf_counter() - tic:.0f} s")
    print(f"Spearman(first half, second half) = {rank_correlation(first, second):.2f}")
    print(f"spread of the candidates' means over all {2 * R} tracks: {returns.mean(axis=1).std(ddof=1):.1f}; "
          f"standard error of one half's mean: {noise:.1f}")


if __name__ == "__main__":
    main()
