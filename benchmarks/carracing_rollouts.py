"""Agent steps per second of C's CarRacing training rollouts on EnvPool, as `train-controller` runs them.

    python benchmarks/carracing_rollouts.py RUN_DIR [--workers 2] [--envs 16] [--episodes 64] [--task-sizes 16,64]

`--workers` processes, each running lockstep tasks of `--task-size` episodes on `--envs` EnvPool envs (a task
larger than `--envs` refills an env when its episode ends), with `controller.negative_stop` from the run's
config. Every episode drives its own candidate: the run's best controller (controller/best.npz) plus Gaussian
noise of `--sigma`, on the shared tracks of one generation. Two ways of stepping the envs, in one run:
`thread` (a Python thread calls each env's blocking `step`) and `async` (EnvPool's own threads step while
the agent computes; `FrameEnv.asynchronous`, the package's default for EnvPool). The returns must match.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np
import torch

from worldmodels.artifacts import load_best
from worldmodels.bench import machine
from worldmodels.config import load_run_config
from worldmodels.envs.carracing import EnvPoolCarRacingEnv
from worldmodels.rollout import RolloutTask, RolloutWorker


def work(run_dir: str, config: dict, envs: int, asynchronous: bool, tasks: list[RolloutTask]) -> tuple:
    torch.set_num_threads(1)  # as executors.py sets in each worker
    EnvPoolCarRacingEnv.asynchronous = asynchronous
    run = RolloutWorker(run_dir, config, 1000, envs=envs, backend="envpool")()
    run(RolloutTask(tasks[0].params[:envs], tasks[0].seeds[:envs], 20))  # warm-up: make the envs
    tic = time.perf_counter()
    results = [run(task) for task in tasks]
    return time.perf_counter() - tic, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--episodes", type=int, default=64, help="episodes per worker")
    parser.add_argument("--task-sizes", default="16,64")
    parser.add_argument("--sigma", type=float, default=0.05)
    args = parser.parse_args()

    config = load_run_config(args.run_dir)
    best = load_best(args.run_dir, config)[0].astype(np.float32)
    rng = np.random.default_rng(0)
    params = best + args.sigma * rng.standard_normal((args.episodes, best.size)).astype(np.float32)
    seeds = tuple(range(1000, 1000 + args.episodes))
    rows, reference = [], None
    context = multiprocessing.get_context("spawn")
    for size in (int(s) for s in args.task_sizes.split(",")):
        tasks = [RolloutTask(params[i : i + size], seeds[i : i + size], config.controller.negative_stop)
                 for i in range(0, args.episodes, size)]
        for mode in ("thread", "async"):
            with context.Pool(args.workers) as pool:
                outs = pool.starmap(work, [(str(args.run_dir), config.to_dict(), args.envs, mode == "async", tasks)
                                           for _ in range(args.workers)])
            returns = [r for task in outs[0][1] for r, _ in task]
            steps = sum(length for _, results in outs for task in results for _, length in task)
            seconds = max(s for s, _ in outs)
            if reference is None:
                reference = returns
            assert returns == reference, "the returns differ between ways of stepping"
            rows.append((f"{mode}, tasks of {size}", f"{steps / seconds:.0f}", f"{steps} steps in {seconds:.1f} s",
                         f"{np.mean(returns):.1f}"))
            print(" | ".join(rows[-1]), flush=True)
    facts = machine()
    print(f"\nCommand: `python benchmarks/carracing_rollouts.py {' '.join(sys.argv[1:])}`")
    print(f"Machine: {facts['nproc']} cores ({facts['cpu']}), torch {facts['torch']}; {facts['date']}, "
          f"load average {facts['load_average']:.1f}")
    print(f"\n| stepping | agent steps/s ({args.workers} workers x {args.envs} envs) | measured | mean return |")
    print("|---|---:|---|---:|")
    for row in rows:
        print(f"| {' | '.join(row)} |")


if __name__ == "__main__":
    main()
