"""Are the epoch snapshots of one round-1 sibling's M fine-tune draws of their own? (RESULTS.md, session 15)

    python docs/experiments/sibling_snapshots.py RUN_COPY SIBLING E1 [E2 ...]

RUN_COPY is a `cp -al` copy of a finished doom-quick run (the files written here are new ones, under
`rounds/01/snapshots/`). Sibling SIBLING's M fine-tune is re-run from the round's starting M one epoch at a
time (epochs E1 < E2 < ... below the round's), and each snapshot gets a C trained in its dream and scored over
the round's 30 episodes, as the round scores a sibling. The last snapshot is then trained on, M only, to the
round's epochs and compared with the sibling's own M (is the resumed fine-tune the same trajectory?).
`snapshot_sets.py` scores one snapshot's C over the two evaluation sets.
"""

import shutil
import sys
import time
from pathlib import Path

import torch

from worldmodels.artifacts import mdnrnn_checkpoint
from worldmodels.checkpoint import load_checkpoint
from worldmodels.config import load_run_config
from worldmodels.runtime import Runtime
from worldmodels.stages import iterate, train_mdnrnn


def snapshot_dir(run: Path, name: str) -> Path:
    """Where snapshot `name` (SIBLING-eEPOCH) keeps its M (`mdnrnn/`) and C."""
    return iterate.round_dir(run, 1) / "snapshots" / name


def main() -> None:
    run, sibling, epochs = Path(sys.argv[1]), int(sys.argv[2]), [int(e) for e in sys.argv[3:]]
    cfg = load_run_config(run)
    rt = Runtime(run_dir=run, config=cfg, workers=2, envs=16, device="cpu", quiet=True)
    seed, episodes = iterate.sibling_seed(cfg, 1, sibling), iterate.episodes_after(cfg, 1)
    start = {"x0": None, "sigma0": cfg.controller.sigma0}
    own = load_checkpoint(mdnrnn_checkpoint(iterate.round_dir(run, 1) / iterate.SIBLINGS_DIR / str(sibling)),
                          "mdnrnn")
    if epochs != sorted(epochs) or epochs[-1] >= own["epoch"]:
        sys.exit(f"epochs must ascend and stay below the round's {own['epoch']}")
    previous = iterate.round_dir(run, 1) / iterate.M_START
    for e in epochs:
        out = snapshot_dir(run, f"{sibling}-e{e}")
        m_path = mdnrnn_checkpoint(out)
        if not m_path.is_file():
            m_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(previous, m_path)
        tic = time.time()
        scores = iterate.train_m_and_c(rt, 1, out, m_path, seed, episodes, e, start)
        print(f"sibling {sibling} epoch {e}: dream {scores['dream_mean']:.0f} ± {scores['dream_std']:.0f} "
              f"({scores['generations']} gens), real {scores['real_mean']:.1f} ± {scores['real_std']:.1f} "
              f"({(time.time() - tic) / 60:.1f} min)", flush=True)
        previous = m_path

    last = mdnrnn_checkpoint(snapshot_dir(run, f"{sibling}-e{own['epoch']}-m"))
    last.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(previous, last)
    train_mdnrnn.run(iterate.round_runtime(rt, seed), episodes=episodes, epochs=own["epoch"], path=last)  # M only
    trained = load_checkpoint(last, "mdnrnn")["model"]
    same = all(torch.equal(a, b) for a, b in zip(own["model"].values(), trained.values()))
    print(f"epoch {own['epoch']}: identical to the sibling's own M: {same}", flush=True)


if __name__ == "__main__":  # the process pool's workers import this module
    main()
