"""Iterative training (section 5 of the paper), a stage of `run` when `iterate.rounds` > 0.

A single pass on random-policy data rarely transfers for Doom: M has never seen what a competent agent
does, so C finds actions whose consequences M gets wrong (the first prototype of this project: holding
RIGHT survived 981 steps in the dream, 157 in the game). Each round therefore:

    1. collects `iterate.episodes` episodes with the current controller plus random exploration;
    2. fine-tunes V (if iterate.vae_epochs > 0, then re-encodes everything) and encodes the new episodes;
    3. fine-tunes M on all the data for `iterate.mdnrnn_epochs` more epochs;
    4. retrains C in the dream for `iterate.generations`, warm-started from the last round's best;
    5. scores the new C over `iterate.eval_episodes` real episodes.

Round r lives in `rounds/NN/` (es.pt, best.npz, metrics, round.json); its episodes continue the numbering
of `episodes/`. Every step is resumable, and a finished round is skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.artifacts import CONTROLLER_DIR
from worldmodels.checkpoint import atomic_write_text
from worldmodels.config import Config
from worldmodels.data.episodes import list_episodes, read_arrays
from worldmodels.runtime import Runtime
from worldmodels.seeding import derive_seed

ROUNDS_DIR, ROUND_FILE = "rounds", "round.json"


def round_dir(run_dir: Path, index: int) -> Path:
    return Path(run_dir) / ROUNDS_DIR / f"{index:02d}"


def round_state(run_dir: Path, index: int) -> dict[str, Any]:
    path = round_dir(run_dir, index) / ROUND_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def episodes_after(config: Config, index: int) -> int:
    """How many episodes exist once round `index` has collected its own (round 0: the random ones)."""
    return config.collect.episodes + index * config.iterate.episodes


def controller_dir(run_dir: Path, config: Config) -> Path:
    """Where the current controller lives: the last finished round's directory, or controller/."""
    for index in range(config.iterate.rounds, 0, -1):
        if round_state(run_dir, index).get("complete"):
            return round_dir(run_dir, index)
    return Path(run_dir) / CONTROLLER_DIR


def run(rt: Runtime) -> None:
    from worldmodels.stages import collect, encode, train_controller, train_mdnrnn, train_vae
    from worldmodels.stages.evaluate import score

    cfg, it = rt.config, rt.config.iterate
    for index in range(1, it.rounds + 1):
        out = round_dir(rt.run_dir, index)
        if round_state(rt.run_dir, index).get("complete"):
            print(f"iterate: round {index} is done, skipped")
            continue
        print(f"iterate: round {index} of {it.rounds}", flush=True)
        previous = controller_dir(rt.run_dir, cfg)
        params = read_arrays(previous / train_controller.BEST, ("params",))["params"]

        total = episodes_after(cfg, index)
        collect.run(rt, range(episodes_after(cfg, index - 1), total), agent_params=params,
                    exploration=it.exploration)
        episodes = list_episodes(rt.run_dir / collect.EPISODES_DIR)[:total]
        if it.vae_epochs:
            train_vae.run(rt, episodes, epochs=cfg.vae.epochs + index * it.vae_epochs)
        encode.run(rt, episodes)
        train_mdnrnn.run(rt, episodes=total, epochs=cfg.mdnrnn.epochs + index * it.mdnrnn_epochs)
        best = train_controller.run(rt, round_index=index, out=out, generations=it.generations,
                                    x0=params.astype(np.float64), sigma0=it.sigma0)

        new_params = read_arrays(out / train_controller.BEST, ("params",))["params"]
        seeds = [derive_seed(cfg.seed, "round-evaluation", index, i) for i in range(it.eval_episodes)]
        real = score(rt, new_params, seeds)
        state = {"complete": True, "episodes": total, "dream_mean": best["score"], "dream_std": best["std"],
                 "real_mean": float(real.mean()), "real_std": float(real.std()), "real_episodes": len(real)}
        atomic_write_text(out / ROUND_FILE, json.dumps(state, indent=2))
        print(f"iterate: round {index}: dream {best['score']:.0f} ± {best['std']:.0f}, "
              f"real {real.mean():.0f} ± {real.std():.0f} over {len(real)} episodes")


def status(run_dir: Path, config: Config) -> dict[str, Any]:
    if config.iterate.rounds == 0:
        return {"status": "done", "rounds": 0}
    rounds = [round_state(run_dir, i) for i in range(1, config.iterate.rounds + 1)]
    finished = [r for r in rounds if r.get("complete")]
    info: dict[str, Any] = {
        "status": "done" if len(finished) == len(rounds) else ("partial" if finished else "missing"),
        "rounds": f"{len(finished)}/{config.iterate.rounds}",
    }
    for i, r in enumerate(finished, start=1):
        info[f"round_{i}"] = (f"dream {r['dream_mean']:.0f} ± {r['dream_std']:.0f}, "
                              f"real {r['real_mean']:.0f} ± {r['real_std']:.0f}")
    return info
