"""`worldmodels train-controller`: C by CMA-ES, scored in the real environment or in M's dream
(docs/faithfulness.md#cma-es).

Per generation: ask P candidates; score each by the mean return of R rollouts with paired seeds
(candidates i and i + P/2 share theirs); tell. Every `eval_every` generations the distribution mean is
scored on `eval_rollouts` fixed seeds and kept in `best.npz` when it beats the best so far (the
original's `.best.json`). The whole ES state is checkpointed every generation, so a killed run resumes at
the generation it was in.

In the dream all P x R agents step as one batch on the chosen device; in the real environment each
candidate's rollouts are one task on the executor (a process pool by default), whose workers load V and M
once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodels.artifacts import BEST, CONTROLLER_DIR, ES_CHECKPOINT, controller_spec, controller_start
from worldmodels.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from worldmodels.config import Config
from worldmodels.data.episodes import write_arrays
from worldmodels.envs.dream import DreamWorld, rollout_population
from worldmodels.es import CMAES, evaluation_seeds, paired_seeds
from worldmodels.executors import make_executor
from worldmodels.logger import MetricsLog, plot_metrics, read_metrics
from worldmodels.models.controller import ControllerSpec
from worldmodels.rollout import RolloutTask, RolloutWorker, task_chunks
from worldmodels.runtime import Runtime, warn_if_slow_bf16
from worldmodels.seeding import derive_seed


class DreamScorer:
    """Scores candidates inside M: one batched rollout of all P x R agents."""

    def __init__(self, rt: Runtime, spec: ControllerSpec, mdnrnn_path: Path | None = None) -> None:
        c = rt.config.controller
        warn_if_slow_bf16(rt.torch_device, "controller.dream_dtype", c.dream_dtype)
        self.world = DreamWorld.from_run(rt.run_dir, rt.torch_device, dtype=getattr(torch, c.dream_dtype),
                                         compile=c.dream_compile, mdnrnn_path=mdnrnn_path, dropout=c.dream_dropout)
        self.spec, self.c = spec, rt.config.controller
        self.env_steps = 0  # real environment steps taken: none

    def __call__(self, candidates: np.ndarray, seeds: np.ndarray, training: bool = True) -> np.ndarray:
        return rollout_population(self.world, self.spec, candidates, seeds, self.c.temperature, self.c.max_steps)

    def close(self) -> None:
        pass


class RealScorer:
    """Scores candidates in the real environment: all P x R episodes cut into tasks of up to `--envs`-wide
    lockstep batches (`task_chunks`) on the executor, each episode with its own candidate's parameters."""

    def __init__(self, rt: Runtime, spec: ControllerSpec, mdnrnn_path: Path | None = None) -> None:
        c = rt.config.controller
        worker = RolloutWorker(str(rt.run_dir), rt.config.to_dict(), c.max_steps, mdnrnn_path, rt.envs,
                               backend=rt.config.carracing_backend)
        # a healthy episode takes seconds to a minute; a worker silent for 15 minutes is stuck
        self.executor = make_executor(rt.executor, worker, workers=rt.workers, task_timeout=900.0,
                                      ray_address=rt.ray_address)
        self.envs, self.workers, self.negative_stop = rt.envs, rt.workers, c.negative_stop
        self.env_steps = 0  # real environment steps taken so far by this scorer

    def __call__(self, candidates: np.ndarray, seeds: np.ndarray, training: bool = True) -> np.ndarray:
        """(P, R) returns of candidates (P, N) on seeds (P, R); `training`: may stop early (negative_stop)."""
        jobs = [(i, int(seed)) for i, row in enumerate(seeds) for seed in row]
        params = candidates.astype(np.float32)
        tasks = [RolloutTask(params[[i for i, _ in chunk]], tuple(seed for _, seed in chunk),
                             self.negative_stop if training else 0)
                 for chunk in task_chunks(jobs, self.envs, self.workers)]
        results = [pair for task in self.executor.map(tasks) for pair in task]
        self.env_steps += sum(length for _, length in results)
        return np.array([r for r, _ in results], dtype=np.float64).reshape(seeds.shape)

    def close(self) -> None:
        self.executor.close()


