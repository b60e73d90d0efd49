"""Fixed policies in one M's dream with the original's done rule (done logit > 0) and with the done drawn from
M's probability, de-biased for the x10 weight of positives in its loss (RESULTS.md, session 7).

    python docs/experiments/dream_done_draw.py RUN_DIR MDNRNN_CHECKPOINT [AGENTS]
"""

import math
import sys
from pathlib import Path

import torch

from worldmodels.config import load_run_config
from worldmodels.envs import dream as D


class DrawnDone(D.DreamBatch):
    """The dream with done ~ Bernoulli(sigmoid(logit - log 10)), one counter-based draw per agent and step:
    M's done logit is replaced by +1 (drawn) or -1 before the engine applies its threshold."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        step = self._step

        def drawn(core, z, action, restart, h, c, keys, steps, temperature):
            z, h, c, extra = step(core, z, action, restart, h, c, keys, steps, temperature)
            noise = D.CounterRandom.__new__(D.CounterRandom)
            noise.keys = keys
            done = noise.uniform(steps, 12, 1)[:, 0] < torch.sigmoid(extra[:, 0] - math.log(10.0))
            extra = extra.clone()
            extra[:, 0] = torch.where(done, 1.0, -1.0)
            return z, h, c, extra

        self._step = drawn


if __name__ == "__main__":
    run_dir, m_path = Path(sys.argv[1]), Path(sys.argv[2])
    agents = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    cfg = load_run_config(run_dir)
    world = D.DreamWorld.from_run(run_dir, "cpu", dtype=torch.bfloat16, mdnrnn_path=m_path)
    print("| policy | done logit > 0 (the original) | done drawn |\n|---|---|---|")
    for label, a in (("always LEFT", -1.0), ("always RIGHT", 1.0), ("no-op", 0.0)):
        row = []
        for cls in (D.DreamBatch, DrawnDone):
            batch = cls(world, cfg.controller.temperature, 2100)
            batch.reset(torch.arange(agents) + 777)
            while batch.alive.any():
                batch.step(torch.full((agents, 1), a))
            row.append(f"{batch.returns.mean().item():.0f} ± {batch.returns.std().item():.0f}")
        print(f"| {label} | {row[0]} | {row[1]} |")
