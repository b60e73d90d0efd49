"""Iterative training (section 5 of the paper), the pipeline's step after the first pass when `iterate.rounds` > 0.

Each round runs stages again (collect, encode, train-mdnrnn, train-controller), so this module sits beside
the pipeline, above the stages.

A single pass on random-policy data rarely transfers for Doom: M has never seen what a competent agent
does, so C finds actions whose consequences M gets wrong (the first prototype of this project: holding
RIGHT survived 981 steps in the dream, 157 in the game). Each round therefore:

    1. collects `iterate.episodes` episodes with the current controller plus random exploration;
    2. encodes the new episodes with V (V is not fine-tuned);
    3. fine-tunes M on all the data for `iterate.mdnrnn_epochs` more epochs;
    4. retrains C in the dream for `iterate.generations` (at `iterate.temperature` if set), warm-started
       from the last round's best (or afresh with `iterate.warm_start: false`), stopping early where the
       whole population survives `iterate.abandon` of the step cap (a lenient dream);
    5. scores the new C over `iterate.eval_episodes` real episodes, the same seeds every round.

With `iterate.siblings` K > 1, steps 3-5 run K times from the same M on the same data, each sibling
with its own seed (M's data order and z noise, C's CMA-ES), and the round keeps the sibling whose C scores
best over the real episodes, with its M (a departure, like `keep: best`: on doom-quick about one fine-tune of
M in four gives a dream that transfers; RESULTS.md). Sibling s lives in `rounds/NN/siblings/s/`
(its M in `mdnrnn/`, its C, `sibling.json`); the winner's C and M are copied to `rounds/NN/` and become
the run's M. Sibling 0 keeps the run's seed, so it is the round that K = 1 would have trained.

Collection always uses the latest controller, so that its mistakes enter M's data. The run ends with the
last round's controller, or with `iterate.keep: best` the best-scoring of the first pass (scored before
round 1 into `rounds/00/round.json`) and all rounds. Each controller runs with the M it was trained with:
a copy of M is kept beside it (`controller/mdnrnn.pt`, `rounds/NN/mdnrnn.pt`) and `agent_mdnrnn` names the
one the run's controller needs (the same C over seeds 10000-10099: 748 steps with its own M, 573 with the
M of two rounds later).
Round r lives in `rounds/NN/` (es.pt, best.npz, metrics, round.json, mdnrnn.pt); its episodes continue the
numbering of `episodes/`. Every step is resumable, and a finished round is skipped.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.artifacts import (
    BEST,
    CHECKPOINT,
    EPISODES_DIR,
    ES_CHECKPOINT,
    M_SNAPSHOT,
    M_START,
    MDNRNN_DIR,
    ROUND_FILE,
    SIBLING_FILE,
    SIBLINGS_DIR,
    controller_dir,
    load_params,
    mdnrnn_checkpoint,
    round_controller,
    round_dir,
    round_state,
)
from worldmodels.checkpoint import atomic_write_bytes, atomic_write_text, load_checkpoint
from worldmodels.config import Config
from worldmodels.data.episodes import list_episodes
from worldmodels.rollout import score
from worldmodels.runtime import Runtime
from worldmodels.seeding import derive_seed
from worldmodels.stages import collect, encode, train_controller, train_mdnrnn


def episodes_after(config: Config, index: int) -> int:
    """How many episodes exist once round `index` has collected its own (round 0: the random ones)."""
    return config.collect.episodes + index * config.iterate.episodes


def mdnrnn_epochs_after(config: Config, index: int) -> int:
    """M's epoch count once round `index` has fine-tuned it (round 0: the first pass's)."""
    return config.mdnrnn.epochs + index * config.iterate.mdnrnn_epochs


def sibling_seed(config: Config, index: int, sibling: int) -> int:
    """The seed of round `index`'s sibling: the run's for sibling 0 (the round `siblings: 1` trains)."""
    return config.seed if sibling == 0 else derive_seed(config.seed, "sibling", index, sibling)


def snapshot_mdnrnn(run_dir: Path, index: int) -> None:
    """Keep a copy of the current M beside round `index`'s controller (round 0: the first pass)."""
    atomic_write_bytes(round_controller(run_dir, index) / M_SNAPSHOT, mdnrnn_checkpoint(run_dir).read_bytes())


