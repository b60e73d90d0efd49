"""Score one snapshot's C from `sibling_snapshots.py` over the two evaluation sets (seeds 10000-10099 and
20000-20099) with that snapshot's M (RESULTS.md, session 15).

    python docs/experiments/snapshot_sets.py RUN_COPY NAME     (NAME as in rounds/01/snapshots/, e.g. 1-e27)
"""

import sys
import time
from pathlib import Path

from sibling_snapshots import snapshot_dir  # this directory's, on sys.path when run as a script

from worldmodels.artifacts import mdnrnn_checkpoint
from worldmodels.config import load_run_config
from worldmodels.runtime import Runtime
from worldmodels.stages import iterate
from worldmodels.stages.evaluate import score


def main() -> None:
    run, name = Path(sys.argv[1]), sys.argv[2]
    rt = Runtime(run_dir=run, config=load_run_config(run), workers=2, envs=16, device="cpu", quiet=True)
    out = snapshot_dir(run, name)
    params = iterate.load_params(run, 1, out)
    for base in (10000, 20000):
        tic = time.time()
        returns = score(rt, params, list(range(base, base + 100)), mdnrnn_checkpoint(out))
        print(name, base, f"{returns.mean():.1f} ± {returns.std():.1f}", f"{(time.time() - tic) / 60:.1f} min",
              flush=True)


if __name__ == "__main__":  # the process pool's workers import this module
    main()
