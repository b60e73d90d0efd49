"""CarRacing's C training in the real environment on a local Ray cluster of 1 node, then 2 nodes.

    python benchmarks/ray_carracing.py [--candidates 8] [--rollouts 2] [--max-steps 400] [--envs 8]

What `worldmodels train-controller --executor ray` runs each generation: `RealScorer` on the CarRacing agent at
the paper's sizes (V z 32, M LSTM 256, C on [z, h]; fresh untrained V and M, which run at the speed of trained
ones) over EnvPool's CarRacing, `--candidates` x `--rollouts` episodes capped at `--max-steps`. One Ray cluster
on this machine (`ray.cluster_utils.Cluster`), first with one node of 1 CPU and 1 worker, then with a second
node of 1 CPU joined and 2 workers; each measurement after a warm-up generation that starts the workers. The
returns must be the same on 1 and 2 nodes (seeds come from the task, not the worker). Prints a Markdown table
with the machine, the date and the command.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keep every address on the loopback

from ray_scaling import machine  # noqa: E402

from worldmodels.artifacts import controller_spec  # noqa: E402
from worldmodels.bench import CARRACING, make_agent_run  # noqa: E402
from worldmodels.config import from_dict  # noqa: E402
from worldmodels.es import CMAES, paired_seeds  # noqa: E402
from worldmodels.runtime import Runtime  # noqa: E402
from worldmodels.stages.train_controller import RealScorer  # noqa: E402

MB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--rollouts", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--envs", type=int, default=8, help="envs in lockstep per worker (--envs)")
    args = parser.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="wm-ray-car-") as tmp:
        run_dir = Path(tmp) / "carracing"
        config_dict = make_agent_run(run_dir, CARRACING)
        config_dict["carracing_backend"] = "envpool"
        config_dict["controller"].update(max_steps=args.max_steps, negative_stop=0)
        config = from_dict(config_dict)
        spec = controller_spec(config)
        es = CMAES(spec.num_params, args.candidates, 0.1, seed=0)
        warm_up, candidates = es.ask(), es.ask()
        seeds = paired_seeds(0, 0, args.candidates, args.rollouts, shared=True)

        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 1, "object_store_memory": 80 * MB, "include_dashboard": False})
        reference = None
        try:
            ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
            for nodes in (1, 2):
                if nodes == 2:
                    cluster.add_node(num_cpus=1, object_store_memory=80 * MB)
                    cluster.wait_for_nodes()
                rt = Runtime(run_dir, config, workers=nodes, envs=args.envs, executor="ray",
                             ray_address=cluster.address, quiet=True)
                scorer = RealScorer(rt, spec)
                try:
                    scorer(warm_up, seeds)  # starts the workers and makes their environments
                    scorer.env_steps = 0
                    tic = time.perf_counter()
                    returns = scorer(candidates, seeds)
                    seconds = time.perf_counter() - tic
                finally:
                    scorer.close()
                if reference is None:
                    reference = returns
                np.testing.assert_array_equal(returns, reference)  # the same returns on any cluster
                episodes = returns.size
                rows.append((f"{nodes} node{'s' * (nodes > 1)} x 1 CPU, {nodes} worker{'s' * (nodes > 1)}",
                             f"{episodes / seconds * 60:.1f} rollouts/min", f"{scorer.env_steps / seconds:.0f} steps/s",
                             f"{episodes} episodes, {scorer.env_steps} steps, {seconds:.1f} s"))
                print(" | ".join(rows[-1]), flush=True)
        finally:
            ray.shutdown()
            cluster.shutdown()
    load_after = os.getloadavg()
    print()
    print(f"Command: `python benchmarks/ray_carracing.py {' '.join(sys.argv[1:])}`")
    print(f"Machine: {machine()}")
    print(f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after (1 min)")
    print()
    print("| cluster | rollouts | agent steps | note |")
    print("|---|---:|---:|---|")
    for row in rows:
        print(f"| {' | '.join(row)} |")


if __name__ == "__main__":
    main()
