"""M's dream as an environment: many agents stepped together inside the MDN-RNN (SPEC.md section 4).

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

from worldmodels.artifacts import controller_spec, load_initial_z, load_mdnrnn, load_vae
from worldmodels.config import load_run_config
from worldmodels.errors import UserError
from worldmodels.models.controller import ControllerSpec, controller_features
from worldmodels.models.vae import tensor_to_frames
from worldmodels.runtime import resolve_device
from worldmodels.models.mdnrnn import MDNRNN, MDNOutput, dropout_mask

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
_INITIAL_INDEX, _INITIAL_EPS, _COMPONENT, _EPS = 0, 1, 3, 4  # normals use streams 2s and 2s+1
_DROPOUT_Z, _DROPOUT_H = 10, 11  # uniforms at step 0: an agent's dropout masks (`DreamWorld.dropout`)


def sample_with_noise(out: MDNOutput, temperature: float, uniform: Tensor, normal: Tensor) -> Tensor:
    """`sample_mixture` with given noise: (N, Z, K) mixtures, (N, Z) uniforms and normals -> (N, Z)."""
    probabilities = torch.softmax(out.log_pi / temperature, dim=-1)
    index = (probabilities.cumsum(-1) < uniform.unsqueeze(-1)).sum(-1, keepdim=True)
    index = index.clamp_(max=out.mu.shape[-1] - 1)
    mu = out.mu.gather(-1, index).squeeze(-1)
    log_sigma = out.log_sigma.gather(-1, index).squeeze(-1)
    return mu + torch.exp(log_sigma) * (temperature**0.5) * normal


# --- the engine ----------------------------------------------------------------------------------------

ROW_MULTIPLE = 16
"""Rows are computed in multiples of 16 (small batches are padded with dummy agents). MKL's sgemm gives a
row the same bits whatever the batch only from about 12 rows on (below, it switches kernels), and whole
SIMD vectors keep elementwise kernels off their scalar tail loops, whose exp/tanh differ from the vector
ones in the last bit; so an agent's episode does not depend on how many others share its batch."""

_STREAMS = (2 * _EPS, 2 * _EPS + 1, _COMPONENT)  # CounterRandom streams of one step: normal u1, u2; component u


class Core:
    """M's weights laid out for the hot loop, in the compute dtype (float32, or bfloat16 for speed).

    One product per step for the LSTM: [z, a, (restart), h] (N, in + H) @ (in + H, 4H), with the gate blocks
    reordered from PyTorch's (i, f, g, o) to (i, f, o, g) so that one sigmoid covers 3H columns. Then one
    product for the head, (N, H) @ (H, E + 3ZK). State (h, c) and everything after the products stay float32.
    """

    def __init__(self, mdnrnn: MDNRNN, dtype: torch.dtype) -> None:
        lstm, H = mdnrnn.lstm, mdnrnn.hidden_size
        order = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])
        order = order.to(lstm.weight_ih_l0.device)
        weight = torch.cat([lstm.weight_ih_l0, lstm.weight_hh_l0], dim=1)[order]  # (4H, in + H)
        self.w_lstm = weight.t().contiguous().to(dtype)  # (in + H, 4H)
        self.b_lstm = (lstm.bias_ih_l0 + lstm.bias_hh_l0)[order].contiguous().to(dtype)
        self.w_head = mdnrnn.output_layer.weight.t().contiguous().to(dtype)  # (H, E + 3ZK)
        self.b_head = mdnrnn.output_layer.bias.detach().contiguous().to(dtype)
        self.dtype = dtype
        self.hidden_size, self.latent_dim, self.num_mixtures = H, mdnrnn.latent_dim, mdnrnn.num_mixtures
        self.num_extra = mdnrnn.num_extra_outputs
        self.restart_input = mdnrnn.restart_input
        counter = torch.tensor(_STREAMS, dtype=torch.int64)[:, None] << 20
        self.counter = (counter + torch.arange(mdnrnn.latent_dim)).to(lstm.weight_ih_l0.device)  # (3, Z)


