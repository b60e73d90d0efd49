"""Retrain one round-1 sibling's C in a dream with another done threshold (`controller.done_threshold`), on
the sibling's own M, then score it over the round's 30 episodes and over a validation set of real episodes
(RESULTS.md, session 12). The option did not help and is not in the package: `git apply
docs/experiments/done-threshold.patch` first.

    python docs/experiments/done_threshold.py RUN_COPY SIBLING THRESHOLD [VALIDATION_EPISODES]

RUN_COPY is a copy of a finished doom-quick run (`cp -al` will do: the files written are new ones); the
sibling's C files there are replaced, its M is kept (already at the round's epochs), its seed is the one the
round gives it. The threshold is written into the copy's config.yaml, which every dream of the copy reads. Validation episodes use seeds 30000-, apart from
the two evaluation sets (10000-, 20000-).
"""

import dataclasses
import sys
import time
from pathlib import Path

from worldmodels.artifacts import CHECKPOINT, MDNRNN_DIR
from worldmodels.config import load_run_config, save_run_config
from worldmodels.runtime import Runtime
from worldmodels.stages import iterate
from worldmodels.stages.evaluate import score
from worldmodels.stages.train_controller import BEST, ES_CHECKPOINT


def main() -> None:
    run, sibling, threshold = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    validation = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    cfg = load_run_config(run)
    cfg = dataclasses.replace(cfg, controller=dataclasses.replace(cfg.controller, done_threshold=threshold))
    save_run_config(run, cfg, force=True)
    rt = Runtime(run_dir=run, config=cfg, workers=2, envs=16, device="cpu", quiet=True)
    out = iterate.round_dir(run, 1) / iterate.SIBLINGS_DIR / str(sibling)
    m_path = out / MDNRNN_DIR / CHECKPOINT
    for name in (BEST, ES_CHECKPOINT, "metrics.jsonl", "fitness.png", iterate.SIBLING_FILE):
        (out / name).unlink(missing_ok=True)
    tic = time.time()
    start = {"x0": None, "sigma0": cfg.controller.sigma0}
    scores = iterate.train_m_and_c(rt, 1, out, m_path, iterate.sibling_seed(cfg, 1, sibling),
                                   iterate.episodes_after(cfg, 1), iterate.mdnrnn_epochs_after(cfg, 1), start)
    print(f"sibling {sibling}, done logit > {threshold}: {scores}, {(time.time() - tic) / 60:.1f} min", flush=True)
    if validation:
        params = iterate.load_params(run, 1, out)
        returns = score(rt, params, list(range(30000, 30000 + validation)), m_path)
        print(f"validation (seeds 30000-{30000 + validation - 1}): {returns.mean():.1f} ± {returns.std():.1f}",
              flush=True)


if __name__ == "__main__":  # the process pool's workers import this module
    main()
