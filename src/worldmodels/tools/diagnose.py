"""`worldmodels diagnose RUN_DIR`: fixed policies in M's dream and in the real game, side by side.

If M's dream is faithful, a policy scores about the same in both. When a fixed policy (say, always RIGHT)
survives far longer in the dream than in the real game, M can be exploited, and a controller trained in
that dream will learn the exploit instead of the task (the paper's low-temperature rows; the first
prototype of this project: holding RIGHT survived 981 steps in the dream, 157 in the game).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodels.artifacts import agent_mdnrnn
from worldmodels.checkpoint import atomic_write_text
from worldmodels.config import Config, load_run_config
from worldmodels.envs import make_env
from worldmodels.envs.dream import DreamBatch, DreamWorld
from worldmodels.runtime import resolve_device
from worldmodels.seeding import derive_seed

DIAGNOSE_FILE = "diagnose.json"
GAP_WARNING = 2.0  # dream / real ratio above which a policy is called an exploit

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


def real_scores(config: Config, policy: Policy, episodes: int, max_steps: int, seed: int) -> np.ndarray:
    env = make_env(config.env, doom_resolution=config.doom_resolution)
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


def diagnose(run_dir: Path, episodes: int = 20, temperature: float | None = None,
             device: str = "auto") -> dict[str, Any]:
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
    return "\n".join(lines)
