"""M's dream as an environment: many agents stepped together inside the MDN-RNN (docs/faithfulness.md#the-dream).

`DreamBatch` is the engine. N agents (a whole CMA-ES population x its rollouts) share one tensor state,
so a step is a handful of large matrix products whatever N is:

    reset: (h, c) = 0, restart = 1, z_0 = mu + exp(logvar / 2) * eps from a random real first frame
           (`initial_z`, `doomrnn/doomrnn.py` DoomCoverRNNEnv)
    step:  a_t = C([z_t, (c_t,) h_t]); M reads (z_t, a_t, restart_t) -> mixture for z_{t+1}, done logit,
           (reward); z_{t+1} is sampled at temperature tau; done = done logit > 0 (a threshold, not a
           draw) or the step cap; reward = +1 per step for Doom (incl. the terminal one), else M's reward head.

Randomness is counter-based: every random number an agent uses is a hash of (agent seed, step, stream,
index), so an agent's episode is the same whether it runs alone or among 1,024 others, on any device.

`DreamEnv` and `DreamVectorEnv` wrap it for Gymnasium as `worldmodels/Dream-v0`, so other RL libraries
can train in the dream too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from worldmodels.artifacts import (
    agent_mdnrnn,
    agent_temperature,
    controller_spec,
    load_initial_z,
    load_mdnrnn,
    load_vae,
)
from worldmodels.config import load_run_config
from worldmodels.errors import UserError
from worldmodels.models.controller import ControllerSpec, controller_actions, controller_features
from worldmodels.models.mdnrnn import MDNRNN, StepWeights, dropout_mask, head_step, lstm_step, sample_mixture
from worldmodels.models.rows import pad_rows, round_up
from worldmodels.models.vae import ConvVAE, tensor_to_frames
from worldmodels.runtime import resolve_device

# --- counter-based random numbers (splitmix64 on int64 tensors; wrap-around arithmetic) -----------------


def _signed(c: int) -> int:
    return c - (1 << 64) if c >= (1 << 63) else c


_GOLDEN, _MIX1, _MIX2 = _signed(0x9E3779B97F4A7C15), _signed(0xBF58476D1CE4E5B9), _signed(0x94D049BB133111EB)


def _shift_right(x: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def splitmix64(x: Tensor) -> Tensor:
    x = x + _GOLDEN
    x = (x ^ _shift_right(x, 30)) * _MIX1
    x = (x ^ _shift_right(x, 27)) * _MIX2
    return x ^ _shift_right(x, 31)


class CounterRandom:
    """Per-agent uniforms and normals keyed by (agent seed, agent's step, stream, index)."""

    def __init__(self, seeds: Tensor) -> None:
        self.keys = splitmix64(seeds.to(torch.int64)).unsqueeze(-1)  # (N, 1)

    def uniform(self, steps: Tensor, stream: int, count: int) -> Tensor:
        """(N, count) float32 in the open interval (0, 1); steps (N,) int64 is each agent's step."""
        index = torch.arange(count, device=self.keys.device, dtype=torch.int64)
        counter = ((steps.unsqueeze(-1) * 16 + stream) << 20) + index
        bits = splitmix64(self.keys + _GOLDEN * counter)
        return (_shift_right(bits, 40).to(torch.float32) + 0.5) * (1.0 / (1 << 24))

    def normal(self, steps: Tensor, stream: int, count: int) -> Tensor:
        """(N, count) standard normals by Box-Muller from two uniform streams."""
        u1, u2 = self.uniform(steps, 2 * stream, count), self.uniform(steps, 2 * stream + 1, count)
        return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * torch.pi) * u2)


# streams of CounterRandom used by the dream
_INITIAL_INDEX, _INITIAL_EPS, COMPONENT_STREAM, EPS_STREAM = 0, 1, 3, 4  # normals use streams 2s and 2s+1
_DROPOUT_Z, _DROPOUT_H = 10, 11  # uniforms at step 0: an agent's dropout masks (`DreamWorld.dropout`)


# --- the engine ----------------------------------------------------------------------------------------

# the CounterRandom streams of one step: the normal's u1 and u2, the component's u
_STREAMS = (2 * EPS_STREAM, 2 * EPS_STREAM + 1, COMPONENT_STREAM)


