"""One CarRacing controller scored in Gymnasium's and in EnvPool's CarRacing-v3 over the same seeds, side by side.

    python docs/experiments/carracing_backends.py RUN_DIR [--seed 10000] [--episodes 100] [--workers 2]
        [--gymnasium-from RUN_DIR/eval.json] [--backends gymnasium,envpool]

The run's best C (with the M it was trained with), whole episodes (no early stop), each backend on its own
process pool. A seed draws another track in each backend (their random generators differ), so the two columns
are two samples of tracks of the same kind; their means should agree within their noise if EnvPool is a faithful
training stand-in. Prints mean ± std, the standard error of the difference, and both wall times. `--backends
envpool` scores on EnvPool alone: a quick real score of any run's controller (one trained in the dream, say).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from worldmodels.artifacts import agent_mdnrnn, load_best
from worldmodels.config import load_run_config
from worldmodels.executors import make_executor
from worldmodels.rollout import RolloutTask, RolloutWorker, task_chunks


def scores(run_dir: Path, backend: str, seeds: list[int], workers: int, envs: int) -> tuple[np.ndarray, float]:
    config = load_run_config(run_dir)
    params, _ = load_best(run_dir, config)
    worker = RolloutWorker(str(run_dir), config.to_dict(), 1000, agent_mdnrnn(run_dir, config), envs, backend)
    tasks = [RolloutTask(params, chunk) for chunk in task_chunks(seeds, envs, workers)]
    tic = time.perf_counter()
    with make_executor("process", worker, workers=workers, task_timeout=900.0) as executor:
        results = executor.map(tasks)
    return np.array([r for task in results for r, _ in task]), time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seed", type=int, default=10_000)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--gymnasium-from", type=Path, default=None,
                        help="take Gymnasium's returns from an `evaluate` output (eval.json) of the same seeds")
    parser.add_argument("--backends", default="gymnasium,envpool", help="the engines to score on, comma-separated")
    args = parser.parse_args()
    backends = args.backends.split(",")
    seeds = list(range(args.seed, args.seed + args.episodes))
    rows = {}
    if args.gymnasium_from:
        result = json.loads(args.gymnasium_from.read_text())
        assert result["seeds"] == seeds, f"{args.gymnasium_from} holds other seeds"
        rows["gymnasium"] = (np.array(result["returns"]), result["seconds"])
    for backend in backends:
        rows.setdefault(backend, scores(args.run_dir, backend, seeds, args.workers, args.envs))
    for backend, (returns, seconds) in rows.items():
        print(f"{backend:>9}: {returns.mean():7.1f} ± {returns.std():5.1f} over {len(returns)} episodes "
              f"(seeds {seeds[0]}-{seeds[-1]}), {seconds / 60:.1f} min")
    if len(rows) < 2:
        return
    (a, _), (b, _) = rows["gymnasium"], rows["envpool"]
    error = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    print(f"difference {b.mean() - a.mean():+.1f} (standard error {error:.1f})")


if __name__ == "__main__":
    main()
