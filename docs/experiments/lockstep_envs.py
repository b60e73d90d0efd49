"""The agent's steps/s in lockstep with 8 and 16 envs per worker, at both Doom resolutions, one thread, against
the bare env (bench's own timing functions; docs/doom-resolution.md has the figures).

    python docs/experiments/lockstep_envs.py
"""
import tempfile
from pathlib import Path

import torch

from worldmodels import bench

torch.set_num_threads(1)
with tempfile.TemporaryDirectory() as tmp:
    run_dir = Path(tmp) / "doom"
    bench.make_agent_run(run_dir, bench.DOOM)
    for res in ("320x240", "160x120"):
        env = bench.time_bare_env("doom", 1600, res)
        for n in (16, 8, 16, 8, 16):
            a = bench.time_agent(run_dir, "doom", 1600, n, res)
            print(res, n, f"env {env:.0f} agent {a:.0f} overhead {env / a - 1:.0%}", flush=True)
