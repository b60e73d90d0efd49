"""Retrain one round-1 sibling's C (and M, to more epochs) with other settings, then score it on the two
100-episode evaluation sets (RESULTS.md, session 10).

    python docs/experiments/redraw_sibling.py RUN_DIR SIBLING ROLLOUTS M_EPOCHS

RUN_DIR is a copy of a finished doom-quick run whose `rounds/01/siblings/SIBLING/` holds only the sibling's
`mdnrnn/` (its C's files removed); the sibling's seed is read from the original `sibling.json`, passed as
the environment variable SIBLING_SEED (default: the run's seed, sibling 0's). M is fine-tuned on the run's
first 850 episodes up to M_EPOCHS (30 = as in the run: nothing to do), then a fresh C trains in its dream with
ROLLOUTS per candidate at the round's temperature, is scored over the round's 30 episodes, and over seeds
10000-10099 and 20000-20099 with one worker and 8 envs in lockstep.
"""

import dataclasses
import os
import sys
import time
from pathlib import Path

from worldmodels.config import load_run_config
from worldmodels.runtime import Runtime
from worldmodels.stages import iterate
from worldmodels.stages.evaluate import score


def main() -> None:
    run, sibling, rollouts, epochs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cfg = load_run_config(run)
    cfg = dataclasses.replace(cfg, controller=dataclasses.replace(cfg.controller, rollouts=rollouts))
    rt = Runtime(run_dir=run, config=cfg, workers=1, envs=8, device="cpu", quiet=True)
    out = run / "rounds" / "01" / "siblings" / sibling
    m_path = out / "mdnrnn" / "checkpoint.pt"
    seed = int(os.environ.get("SIBLING_SEED", cfg.seed))
    tic = time.time()
    start = {"x0": None, "sigma0": cfg.controller.sigma0}
    scores = iterate.train_m_and_c(rt, 1, out, m_path, seed, iterate.episodes_after(cfg, 1), epochs, start)
    print("sibling", scores, f"{(time.time() - tic) / 60:.1f} min", flush=True)
    params = iterate.load_params(run, 1, out)
    for base in (10000, 20000):
        tic = time.time()
        returns = score(rt, params, list(range(base, base + 100)), m_path)
        print(base, f"{returns.mean():.1f} ± {returns.std():.1f}", f"{(time.time() - tic) / 60:.1f} min", flush=True)


if __name__ == "__main__":  # the process pool's workers import this module
    main()