def lstm_step(core: Core, z: Tensor, action: Tensor, restart: Tensor | None, h: Tensor, c: Tensor,
              masks: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """M reads (z_t, a_t, restart_t) and advances its state (h, c): one product; float32 in and out.
    The dream's step and the real agent's (`rollout.AgentBatch`) are this same function. `masks`: dropout
    masks (N, Z) on z and (N, H) on h in the product (`DreamWorld.dropout`; the real agent has none)."""
    H = core.hidden_size
    flag = []
    if restart is not None:  # the state is zeroed before a restart step (`doomrnn/doomrnn.py` L324-348)
        keep = (restart <= 0.5).to(h.dtype).unsqueeze(-1)
        h, c = h * keep, c * keep
        flag = [restart.to(z.dtype).unsqueeze(-1)]
    z_in, h_in = (z, h) if masks is None else (z * masks[0], h * masks[1])
    xh = torch.cat([x.to(core.dtype) for x in (z_in, action, *flag, h_in)], dim=1)
    gates = torch.addmm(core.b_lstm, xh, core.w_lstm).float()  # (N, 4H): i, f, o, g
    ifo = torch.sigmoid(gates[:, : 3 * H])
    c = ifo[:, H : 2 * H] * c + ifo[:, :H] * torch.tanh(gates[:, 3 * H :])
    return ifo[:, 2 * H :] * torch.tanh(c), c


def _m_step(core: Core, z: Tensor, action: Tensor, restart: Tensor | None, h: Tensor, c: Tensor,
            keys: Tensor, steps: Tensor, temperature: float, masks: tuple[Tensor, Tensor] | None = None
            ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """M reads (z_t, a_t, restart_t), advances (h, c), samples z_{t+1}; all float32 in and out.

    keys (N, 1) are the agents' CounterRandom keys, steps (N,) their step numbers t + 1; masks as `lstm_step`'s.
    Returns (z_{t+1} (N, Z), h (N, H), c (N, H), extra (N, E): done logit and / or reward columns).
    """
    dtype, Z, K = core.dtype, core.latent_dim, core.num_mixtures
    n = z.shape[0]
    h, c = lstm_step(core, z, action, restart, h, c, masks)
    out = torch.addmm(core.b_head, h.to(dtype), core.w_head).float()  # (N, E + 3ZK)
    extra = out[:, : core.num_extra]
    mixture = out[:, core.num_extra :].reshape(n, Z, 3 * K)  # rows [log pi (K), mu (K), log sigma (K)]
    # Counter-based noise of this step: component uniforms and Box-Muller normals (CounterRandom's numbers).
    bits = splitmix64(keys.unsqueeze(-1) + _GOLDEN * ((steps[:, None, None] << 24) + core.counter))
    uniform = (_shift_right(bits, 40).to(torch.float32) + 0.5) * (1.0 / (1 << 24))  # (N, 3, Z)
    eps = torch.sqrt(-2.0 * torch.log(uniform[:, 0])) * torch.cos((2.0 * torch.pi) * uniform[:, 1])
    # Component k_j with probability softmax(log pi / tau), by inverse CDF; log_softmax cancels out.
    logits = mixture[..., :K]
    weights = torch.exp((logits - logits.amax(-1, keepdim=True)) * (1.0 / temperature))
    cumulative = weights.cumsum(-1)
    threshold = uniform[:, 2].unsqueeze(-1) * cumulative[..., K - 1 :]
    index = (cumulative < threshold).sum(-1, keepdim=True).clamp_(max=K - 1)
    picked = mixture.gather(-1, torch.cat([index + K, index + 2 * K], dim=-1))  # (N, Z, 2): mu, log sigma
    z = picked[..., 0] + torch.exp(picked[..., 1]) * (temperature**0.5) * eps
    return z, h, c, extra


_compiled_step = None


def _step_function(compile: bool):
    """`_m_step`, or its torch.compile'd version (one fused kernel around each product; first call compiles)."""
    global _compiled_step
    if not compile:
        return _m_step
    if _compiled_step is None:
        _compiled_step = torch.compile(_m_step, dynamic=True)
    return _compiled_step


def round_up(n: int) -> int:
    return -(-n // ROW_MULTIPLE) * ROW_MULTIPLE


def pad_rows(x: Tensor | None, rows: int) -> Tensor | None:
    if x is None or x.shape[0] == rows:
        return x
    return torch.cat([x, x.new_zeros((rows - x.shape[0], *x.shape[1:]))])


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

    @torch.no_grad()
    def core(self, dtype: torch.dtype) -> Core:
        """M's weights in the hot loop's layout (rebuilt each time: M may have been changed in place)."""
        return Core(self.mdnrnn, dtype)


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
        self._core = world.core(self.dtype)
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
            self.masks = tuple(torch.where(m[:, None], new, old) for new, old in zip(masks, self.masks))
        self.z = torch.where(m[:, None], z.float(), self.z)
        self.state = tuple(torch.where(m[:, None], new, old) for new, old in zip(state, self.state))
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
        restart = self.restart if self._core.restart_input else None
        h, c = self.state
        self.steps = self.steps + 1
        z, h, c, extra = self._step(
            self._core, pad_rows(self.z, rows), pad_rows(actions.to(torch.float32), rows),
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


def _squash(spec: ControllerSpec, u: Tensor) -> Tensor:
    """tanh and the env's action mapping of `controller_actions`, on rows padded to whole SIMD vectors."""
    width = u.shape[1]
    lanes = -(-width // 32) * 32  # tanh of whole vectors only: the scalar tail loop rounds differently
    u = torch.tanh(torch.cat([u, u.new_zeros(u.shape[0], lanes - width)], dim=1))[:, :width]
    if spec.env == "doom":
        return u
    return torch.stack([u[:, 0], (u[:, 1] + 1.0) / 2.0, u[:, 2].clamp(0.0, 1.0)], dim=-1)


def agent_actions(spec: ControllerSpec, weights: Tensor, features: Tensor) -> Tensor:
    """`controller_actions` with one parameter row per agent: weights (N, num_params), features (N, in)."""
    n, bias = features.shape[0], bool(spec.bias)

    def affine(x: Tensor, offset: int, size_in: int, size_out: int) -> tuple[Tensor, int]:
        b = None
        if bias:
            b, offset = weights[:, offset : offset + size_out], offset + size_out
        w = weights[:, offset : offset + size_in * size_out].reshape(n, size_in, size_out)
        y = torch.bmm(x.unsqueeze(1), w).squeeze(1)  # one (1, in) x (in, out) product per agent
        return (y if b is None else y + b), offset + size_in * size_out

    if spec.mode == "z_hidden":
        hidden, offset = affine(features, 0, spec.input_size, spec.hidden_units)
        width = hidden.shape[1]
        lanes = -(-width // 32) * 32
        hidden = torch.tanh(torch.cat([hidden, hidden.new_zeros(n, lanes - width)], dim=1))[:, :width]
        u, _ = affine(hidden, offset, spec.hidden_units, spec.action_dim)
    else:
        u, _ = affine(features, 0, spec.input_size, spec.action_dim)
    return _squash(spec, u)


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
        batch.step(agent_actions(spec, weights, batch.features(spec)))
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


def _spaces(world: DreamWorld, spec: ControllerSpec, env: str) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    observation = gym.spaces.Box(-np.inf, np.inf, (spec.input_size,), np.float32)
    if env == "carracing":
        action = gym.spaces.Box(np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32))
    else:
        action = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    return observation, action


def _load(run_dir: str | Path, device: str, mode: str | None) -> tuple[DreamWorld, ControllerSpec, Any]:
    config = load_run_config(Path(run_dir))
    world = DreamWorld.from_run(Path(run_dir), resolve_device(device))
    return world, controller_spec(config, mode), config


class DreamVectorEnv(gym.vector.VectorEnv):
    """`gymnasium.make_vec("worldmodels/Dream-v0", num_envs=N, vectorization_mode="vector_entry_point", ...)`.

    N dream episodes in one batch. Observations are the controller's input vectors, actions the real task's
    continuous actions. Autoreset: an episode that ended is reset on the next `step` (Gymnasium's NEXT_STEP).
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, run_dir: str | Path = "runs/doom-quick", temperature: float = 1.15,
                 max_steps: int | None = None, device: str = "auto", mode: str | None = None) -> None:
        world, self.spec_c, config = _load(run_dir, device, mode)
        self.num_envs = num_envs
        self.batch = DreamBatch(world, temperature, max_steps or config.controller.max_steps)
        self.single_observation_space, self.single_action_space = _spaces(world, self.spec_c, config.env)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._needs_reset = np.zeros(num_envs, bool)

    def _observe(self) -> np.ndarray:
        return self.batch.features(self.spec_c).cpu().numpy().astype(np.float32)

    def _seeds(self, count: int) -> Tensor:
        return torch.from_numpy(self.np_random.integers(0, 2**62, size=count))

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        super().reset(seed=seed if isinstance(seed, int) or seed is None else seed[0])
        self.batch.reset(self._seeds(self.num_envs))
        self._needs_reset[:] = False
        return self._observe(), {}

    def step(self, actions):
        actions = torch.as_tensor(np.asarray(actions, np.float32).reshape(self.num_envs, -1), device=self.batch.world.device)
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

    def __init__(self, run_dir: str | Path = "runs/doom-quick", temperature: float = 1.15,
                 max_steps: int | None = None, device: str = "auto", mode: str | None = None,
                 render_mode: str | None = None) -> None:
        world, self.spec_c, config = _load(run_dir, device, mode)
        self.run_dir, self.render_mode = Path(run_dir), render_mode
        self.batch = DreamBatch(world, temperature, max_steps or config.controller.max_steps)
        self.observation_space, self.action_space = _spaces(world, self.spec_c, config.env)
        self._vae = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.batch.reset(torch.from_numpy(self.np_random.integers(0, 2**62, size=1)))
        return self._observe(), {}

    def _observe(self) -> np.ndarray:
        return self.batch.features(self.spec_c)[0].cpu().numpy().astype(np.float32)

    def step(self, action):
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
