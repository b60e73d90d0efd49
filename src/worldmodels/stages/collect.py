"""`worldmodels collect`: random-policy episodes from the real environment, one file each (with `collect.driver`,
a share of them driven by another run's trained agent).

Reads top to bottom: which episodes are missing, a worker per process that runs up to `--envs` environments
in lockstep, the tasks (chunks of episode indices) spread over the executor, a progress bar. Each episode is
written atomically by the worker that made it, so a killed run leaves only complete files and a rerun collects
what is missing. Memory stays flat: frames live in a worker's episode buffers (one per env) until written,
never in the driver.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldmodels.artifacts import EPISODES_DIR, agent_mdnrnn, load_best, missing_episodes
from worldmodels.config import CONFIG_FILE, Config, from_dict, load_run_config
from worldmodels.data.episodes import (
    Episode,
    clean_directory,
    episode_index,
    episode_length,
    episode_path,
    list_episodes,
    write_episode,
)
from worldmodels.envs import task_spec
from worldmodels.errors import UserError
from worldmodels.executors import make_executor
from worldmodels.logger import ProgressBar, progress_bar
from worldmodels.policies import AgentPolicy, Policy, PolicySlots, make_policy
from worldmodels.rollout import WorkerEnvs, load_agent, lockstep, task_chunks
from worldmodels.runtime import Runtime
from worldmodels.seeding import derive_seed


def record_episodes(envs: list, policy: PolicySlots | AgentPolicy, jobs: deque, max_frames: int, ignore_done: bool,
                    finished: Callable[[Any, int, Episode], None]) -> None:
    """Episodes of `policy` (`reset_slot`, `act_slots`) on `envs` in lockstep (`rollout.lockstep`), one per
    (key, seed) of `jobs`: the frame before each step is recorded, starting with the reset frame, up to
    `max_frames` or the first done unless `ignore_done` (Doom: the death frame is not recorded).
    `finished(key, seed, episode)` receives each and may put jobs back at the front of `jobs`."""
    running: dict[int, tuple] = {}  # slot -> (key, seed, frames, actions, rewards, dones)

    def begin(slot: int, job: tuple[Any, int]) -> np.ndarray:
        key, seed = job
        policy.reset_slot(slot, np.random.default_rng(seed))
        running[slot] = (key, seed, [], [], [], [])
        return envs[slot].reset(seed=seed)

    def act(slots: list[int], frames: np.ndarray) -> np.ndarray:
        actions = policy.act_slots(slots, frames)
        for slot, frame, action in zip(slots, frames, actions):
            running[slot][2].append(frame)
            running[slot][3].append(action)
        return actions

    def after(slot: int, frame: np.ndarray, reward: float, terminated: bool, truncated: bool) -> bool:
        key, seed, frames, actions, rewards, dones = running[slot]
        rewards.append(reward)
        dones.append(terminated)
        if not (terminated and not ignore_done) and len(frames) < max_frames:
            return False
        finished(key, seed, Episode(np.stack(frames), np.stack(actions), np.array(rewards), np.array(dones), {}))
        return True

    lockstep(envs, jobs, begin, act, after)


def run_episode(env, policy: Policy, seed: int, max_frames: int, ignore_done: bool) -> Episode:
    """One episode of a policy (`reset(rng)`, `act(frame)`) on one env, as collection records it."""
    episodes: list[Episode] = []
    record_episodes([env], PolicySlots([policy]), deque([(None, seed)]), max_frames, ignore_done,
                    lambda key, seed, episode: episodes.append(episode))
    return episodes[0]


def collect_episodes(cfg: Config, envs: WorkerEnvs, policy: PolicySlots | AgentPolicy, episodes_dir: Path,
                     indices: tuple[int, ...]) -> list[int]:
    """Collect and write episodes `indices` in lockstep on the worker's envs; an episode too short is retried
    with the next derived seed. Each episode depends on its index only, not on the envs it shares a step
    with. Returns the episodes' lengths."""
    task = task_spec(cfg.env)
    max_frames, min_frames = cfg.collect.max_frames or task.max_steps, task.min_frames
    lengths: dict[int, int] = {}

    def job(index: int, retry: int) -> tuple[tuple[int, int], int]:
        if retry == 1000:
            raise RuntimeError(f"episode {index}: 1000 tries all had {min_frames} frames or fewer")
        return (index, retry), derive_seed(cfg.seed, "collect", index, retry)

    jobs = deque(job(index, 0) for index in indices)

    def finished(key: tuple[int, int], seed: int, episode: Episode) -> None:
        index, retry = key
        if len(episode.obs) <= min_frames:  # Doom keeps episodes of more than 100 frames
            jobs.appendleft(job(index, retry + 1))
            return
        meta = {"env": cfg.env, "index": index, "seed": seed, "tries": retry + 1,
                "policy": policy.name or "random"}
        write_episode(episode_path(episodes_dir, index), episode._replace(meta=meta))
        lengths[index] = len(episode.obs)

    record_episodes(envs.take(len(indices)), policy, jobs, max_frames, task_spec(cfg.env).ignore_done, finished)
    return [lengths[index] for index in indices]


