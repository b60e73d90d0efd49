"""Iterative training (section 5 of the paper), a stage of `run` when `iterate.rounds` > 0.

A single pass on random-policy data rarely transfers for Doom: M has never seen what a competent agent
does, so C finds actions whose consequences M gets wrong (the first prototype of this project: holding
RIGHT survived 981 steps in the dream, 157 in the game). Each round therefore:

    1. collects `iterate.episodes` episodes with the current controller plus random exploration;
    2. fine-tunes V (if iterate.vae_epochs > 0, then re-encodes everything) and encodes the new episodes;
    3. fine-tunes M on all the data for `iterate.mdnrnn_epochs` more epochs;
    4. retrains C in the dream for `iterate.generations`, warm-started from the last round's best (or
       afresh with `iterate.warm_start: false`);
    5. scores the new C over `iterate.eval_episodes` real episodes, the same seeds every round.

Collection always uses the latest controller, so that its mistakes enter M's data. The run ends with the
last round's controller, or with `iterate.keep: best` the best-scoring of the first pass (scored before
round 1 into `rounds/00/round.json`) and all rounds. Each controller runs with the M it was trained with:
a copy of M is kept beside it (`controller/mdnrnn.pt`, `rounds/NN/mdnrnn.pt`) and `agent_mdnrnn` names the
one the run's controller needs (the same C over seeds 10000-10099: 748 steps with its own M, 573 with the
M of two rounds later; RESULTS.md attempts 4 and 5).
Round r lives in `rounds/NN/` (es.pt, best.npz, metrics, round.json, mdnrnn.pt); its episodes continue the
numbering of `episodes/`. Every step is resumable, and a finished round is skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.artifacts import CONTROLLER_DIR, mdnrnn_checkpoint
from worldmodels.checkpoint import atomic_write_bytes, atomic_write_text, load_checkpoint
from worldmodels.config import Config
from worldmodels.data.episodes import list_episodes, read_arrays
from worldmodels.runtime import Runtime
from worldmodels.seeding import derive_seed

ROUNDS_DIR, ROUND_FILE, M_SNAPSHOT = "rounds", "round.json", "mdnrnn.pt"


def round_dir(run_dir: Path, index: int) -> Path:
    return Path(run_dir) / ROUNDS_DIR / f"{index:02d}"


def round_state(run_dir: Path, index: int) -> dict[str, Any]:
    path = round_dir(run_dir, index) / ROUND_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def episodes_after(config: Config, index: int) -> int:
    """How many episodes exist once round `index` has collected its own (round 0: the random ones)."""
    return config.collect.episodes + index * config.iterate.episodes


def round_controller(run_dir: Path, index: int) -> Path:
    """The directory of round `index`'s controller (round 0: the first pass, controller/)."""
    return round_dir(run_dir, index) if index else Path(run_dir) / CONTROLLER_DIR


def controller_dir(run_dir: Path, config: Config) -> Path:
    """Where the run's controller lives: the last finished round's (or controller/), or the best-scoring one."""
    states = [round_state(run_dir, i) for i in range(config.iterate.rounds + 1)]
    last = max((i for i in range(1, len(states)) if states[i].get("complete")), default=0)
    if config.iterate.keep == "best":
        scored = [i for i in range(last + 1) if "real_mean" in states[i]]
        last = max(scored, key=lambda i: states[i]["real_mean"], default=last)
    return round_controller(run_dir, last)


def agent_mdnrnn(run_dir: Path, config: Config) -> Path | None:
    """The M checkpoint the run's controller was trained with, when it is not the run's current M."""
    path = controller_dir(run_dir, config) / M_SNAPSHOT
    return path if path.is_file() else None


def snapshot_mdnrnn(run_dir: Path, index: int) -> None:
    """Keep a copy of the current M beside round `index`'s controller (round 0: the first pass)."""
    atomic_write_bytes(round_controller(run_dir, index) / M_SNAPSHOT, mdnrnn_checkpoint(run_dir).read_bytes())


def real_score(rt: Runtime, params: np.ndarray) -> dict[str, Any]:
    """A controller's real score over iterate.eval_episodes episodes, the same seeds for every round."""
    from worldmodels.stages.evaluate import score

    seeds = [derive_seed(rt.config.seed, "round-evaluation", i) for i in range(rt.config.iterate.eval_episodes)]
    real = score(rt, params, seeds)
    return {"real_mean": float(real.mean()), "real_std": float(real.std()), "real_episodes": len(real)}


