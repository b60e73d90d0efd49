"""The agent (V, M and C) in the real environment, and the workers that run its episodes.

Per step, as the original (`carracing/model.py` get_action, `doomrnn/doomreal.py`; SPEC.md section 3):
frame_t -> V -> z_t sampled from (mu, logvar); a_t = C([z_t, (c_t,) h_t]); M advances its state with
(z_t, a_t) (Doom: the continuous a and the restart flag, before the env step); env.step(a_t).
Randomness (z sampling) comes from the episode's seed only, so any worker gives the same return.
"""

from __future__ import annotations

import copy
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
from worldmodels.models.vae import ConvVAE, tensor_to_frames


class EpisodeResult(NamedTuple):
    total_reward: float
    length: int
    frames: np.ndarray | None = None  # (T, 64, 64, 3) what the agent saw, when recorded
    reconstructions: np.ndarray | None = None  # (T, 64, 64, 3) V's reconstruction of each frame
    actions: np.ndarray | None = None  # (T, A)
    rewards: np.ndarray | None = None  # (T,)
    dones: np.ndarray | None = None  # (T,)


_NOISE_BLOCK = 256  # steps of V's sampling noise drawn at once (the same numbers as one draw per step)


class _FastAgent:
    """The per-step work of `Agent` with everything that does not change during an episode done once.

    V's encoder runs channels-last (the layout the uint8 HWC frame already has, and oneDNN's fast one for
    batch-1 convolutions), its two heads are one product, M's two gate products are one product over
    [z, a, (restart), h], and C's parameters are reshaped once per episode.
    """

    def __init__(self, vae: ConvVAE, mdnrnn: MDNRNN | None, spec: ControllerSpec, device: torch.device) -> None:
        self.device = device
        self.encoder = copy.deepcopy(vae.encoder).to(memory_format=torch.channels_last)
        self.w_latent = torch.cat([vae.fc_mu.weight, vae.fc_logvar.weight]).t().contiguous()  # (1024, 2Z)
        self.b_latent = torch.cat([vae.fc_mu.bias, vae.fc_logvar.bias]).detach()
        self.latent_dim, self.spec = vae.latent_dim, spec
        if mdnrnn is not None:
            lstm = mdnrnn.lstm
            self.w_lstm = torch.cat([lstm.weight_ih_l0, lstm.weight_hh_l0], dim=1).t().contiguous()  # (in+H, 4H)
            self.b_lstm = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()

    def encode(self, frame: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(64, 64, 3) uint8 -> mu, logvar (1, Z); the NHWC bytes viewed as NCHW channels-last, no copy."""
        x = torch.from_numpy(frame).to(self.device).permute(2, 0, 1).unsqueeze(0).to(torch.float32).div_(255.0)
        features = self.encoder(x).flatten(start_dim=1)  # (1, 1024) in (C, H, W) order, as ConvVAE.encode
        stats = torch.addmm(self.b_latent, features, self.w_latent)
        return stats[:, : self.latent_dim], stats[:, self.latent_dim :]

    def advance(self, z, action, restart, h, c):
        """M's `advance` for one agent: the state after reading (z_t, a_t, restart_t)."""
        if restart is not None:
            if bool(restart[0] > 0.5):
                h, c = torch.zeros_like(h), torch.zeros_like(c)
            parts = [z, action, restart.unsqueeze(-1), h]
        else:
            parts = [z, action, h]
        gates = torch.addmm(self.b_lstm, torch.cat(parts, dim=1), self.w_lstm)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class AgentEpisode:
    """One episode of the agent, frame by frame: V samples z_t, C acts on [z_t, (c_t,) h_t], M reads (z_t, a_t).

    `act(frame, override)` returns the action to send to the env; with `override` (an exploring collection
    policy) that action is taken instead of C's, and M advances with the action actually taken, so h stays
    consistent with what the agent did. z's sampling noise comes from `seed` only.
    """

    def __init__(self, agent: Agent, params: np.ndarray, seed: int) -> None:
        self.agent, self.fast = agent, agent.fast()
        self.params = torch.as_tensor(params, dtype=torch.float32, device=agent.device).reshape(1, -1)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.h = self.c = torch.zeros(1, agent.spec.hidden_size, device=agent.device)
        self.restart = (torch.ones(1, device=agent.device)
                        if agent.mdnrnn is not None and agent.mdnrnn.restart_input else None)
        self.noise, self.steps = torch.empty(0, agent.vae.latent_dim), 0
        self.mu: torch.Tensor | None = None  # V's mean of the last frame (for recordings)

    def act(self, frame: np.ndarray, override: np.ndarray | None = None) -> np.ndarray:
        agent, fast = self.agent, self.fast
        self.mu, logvar = fast.encode(frame)
        if self.steps % _NOISE_BLOCK == 0:  # torch.randn per step would give these same numbers
            self.noise = torch.randn((_NOISE_BLOCK, agent.vae.latent_dim), generator=self.generator).to(agent.device)
        eps = self.noise[self.steps % _NOISE_BLOCK].unsqueeze(0)
        self.steps += 1
        z = self.mu + torch.exp(logvar / 2) * eps  # z is sampled, never the mean (SPEC.md gotcha 5)
        if override is None:
            features = controller_features(agent.spec, z, self.h, self.c)
            action = controller_actions(agent.spec, self.params, features[None])[0]  # (1, A)
        else:
            action = torch.as_tensor(override, dtype=torch.float32, device=agent.device)[None]
        if agent.mdnrnn is not None:
            self.h, self.c = fast.advance(z, action, self.restart, self.h, self.c)
            if self.restart is not None:
                self.restart = torch.zeros_like(self.restart)
        return action[0].cpu().numpy()


@dataclass
class Agent:
    vae: ConvVAE
    mdnrnn: MDNRNN | None  # None for the V-only controllers ("z", "z_hidden"), which never read h
    spec: ControllerSpec
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        self._fast: _FastAgent | None = None

    def fast(self) -> _FastAgent:
        if self._fast is None:
            self._fast = _FastAgent(self.vae, self.mdnrnn, self.spec, self.device)
        return self._fast

    @torch.inference_mode()
    def run_episode(self, env: FrameEnv, params: np.ndarray, seed: int, max_steps: int,
                    record: bool = False) -> EpisodeResult:
        episode = AgentEpisode(self, params, seed)
        frame = env.reset(seed=int(seed))
        total, steps, log = 0.0, 0, []
        for steps in range(1, max_steps + 1):
            action = episode.act(frame)
            if record:
                log.append((frame, self.vae.decode(episode.mu), action))
            frame, reward, terminated, truncated = env.step(action)
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
    mdnrnn_path: Path | None = None  # M's checkpoint, if not the run's (see load_agent)

    def __call__(self) -> Callable[[RolloutTask], list[float]]:
        agent, config = load_agent(Path(self.run_dir), "cpu", self.config, self.mdnrnn_path)
        from worldmodels.envs import make_env

        return functools.partial(run_task, agent, make_env(config.env), self.max_steps)


def uses_memory(spec: ControllerSpec) -> bool:
    """Whether C reads M's state (the V-only ablations "z" and "z_hidden" do not)."""
    return spec.mode in ("zh", "zch")


def load_agent(run_dir: Path, device: torch.device | str, config_dict: dict[str, Any] | None = None,
               mdnrnn_path: Path | None = None):
    """(Agent, Config) from a run directory's V and M and its config's controller spec.

    `mdnrnn_path` picks another M checkpoint: a controller must run with the M it was trained with, and
    after iterative training with `iterate.keep=best` that is a round's snapshot (`iterate.agent_mdnrnn`).
    """
    from worldmodels.artifacts import load_mdnrnn, load_vae
    from worldmodels.config import from_dict, load_run_config
    from worldmodels.stages.train_controller import controller_spec

    config = from_dict(config_dict) if config_dict is not None else load_run_config(run_dir)
    spec = controller_spec(config)
    mdnrnn = load_mdnrnn(run_dir, device, mdnrnn_path) if uses_memory(spec) else None
    return Agent(load_vae(run_dir, device), mdnrnn, spec, torch.device(device)), config