def real_score(rt: Runtime, params: np.ndarray, mdnrnn_path: Path | None = None) -> dict[str, Any]:
    """A controller's real score over iterate.eval_episodes episodes, the same seeds for every round (and
    sibling), with M at `mdnrnn_path` (default: the run's)."""
    seeds = [derive_seed(rt.config.seed, "round-evaluation", i) for i in range(rt.config.iterate.eval_episodes)]
    real = score(rt, params, seeds, mdnrnn_path)
    return {"real_mean": float(real.mean()), "real_std": float(real.std()), "real_episodes": len(real)}


def round_runtime(rt: Runtime, seed: int | None = None) -> Runtime:
    """The runtime a round's M and C train with: the run's, at iterate.temperature, with `seed`."""
    cfg = rt.config
    controller = dataclasses.replace(cfg.controller, temperature=cfg.iterate.temperature or cfg.controller.temperature)
    config = dataclasses.replace(cfg, seed=cfg.seed if seed is None else seed, controller=controller)
    return dataclasses.replace(rt, config=config)


def train_m_and_c(rt: Runtime, index: int, out: Path, m_path: Path, seed: int | None, episodes: int, epochs: int,
                  start: dict[str, Any]) -> dict[str, Any]:
    """Steps 3-5 of round `index` with `seed`: M at `m_path` fine-tuned to `epochs` on the first `episodes`, a C
    trained in its dream into `out`, then scored in the game with that M. Returns the dream and real scores."""
    it = rt.config.iterate
    trainer = round_runtime(rt, seed)
    train_mdnrnn.run(trainer, episodes=episodes, epochs=epochs, path=m_path)
    stop = it.abandon * rt.config.controller.max_steps if it.abandon else None
    best = train_controller.run(trainer, round_index=index, out=out, generations=it.generations,
                                mdnrnn_path=m_path, stop_fitness=stop, **start)
    real = real_score(rt, load_params(out), m_path)  # the run's seeds: the same for all
    return {"dream_mean": best["score"], "dream_std": best["std"], "generations": best["generations"], **real}


def train_siblings(rt: Runtime, index: int, episodes: int, epochs: int, start: dict[str, Any]) -> dict[str, Any]:
    """Steps 3-5 of round `index` for each of iterate.siblings sibling Ms; the best one by real score becomes
    the round's C and the run's M. Returns the winner's dream and real scores, and every sibling's."""
    cfg, out, count = rt.config, round_dir(rt.run_dir, index), rt.config.iterate.siblings
    start_m = out / M_START  # the round's starting M, kept before the run's M becomes the winner's
    if not start_m.is_file():
        atomic_write_bytes(start_m, mdnrnn_checkpoint(rt.run_dir).read_bytes())
    results = []
    for s in range(count):
        sibling = out / SIBLINGS_DIR / str(s)
        if (sibling / SIBLING_FILE).is_file():
            results.append(json.loads((sibling / SIBLING_FILE).read_text()))
            continue
        print(f"iterate: round {index}, sibling {s} ({s + 1} of {count})", flush=True)
        m_path = sibling / MDNRNN_DIR / CHECKPOINT
        if not m_path.is_file():
            atomic_write_bytes(m_path, start_m.read_bytes())
        seed = sibling_seed(cfg, index, s)
        scores = train_m_and_c(rt, index, sibling, m_path, seed, episodes, epochs, start)
        result = {"sibling": s, "seed": seed, **scores}
        atomic_write_text(sibling / SIBLING_FILE, json.dumps(result, indent=2))
        results.append(result)
        print(f"iterate: round {index}, sibling {s}: dream {result['dream_mean']:.0f} ± {result['dream_std']:.0f}, "
              f"real {result['real_mean']:.0f} ± {result['real_std']:.0f} (C: {result['generations']} generations)",
              flush=True)

    winner = max(results, key=lambda r: r["real_mean"])
    chosen = out / SIBLINGS_DIR / str(winner["sibling"])
    for name in (BEST, ES_CHECKPOINT, "metrics.jsonl", "fitness.png"):
        if (chosen / name).is_file():
            atomic_write_bytes(out / name, (chosen / name).read_bytes())
    m_bytes = (chosen / MDNRNN_DIR / CHECKPOINT).read_bytes()
    atomic_write_bytes(out / M_SNAPSHOT, m_bytes)
    atomic_write_bytes(mdnrnn_checkpoint(rt.run_dir), m_bytes)  # later rounds fine-tune the winner
    scores = {k: winner[k] for k in ("dream_mean", "dream_std", "real_mean", "real_std", "real_episodes")}
    return {**scores, "sibling": winner["sibling"], "siblings": results}


