"""Are the epoch snapshots of one round-1 sibling's M fine-tune draws of their own? (RESULTS.md, session 15)

    python docs/experiments/sibling_snapshots.py RUN_COPY SIBLING E1 [E2 ...]

RUN_COPY is a `cp -al` copy of a finished doom-quick run (the files written here are new ones, under
`rounds/01/snapshots/`). Sibling SIBLING's M fine-tune is re-run from the round's starting M one epoch at a
time (epochs E1 < E2 < ... below the round's), and each snapshot gets a C trained in its dream and scored over
the round's 30 episodes, as the round scores a sibling. The last snapshot is then trained on, M only, to the
round's epochs and compared with the sibling's own M (is the resumed fine-tune the same trajectory?).
"""
import shutil
import sys
import time
from pathlib import Path

import torch

from worldmodels.config import load_run_config
from worldmodels.runtime import Runtime
from worldmodels.stages import iterate


def main() -> None:
    run, sibling, epochs = Path(sys.argv[1]), int(sys.argv[2]), [int(e) for e in sys.argv[3:]]
    cfg = load_run_config(run)
    rt = Runtime(run_dir=run, config=cfg, workers=2, envs=16, device="cpu", quiet=True)
    rdir = iterate.round_dir(run, 1)
    seed = iterate.sibling_seed(cfg, 1, sibling)
    previous = rdir / iterate.M_START
    for e in epochs:
        out = rdir / "snapshots" / f"{sibling}-e{e}"
        m_path = out / "mdnrnn" / "checkpoint.pt"
        if not m_path.is_file():
            m_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(previous, m_path)
        tic = time.time()
        start = {"x0": None, "sigma0": cfg.controller.sigma0}
        scores = iterate.train_m_and_c(rt, 1, out, m_path, seed, iterate.episodes_after(cfg, 1), e, start)
        print(f"sibling {sibling} epoch {e}: dream {scores['dream_mean']:.0f} ± {scores['dream_std']:.0f} "
              f"({scores['generations']} gens), real {scores['real_mean']:.1f} ± {scores['real_std']:.1f} "
              f"({(time.time() - tic) / 60:.1f} min)", flush=True)
        previous = m_path
    own_path = rdir / iterate.SIBLINGS_DIR / str(sibling) / "mdnrnn" / "checkpoint.pt"
    own = torch.load(own_path, weights_only=False)
    last = torch.load(previous, weights_only=False)
    if last["epoch"] < own["epoch"]:  # M only, on to the sibling's epochs
        from worldmodels.stages import train_mdnrnn
        scratch = rdir / "snapshots" / f"{sibling}-e{own['epoch']}-m" / "mdnrnn" / "checkpoint.pt"
        scratch.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(previous, scratch)
        train_mdnrnn.run(iterate.round_runtime(rt, seed), episodes=iterate.episodes_after(cfg, 1),
                         epochs=own["epoch"], path=scratch)
        last = torch.load(scratch, weights_only=False)
    if last["epoch"] == own["epoch"]:
        same = all(torch.equal(a, b) for a, b in zip(own["model"].values(), last["model"].values()))
        print(f"epoch {last['epoch']}: identical to the sibling's own M: {same}", flush=True)


if __name__ == "__main__":
    main()
