"""One C trained in the ensemble of round 1's sibling dreams (each candidate's rollouts split across the Ms,
every agent reading its own M's h), then scored in the game with each sibling's M over the round's episodes
(RESULTS.md, session 7).

    python docs/experiments/sibling_ensemble.py RUN_DIR OUT_NAME     # RUN_DIR with rounds/01/siblings/
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from worldmodels.config import load_run_config
from worldmodels.envs.dream import DreamWorld, rollout_population
from worldmodels.runtime import Runtime
from worldmodels.stages import iterate, train_controller


class EnsembleScorer:
    def __init__(self, rt, spec, paths):
        c = rt.config.controller
        self.worlds = [DreamWorld.from_run(rt.run_dir, rt.torch_device, dtype=getattr(torch, c.dream_dtype),
                                           mdnrnn_path=p) for p in paths]
        self.spec, self.c = spec, c

    def __call__(self, candidates, seeds):
        out = np.zeros(seeds.shape)
        K = len(self.worlds)
        for k, world in enumerate(self.worlds):
            cols = np.arange(k, seeds.shape[1], K)
            out[:, cols] = rollout_population(world, self.spec, candidates, seeds[:, cols], self.c.temperature,
                                              self.c.max_steps)
        return out

    def close(self):
        pass


if __name__ == "__main__":
    run_dir, name = Path(sys.argv[1]), sys.argv[2]
    cfg = load_run_config(run_dir)
    rt = Runtime(run_dir, cfg, workers=2, device="cpu")
    sib = run_dir / "rounds" / "01" / "siblings"
    paths = sorted(sib.glob("*/mdnrnn/checkpoint.pt"))
    print("Ms:", paths, flush=True)
    train_controller.make_scorer = lambda rt, spec, mdnrnn_path=None: EnsembleScorer(rt, spec, paths)
    out = run_dir / name
    best = train_controller.run(rt, round_index=1, out=out, generations=cfg.iterate.generations, x0=None,
                                sigma0=cfg.controller.sigma0)
    params = iterate.load_params(run_dir, 1, out)
    scores = {}
    for p in paths:
        scores[str(p.relative_to(run_dir))] = iterate.real_score(rt, params, p)
        print(p, scores[str(p.relative_to(run_dir))], flush=True)
    (out / "scores.json").write_text(json.dumps({"dream": best, "real": scores}, indent=2))