def _m_step(weights: StepWeights, counter: Tensor, z: Tensor, action: Tensor, restart: Tensor | None, h: Tensor,
            c: Tensor, keys: Tensor, steps: Tensor, temperature: float, masks: tuple[Tensor, Tensor] | None = None
            ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """M reads (z_t, a_t, restart_t), advances (h, c), samples z_{t+1}; all float32 in and out.

    counter (3, Z) is `_STREAMS` << 20 + the z index; keys (N, 1) are the agents' CounterRandom keys, steps (N,)
    their step numbers t + 1; masks as `lstm_step`'s. Returns (z_{t+1} (N, Z), h (N, H), c (N, H), extra (N, E):
    done logit and / or reward columns).
    """
    h, c = lstm_step(weights, z, action, restart, h, c, masks)
    extra, mixture = head_step(weights, h)
    # this step's noise, CounterRandom's numbers of three streams at once: Box-Muller normals and component uniforms
    bits = splitmix64(keys.unsqueeze(-1) + _GOLDEN * ((steps[:, None, None] << 24) + counter))
    uniform = (_shift_right(bits, 40).to(torch.float32) + 0.5) * (1.0 / (1 << 24))  # (N, 3, Z)
    eps = torch.sqrt(-2.0 * torch.log(uniform[:, 0])) * torch.cos((2.0 * torch.pi) * uniform[:, 1])
    return sample_mixture(mixture, temperature, uniform[:, 2], eps), h, c, extra


_compiled_step = None


def _step_function(compile: bool):
    """`_m_step`, or its torch.compile'd version (one fused kernel around each product; first call compiles)."""
    global _compiled_step
    if not compile:
        return _m_step
    if _compiled_step is None:
        _compiled_step = torch.compile(_m_step, dynamic=True)
    return _compiled_step


@dataclass
class DreamWorld:
    """What a dream is made of: M, the first-frame statistics it starts from, and how it rewards.

    dtype: the precision of M's two matrix products per step (float32, or torch.bfloat16 for about 3x
    speed on CPUs with AVX-512 BF16 / AMX); state, sampling and returns stay float32.
    compile: run the step through torch.compile (fuses the elementwise work; compiles on first use).
    dropout: each agent runs M with its own dropout masks on z and on h in the recurrent product, drawn at
    this rate when its episode starts (Dropout's Dream Land; `controller.dream_dropout`); 0: the paper's dream.
    """

    mdnrnn: MDNRNN
    initial_mu: Tensor  # (N0, Z)
    initial_logvar: Tensor  # (N0, Z)
    survival_reward: bool  # Doom: +1 per step; otherwise M's reward head
    dtype: torch.dtype = torch.float32
    compile: bool = False
    dropout: float = 0.0

    @classmethod
    def from_run(cls, run_dir: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 compile: bool = False, mdnrnn_path: Path | None = None, dropout: float = 0.0) -> DreamWorld:
        config = load_run_config(run_dir)
        mdnrnn = load_mdnrnn(run_dir, device, mdnrnn_path)
        survival = config.env == "doom"
        if not survival and not mdnrnn.reward_head:
            raise UserError(
                f"{run_dir}: M has no reward head, so its dream has no reward for {config.env}; "
                "train M with --set mdnrnn.reward_head=true"
            )
        mu, logvar = load_initial_z(run_dir)
        return cls(mdnrnn, torch.from_numpy(mu).to(device), torch.from_numpy(logvar).to(device), survival,
                   dtype, compile, dropout)

    @property
    def device(self) -> torch.device:
        return self.initial_mu.device



class DreamBatch:
    """N agents in the dream; `reset(seeds)` then `step(actions)` until `alive` is all False.

    dtype / compile: as `DreamWorld`'s (None: the world's).
    """

    def __init__(self, world: DreamWorld, temperature: float, max_steps: int, dtype: torch.dtype | None = None,
                 compile: bool | None = None) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.world, self.temperature, self.max_steps = world, temperature, max_steps
        self.dtype = world.dtype if dtype is None else dtype
        self._weights = StepWeights(world.mdnrnn, self.dtype)  # built per batch: M may change in place between
        streams = torch.tensor(_STREAMS, dtype=torch.int64, device=world.device)[:, None] << 20
        self._counter = streams + torch.arange(world.mdnrnn.latent_dim, device=world.device)  # (3, Z)
        self._step = _step_function(world.compile if compile is None else compile)

    def reset(self, seeds: Tensor, mask: Tensor | None = None) -> None:
        """Start new episodes for all agents, or only for those in `mask` (N,) bool (autoreset)."""
        world, device = self.world, self.world.device
        seeds = seeds.to(device=device, dtype=torch.int64)
        n = len(seeds)
        fresh = CounterRandom(seeds)
        start = torch.zeros(n, dtype=torch.int64, device=device)
        pick = fresh.uniform(start, _INITIAL_INDEX, 1)[:, 0]
        index = (pick * len(world.initial_mu)).long().clamp_(max=len(world.initial_mu) - 1)
        mu, logvar = world.initial_mu[index], world.initial_logvar[index]
        z = mu + torch.exp(logvar / 2) * fresh.normal(start, _INITIAL_EPS, mu.shape[1])  # (N, Z)
        state = world.mdnrnn.initial_state(n, device=device, dtype=torch.float32)  # (h, c), each (N, H)
        masks = None
        if world.dropout:
            sizes = (_DROPOUT_Z, world.mdnrnn.latent_dim), (_DROPOUT_H, world.mdnrnn.hidden_size)
            masks = tuple(dropout_mask(fresh.uniform(start, stream, size), world.dropout) for stream, size in sizes)
        if mask is None:
            self.masks = masks
            self.random, self.z, self.state = fresh, z.float(), state
            self.restart = torch.ones(n, device=device)
            self.steps = start
            self.alive = torch.ones(n, dtype=torch.bool, device=device)
            self.returns = torch.zeros(n, device=device)
            return
        m = mask.to(device)
        self.random.keys = torch.where(m[:, None], fresh.keys, self.random.keys)
        if masks is not None:
            assert self.masks is not None  # the full reset made them: the world's dropout has not changed
            self.masks = tuple(torch.where(m[:, None], new, old) for new, old in zip(masks, self.masks))
        self.z = torch.where(m[:, None], z.float(), self.z)
        h, c = (torch.where(m[:, None], new, old) for new, old in zip(state, self.state))
        self.state = h, c
        self.restart = torch.where(m, torch.ones_like(self.restart), self.restart)
        self.steps = torch.where(m, start, self.steps)
        self.alive |= m
        self.returns = torch.where(m, torch.zeros_like(self.returns), self.returns)

    def features(self, spec: ControllerSpec) -> Tensor:
        """The controller's input (N, input_size): [z, h] or [z, c, h] (z only for the V-only modes)."""
        h, c = self.state
        return controller_features(spec, self.z, h, c)

    @torch.no_grad()
    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Advance every agent with its (N, A) action; returns (reward, terminated, truncated), each (N,).

        Agents that finished earlier keep being computed (their numbers are ignored): masking keeps the
        batch a fixed shape.
        """
        world, n = self.world, len(self.steps)
        rows = round_up(n)
        restart = self.restart if self._weights.restart_input else None
        h, c = self.state
        self.steps = self.steps + 1
        z, h, c, extra = self._step(
            self._weights, self._counter, pad_rows(self.z, rows), pad_rows(actions.to(torch.float32), rows),
            pad_rows(restart, rows), pad_rows(h, rows), pad_rows(c, rows), pad_rows(self.random.keys, rows),
            pad_rows(self.steps, rows), self.temperature,
            None if self.masks is None else tuple(pad_rows(x, rows) for x in self.masks),
        )
        self.z, self.state, extra = z[:n], (h[:n], c[:n]), extra[:n]
        self.restart = torch.zeros_like(self.restart)
        mdn = world.mdnrnn
        if world.survival_reward:
            reward = torch.ones_like(self.returns)
        else:
            reward = extra[:, int(mdn.done_head)]
        reward = torch.where(self.alive, reward, torch.zeros_like(reward))
        self.returns += reward
        terminated = extra[:, 0] > 0 if mdn.done_head else torch.zeros_like(self.alive)
        terminated &= self.alive
        truncated = (self.steps >= self.max_steps) & self.alive & ~terminated
        self.alive &= ~(terminated | truncated)
        return reward, terminated, truncated

    def _select(self, rows: Tensor) -> None:
        """Keep only these rows (compaction of finished agents)."""
        self.random.keys = self.random.keys[rows]
        if self.masks is not None:
            self.masks = tuple(x[rows] for x in self.masks)
        self.z, self.state = self.z[rows], (self.state[0][rows], self.state[1][rows])
        self.restart, self.steps, self.alive = self.restart[rows], self.steps[rows], self.alive[rows]
        self.returns = self.returns[rows]


@torch.no_grad()
def rollout_population(
    world: DreamWorld, spec: ControllerSpec, params: np.ndarray | Tensor, seeds: np.ndarray,
    temperature: float, max_steps: int, dtype: torch.dtype | None = None, compile: bool | None = None,
) -> np.ndarray:
    """Returns (P, R) of P candidates x R rollouts each, all stepped as one batch in the dream.

    params: (P, num_params) controller weights; seeds: (P, R) int rollout seeds. Finished agents are
    dropped from the batch as they accumulate (compaction), which changes no agent's numbers.
    dtype / compile: as `DreamWorld`'s (None: the world's).
    """
    device = world.device
    params = torch.as_tensor(params, dtype=torch.float32, device=device)
    P, R = seeds.shape
    batch = DreamBatch(world, temperature, max_steps, dtype, compile)
    batch.reset(torch.as_tensor(seeds.reshape(-1), dtype=torch.int64))
    weights = params.repeat_interleave(R, dim=0)  # (P * R, num_params): agent i runs candidate i // R
    agents = torch.arange(P * R, device=device)  # which agent each row of the batch holds
    returns = torch.zeros(P * R, device=device)
    rows = P * R
    while True:
        batch.step(controller_actions(spec, weights, batch.features(spec)))
        alive = int(batch.alive.sum())
        if alive == 0:
            break
        if round_up(alive) <= rows * 7 // 8:  # compact: computing the dead costs as much as the living
            returns[agents] = batch.returns
            keep = torch.nonzero(batch.alive).squeeze(1)
            batch._select(keep)
            weights, agents, rows = weights[keep], agents[keep], alive
    returns[agents] = batch.returns
    return returns.view(P, R).cpu().numpy().astype(np.float64)


# --- Gymnasium ------------------------------------------------------------------------------------------


def _spaces(spec: ControllerSpec, env: str) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    observation = gym.spaces.Box(-np.inf, np.inf, (spec.input_size,), np.float32)
    if env == "carracing":
        action = gym.spaces.Box(np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32))
    else:
        action = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    return observation, action


def _load(run_dir: str | Path, device: str, mode: str | None, temperature: float | None, max_steps: int | None
          ) -> tuple[DreamBatch, ControllerSpec, str]:
    """The dream of a run's controller: the M it was trained with, at the temperature it was trained at (unless
    `temperature`), capped at controller.max_steps (unless `max_steps`)."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    world = DreamWorld.from_run(run_dir, resolve_device(device), mdnrnn_path=agent_mdnrnn(run_dir, config))
    tau = agent_temperature(run_dir, config) if temperature is None else temperature
    batch = DreamBatch(world, tau, max_steps or config.controller.max_steps)
    return batch, controller_spec(config, mode), config.env


