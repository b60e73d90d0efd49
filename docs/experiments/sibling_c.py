"""Retrain one round-1 sibling's C of a finished doom-quick run under config overrides, on the sibling's own M,
then score it over the round's 30 episodes and, optionally, over a validation set of real episodes (seeds
30000-, apart from the two evaluation sets 10000- and 20000-). RESULTS.md, session 13.

    python docs/experiments/sibling_c.py RUN_COPY SIBLING VALIDATION_EPISODES KEY=VALUE [KEY=VALUE ...]

e.g. `... /work/runs/dq21d 0 200 controller.dream_dropout=0.1`. RUN_COPY is a copy of the run (`cp -al` will
do: the files written here are new ones); the overrides are written into the copy's config.yaml, which every
dream of the copy reads. The sibling's C files are replaced, its M is kept (already at the round's epochs),
its seed is the one the round gives it.
"""

import sys
import time
from pathlib import Path

from worldmodels.artifacts import CHECKPOINT, MDNRNN_DIR
from worldmodels.config import apply_overrides, load_run_config, save_run_config
from worldmodels.runtime import Runtime
from worldmodels.stages import iterate
from worldmodels.stages.evaluate import score
from worldmodels.stages.train_controller import BEST, ES_CHECKPOINT


def main() -> None:
    run, sibling, validation, overrides = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
    cfg = apply_overrides(load_run_config(run), overrides)
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
    print(f"sibling {sibling}, {' '.join(overrides)}: {scores}, {(time.time() - tic) / 60:.1f} min", flush=True)
    if validation:
        params = iterate.load_params(run, 1, out)
        returns = score(rt, params, list(range(30000, 30000 + validation)), m_path)
        print(f"validation (seeds 30000-{30000 + validation - 1}): {returns.mean():.1f} ± {returns.std():.1f}",
              flush=True)


if __name__ == "__main__":  # the process pool's workers import this module
    main()
