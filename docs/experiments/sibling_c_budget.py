"""Does more C budget raise a good M's controller? (RESULTS.md, session 16)

    python docs/experiments/sibling_c_budget.py RUN_COPY SIBLING EPISODES G1 G2 ...

RUN_COPY is a `cp -al` copy of a finished doom-quick run (the files written here are new ones, under
`rounds/01/c-budget-SIBLING/`). A fresh C trains in the dream of round 1's sibling SIBLING's M, with the seed,
temperature and rollouts the round gives that sibling but no early stop (`iterate.abandon`), to G1 generations,
then on to G2, ...; the CMA-ES mean at each Gi is kept (`mean-Gi.npy`; at the round's own 20 generations it is
the round's C). Each is then scored over the round's 30 episodes and over seeds 30000-(30000 + EPISODES - 1),
apart from the two evaluation sets.
"""

import sys
import time
from pathlib import Path

import numpy as np

from worldmodels.artifacts import CHECKPOINT, MDNRNN_DIR
from worldmodels.checkpoint import load_checkpoint, save_checkpoint
from worldmodels.config import load_run_config
from worldmodels.es import CMAES
from worldmodels.runtime import Runtime
from worldmodels.stages import iterate, train_controller
from worldmodels.stages.evaluate import score
from worldmodels.stages.train_controller import ES_CHECKPOINT


def main() -> None:
    run, sibling, episodes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    gens = sorted(int(g) for g in sys.argv[4:])
    cfg = load_run_config(run)
    rt = Runtime(run_dir=run, config=cfg, workers=2, envs=16, device="cpu", quiet=False)
    m_path = iterate.round_dir(run, 1) / iterate.SIBLINGS_DIR / str(sibling) / MDNRNN_DIR / CHECKPOINT
    out = iterate.round_dir(run, 1) / f"c-budget-{sibling}"
    out.mkdir(exist_ok=True)
    trainer = iterate.round_runtime(rt, iterate.sibling_seed(cfg, 1, sibling))
    for g in gens:
        tic = time.time()
        best = train_controller.run(trainer, round_index=1, out=out, generations=g, mdnrnn_path=m_path,
                                    stop_fitness=None, x0=None, sigma0=cfg.controller.sigma0)
        state = load_checkpoint(out / ES_CHECKPOINT, "es")
        mean = CMAES.from_state_dict(state["es"]).mean
        np.save(out / f"mean-{g}.npy", mean.astype(np.float32))
        state = {k: v for k, v in state.items() if k not in ("format_version", "kind")}
        # marked unfinished, so that the next train_controller.run with more generations carries on from here
        save_checkpoint(out / ES_CHECKPOINT, "es", {**state, "complete": False})
        print(f"to {g} generations: best so far {best}, {(time.time() - tic) / 60:.1f} min", flush=True)
    for g in gens:
        tic = time.time()
        params = np.load(out / f"mean-{g}.npy")
        real = iterate.real_score(rt, params, m_path)
        returns = score(rt, params, list(range(30000, 30000 + episodes)), m_path)
        print(f"generation {g}: round episodes {real['real_mean']:.1f} ± {real['real_std']:.1f}; "
              f"seeds 30000-: {returns.mean():.1f} ± {returns.std():.1f}  ({(time.time() - tic) / 60:.1f} min)",
              flush=True)


if __name__ == "__main__":  # the process pool's workers import this module
    main()