class DreamVectorEnv(gym.vector.VectorEnv):
    """`gymnasium.make_vec("worldmodels/Dream-v0", num_envs=N, vectorization_mode="vector_entry_point", ...)`.

    N dream episodes in one batch. Observations are the controller's input vectors, actions the real task's
    continuous actions. Autoreset: an episode that ended is reset on the next `step` (Gymnasium's NEXT_STEP).
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, run_dir: str | Path = "runs/doom-quick", temperature: float | None = None,
                 max_steps: int | None = None, device: str = "auto", mode: str | None = None) -> None:
        self.batch, self.spec_c, env = _load(run_dir, device, mode, temperature, max_steps)
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = _spaces(self.spec_c, env)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._needs_reset = np.zeros(num_envs, bool)

    def _observe(self) -> np.ndarray:
        return self.batch.features(self.spec_c).cpu().numpy().astype(np.float32)

    def _seeds(self, count: int) -> Tensor:
        return torch.from_numpy(self.np_random.integers(0, 2**62, size=count))

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed if isinstance(seed, int) or seed is None else seed[0])
        self.batch.reset(self._seeds(self.num_envs))
        self._needs_reset[:] = False
        return self._observe(), {}

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = torch.as_tensor(np.asarray(actions, np.float32).reshape(self.num_envs, -1),
                                  device=self.batch.world.device)
        restarting = self._needs_reset.copy()
        reward, terminated, truncated = (x.cpu().numpy() for x in self.batch.step(actions))
        reward = reward.astype(np.float64)
        if restarting.any():  # NEXT_STEP autoreset: the episodes that ended last step start again now
            self.batch.reset(self._seeds(self.num_envs), mask=torch.from_numpy(restarting))
            reward[restarting] = 0.0
            terminated[restarting] = truncated[restarting] = False
        self._needs_reset = terminated | truncated
        return self._observe(), reward, terminated, truncated, {}


class DreamEnv(gym.Env):
    """`gymnasium.make("worldmodels/Dream-v0", run_dir=..., temperature=...)`: one dream episode at a time.

    `render_mode="rgb_array"` decodes the current z with V into a 64x64 frame.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 35}

    def __init__(self, run_dir: str | Path = "runs/doom-quick", temperature: float | None = None,
                 max_steps: int | None = None, device: str = "auto", mode: str | None = None,
                 render_mode: str | None = None) -> None:
        self.batch, self.spec_c, env = _load(run_dir, device, mode, temperature, max_steps)
        self.run_dir, self.render_mode = Path(run_dir), render_mode
        self.observation_space, self.action_space = _spaces(self.spec_c, env)
        self._vae: ConvVAE | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.batch.reset(torch.from_numpy(self.np_random.integers(0, 2**62, size=1)))
        return self._observe(), {}

    def _observe(self) -> np.ndarray:
        return self.batch.features(self.spec_c)[0].cpu().numpy().astype(np.float32)

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = torch.as_tensor(np.asarray(action, np.float32).reshape(1, -1), device=self.batch.world.device)
        reward, terminated, truncated = self.batch.step(action)
        return self._observe(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}

    @torch.no_grad()
    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._vae is None:
            self._vae = load_vae(self.run_dir, self.batch.world.device)
        return tensor_to_frames(self._vae.decode(self.batch.z))[0]