def load_params(run_dir: Path, index: int) -> np.ndarray:
    from worldmodels.stages.train_controller import BEST

    return read_arrays(round_controller(run_dir, index) / BEST, ("params",))["params"]


def run(rt: Runtime) -> None:
    from worldmodels.stages import collect, encode, train_controller, train_mdnrnn, train_vae

    cfg, it = rt.config, rt.config.iterate
    if not (round_controller(rt.run_dir, 0) / M_SNAPSHOT).is_file():
        # before round 1 fine-tunes M (a run begun before snapshots existed may be past that point)
        if load_checkpoint(mdnrnn_checkpoint(rt.run_dir), "mdnrnn")["epoch"] == cfg.mdnrnn.epochs:
            snapshot_mdnrnn(rt.run_dir, 0)
    if it.keep == "best" and not round_state(rt.run_dir, 0):
        first = real_score(rt, load_params(rt.run_dir, 0))
        atomic_write_text(round_dir(rt.run_dir, 0) / ROUND_FILE, json.dumps(first, indent=2))
        print(f"iterate: first pass: real {first['real_mean']:.0f} ± {first['real_std']:.0f} "
              f"over {first['real_episodes']} episodes")
    for index in range(1, it.rounds + 1):
        out = round_dir(rt.run_dir, index)
        if round_state(rt.run_dir, index).get("complete"):
            print(f"iterate: round {index} is done, skipped")
            continue
        print(f"iterate: round {index} of {it.rounds}", flush=True)
        params = load_params(rt.run_dir, index - 1)

        total = episodes_after(cfg, index)
        collect.run(rt, range(episodes_after(cfg, index - 1), total), agent_params=params,
                    exploration=it.exploration)
        episodes = list_episodes(rt.run_dir / collect.EPISODES_DIR)[:total]
        if it.vae_epochs:
            train_vae.run(rt, episodes, epochs=cfg.vae.epochs + index * it.vae_epochs)
        encode.run(rt, episodes)
        train_mdnrnn.run(rt, episodes=total, epochs=cfg.mdnrnn.epochs + index * it.mdnrnn_epochs)
        if it.warm_start:
            start = {"x0": params.astype(np.float64), "sigma0": it.sigma0}
        else:
            start = {"x0": None, "sigma0": cfg.controller.sigma0}
        best = train_controller.run(rt, round_index=index, out=out, generations=it.generations, **start)
        snapshot_mdnrnn(rt.run_dir, index)

        real = real_score(rt, load_params(rt.run_dir, index))
        state = {"complete": True, "episodes": total, "dream_mean": best["score"], "dream_std": best["std"], **real}
        atomic_write_text(out / ROUND_FILE, json.dumps(state, indent=2))
        print(f"iterate: round {index}: dream {best['score']:.0f} ± {best['std']:.0f}, "
              f"real {real['real_mean']:.0f} ± {real['real_std']:.0f} over {real['real_episodes']} episodes")
    if it.keep == "best":
        print(f"iterate: keeping {controller_dir(rt.run_dir, cfg).relative_to(rt.run_dir)} (best real score)")


def status(run_dir: Path, config: Config) -> dict[str, Any]:
    if config.iterate.rounds == 0:
        return {"status": "done", "rounds": 0}
    rounds = [round_state(run_dir, i) for i in range(1, config.iterate.rounds + 1)]
    finished = [r for r in rounds if r.get("complete")]
    info: dict[str, Any] = {
        "status": "done" if len(finished) == len(rounds) else ("partial" if finished else "missing"),
        "rounds": f"{len(finished)}/{config.iterate.rounds}",
    }
    first = round_state(run_dir, 0)
    if "real_mean" in first:
        info["first_pass"] = f"real {first['real_mean']:.0f} ± {first['real_std']:.0f}"
    for i, r in enumerate(finished, start=1):
        info[f"round_{i}"] = (f"dream {r['dream_mean']:.0f} ± {r['dream_std']:.0f}, "
                              f"real {r['real_mean']:.0f} ± {r['real_std']:.0f}")
    info["controller"] = str(controller_dir(run_dir, config).relative_to(run_dir))
    return info
