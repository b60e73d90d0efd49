"""The fast dream engine: rows independent of the batch (padding, compaction), bf16 option, old semantics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldmodels.envs.dream import (
    COMPONENT_STREAM,
    EPS_STREAM,
    CounterRandom,
    DreamBatch,
    DreamWorld,
    rollout_population,
)
from worldmodels.models.controller import ControllerSpec
from worldmodels.models.mdnrnn import MDNRNN, StepWeights, head_step, lstm_step, sample_mixture
from worldmodels.models.rows import ROW_MULTIPLE, pad_rows, round_up


def _world(latent: int = 16, hidden: int = 64, seed: int = 0, action_dim: int = 1) -> DreamWorld:
    """An untrained M whose done head fires now and then, so episodes end at many different steps."""
    torch.manual_seed(seed)
    mdnrnn = MDNRNN(latent, action_dim, hidden, restart_input=True, done_head=True).eval()
    with torch.no_grad():
        mdnrnn.output_layer.weight[0] *= 8.0
        mdnrnn.output_layer.bias[0] = -1.2
    mu = torch.randn(20, latent)
    return DreamWorld(mdnrnn, mu, torch.full_like(mu, -2.0), survival_reward=True)


def _population(world: DreamWorld, P: int, R: int):
    spec = ControllerSpec("zch", world.mdnrnn.latent_dim, world.mdnrnn.hidden_size, 1, env="doom")
    params = np.random.default_rng(1).normal(scale=0.3, size=(P, spec.num_params))
    seeds = np.arange(P * R).reshape(P, R) * 1000 + 17
    return spec, params, seeds


def test_compaction_and_padding_leave_every_episode_unchanged():
    """50 agents (padded to 64 rows, compacted as they die) == each agent alone (padded to 16 rows)."""
    world = _world()
    spec, params, seeds = _population(world, 10, 5)
    batched = rollout_population(world, spec, params, seeds, 1.15, 200)
    assert len(np.unique(batched)) > 10, batched  # many different ends: compaction happened several times
    for p, r in [(0, 0), (3, 2), (9, 4), (5, 1)]:
        alone = rollout_population(world, spec, params[p : p + 1], seeds[p : p + 1, r : r + 1], 1.15, 200)
        assert alone[0, 0] == batched[p, r]


def test_batch_rows_are_bitwise_independent_of_batch_size():
    world = _world()
    seeds = torch.arange(40) * 3 + 1

    def run(index: torch.Tensor) -> DreamBatch:
        batch = DreamBatch(world, 1.15, 100)
        batch.reset(seeds[index])
        for _ in range(25):
            batch.step(torch.tanh(batch.z[:, :1]))
        return batch

    full = run(torch.arange(40))
    for index in (torch.tensor([0]), torch.tensor([39]), torch.arange(5, 23)):
        part = run(index)
        assert torch.equal(part.z, full.z[index])
        assert torch.equal(part.state[1], full.state[1][index])


@pytest.mark.parametrize("dropout", [0.0, 0.25])
def test_engine_samples_as_the_step_kernel_with_counter_noise(dropout):
    """The dream's step (`_m_step`, noise hashed in place) draws the same z as M's step kernel (lstm_step,
    head_step) + sample_mixture with CounterRandom's numbers of the agent's step; with dream dropout, as the
    kernel given the agent's masks."""
    world = _world(latent=8, hidden=32)
    world.dropout = dropout
    seeds = torch.arange(16)
    batch = DreamBatch(world, 1.3, 100)
    batch.reset(seeds)
    z0, action = batch.z.clone(), torch.rand(16, 1) * 2 - 1
    batch.step(action)
    weights = StepWeights(world.mdnrnn)
    h, c = world.mdnrnn.initial_state(16)
    h, c = lstm_step(weights, z0, action, torch.ones(16), h, c, batch.masks)
    _, mixture = head_step(weights, h)
    steps = torch.ones(16, dtype=torch.int64)
    rng = CounterRandom(seeds)
    uniform, eps = rng.uniform(steps, COMPONENT_STREAM, 8), rng.normal(steps, EPS_STREAM, 8)
    expected = sample_mixture(mixture, 1.3, uniform, eps)
    torch.testing.assert_close(batch.z, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batch.state[0], h, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batch.state[1], c, rtol=1e-5, atol=1e-5)
    # another step's noise gives another z (the comparison above is not a coincidence of the mixture)
    later = steps + 1
    other = sample_mixture(mixture, 1.3, rng.uniform(later, COMPONENT_STREAM, 8), rng.normal(later, EPS_STREAM, 8))
    assert not torch.allclose(batch.z, other, rtol=1e-3, atol=1e-3)
    if dropout:
        assert not torch.allclose(h, lstm_step(weights, z0, action, torch.ones(16), *world.mdnrnn.initial_state(16))[0])


