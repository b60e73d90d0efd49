"""The agent in an environment: lockstep rollouts over several environments give each seed its own return."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

from worldmodels.envs import TASKS
from worldmodels.envs.base import FrameEnv, TaskSpec
from worldmodels.models.controller import ControllerSpec
from worldmodels.models.mdnrnn import MDNRNN
from worldmodels.models.vae import ConvVAE
from worldmodels.rollout import Agent, RolloutTask, WorkerEnvs, run_task


class ActionEcho(FrameEnv):
    """A fake env whose frames follow the actions and whose reward is the action itself, so a return is a
    bitwise record of every action taken; episodes end after a seed-dependent number of steps."""

    def __init__(self, action_dim: int) -> None:
        super().__init__()
        self.spec = TaskSpec("echo", action_dim, max_steps=40, min_frames=0, ignore_done=False)

    def _reset(self, seed: int | None) -> np.ndarray:
        self.rng = np.random.default_rng(seed)
        self.length = 5 + int(seed) % 13
        return self.rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)

    def _step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        frame = self.rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        frame[: int(32 * (action[0] + 1.0))] //= 2  # what the agent does changes what it sees
        return frame, float(action.astype(np.float64) @ np.arange(1, len(action) + 1)), self.steps + 1 >= self.length


@pytest.mark.parametrize("env_name, mode, action_dim", [("doom", "zh", 1), ("carracing", "zch", 3)])
def test_lockstep_rollouts_give_every_seed_the_return_it_gets_alone(env_name, mode, action_dim):
    torch.manual_seed(0)
    doom = env_name == "doom"
    spec = ControllerSpec(mode, 8, 32, action_dim, env=env_name)
    mdnrnn = MDNRNN(8, action_dim, 32, restart_input=doom, done_head=doom).eval()
    agent = Agent(ConvVAE(8).eval(), mdnrnn, spec)
    params = np.random.default_rng(0).normal(0.0, 1.0, spec.num_params).astype(np.float32)
    seeds = list(range(100, 111))
    alone = [agent.run_episodes([ActionEcho(action_dim)], params, [seed], 40)[0] for seed in seeds]
    together = agent.run_episodes([ActionEcho(action_dim) for _ in range(4)], params, seeds, 40)
    assert [r.length for r in together] == [r.length for r in alone] == [5 + s % 13 for s in seeds]
    assert [r.total_reward for r in together] == [r.total_reward for r in alone]  # bitwise
    assert len({r.total_reward for r in alone}) == len(seeds)  # C did act on what it saw
    recorded = agent.run_episode(ActionEcho(action_dim), params, seeds[0], 40, record=True)
    assert recorded.total_reward == alone[0].total_reward and recorded.frames.shape == (alone[0].length, 64, 64, 3)
    # a worker makes at most its limit of envs, once, and runs a task's seeds on them in order
    envs = WorkerEnvs("doom", 3)
    envs.envs = [ActionEcho(action_dim) for _ in range(3)]
    assert run_task(agent, envs, 40, RolloutTask(params, tuple(seeds))) == [(r.total_reward, r.length) for r in alone]
    assert envs.take(10) == envs.envs and len(envs.take(2)) == 2
    capped = agent.run_episodes([ActionEcho(action_dim)], params, [seeds[-1]], 6)[0]
    assert capped.length == 6


def test_lockstep_collection_writes_the_episodes_one_env_at_a_time_would(tmp_path, monkeypatch):
    """Iterative training's collection (the agent exploring at 0.5) over 3 envs in lockstep and over 1: the
    same episode files, retries of too-short episodes included (min_frames 12; the fake episodes last 5-17)."""
    from worldmodels.config import resolve
    from worldmodels.data.episodes import read_episode
    from worldmodels.policies import AgentPolicy
    from worldmodels.stages.collect import collect_episodes

    torch.manual_seed(0)
    monkeypatch.setitem(TASKS, "doom", dataclasses.replace(TASKS["doom"], min_frames=12))
    cfg = resolve("doom-smoke", ["collect.max_frames=14"])
    spec = ControllerSpec("zh", 8, 32, 1, env="doom")
    agent = Agent(ConvVAE(8).eval(), MDNRNN(8, 1, 32, restart_input=True, done_head=True).eval(), spec)
    params = np.random.default_rng(0).normal(0.0, 1.0, spec.num_params).astype(np.float32)
    low, high = np.array([-1.0], np.float32), np.array([1.0], np.float32)
    indices = tuple(range(7))
    written = []
    for slots in (1, 3):
        envs = WorkerEnvs("doom", slots)
        envs.envs = [ActionEcho(1) for _ in range(slots)]
        policy = AgentPolicy(agent, params, 0.5, low, high, slots=slots)
        out = tmp_path / str(slots)
        out.mkdir()
        lengths = collect_episodes(cfg, envs, policy, out, indices)
        assert all(12 < n <= 14 for n in lengths)
        written.append([read_episode(out / f"{i:06d}.npz") for i in indices])
    for a, b in zip(*written):
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.action, b.action)
        assert a.meta == b.meta and a.meta["policy"] == "agent"
    assert max(e.meta["tries"] for e in written[0]) > 1  # some episodes were retried
    assert len({e.action.tobytes() for e in written[0]}) == len(indices)


class Sinking(ActionEcho):
    """ActionEcho whose reward is -1 from step `good` on (a car that left the track)."""

    good = 7

    def _step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        frame, _, _ = super()._step(action)
        return frame, 1.0 if self.steps < self.good else -1.0, False


def test_negative_stop_ends_a_rollout_after_k_negative_steps_and_params_may_differ_per_episode():
    torch.manual_seed(0)
    spec = ControllerSpec("zh", 8, 32, 3, env="carracing")
    agent = Agent(ConvVAE(8).eval(), MDNRNN(8, 3, 32).eval(), spec)
    rng = np.random.default_rng(0)
    params = rng.normal(0.0, 1.0, (3, spec.num_params)).astype(np.float32)
    whole = agent.run_episodes([Sinking(3)], params[0], [1], 40)[0]
    stopped = agent.run_episodes([Sinking(3)], params[0], [1], 40, negative_stop=5)[0]
    assert (whole.length, whole.total_reward) == (40, 7 - 33)
    assert (stopped.length, stopped.total_reward) == (7 + 5, 7 - 5)
    # one controller per episode, in lockstep, gives each episode what that controller gets alone
    seeds = [100, 101, 102]
    alone = [agent.run_episodes([ActionEcho(3)], p, [s], 40)[0].total_reward for p, s in zip(params, seeds)]
    together = agent.run_episodes([ActionEcho(3), ActionEcho(3)], params, seeds, 40)
    assert [r.total_reward for r in together] == alone and len(set(alone)) == 3


def test_task_chunks_cover_every_item_once_in_tasks_of_bounded_size():
    """About four tasks per worker, never fewer than `envs` items a task, never more than TASK_ENVS_MAX x envs
    (the full presets' 10,000 collection episodes: 79 tasks of 128, not 8 of 1,250)."""
    from worldmodels.rollout import TASK_ENVS_MAX, task_chunks

    for n, envs, workers, sizes in [(100, 16, 2, {16, 4}), (400, 16, 2, {50}), (10_000, 16, 2, {128, 16}),
                                    (5, 16, 2, {5})]:
        tasks = task_chunks(list(range(n)), envs, workers)
        assert [i for task in tasks for i in task] == list(range(n))
        assert {len(task) for task in tasks} == sizes
        assert max(sizes) <= TASK_ENVS_MAX * envs


class AsyncActionEcho(ActionEcho):
    """ActionEcho as an asynchronous env (EnvPool's way): `send` keeps the action, `receive` steps; both must be
    called from the lockstep's own thread (no stepping thread for asynchronous envs)."""

    asynchronous = True

    def _send(self, action: np.ndarray) -> None:
        assert threading.current_thread() is threading.main_thread()
        self.sent = action

    def _receive(self) -> tuple[np.ndarray, float, bool]:
        assert threading.current_thread() is threading.main_thread()
        return self._step(self.sent)


def test_asynchronous_envs_give_the_returns_of_synchronous_ones():
    torch.manual_seed(0)
    spec = ControllerSpec("zh", 8, 32, 3, env="carracing")
    agent = Agent(ConvVAE(8).eval(), MDNRNN(8, 3, 32).eval(), spec)
    params = np.random.default_rng(1).normal(0.0, 1.0, spec.num_params).astype(np.float32)
    seeds = list(range(200, 209))
    synchronous = agent.run_episodes([ActionEcho(3) for _ in range(4)], params, seeds, 40)
    asynchronous = agent.run_episodes([AsyncActionEcho(3) for _ in range(4)], params, seeds, 40)
    assert [(r.total_reward, r.length) for r in asynchronous] == [(r.total_reward, r.length) for r in synchronous]