@dataclass
class CollectWorker:
    """Picklable factory, built once per worker process: its envs (up to `envs`, in lockstep) and a policy
    for each.

    With `agent_params` the policy is the trained agent of `run_dir` with random exploration (iterative
    training, or `collect.driver`: then `agent_config` is the driver run's config and `mdnrnn_path` the M its
    controller was trained with); otherwise the config's random collection policy.
    """

    config: dict[str, Any]
    episodes_dir: str
    run_dir: str | None = None
    agent_params: np.ndarray | None = None
    exploration: float = 0.0
    envs: int = 1
    agent_config: dict[str, Any] | None = None  # default: `config`
    mdnrnn_path: Path | None = None  # default: run_dir's M

    def __call__(self) -> Callable[[tuple[int, ...]], list[int]]:
        cfg = from_dict(self.config)
        policy: PolicySlots | AgentPolicy
        if self.agent_params is None:
            policy = PolicySlots([make_policy(cfg.env, cfg.collect.long_holds)
                                  for _ in range(self.envs)])
        else:
            assert self.run_dir is not None, "the agent's policy needs run_dir"
            agent, _ = load_agent(Path(self.run_dir), "cpu", self.agent_config or self.config, self.mdnrnn_path)
            low, high = action_bounds(cfg.env)
            policy = AgentPolicy(agent, self.agent_params, self.exploration, low, high, slots=self.envs)
        envs = WorkerEnvs(cfg.env, self.envs, cfg.doom_resolution, cfg.carracing_backend)
        return functools.partial(collect_episodes, cfg, envs, policy, Path(self.episodes_dir))


def action_bounds(env: str) -> tuple[np.ndarray, np.ndarray]:
    if env == "doom":
        return np.array([-1.0], np.float32), np.array([1.0], np.float32)
    return np.array([-1.0, 0.0, 0.0], np.float32), np.array([1.0, 1.0, 1.0], np.float32)


def driven(index: int, fraction: float) -> bool:
    """Whether the driver drives episode `index`: `fraction` of every run of consecutive indices, spread evenly
    (0.9: nine of every ten), so any prefix of the episodes holds that share."""
    return int((index + 1) * fraction + 1e-9) > int(index * fraction + 1e-9)


def driver_worker(cfg: Config, episodes_dir: Path, envs: int) -> CollectWorker:
    """The collection worker of `collect.driver`: that run's best controller with its V and M."""
    driver = Path(cfg.collect.driver)
    if not (driver / CONFIG_FILE).is_file():
        raise UserError(f"collect.driver={cfg.collect.driver!r} is not a run directory (no {CONFIG_FILE} there)")
    driver_config = load_run_config(driver)
    if driver_config.env != cfg.env:
        raise UserError(f"collect.driver={cfg.collect.driver!r} is a {driver_config.env} run; this run is {cfg.env}")
    params, _ = load_best(driver, driver_config)
    return CollectWorker(cfg.to_dict(), str(episodes_dir), str(driver), params, cfg.collect.driver_exploration, envs,
                         driver_config.to_dict(), agent_mdnrnn(driver, driver_config))


def collect_group(rt: Runtime, worker: CollectWorker, items: list[int], bar: ProgressBar, offset: int) -> None:
    """Episodes `items` collected by `worker`'s policy on the run's executor; `offset`: episodes this call
    collected before them (the bar's count)."""
    tasks = task_chunks(items, rt.envs, rt.workers)
    with make_executor(rt.executor, worker, workers=rt.workers, task_timeout=1800.0,
                       ray_address=rt.ray_address) as executor:
        executor.map(tasks, progress=lambda n: bar.advance_to(offset + min(n * len(tasks[0]), len(items))))


def run(rt: Runtime, indices: range | None = None, agent_params: np.ndarray | None = None,
        exploration: float = 0.0) -> None:
    """Collect the missing episodes among `indices` (default: 0 .. collect.episodes - 1).

    Iterative training passes the indices of its round and the agent's parameters. With `collect.driver`,
    the driver's agent drives its share of the episodes (`driven`) and the random policy the rest.
    """
    cfg, episodes_dir = rt.config, rt.run_dir / EPISODES_DIR
    indices = indices or range(cfg.collect.episodes)
    worker = CollectWorker(cfg.to_dict(), str(episodes_dir), str(rt.run_dir), agent_params, exploration, rt.envs)
    use_driver = bool(cfg.collect.driver) and agent_params is None
    driver = driver_worker(cfg, episodes_dir, rt.envs) if use_driver else None  # checked before anything is written
    episodes_dir.mkdir(parents=True, exist_ok=True)
    clean_directory(episodes_dir)
    todo = missing_episodes(rt.run_dir, cfg, indices)
    total = len(indices)
    if not todo:
        print(f"collect: all {total} episodes are in {episodes_dir}")
        return
    groups = [(worker, todo)]
    if driver is not None:
        share = cfg.collect.driver_fraction
        groups = [(driver, [i for i in todo if driven(i, share)]), (worker, [i for i in todo if not driven(i, share)])]
    done = 0  # episodes collected in this call by the groups before
    with progress_bar(total, "collect", unit="ep", initial=total - len(todo), quiet=rt.quiet) as bar:
        for group_worker, items in groups:
            if items:
                collect_group(rt, group_worker, items, bar, done)
                done += len(items)
    driven_by = f", {cfg.collect.driver_fraction:.0%} driven by {cfg.collect.driver}" if driver is not None else ""
    print(f"collect: {total} episodes in {episodes_dir}{driven_by}")


def status(run_dir: Path, config: Config) -> dict[str, Any]:
    paths = [p for p in list_episodes(run_dir / EPISODES_DIR) if episode_index(p) < config.collect.episodes]
    frames = sum(episode_length(p) for p in paths)
    state = "done" if len(paths) == config.collect.episodes else ("partial" if paths else "missing")
    return {"status": state, "episodes": len(paths), "of": config.collect.episodes, "frames": frames}
