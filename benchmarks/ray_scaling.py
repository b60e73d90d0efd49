"""Real-environment rollouts on the process pool and on Ray, at 1 and 2 workers, and Ray's per-task cost.

    python benchmarks/ray_scaling.py [--tasks 8] [--max-steps 300] [--noop-tasks 200] [--ray-address ADDR]

1. Agent steps per second: the Doom agent at the paper's sizes (V z 64, M LSTM 512, C "zch"), fresh
   untrained V and M (speed does not depend on the weights), each task one episode capped at
   `--max-steps` (Doom's reward is +1 per step survived, so the returns count the steps). The same tasks
   (parameters and seeds) on every executor, so the returns must agree too; the script checks they do.
   Worker start-up (loading V and M, making the environment) is excluded: every worker runs one task
   first.
2. Per-task overhead: `--noop-tasks` tasks whose worker returns its input at once, on each executor;
   the time per task is what the executor adds to every rollout.

Ray runs as a private local instance with 2 CPUs (or on the cluster at `--ray-address`). Prints a
Markdown table with the machine, the date and the command. Ray runs its workers at nice 15, so on a
machine busy with other work they get less of the CPU than the process pool's workers (nice 0).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from worldmodels.bench import DOOM, make_agent_run
from worldmodels.executors import make_executor
from worldmodels.rollout import RolloutTask, RolloutWorker

KINDS = ("process", "ray")


class NoOpWorker:
    """Factory of a worker that returns its task: the executor's own cost per task.

    Defined in this script, so it reaches the workers by value (Ray pickles `__main__` classes whole) or
    by re-importing this file (the process pool's fork server).
    """

    def __call__(self):
        return _identity


def _identity(task):
    return task


def rollout_rate(kind: str, workers: int, run_dir: Path, config: dict, tasks: list, max_steps: int,
                 ray_address: str | None) -> tuple[float, list]:
    """(agent steps per second, returns) of `tasks` on `workers` workers, start-up excluded."""
    worker = RolloutWorker(str(run_dir), config, max_steps)
    with make_executor(kind, worker, workers, task_timeout=900.0, ray_address=ray_address) as executor:
        executor.map(tasks[:workers])  # starts (builds) every worker
        tic = time.perf_counter()
        returns = executor.map(tasks)
        seconds = time.perf_counter() - tic
    return sum(r[0] for r in returns) / seconds, returns


def task_overhead(kind: str, workers: int, count: int, ray_address: str | None) -> float:
    """Seconds per no-op task, start-up excluded."""
    with make_executor(kind, NoOpWorker(), workers=workers, ray_address=ray_address) as executor:
        executor.map(list(range(workers * 4)))  # starts every worker
        tic = time.perf_counter()
        assert executor.map(list(range(count))) == list(range(count))
        return (time.perf_counter() - tic) / count


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import ray

    return (f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, torch {torch.__version__}, "
            f"Ray {ray.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=8, help="Doom episodes per measurement")
    parser.add_argument("--max-steps", type=int, default=300, help="step cap of each episode")
    parser.add_argument("--noop-tasks", type=int, default=200, help="no-op tasks per overhead measurement")
    parser.add_argument("--ray-address", help="a running Ray cluster (default: a private local instance)")
    args = parser.parse_args()

    import logging

    import ray

    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)  # as RayExecutor does
    # One Ray instance for every measurement (each executor would otherwise start and stop its own);
    # the executors find it initialised and use it.
    if args.ray_address:
        ray.init(address=args.ray_address, log_to_driver=False, logging_level="WARNING")
    else:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING")
    load_before = os.getloadavg()
    rng = np.random.default_rng(0)
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="wm-ray-bench-") as tmp:
        run_dir = Path(tmp) / "doom"
        config = make_agent_run(run_dir, DOOM)  # fresh V and M at Doom's paper sizes
        num_params = 1088  # Doom "zch": (64 + 512 + 512) x 1
        tasks = [RolloutTask(rng.normal(0.0, 0.1, num_params).astype(np.float32), (i,))
                 for i in range(args.tasks)]
        rates: dict[tuple[str, int], float] = {}
        reference = None
        for kind in KINDS:
            for workers in (1, 2):
                rate, returns = rollout_rate(kind, workers, run_dir, config, tasks, args.max_steps,
                                             args.ray_address)
                if reference is None:
                    reference = returns
                assert returns == reference, f"{kind} x {workers}: other returns {returns} vs {reference}"
                rates[kind, workers] = rate
                steps = sum(r[0] for r in returns)
                print(f"{kind:>7} x {workers}: {rate:7.1f} agent steps/s ({steps:.0f} steps)", flush=True)
        for kind in KINDS:
            scaling = rates[kind, 2] / rates[kind, 1]
            rows.append((f"Doom agent rollouts, {kind} executor, 1 worker", f"{rates[kind, 1]:.0f} steps/s",
                         f"{args.tasks} episodes, <= {args.max_steps} steps each"))
            rows.append((f"Doom agent rollouts, {kind} executor, 2 workers", f"{rates[kind, 2]:.0f} steps/s",
                         f"{scaling:.2f}x the 1-worker rate"))
        for kind in KINDS:
            for workers in (1, 2):
                seconds = task_overhead(kind, workers, args.noop_tasks, args.ray_address)
                print(f"{kind:>7} x {workers}: {seconds * 1e3:.2f} ms per no-op task", flush=True)
                rows.append((f"per-task overhead, {kind} executor, {workers} worker{'s' * (workers > 1)}",
                             f"{seconds * 1e3:.2f} ms", f"{args.noop_tasks} no-op tasks"))
    ray.shutdown()
    load_after = os.getloadavg()

    print()
    print(f"Command: `python benchmarks/ray_scaling.py {' '.join(sys.argv[1:])}`")
    print(f"Machine: {machine()}")
    print(f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after (1 min)")
    print()
    print("| measurement | value | note |")
    print("|---|---:|---|")
    for what, value, note in rows:
        print(f"| {what} | {value} | {note} |")


if __name__ == "__main__":
    main()
