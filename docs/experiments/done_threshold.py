"""Retrain one round-1 sibling's C in a dream with another done threshold (`controller.done_threshold`), on
the sibling's own M, then score it over the round's 30 episodes and over a validation set of real episodes
(RESULTS.md, session 12). The option did not help and is not in the package: `git apply
docs/experiments/done-threshold.patch` first.

    python docs/experiments/done_threshold.py RUN_COPY SIBLING THRESHOLD [VALIDATION_EPISODES]

RUN_COPY is a copy of a finished doom-quick run (its own files, not hard links, under
`rounds/01/siblings/SIBLING/`); the sibling's C files there are replaced, its M is kept (already at the
round's epochs). The sibling's seed is read from its `sibling.json`. The threshold is written into the
copy's config.yaml, which every dream of the copy reads. Validation episodes use seeds 30000-, apart from
the two evaluation sets (10000-, 20000-).
"""

import dataclasses
import json
import sys
import time
from pathlib import Path

from worldmodels.config import load_run_config, save_run_config
from worldmodels.runtime import Runtime
from worldmodels.stages import iterate
from worldmodels.stages.evaluate import score
from worldmodels.stages.train_controller import BEST, ES_CHECKPOINT


def main() -> None:
    run, sibling, threshold = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    validation = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    cfg = load_run_config(run)
    cfg = dataclasses.replace(cfg, controller=dataclasses.replace(cfg.controller, done_threshold=threshold))
    save_run_config(run, cfg, force=True)
    rt = Runtime(run_dir=run, config=cfg, workers=2, envs=16, device="cpu", quiet=True)
    out = run / "rounds" / "01" / "siblings" / sibling
    seed = json.loads((out / "sibling.json").read_text())["seed"]
    for name in (BEST, ES_CHECKPOINT, "metrics.jsonl", "fitness.png", "sibling.json"):
        (out / name).unlink(missing_ok=True)
    tic = time.time()
    start = {"x0": None, "sigma0": cfg.controller.sigma0}
    epochs = cfg.mdnrnn.epochs + cfg.iterate.mdnrnn_epochs
    scores = iterate.train_m_and_c(rt, 1, out, out / "mdnrnn" / "checkpoint.pt", seed,
                                   iterate.episodes_after(cfg, 1), epochs, start)
    print(f"sibling {sibling}, done logit > {threshold}: {scores}, {(time.time() - tic) / 60:.1f} min", flush=True)
    if validation:
        params = iterate.load_params(run, 1, out)
        returns = score(rt, params, list(range(30000, 30000 + validation)), out / "mdnrnn" / "checkpoint.pt")
        print(f"validation (seeds 30000-{30000 + validation - 1}): {returns.mean():.1f} ± {returns.std():.1f}",
              flush=True)


if __name__ == "__main__":  # the process pool's workers import this module
    main()