def make_scorer(rt: Runtime, spec: ControllerSpec, mdnrnn_path: Path | None = None) -> DreamScorer | RealScorer:
    """The candidates' scorer, with M at `mdnrnn_path` (default: the run's)."""
    scorer = DreamScorer if rt.config.controller.where == "dream" else RealScorer
    return scorer(rt, spec, mdnrnn_path)


def run(rt: Runtime, round_index: int = 0, out: Path | None = None, generations: int | None = None,
        x0: np.ndarray | None = None, sigma0: float | None = None, mdnrnn_path: Path | None = None,
        stop_fitness: float | None = None) -> dict[str, Any]:
    """Train C; returns the best {score, std, generation} of the distribution mean's evaluations and the
    number of generations run.

    The first pass starts at `controller.init`'s controller, if set, else at x0 = 0. Iterative training calls
    it for round r >= 1 with the round's directory, budget and a warm start `x0`;
    the round also picks fresh rollout seeds. `mdnrnn_path`: another M than the run's (the temperature table
    trains on the M of the run's controller). `stop_fitness`: end early, as if the budget were spent, after
    the first generation whose mean fitness over all candidates reaches it (iterate.abandon).
    """
    cfg, c = rt.config, rt.config.controller
    out = out or rt.run_dir / CONTROLLER_DIR
    path = out / ES_CHECKPOINT
    spec = controller_spec(cfg)
    total = generations or c.generations
    rollout_seed = c.seed if round_index == 0 else derive_seed(c.seed, "round", round_index)

    # setup / restore
    if path.is_file():
        state = load_checkpoint(path, "es")
        if state["complete"]:
            print(f"train-controller: done ({state['es']['generation']} generations) in {path}")
            return {**state["best"], "generations": state["es"]["generation"]}
        es, best = CMAES.from_state_dict(state["es"]), state["best"]
        spent = state.get("spent", {"env_steps": 0, "seconds": 0.0})
        print(f"train-controller: resuming at generation {es.generation}")
    else:
        if x0 is None and round_index == 0:  # a round's start is iterate's to choose
            x0 = controller_start(cfg)
            if x0 is not None:
                print(f"train-controller: starting from the controller of {c.init}")
        es = CMAES(spec.num_params, c.population_size, sigma0 or c.sigma0,
                   seed=derive_seed(cfg.seed, "cmaes", round_index), x0=x0)
        best = {"score": -np.inf, "std": 0.0, "generation": 0}
        spent = {"env_steps": 0, "seconds": 0.0}  # real env steps and seconds of all generations so far
    log = MetricsLog(out / "metrics.jsonl", resume_step=es.generation if es.generation else None)
    eval_seeds = evaluation_seeds(rollout_seed, c.eval_rollouts)
    place = "dream" if c.where == "dream" else "real environment"
    print(f"train-controller: C has {spec.num_params} parameters ({spec.mode}), scored in the {place}; "
          f"population {c.population_size} x {c.rollouts} rollouts, {total} generations")

    # loop
    scorer = make_scorer(rt, spec, mdnrnn_path)
    try:
        while es.generation < total:
            tic = time.perf_counter()
            candidates = es.ask()
            seeds = paired_seeds(rollout_seed, es.generation, c.population_size, c.rollouts, c.shared_seeds)
            returns = scorer(candidates, seeds)
            fitness = returns.mean(axis=1)  # the original's batch_mode='mean'
            es.tell(candidates, fitness)
            generation, mean_fitness = es.generation, float(fitness.mean())
            stopped = stop_fitness is not None and mean_fitness >= stop_fitness
            row: dict[str, Any] = {
                "fitness/best": float(fitness.max()), "fitness/mean": mean_fitness,
                "fitness/worst": float(fitness.min()), "charts/sigma": es.sigma,
            }
            if generation % c.eval_every == 0 or generation == total or stopped:
                scores = scorer(es.mean[None], eval_seeds[None], training=False)[0]
                row.update({"eval/mean": float(scores.mean()), "eval/std": float(scores.std())})
                if scores.mean() > best["score"]:
                    best = {"score": float(scores.mean()), "std": float(scores.std()), "generation": generation}
                    write_arrays(out / BEST, compress=False, params=es.mean.astype(np.float32), meta={
                        **best, "mode": spec.mode, "where": c.where, "temperature": c.temperature,
                        "rollouts": c.rollouts})
            row["charts/seconds"] = time.perf_counter() - tic
            spent = {"env_steps": spent["env_steps"] + scorer.env_steps,
                     "seconds": spent["seconds"] + row["charts/seconds"]}
            scorer.env_steps = 0
            row.update({"charts/env_steps": spent["env_steps"], "charts/minutes": spent["seconds"] / 60})
            log.log(generation, **row)
            save_checkpoint(path, "es", {"es": es.state_dict(), "best": best, "spent": spent,
                                         "complete": generation >= total or stopped, "num_params": spec.num_params})
            evaluated = f"  eval {row['eval/mean']:.1f} ± {row['eval/std']:.1f}" if "eval/mean" in row else ""
            if not rt.quiet:
                print(f"generation {generation:>4}/{total}  best {row['fitness/best']:8.1f}  "
                      f"mean {row['fitness/mean']:8.1f}  worst {row['fitness/worst']:8.1f}  "
                      f"{row['charts/seconds']:6.1f} s{evaluated}", flush=True)
            if stopped:
                print(f"train-controller: stopped at generation {generation}: the population's mean fitness "
                      f"{mean_fitness:.0f} reached {stop_fitness:.0f}", flush=True)
                break
    finally:
        scorer.close()

    # save
    plot_metrics(out / "metrics.jsonl", out / "fitness.png",
                 ["fitness/best", "fitness/mean", "fitness/worst", "eval/mean"], f"C: CMA-ES in the {place}")
    if c.where == "real":
        where = f"{cfg.carracing_backend}'s CarRacing" if cfg.env == "carracing" else cfg.env
        plot_learning_curve(out / "metrics.jsonl", out / "learning_curve.png", cfg.env,
                            f"this run: C's mean over {c.eval_rollouts} episodes in {where}")
    print(f"train-controller: done; best mean {best['score']:.1f} ± {best['std']:.1f} "
          f"(generation {best['generation']}) in {out / BEST}")
    return {**best, "generations": es.generation}