def test_rows_pad_to_whole_multiples():
    assert [round_up(n) for n in (1, 15, 16, 17, 50)] == [16, 16, 16, 32, 64] and ROW_MULTIPLE == 16
    x = torch.arange(6.0).reshape(3, 2)
    padded = pad_rows(x, 16)
    assert padded.shape == (16, 2) and torch.equal(padded[:3], x) and torch.count_nonzero(padded[3:]) == 0
    assert pad_rows(x, 3) is x and pad_rows(None, 16) is None


def test_bfloat16_dream_keeps_float32_state_and_similar_returns():
    world = _world()
    spec, params, seeds = _population(world, 8, 8)
    fp32 = rollout_population(world, spec, params, seeds, 1.15, 150)
    bf16 = rollout_population(world, spec, params, seeds, 1.15, 150, dtype=torch.bfloat16)
    assert np.isfinite(bf16).all() and bf16.min() >= 1 and bf16.max() <= 150
    # the same distribution of episode lengths (not the same episodes: bf16 rounding changes the samples)
    assert abs(bf16.mean() - fp32.mean()) < 4 * (fp32.std() + bf16.std()) / np.sqrt(fp32.size)
    batch = DreamBatch(world, 1.15, 10, dtype=torch.bfloat16)
    batch.reset(torch.arange(3))
    batch.step(torch.zeros(3, 1))
    assert batch.z.dtype == batch.state[0].dtype == batch.state[1].dtype == torch.float32


@pytest.mark.parametrize("mode", ["zh", "z", "z_hidden"])
def test_other_controller_modes_batch_independent(mode):
    world = _world(latent=32, hidden=64, action_dim=3)
    spec = ControllerSpec(mode, 32, 64, 3, env="carracing")
    params = np.random.default_rng(2).normal(scale=0.3, size=(6, spec.num_params))
    seeds = np.arange(18).reshape(6, 3)
    batched = rollout_population(world, spec, params, seeds, 1.0, 120)
    alone = rollout_population(world, spec, params[4:5], seeds[4:5, 1:2], 1.0, 120)
    assert alone[0, 0] == batched[4, 1]


@pytest.mark.slow
def test_compiled_engine_is_batch_independent_too():
    """torch.compile'd step (one kernel per fused region, symbolic batch size): alone == in a batch."""
    world = _world(latent=16, hidden=32)
    world.compile = True
    spec, params, seeds = _population(world, 4, 4)
    batched = rollout_population(world, spec, params, seeds, 1.15, 80)
    alone = rollout_population(world, spec, params[2:3], seeds[2:3, 3:4], 1.15, 80)
    assert alone[0, 0] == batched[2, 3]
    eager = rollout_population(world, spec, params, seeds, 1.15, 80, compile=False)
    assert abs(eager.mean() - batched.mean()) < 4 * eager.std() / np.sqrt(eager.size) + 1


def test_dream_dropout_gives_each_agent_its_own_dream_and_keeps_rows_batch_independent():
    """`DreamWorld.dropout` (Dropout's Dream Land): an agent's masks are its own (drawn from its seed, about
    the rate dropped), its episode is the same alone or among others, compacted or not, and the dream differs
    from the one without dropout."""
    world = _world()
    spec, params, seeds = _population(world, 10, 5)
    plain = rollout_population(world, spec, params, seeds, 1.15, 200)
    world.dropout = 0.2
    batched = rollout_population(world, spec, params, seeds, 1.15, 200)
    assert not np.array_equal(batched, plain)
    for p, r in [(0, 0), (9, 4), (5, 1)]:
        alone = rollout_population(world, spec, params[p : p + 1], seeds[p : p + 1, r : r + 1], 1.15, 200)
        assert alone[0, 0] == batched[p, r]
    batch = DreamBatch(world, 1.15, 100)
    batch.reset(torch.arange(64))
    z_mask, h_mask = batch.masks
    assert z_mask.shape == (64, 16) and h_mask.shape == (64, 64)
    assert 0.15 < float((h_mask == 0).float().mean()) < 0.25
    assert set(torch.unique(h_mask).tolist()) == {0.0, 1.0 / 0.8}
    assert len({tuple(row.tolist()) for row in h_mask}) == 64  # every agent a different M
