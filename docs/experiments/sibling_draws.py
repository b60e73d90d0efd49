"""More draws of a finished doom-quick run's round-1 sibling Ms, as `iterate.siblings` would make them, without
touching the run's outcome (RESULTS.md, session 12).

    python docs/experiments/sibling_draws.py RUN_COPY m S [S ...]   # fine-tune sibling S's M only
    python docs/experiments/sibling_draws.py RUN_COPY c S [S ...]   # then its C, scored over the round's episodes

RUN_COPY is a copy of the run (`cp -al` will do: every file written here is new). Sibling S's M starts from
`rounds/01/mdnrnn-start.pt` with the seed `iterate.train_siblings` gives it and is fine-tuned on the round's
episodes to the round's epochs; `c` then trains C in its dream and scores it over the round's 30 real episodes
(`iterate.train_m_and_c`, which skips the finished M), writing `sibling.json` as the round does.
"""

import json
import sys
import time
from pathlib import Path

from worldmodels.artifacts import CHECKPOINT, MDNRNN_DIR
from worldmodels.checkpoint import atomic_write_bytes, atomic_write_text
from worldmodels.config import load_run_config
from worldmodels.runtime import Runtime
from worldmodels.stages import iterate, train_mdnrnn


def main() -> None:
    run, what, siblings = Path(sys.argv[1]), sys.argv[2], [int(s) for s in sys.argv[3:]]
    cfg = load_run_config(run)
    rt = Runtime(run_dir=run, config=cfg, workers=2, device="cpu", quiet=True)
    episodes, epochs = iterate.episodes_after(cfg, 1), iterate.mdnrnn_epochs_after(cfg, 1)
    for s in siblings:
        out = iterate.round_dir(run, 1) / iterate.SIBLINGS_DIR / str(s)
        m_path = out / MDNRNN_DIR / CHECKPOINT
        if not m_path.is_file():
            atomic_write_bytes(m_path, (iterate.round_dir(run, 1) / iterate.M_START).read_bytes())
        seed = iterate.sibling_seed(cfg, 1, s)
        tic = time.time()
        if what == "m":
            train_mdnrnn.run(iterate.round_runtime(rt, seed), episodes=episodes, epochs=epochs, path=m_path)
            print(f"sibling {s} (seed {seed}): M in {(time.time() - tic) / 60:.1f} min", flush=True)
            continue
        start = {"x0": None, "sigma0": cfg.controller.sigma0}
        scores = iterate.train_m_and_c(rt, 1, out, m_path, seed, episodes, epochs, start)
        atomic_write_text(out / iterate.SIBLING_FILE, json.dumps({"sibling": s, "seed": seed, **scores}, indent=2))
        print(f"sibling {s} (seed {seed}): {scores}, {(time.time() - tic) / 60:.1f} min", flush=True)


if __name__ == "__main__":  # the process pool's workers import this module
    main()
