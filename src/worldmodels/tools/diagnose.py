"""`worldmodels diagnose RUN_DIR`: fixed policies in M's dream and in the real game, side by side, and how well
the dream ranks controllers.

If M's dream is faithful, a policy scores about the same in both. When a fixed policy (say, always RIGHT)
survives far longer in the dream than in the real game, M can be exploited, and a controller trained in
that dream will learn the exploit instead of the task (the paper's low-temperature rows; the first
prototype of this project: holding RIGHT survived 981 steps in the dream, 157 in the game).

CMA-ES needs less than equal scores: only that the dream orders controllers as the real environment does.
With a trained controller, the run's C is perturbed at several noise scales (controllers from good to
useless), each scored in the dream and in the real environment (the run's training engine), and the
Spearman rank correlation of the two says how far the dream can be trusted to train C.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodels.artifacts import agent_mdnrnn, controller_spec, has_controller, load_best
from worldmodels.checkpoint import atomic_write_text
from worldmodels.config import Config, load_run_config
from worldmodels.envs import FrameEnv, make_env
from worldmodels.envs.dream import DreamBatch, DreamWorld, rollout_population
from worldmodels.rollout import load_agent
from worldmodels.runtime import Runtime, resolve_device
from worldmodels.seeding import derive_seed

DIAGNOSE_FILE = "diagnose.json"
GAP_WARNING = 2.0  # dream / real ratio above which a policy is called an exploit
NOISE_SCALES = (0.0, 0.03, 0.1, 0.3, 1.0)  # the run's C plus Gaussian noise of these sizes: good to useless

# name -> function(rng, steps (N,), N) -> actions (N, A); fixed policies need no controller
Policy = Callable[[np.random.Generator, int], np.ndarray]


def fixed_policies(env: str) -> dict[str, Policy]:
    if env == "doom":
        return {
            "always LEFT": lambda rng, n: np.full((n, 1), -1.0, np.float32),
            "always RIGHT": lambda rng, n: np.full((n, 1), 1.0, np.float32),
            "no-op": lambda rng, n: np.zeros((n, 1), np.float32),
            "random": lambda rng, n: rng.uniform(-1, 1, (n, 1)).astype(np.float32),
        }
    return {
        "straight ahead": lambda rng, n: np.tile(np.array([[0.0, 0.5, 0.0]], np.float32), (n, 1)),
        "standing still": lambda rng, n: np.zeros((n, 3), np.float32),  # -0.1 a step on the real track
        "random": lambda rng, n: np.concatenate(
            [rng.uniform(-1, 1, (n, 1)), rng.uniform(0, 1, (n, 2))], axis=1).astype(np.float32),
    }


@torch.no_grad()
def dream_scores(world: DreamWorld, policy: Policy, episodes: int, temperature: float, max_steps: int,
                 seed: int) -> np.ndarray:
    batch = DreamBatch(world, temperature, max_steps)
    batch.reset(torch.arange(episodes, dtype=torch.int64) + seed)
    rng = np.random.default_rng(seed)
    while bool(batch.alive.any()):
        batch.step(torch.from_numpy(policy(rng, episodes)).to(world.device))
    return batch.returns.cpu().numpy()


def real_env(config: Config) -> FrameEnv:
    """The real environment C trains on (CarRacing: the run's `carracing_backend`)."""
    return make_env(config.env, doom_resolution=config.doom_resolution, backend=config.carracing_backend)


def real_scores(config: Config, policy: Policy, episodes: int, max_steps: int, seed: int) -> np.ndarray:
    env = real_env(config)
    rng = np.random.default_rng(seed)
    returns = []
    for i in range(episodes):
        env.reset(seed=seed + i)
        total = 0.0
        for _ in range(max_steps):
            _, reward, terminated, truncated = env.step(policy(rng, 1)[0])
            total += reward
            if terminated or truncated:
                break
        returns.append(total)
    env.close()
    return np.array(returns)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two samples (ties share their mean rank); 0 when either is constant."""
    def ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=np.float64)
        for value in np.unique(x):  # ties: the mean of their ranks
            r[x == value] = r[x == value].mean()
        return r

    ra, rb = ranks(np.asarray(a, np.float64)), ranks(np.asarray(b, np.float64))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def controller_ranks(run_dir: Path, config: Config, world: DreamWorld, temperature: float, controllers: int,
                     rollouts: int, max_steps: int, seed: int) -> dict[str, Any]:
    """`controllers` controllers (the run's C plus noise at each of NOISE_SCALES in turn), each over `rollouts`
    episodes in the dream and in the real environment (the run's `carracing_backend`); their mean returns and
    the rank correlation between the two."""
    best, _ = load_best(run_dir, config)
    rng = np.random.default_rng(seed)
    scales = np.array([NOISE_SCALES[i % len(NOISE_SCALES)] for i in range(controllers)])
    params = (best[None] + scales[:, None] * rng.standard_normal((controllers, best.size))).astype(np.float32)
    seeds = seed + np.arange(controllers * rollouts).reshape(controllers, rollouts)
    spec = controller_spec(config)
    dream = rollout_population(world, spec, params, seeds, temperature, max_steps).mean(axis=1)
    agent, _ = load_agent(run_dir, "cpu", config.to_dict(), agent_mdnrnn(run_dir, config))
    envs = [real_env(config) for _ in range(min(Runtime.envs, controllers * rollouts))]  # a worker's lockstep width
    episodes = agent.run_episodes(envs, np.repeat(params, rollouts, axis=0), seeds.reshape(-1).tolist(), max_steps)
    for env in envs:
        env.close()
    real = np.array([e.total_reward for e in episodes]).reshape(controllers, rollouts).mean(axis=1)
    return {"controllers": controllers, "rollouts": rollouts, "noise": scales.tolist(),
            "dream": dream.tolist(), "real": real.tolist(), "spearman": rank_correlation(dream, real)}


def diagnose(run_dir: Path, episodes: int = 20, temperature: float | None = None,
             device: str = "auto", controllers: int = 30, rollouts: int = 2) -> dict[str, Any]:
    config = load_run_config(run_dir)
    # the M of the run's controller: after iterative training with iterate.keep=best, that round's
    world = DreamWorld.from_run(run_dir, resolve_device(device), mdnrnn_path=agent_mdnrnn(run_dir, config),
                                dropout=config.controller.dream_dropout)  # the dream C is trained in
    tau = config.controller.temperature if temperature is None else temperature
    max_steps = config.controller.max_steps  # the cap C is trained with
    seed = derive_seed(config.seed, "diagnose")
    rows = []
    for name, policy in fixed_policies(config.env).items():
        dream = dream_scores(world, policy, episodes, tau, max_steps, seed)
        real = real_scores(config, policy, episodes, max_steps, seed)
        rows.append({"policy": name, "dream_mean": float(dream.mean()), "dream_std": float(dream.std()),
                     "real_mean": float(real.mean()), "real_std": float(real.std())})
    report = {"temperature": tau, "episodes": episodes, "rows": rows,
              "exploits": [r["policy"] for r in rows if exploitable(r)]}
    if controllers > 0 and has_controller(run_dir, config):
        report["ranks"] = controller_ranks(run_dir, config, world, tau, controllers, rollouts, max_steps, seed)
    atomic_write_text(Path(run_dir) / DIAGNOSE_FILE, json.dumps(report, indent=2))
    return report


def exploitable(row: dict[str, Any]) -> bool:
    return row["dream_mean"] > GAP_WARNING * max(row["real_mean"], 1.0)


def format_table(report: dict[str, Any]) -> str:
    lines = [f"fixed policies, {report['episodes']} episodes each, dream at tau {report['temperature']}",
             "| policy | dream | real game |", "|---|---|---|"]
    for r in report["rows"]:
        flag = "  <- exploitable" if exploitable(r) else ""
        lines.append(f"| {r['policy']} | {r['dream_mean']:.0f} ± {r['dream_std']:.0f} | "
                     f"{r['real_mean']:.0f} ± {r['real_std']:.0f} |{flag}")
    if report["exploits"]:
        lines.append(f"warning: {', '.join(report['exploits'])} scores over {GAP_WARNING:g}x more in the dream "
                     "than in the real game; a controller trained in this dream may learn that exploit "
                     "(collect data with the agent: --set iterate.rounds=N, or raise the temperature)")
    if "ranks" in report:
        ranks = report["ranks"]
        lines.append(f"dream/real rank correlation (Spearman) over {ranks['controllers']} controllers (the run's C "
                     f"plus noise {', '.join(f'{s:g}' for s in dict.fromkeys(ranks['noise']))}; {ranks['rollouts']} "
                     f"episodes each): {ranks['spearman']:.2f}")
    return "\n".join(lines)