# The original's CarRacing run (`carracing/log/carracing.cma.16.64.hist_best.json` of WorldModelsExperiments): the
# distribution mean's score over 1,024 episodes at these generations of 64 x 16 rollouts of ~1,000 steps
ORIGINAL_CARRACING = {25: 823.0, 50: 867.0, 200: 880.0, 1800: 900.0}


def plot_learning_curve(metrics: Path, out: Path, env: str, label: str) -> None:
    """The distribution mean's real score against minutes and against env steps, as a PNG; for CarRacing with
    the original's scores at its own env steps (64 x 16 x 1,000 a generation) beside it."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_metrics(metrics) if "eval/mean" in r and "charts/env_steps" in r]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in ((axes[0], "charts/minutes", "minutes of C training"),
                           (axes[1], "charts/env_steps", "real env steps (training and evaluations)")):
        xs = [r[key] for r in rows]
        ax.errorbar(xs, [r["eval/mean"] for r in rows], yerr=[r["eval/std"] for r in rows], marker="o",
                    capsize=3, label=label)
        ax.set_xlabel(label)
        ax.set_ylabel("return")
        ax.grid(alpha=0.3)
    if env == "carracing":
        steps = [g * 64 * 16 * 1000 for g in ORIGINAL_CARRACING]
        axes[1].plot(steps, list(ORIGINAL_CARRACING.values()), "s--", color="gray",
                     label="original (generations 25, 50, 200, 1,800)")
        axes[1].set_xscale("log")
        for ax in axes:
            ax.axhline(900, color="green", lw=0.8, ls=":", label="solved (900)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{env}: real score of the CMA-ES mean")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(out, buffer.getvalue())


def status(run_dir: Path, config: Config) -> dict[str, Any]:
    path = Path(run_dir) / CONTROLLER_DIR / ES_CHECKPOINT
    if not path.is_file():
        return {"status": "missing"}
    state = load_checkpoint(path, "es")
    info: dict[str, Any] = {
        "status": "done" if state["complete"] else "partial",
        "generations": f"{state['es']['generation']}/{config.controller.generations}",
        "parameters": state["num_params"],
        "where": config.controller.where,
    }
    if np.isfinite(state["best"]["score"]):
        info["best_eval"] = f"{state['best']['score']:.1f} ± {state['best']['std']:.1f}"
    rows = read_metrics(path.parent / "metrics.jsonl")
    if rows:
        info["last_mean_fitness"] = round(rows[-1]["fitness/mean"], 2)
    return info