def run(rt: Runtime) -> None:
    cfg, it = rt.config, rt.config.iterate
    if not (round_controller(rt.run_dir, 0) / M_SNAPSHOT).is_file():
        # before round 1 fine-tunes M (a run begun before snapshots existed may be past that point)
        if load_checkpoint(mdnrnn_checkpoint(rt.run_dir), "mdnrnn")["epoch"] == cfg.mdnrnn.epochs:
            snapshot_mdnrnn(rt.run_dir, 0)
    if it.keep == "best" and not round_state(rt.run_dir, 0):
        first = real_score(rt, load_params(round_controller(rt.run_dir, 0)))
        atomic_write_text(round_dir(rt.run_dir, 0) / ROUND_FILE, json.dumps(first, indent=2))
        print(f"iterate: first pass: real {first['real_mean']:.0f} ± {first['real_std']:.0f} "
              f"over {first['real_episodes']} episodes")
    for index in range(1, it.rounds + 1):
        out = round_dir(rt.run_dir, index)
        if round_state(rt.run_dir, index).get("complete"):
            print(f"iterate: round {index} is done, skipped")
            continue
        print(f"iterate: round {index} of {it.rounds}", flush=True)
        params = load_params(round_controller(rt.run_dir, index - 1))

        total = episodes_after(cfg, index)
        collect.run(rt, range(episodes_after(cfg, index - 1), total), agent_params=params,
                    exploration=it.exploration)
        encode.run(rt, list_episodes(rt.run_dir / EPISODES_DIR)[:total])
        epochs = mdnrnn_epochs_after(cfg, index)
        if it.warm_start:
            start = {"x0": params.astype(np.float64), "sigma0": it.sigma0}
        else:
            start = {"x0": None, "sigma0": cfg.controller.sigma0}
        if it.siblings > 1:
            scores = train_siblings(rt, index, total, epochs, start)
        else:
            scores = train_m_and_c(rt, index, out, mdnrnn_checkpoint(rt.run_dir), None, total, epochs, start)
            snapshot_mdnrnn(rt.run_dir, index)
        state = {"complete": True, "episodes": total, **scores}
        atomic_write_text(out / ROUND_FILE, json.dumps(state, indent=2))
        print(f"iterate: round {index}: dream {state['dream_mean']:.0f} ± {state['dream_std']:.0f}, real "
              f"{state['real_mean']:.0f} ± {state['real_std']:.0f} over {state['real_episodes']} episodes")
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
        if "siblings" in r:
            info[f"round_{i}"] += f" (siblings/{r['sibling']} of {len(r['siblings'])})"
    info["controller"] = str(controller_dir(run_dir, config).relative_to(run_dir))
    return info
