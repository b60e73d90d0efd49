"""The agent (V, M and C) in the real environment, and the workers that run its episodes.

Per step, as the original (`carracing/model.py` get_action, `doomrnn/doomreal.py`; SPEC.md section 3):
frame_t -> V -> z_t sampled from (mu, logvar); a_t = C([z_t, (c_t,) h_t]); M advances its state with
(z_t, a_t) (Doom: the continuous a and the restart flag, before the env step); env.step(a_t).
Randomness (z sampling) comes from the episode's seed only, so any worker gives the same return.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from worldmodels.envs import FrameEnv
from worldmodels.models.controller import ControllerSpec, controller_actions, controller_features
from worldmodels.models.mdnrnn import MDNRNN
from worldmodels.models.vae import ConvVAE, frames_to_tensor, tensor_to_frames


class EpisodeResult(NamedTuple):
    total_reward: float
    length: int
    frames: np.ndarray | None = None  # (T, 64, 64, 3) what the agent saw, when recorded
    reconstructions: np.ndarray | None = None  # (T, 64, 64, 3) V's reconstruction of each frame
    actions: np.ndarray | None = None  # (T, A)
    rewards: np.ndarray | None = None  # (T,)
    dones: np.ndarray | None = None  # (T,)


@dataclass
class Agent:
    vae: ConvVAE
    mdnrnn: MDNRNN | None  # None for the V-only controllers ("z", "z_hidden"), which never read h
    spec: ControllerSpec
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @torch.no_grad()
    def run_episode(self, env: FrameEnv, params: np.ndarray, seed: int, max_steps: int,
                    record: bool = False) -> EpisodeResult:
        generator = torch.Generator().manual_seed(int(seed))
        params_t = torch.as_tensor(params, dtype=torch.float32, device=self.device).reshape(1, -1)
        hidden = self.spec.hidden_size
        h = c = torch.zeros(1, hidden, device=self.device)
        restart = torch.ones(1, device=self.device) if self.mdnrnn is not None and self.mdnrnn.restart_input else None
        frame = env.reset(seed=int(seed))
        total, steps, log = 0.0, 0, []
        for steps in range(1, max_steps + 1):
            mu, logvar = self.vae.encode(frames_to_tensor(frame[None], self.device))
            eps = torch.randn(mu.shape, generator=generator).to(self.device)
            z = mu + torch.exp(logvar / 2) * eps  # z is sampled, never the mean (SPEC.md gotcha 5)
            features = controller_features(self.spec, z, h, c)
            action = controller_actions(self.spec, params_t, features[None])[0]  # (1, A)
            if self.mdnrnn is not None:
                h, c = self.mdnrnn.advance(z, action, restart, (h, c))
                restart = torch.zeros_like(restart) if restart is not None else None
            action_np = action[0].cpu().numpy()
            if record:
                log.append((frame, self.vae.decode(mu), action_np))
            frame, reward, terminated, truncated = env.step(action_np)
            total += reward
            if record:
                log[-1] += (reward, terminated)
            if terminated or truncated:
                break
        if not record:
            return EpisodeResult(total, steps)
        frames, recon, actions, rewards, dones = zip(*log)
        return EpisodeResult(total, steps, np.stack(frames), tensor_to_frames(torch.cat(recon)),
                             np.stack(actions), np.array(rewards, np.float32), np.array(dones))


class AgentPolicy:
    """The agent as a collection policy (iterative training), with random exploration.

    At each step not already exploring, with probability `exploration` a uniformly random action is started
    and held for 1..10 frames (the original's Doom random policy); M's state always advances with the action
    actually taken, so the agent's h stays consistent with what it did.
    """

    name = "agent"

    def __init__(self, agent: Agent, params: np.ndarray, exploration: float, low: np.ndarray, high: np.ndarray):
        self.agent, self.exploration, self.low, self.high = agent, exploration, low, high
        self.params = torch.as_tensor(params, dtype=torch.float32, device=agent.device).reshape(1, -1)

    def reset(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        agent = self.agent
        self.h = self.c = torch.zeros(1, agent.spec.hidden_size, device=agent.device)
        self.restart = torch.ones(1, device=agent.device)
        self.hold, self.random_action = 0, None

    @torch.no_grad()
    def act(self, frame: np.ndarray) -> np.ndarray:
        agent = self.agent
        mu, logvar = agent.vae.encode(frames_to_tensor(frame[None], agent.device))
        z = mu + torch.exp(logvar / 2) * torch.randn(mu.shape, generator=self.generator).to(agent.device)
        action = controller_actions(agent.spec, self.params, controller_features(agent.spec, z, self.h, self.c)[None])[0]
        if self.hold == 0 and self.rng.random() < self.exploration:
            self.random_action = self.rng.uniform(self.low, self.high).astype(np.float32)
            self.hold = int(self.rng.integers(1, 11))
        if self.hold > 0:
            self.hold -= 1
            action = torch.from_numpy(self.random_action)[None].to(agent.device)
        if agent.mdnrnn is not None:
            restart = self.restart if agent.mdnrnn.restart_input else None
            self.h, self.c = agent.mdnrnn.advance(z, action, restart, (self.h, self.c))
            self.restart = torch.zeros_like(self.restart)
        return action[0].cpu().numpy().astype(np.float32)


class RolloutTask(NamedTuple):
    """What crosses to a worker: one candidate's parameters and the seeds of its episodes."""

    params: np.ndarray  # (num_params,) float32
    seeds: tuple[int, ...]


def run_task(agent: Agent, env: FrameEnv, max_steps: int, task: RolloutTask) -> list[float]:
    return [agent.run_episode(env, task.params, seed, max_steps).total_reward for seed in task.seeds]


@dataclass
class RolloutWorker:
    """Picklable factory, built once per worker: loads V and M, makes the environment."""

    run_dir: str
    config: dict[str, Any]
    max_steps: int

    def __call__(self) -> Callable[[RolloutTask], list[float]]:
        agent, config = load_agent(Path(self.run_dir), "cpu", self.config)
        from worldmodels.envs import make_env

        return functools.partial(run_task, agent, make_env(config.env), self.max_steps)


def uses_memory(spec: ControllerSpec) -> bool:
    """Whether C reads M's state (the V-only ablations "z" and "z_hidden" do not)."""
    return spec.mode in ("zh", "zch")


def load_agent(run_dir: Path, device: torch.device | str, config_dict: dict[str, Any] | None = None):
    """(Agent, Config) from a run directory's V and M and its config's controller spec."""
    from worldmodels.artifacts import load_mdnrnn, load_vae
    from worldmodels.config import from_dict, load_run_config
    from worldmodels.stages.train_controller import controller_spec

    config = from_dict(config_dict) if config_dict is not None else load_run_config(run_dir)
    spec = controller_spec(config)
    mdnrnn = load_mdnrnn(run_dir, device) if uses_memory(spec) else None
    return Agent(load_vae(run_dir, device), mdnrnn, spec, torch.device(device)), config
