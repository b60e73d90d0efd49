"""The random policies that collect the training data (docs/faithfulness.md#data-collection).

CarRacing's "random" data is not uniform random actions: every episode the whole agent (V, M and C) is
re-drawn with i.i.d. standard Cauchy weights times s ~ U(0, 0.01) and driven through the normal agent
pipeline (`carracing/model.py` L142-152). With tiny weights that gives gas ~ 0.5, brake ~ 0 and steering
near 0 with heavy-tailed per-episode perturbations: a car that mostly drives forward.

Doom's is a ~ U(-1, 1) and a repeat length U{1..10}, both redrawn at every frame that is a multiple of
the repeat (`doomrnn/extract.py`). Optionally (`collect.long_holds`, a departure) a fraction of the episodes
hold each action 1..100 frames.
"""

from __future__ import annotations

import numpy as np
import torch

from worldmodels.models.controller import ControllerSpec, controller_actions, controller_features
from worldmodels.models.mdnrnn import MDNRNN, StepWeights, lstm_step
from worldmodels.models.vae import ConvVAE, frames_to_tensor
from worldmodels.rollout import Agent, AgentBatch


class Policy:
    """reset(rng) at the start of each episode, then act(frame) -> action (A,) float32."""

    def reset(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def act(self, frame: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class DoomRandomPolicy(Policy):
    """The original's random policy (`doomrnn/extract.py` L45-47): a ~ U(-1, 1) and repeat ~ U{1..10}, both
    drawn again at every frame t with t % repeat == 0 (repeat's first draw is before the episode). A hold
    lasts until the next multiple of the newly drawn repeat, not `repeat` frames: 3.7 frames on average,
    22% of them one frame.

    With `long_holds` > 0 that fraction of episodes instead holds each action for U{1..100} frames (a
    departure, docs/faithfulness.md#data-collection): with short holds only, M never sees an agent walk
    into a wall and stay there, and a controller that holds LEFT or RIGHT survives far longer in the dream
    than in the game.
    """

    REPEAT = 10  # frames: randint(1, 11)
    LONG_HOLD = 100  # frames: the longest hold of a long-hold episode

    def __init__(self, long_holds: float = 0.0) -> None:
        self.long_holds = long_holds

    def reset(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.frame, self.hold = 0, 0
        self.action = np.zeros(1, np.float32)
        self.long = self.long_holds > 0 and rng.random() < self.long_holds
        if not self.long:
            self.repeat = int(rng.integers(1, self.REPEAT + 1))

    def act(self, frame: np.ndarray) -> np.ndarray:
        if self.long:
            if self.hold == 0:
                self.action = self.rng.uniform(-1.0, 1.0, size=1).astype(np.float32)
                self.hold = int(self.rng.integers(1, self.LONG_HOLD + 1))
            self.hold -= 1
        elif self.frame % self.repeat == 0:
            self.action = self.rng.uniform(-1.0, 1.0, size=1).astype(np.float32)
            self.repeat = int(self.rng.integers(1, self.REPEAT + 1))
        self.frame += 1
        return self.action


class CarRacingRandomAgentPolicy(Policy):
    """The original's randomly-weighted agent: V, M and C with Cauchy x U(0, 0.01) weights, run as the agent."""

    def __init__(self, latent_dim: int = 32, hidden_size: int = 256) -> None:
        self.vae = ConvVAE(latent_dim).eval()
        self.mdnrnn = MDNRNN(latent_dim, 3, hidden_size).eval()
        self.spec = ControllerSpec(
            mode="zh", latent_dim=latent_dim, hidden_size=hidden_size, action_dim=3, bias=True, env="carracing"
        )

    @torch.no_grad()
    def reset(self, rng: np.random.Generator) -> None:
        self.rng = rng
        stdev = rng.random() * 0.01  # init_random_model_params(stdev=np.random.rand()*0.01)
        # V's and M's set_model_params divide by 10,000 (their JSON weights are ints of theta * 1e4), so their
        # random weights are Cauchy * stdev / 1e4; only C's are Cauchy * stdev (`vae/vae.py`, `rnn/rnn.py`).
        # Without that, V's logvar overflows exp() and the actions become NaN.
        for module in (self.vae, self.mdnrnn):
            for p in module.parameters():
                p.copy_(torch.from_numpy(rng.standard_cauchy(p.shape) * stdev / 1e4))
        # TF's LSTM has one bias and a constant forget bias of 1.0 outside the weights: keep both so.
        hidden = self.mdnrnn.hidden_size
        _, _, bias_ih, bias_hh = self.mdnrnn.lstm_parameters()
        bias_hh.zero_()
        bias_ih[hidden : 2 * hidden] += 1.0
        self.params = torch.from_numpy(rng.standard_cauchy((1, self.spec.num_params)) * stdev).float()
        self.m_weights = StepWeights(self.mdnrnn)
        self.state = self.mdnrnn.initial_state(1)
        self.generator = torch.Generator().manual_seed(int(rng.integers(2**31)))

    @torch.no_grad()
    def act(self, frame: np.ndarray) -> np.ndarray:
        mu, logvar = self.vae.encode(frames_to_tensor(frame[None]))
        z = mu + torch.exp(logvar / 2) * torch.randn(mu.shape, generator=self.generator)  # z is sampled
        h, c = self.state
        action = controller_actions(self.spec, self.params, controller_features(self.spec, z, h, c))  # (1, A)
        self.state = lstm_step(self.m_weights, z, action, None, h, c)
        return action[0].numpy().astype(np.float32)


def make_policy(env: str, long_holds: float = 0.0) -> Policy:
    """The original's random collection policy of `env` (Doom: with `long_holds`, see DoomRandomPolicy)."""
    if env == "doom":
        return DoomRandomPolicy(long_holds)
    return CarRacingRandomAgentPolicy()


class PolicySlots:
    """One policy per env of a lockstep collection worker: reset_slot(slot, rng), act_slots(slots, frames)."""

    def __init__(self, policies: list[Policy]) -> None:
        self.policies = policies
        self.name = getattr(policies[0], "name", None)

    def reset_slot(self, slot: int, rng: np.random.Generator) -> None:
        self.policies[slot].reset(rng)

    def act_slots(self, slots: list[int], frames: np.ndarray) -> np.ndarray:
        return np.stack([self.policies[slot].act(frame) for slot, frame in zip(slots, frames)])


class AgentPolicy(Policy):
    """The trained agent as a collection policy (iterative training), with random exploration.

    At each step not already exploring, with probability `exploration` a uniformly random action is started
    and held for 1..10 frames (like the original's Doom random policy); M's state always advances with the
    action actually taken, so the agent's h stays consistent with what it did. With `slots` > 1 it drives that
    many envs in lockstep (`reset_slot`, `act_slots`: one batched V, M and C), each slot with its own random
    numbers, so an episode is the same in any slot or batch.
    """

    name = "agent"

    def __init__(self, agent: Agent, params: np.ndarray, exploration: float, low: np.ndarray, high: np.ndarray,
                 slots: int = 1) -> None:
        self.params, self.exploration, self.low, self.high = params, exploration, low, high
        self.batch = AgentBatch(agent, slots)
        self.rngs: list[np.random.Generator | None] = [None] * slots
        self.holds = [0] * slots
        self.random_actions: list[np.ndarray | None] = [None] * slots

    def reset_slot(self, slot: int, rng: np.random.Generator) -> None:
        self.rngs[slot] = rng
        self.batch.start(slot, self.params, int(rng.integers(2**31)))
        self.holds[slot], self.random_actions[slot] = 0, None

    @torch.inference_mode()
    def act_slots(self, slots: list[int], frames: np.ndarray) -> np.ndarray:
        overrides: list[np.ndarray | None] = []
        for slot in slots:
            rng = self.rngs[slot]
            assert rng is not None, f"slot {slot} acts before reset_slot"
            if self.holds[slot] == 0 and rng.random() < self.exploration:
                self.random_actions[slot] = rng.uniform(self.low, self.high).astype(np.float32)
                self.holds[slot] = int(rng.integers(1, 11))
            exploring = self.holds[slot] > 0
            if exploring:
                self.holds[slot] -= 1
            overrides.append(self.random_actions[slot] if exploring else None)
        return self.batch.act(slots, frames, overrides).astype(np.float32)

    def reset(self, rng: np.random.Generator) -> None:
        self.reset_slot(0, rng)

    def act(self, frame: np.ndarray) -> np.ndarray:
        return self.act_slots([0], frame[None])[0]
