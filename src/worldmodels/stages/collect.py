"""`worldmodels collect`: random-policy episodes from the real environment, one file each.

Reads top to bottom: which episodes are missing, a worker per process that owns one environment, the
tasks (episode indices) spread over the executor, a progress bar. Each episode is written atomically by
the worker that made it, so a killed run leaves only complete files and a rerun collects what is missing.
Memory stays flat: frames live in one worker's episode buffer until written, never in the driver.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.config import Config, from_dict
from worldmodels.data.episodes import (
    Episode,
    clean_directory,
    episode_index,
    episode_length,
    episode_path,
    list_episodes,
    write_episode,
)
from worldmodels.envs import make_env, task_spec
from worldmodels.logger import progress_bar
from worldmodels.policies import make_policy
from worldmodels.runtime import Runtime
from worldmodels.seeding import derive_seed

EPISODES_DIR = "episodes"


def frame_limits(config: Config) -> tuple[int, int]:
    """(max_frames, min_frames) of one episode: the config's, or the task's defaults."""
    spec = task_spec(config.env)
    max_frames = config.collect.max_frames or spec.max_steps
    min_frames = spec.min_frames if config.collect.min_frames < 0 else config.collect.min_frames
    return max_frames, min_frames


def run_episode(env, policy, seed: int, max_frames: int, ignore_done: bool) -> Episode:
    """One episode: the frame before each step is recorded, starting with the reset frame."""
    rng = np.random.default_rng(seed)
    policy.reset(rng)
    frame = env.reset(seed=seed)
    frames, actions, rewards, dones = [], [], [], []
    for _ in range(max_frames):
        action = policy.act(frame)
        frames.append(frame)
        actions.append(action)
        frame, reward, terminated, _ = env.step(action)
        rewards.append(reward)
        dones.append(terminated)
        if terminated and not ignore_done:
            break  # Doom: the death frame is not recorded
    return Episode(np.stack(frames), np.stack(actions), np.array(rewards), np.array(dones), {})


def collect_episode(cfg: Config, env, policy, episodes_dir: Path, index: int) -> int:
    """Collect episode `index` (retrying with the next derived seed while it is too short) and write it."""
    max_frames, min_frames = frame_limits(cfg)
    for attempt in range(1000):
        seed = derive_seed(cfg.seed, "collect", index, attempt)
        episode = run_episode(env, policy, seed, max_frames, task_spec(cfg.env).ignore_done)
        if len(episode.obs) > min_frames:  # Doom keeps episodes of more than 100 frames
            break
    else:
        raise RuntimeError(f"episode {index}: 1000 attempts all had {min_frames} frames or fewer")
    meta = {"env": cfg.env, "index": index, "seed": seed, "attempts": attempt + 1,
            "policy": getattr(policy, "name", cfg.collect.policy)}
    write_episode(episode_path(episodes_dir, index), episode._replace(meta=meta))
    return len(episode.obs)


@dataclass
class CollectWorker:
    """Picklable factory, built once per worker process: one environment and one policy.

    With `agent_params` the policy is the trained agent of `run_dir` with random exploration (iterative
    training); otherwise the config's random collection policy.
    """

    config: dict[str, Any]
    episodes_dir: str
    run_dir: str | None = None
    agent_params: np.ndarray | None = None
    exploration: float = 0.0

    def __call__(self) -> Callable[[int], int]:
        cfg = from_dict(self.config)
        env = make_env(cfg.env)
        if self.agent_params is None:
            policy = make_policy(cfg.env, cfg.collect.policy, cfg.collect.long_holds)
        else:
            from worldmodels.policies import AgentPolicy
            from worldmodels.rollout import load_agent

            agent, _ = load_agent(Path(self.run_dir), "cpu", self.config)
            low, high = action_bounds(cfg.env)
            policy = AgentPolicy(agent, self.agent_params, self.exploration, low, high)
        return functools.partial(collect_episode, cfg, env, policy, Path(self.episodes_dir))


def action_bounds(env: str) -> tuple[np.ndarray, np.ndarray]:
    if env == "doom":
        return np.array([-1.0], np.float32), np.array([1.0], np.float32)
    return np.array([-1.0, 0.0, 0.0], np.float32), np.array([1.0, 1.0, 1.0], np.float32)


def missing_episodes(run_dir: Path, config: Config, indices: range | None = None) -> list[int]:
    have = {episode_index(p) for p in list_episodes(run_dir / EPISODES_DIR)}
    return [i for i in (indices or range(config.collect.episodes)) if i not in have]


def run(rt: Runtime, indices: range | None = None, agent_params: np.ndarray | None = None,
        exploration: float = 0.0) -> None:
    """Collect the missing episodes among `indices` (default: 0 .. collect.episodes - 1).

    Iterative training passes the indices of its round and the agent's parameters.
    """
    from worldmodels.executors import make_executor

    episodes_dir = rt.run_dir / EPISODES_DIR
    episodes_dir.mkdir(parents=True, exist_ok=True)
    clean_directory(episodes_dir)
    indices = indices or range(rt.config.collect.episodes)
    todo = missing_episodes(rt.run_dir, rt.config, indices)
    total = len(indices)
    if not todo:
        print(f"collect: all {total} episodes are in {episodes_dir}")
        return
    worker = CollectWorker(rt.config.to_dict(), str(episodes_dir), str(rt.run_dir), agent_params, exploration)
    with make_executor(rt.executor, worker, workers=rt.workers, task_timeout=1800.0,
                       ray_address=rt.ray_address) as executor:
        with progress_bar(total, "collect", unit="ep", initial=total - len(todo), quiet=rt.quiet) as bar:
            executor.map(todo, progress=bar.advance_to)
    print(f"collect: {total} episodes in {episodes_dir}")


def status(run_dir: Path, config: Config) -> dict[str, Any]:
    paths = [p for p in list_episodes(run_dir / EPISODES_DIR) if episode_index(p) < config.collect.episodes]
    frames = sum(episode_length(p) for p in paths)
    state = "done" if len(paths) == config.collect.episodes else ("partial" if paths else "missing")
    return {"status": state, "episodes": len(paths), "of": config.collect.episodes, "frames": frames}
