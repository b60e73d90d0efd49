"""M: counts, head layout, restart unroll, step kernel / forward agreement, loss and sampling (SPEC section 2)."""

import math

import pytest
import torch

from worldmodels.models.mdnrnn import (
    MDNRNN,
    MDNOutput,
    StepWeights,
    dropout_mask,
    head_step,
    lstm_step,
    mdnrnn_loss,
    mixture_nll,
    paper_parameter_count,
    sample_mixture,
)


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def carracing() -> MDNRNN:
    return MDNRNN(latent_dim=32, action_dim=3, hidden_size=256, num_mixtures=5)


def doom() -> MDNRNN:
    return MDNRNN(
        latent_dim=64, action_dim=1, hidden_size=512, num_mixtures=5, restart_input=True, done_head=True
    )


def test_parameter_counts_are_paper_plus_second_bias() -> None:
    car = carracing()
    assert car.lstm.input_size == 35
    assert count(car) == 422_368 + 1_024
    assert paper_parameter_count(car) == 422_368
    model = doom()
    assert model.lstm.input_size == 66
    assert model.output_layer.out_features == 961
    assert count(model) == 1_678_785 + 2_048
    assert paper_parameter_count(model) == 1_678_785


@torch.no_grad()
def test_tf_like_initialisation() -> None:
    model = carracing()
    hidden = 256
    limit = math.sqrt(6.0 / (35 + hidden + 4 * hidden))
    for weight in (model.lstm.weight_ih_l0, model.lstm.weight_hh_l0):
        assert float(weight.abs().max()) <= limit
        assert float(weight.abs().max()) > 0.95 * limit
    expected_bias = torch.zeros(4 * hidden)
    expected_bias[hidden : 2 * hidden] = 1.0  # forget gate (order i, f, g, o)
    torch.testing.assert_close(model.lstm.bias_ih_l0, expected_bias)
    assert torch.count_nonzero(model.lstm.bias_hh_l0) == 0
    assert torch.count_nonzero(model.output_layer.bias) == 0
    head_limit = math.sqrt(6.0 / (hidden + 480))
    assert float(model.output_layer.weight.abs().max()) <= head_limit


@torch.no_grad()
def test_head_layout_extra_columns_first_then_rows_of_3k() -> None:
    latent, mixtures = 3, 2
    model = MDNRNN(latent, 1, hidden_size=4, num_mixtures=mixtures, done_head=True, reward_head=True)
    model.output_layer.weight.zero_()
    bias = torch.arange(2 + latent * mixtures * 3, dtype=torch.float32)
    model.output_layer.bias.copy_(bias)
    out = model.head(torch.zeros(7, 4))
    assert out.done_logit.shape == (7,) and out.reward.shape == (7,)
    assert float(out.done_logit[0]) == 0.0 and float(out.reward[0]) == 1.0
    for j in range(latent):
        row = bias[2 + j * 3 * mixtures : 2 + (j + 1) * 3 * mixtures]
        torch.testing.assert_close(out.log_pi[0, j], torch.log_softmax(row[:mixtures], 0))
        torch.testing.assert_close(out.mu[0, j], row[mixtures : 2 * mixtures])
        torch.testing.assert_close(out.log_sigma[0, j], row[2 * mixtures :])
    plain = MDNRNN(latent, 1, hidden_size=4, num_mixtures=mixtures).head(torch.zeros(2, 5, 4))
    assert plain.done_logit is None and plain.reward is None
    assert plain.mu.shape == (2, 5, latent, mixtures)
    torch.testing.assert_close(plain.log_pi.exp().sum(-1), torch.ones(2, 5, latent))


def small(restart_input: bool, seed: int = 0) -> MDNRNN:
    torch.manual_seed(seed)
    model = MDNRNN(4, 2, hidden_size=8, num_mixtures=3, restart_input=restart_input, done_head=restart_input)
    with torch.no_grad():  # non-trivial biases so that bias handling is exercised
        model.lstm.bias_ih_l0.normal_()
        model.lstm.bias_hh_l0.normal_()
    return model


@torch.no_grad()
def test_restart_unroll_equals_fused_lstm_without_restarts() -> None:
    model = small(restart_input=True)
    z, action = torch.randn(3, 6, 4), torch.randn(3, 6, 2)
    restart = torch.zeros(3, 6)
    state = (torch.randn(3, 8), torch.randn(3, 8))
    out, h_seq, (h, c) = model(z, action, restart, state)
    x = torch.cat([z, action, restart.unsqueeze(-1)], -1)
    reference, (h_ref, c_ref) = model.lstm(x, (state[0][None], state[1][None]))
    torch.testing.assert_close(h_seq, reference)
    torch.testing.assert_close(h, h_ref[0])
    torch.testing.assert_close(c, c_ref[0])
    assert out.log_pi.shape == (3, 6, 4, 3) and out.done_logit.shape == (3, 6)


@torch.no_grad()
def test_restart_resets_state_before_the_step() -> None:
    model = small(restart_input=True)
    z, action = torch.randn(2, 7, 4), torch.randn(2, 7, 2)
    restart = torch.zeros(2, 7)
    restart[0, 3] = 1.0
    state = (torch.randn(2, 8), torch.randn(2, 8))
    _, h_seq, final = model(z, action, restart, state)
    # Row 0 from step 3 on equals the suffix run from a zero state.
    _, suffix, suffix_final = model(z[:1, 3:], action[:1, 3:], restart[:1, 3:], None)
    torch.testing.assert_close(h_seq[:1, 3:], suffix)
    torch.testing.assert_close(final[1][:1], suffix_final[1])
    # Independent of the unroll: PyTorch's LSTM on the suffix from zero state (reset BEFORE step 3).
    x_suffix = torch.cat([z[:1, 3:], action[:1, 3:], restart[:1, 3:].unsqueeze(-1)], -1)
    torch.testing.assert_close(h_seq[:1, 3:], model.lstm(x_suffix)[0])
    # ...and differs from not resetting (so the test can fail).
    _, no_reset, _ = model(z, action, torch.zeros(2, 7), state)
    assert not torch.allclose(no_reset[0, 3:], h_seq[0, 3:])
    # Row 1 has no restart and is unaffected by row 0's.
    torch.testing.assert_close(h_seq[1], no_reset[1])
    torch.testing.assert_close(h_seq[0, :3], no_reset[0, :3])


@pytest.mark.parametrize("restart_input", [False, True])
@torch.no_grad()
def test_step_matches_forward(restart_input: bool) -> None:
    """The agents' step kernel (StepWeights, lstm_step, head_step) equals forward's teacher-forced unroll,
    restarts and dropout masks included; head_step's raw mixture rows are forward's head before log-softmax."""
    model = small(restart_input)
    K = model.num_mixtures
    z, action = torch.randn(3, 5, 4), torch.randn(3, 5, 2)
    restart = None
    if restart_input:
        restart = torch.zeros(3, 5)
        restart[1, 2] = 1.0
        restart[2, 0] = 1.0
    state = (torch.randn(3, 8), torch.randn(3, 8))
    weights = StepWeights(model)
    for masks in (None, (dropout_mask(torch.rand(3, 4), 0.3), dropout_mask(torch.rand(3, 8), 0.3))):
        out, h_seq, final = model(z, action, restart, state, *(masks or (None, None)))
        h, c = state
        for t in range(5):
            h, c = lstm_step(weights, z[:, t], action[:, t], None if restart is None else restart[:, t], h, c, masks)
            torch.testing.assert_close(h, h_seq[:, t])
            extra, mixture = head_step(weights, h)
            assert mixture.shape == (3, 4, 3 * K) and extra.shape == (3, int(restart_input))
            torch.testing.assert_close(torch.log_softmax(mixture[..., :K], -1), out.log_pi[:, t])
            torch.testing.assert_close(mixture[..., K : 2 * K], out.mu[:, t])
            torch.testing.assert_close(mixture[..., 2 * K :], out.log_sigma[:, t])
            if restart_input:
                torch.testing.assert_close(extra[:, 0], out.done_logit[:, t])
            else:
                assert out.done_logit is None
        torch.testing.assert_close(h, final[0])
        torch.testing.assert_close(c, final[1])
    # the masks did change the run (so the comparison with them means something)
    assert not torch.allclose(model(z, action, restart, state)[1], h_seq)
    # Carrying state across chunks equals one long run (Doom's truncated BPTT relies on this).
    _, h_seq, _ = model(z, action, restart, state)
    _, first, mid = model(z[:, :2], action[:, :2], None if restart is None else restart[:, :2], state)
    _, second, _ = model(z[:, 2:], action[:, 2:], None if restart is None else restart[:, 2:], mid)
    torch.testing.assert_close(torch.cat([first, second], 1), h_seq)


@torch.no_grad()
def test_bfloat16_step_weights_keep_float32_state_close_to_float32() -> None:
    """StepWeights in bfloat16 (the dream's fast option): the products in bf16, h, c and the mixture float32,
    within bf16's rounding of the float32 kernel's."""
    model = small(restart_input=True)
    z, action, restart = torch.randn(6, 4), torch.randn(6, 2), torch.zeros(6)
    h, c = torch.randn(6, 8) * 0.5, torch.randn(6, 8) * 0.5
    fp32, bf16 = StepWeights(model), StepWeights(model, torch.bfloat16)
    assert bf16.w_lstm.dtype == bf16.w_head.dtype == torch.bfloat16
    h32, c32 = lstm_step(fp32, z, action, restart, h, c)
    h16, c16 = lstm_step(bf16, z, action, restart, h, c)
    assert h16.dtype == c16.dtype == torch.float32
    torch.testing.assert_close(h16, h32, atol=0.03, rtol=0)
    assert not torch.equal(h16, h32)  # bf16 really ran
    mixture16 = head_step(bf16, h32)[1]
    assert mixture16.dtype == torch.float32
    torch.testing.assert_close(mixture16, head_step(fp32, h32)[1], atol=0.05, rtol=0)


def test_restart_argument_is_checked() -> None:
    with pytest.raises(ValueError):
        small(True)(torch.randn(1, 2, 4), torch.randn(1, 2, 2))
    with pytest.raises(ValueError):
        small(False)(torch.randn(1, 2, 4), torch.randn(1, 2, 2), torch.zeros(1, 2))


def test_initial_state() -> None:
    h, c = carracing().initial_state(5)
    assert h.shape == c.shape == (5, 256) and torch.count_nonzero(h) == 0 and torch.count_nonzero(c) == 0
    h64, _ = carracing().initial_state(2, dtype=torch.float64)
    assert h64.dtype == torch.float64


def test_mixture_nll_matches_torch_distributions() -> None:
    torch.manual_seed(0)
    shape = (4, 6, 5, 3)  # (B, T, Z, K)
    log_pi = torch.log_softmax(torch.randn(shape), -1)
    mu, log_sigma = torch.randn(shape), torch.randn(shape) * 0.5
    target = torch.randn(shape[:-1]) * 2
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=log_pi), torch.distributions.Normal(mu, log_sigma.exp())
    )
    expected = -mixture.log_prob(target).mean()
    torch.testing.assert_close(mixture_nll(log_pi, mu, log_sigma, target), expected)


def test_mixture_nll_is_stable_far_from_the_means() -> None:
    log_pi = torch.log_softmax(torch.zeros(1, 2), -1)
    mu, log_sigma = torch.zeros(1, 2), torch.tensor([[-5.0, -6.0]])
    value = mixture_nll(log_pi, mu, log_sigma, torch.tensor([50.0]))
    assert torch.isfinite(value) and float(value) > 1e4


def test_mdnrnn_loss_terms() -> None:
    torch.manual_seed(0)
    shape = (2, 3, 4, 5)
    out = MDNOutput(
        log_pi=torch.log_softmax(torch.randn(shape), -1),
        mu=torch.randn(shape),
        log_sigma=torch.randn(shape),
        done_logit=torch.randn(2, 3),
        reward=torch.randn(2, 3),
    )
    target_z = torch.randn(2, 3, 4)
    target_done = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    target_reward = torch.randn(2, 3)
    result = mdnrnn_loss(out, target_z, target_done, target_reward, restart_factor=10.0)
    p = torch.sigmoid(out.done_logit)
    bce = -(target_done * p.log() + (1 - target_done) * (1 - p).log())
    expected_done = ((1 + 9 * target_done) * bce).mean()
    torch.testing.assert_close(result.done, expected_done)
    torch.testing.assert_close(result.reward, ((out.reward - target_reward) ** 2).mean())
    torch.testing.assert_close(result.z, mixture_nll(out.log_pi, out.mu, out.log_sigma, target_z))
    torch.testing.assert_close(result.loss, result.z + result.done + result.reward)
    only_z = mdnrnn_loss(out, target_z)
    assert only_z.done is None and only_z.reward is None
    torch.testing.assert_close(only_z.loss, result.z)


def test_reward_optimism_weights_only_over_predictions() -> None:
    shape = (1, 2, 1, 1)
    out = MDNOutput(torch.zeros(shape), torch.zeros(shape), torch.zeros(shape), None, torch.tensor([[1.0, -1.0]]))
    target_z, target_reward = torch.zeros(1, 2, 1), torch.zeros(1, 2)  # one step over-predicted, one under
    plain = mdnrnn_loss(out, target_z, target_reward=target_reward)
    pessimist = mdnrnn_loss(out, target_z, target_reward=target_reward, reward_optimism=5.0)
    torch.testing.assert_close(plain.reward, torch.tensor(1.0))
    torch.testing.assert_close(pessimist.reward, torch.tensor((5.0 + 1.0) / 2))


def test_masked_steps_do_not_count_in_the_done_and_reward_terms() -> None:
    torch.manual_seed(0)
    shape = (1, 4, 2, 5)
    out = MDNOutput(torch.log_softmax(torch.randn(shape), -1), torch.randn(shape), torch.randn(shape),
                    torch.randn(1, 4), torch.randn(1, 4))
    target_z, target_done = torch.randn(1, 4, 2), torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    target_reward = torch.tensor([[0.5, -100.0, -100.0, -100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    masked = mdnrnn_loss(out, target_z, target_done, target_reward, 10.0, mask)
    first_two = MDNOutput(*(x[:, :2] for x in out))
    expected = mdnrnn_loss(first_two, target_z[:, :2], target_done[:, :2], target_reward[:, :2], 10.0)
    torch.testing.assert_close(masked.done, expected.done)
    torch.testing.assert_close(masked.reward, expected.reward)
    torch.testing.assert_close(masked.z, mdnrnn_loss(out, target_z).z)  # z is learnt everywhere


@pytest.mark.parametrize("carry_state", [False, True])
def test_batches_mask_the_heads_after_an_episodes_first_terminal_step(tmp_path, carry_state: bool) -> None:
    import numpy as np

    from worldmodels.data.episodes import write_arrays
    from worldmodels.data.sequences import episode_batches, series_lengths, stream_chunks

    length, terminal = 10, 4  # CarRacing-like: done from step 4 on (off the playfield), the episode runs on
    paths = []
    for i in range(2):
        done = np.arange(length) >= terminal if i == 0 else np.arange(length) == length - 1
        paths.append(write_arrays(tmp_path / f"{i:06d}.npz", compress=False, mu=np.zeros((length, 2)),
                                  logvar=np.zeros((length, 2)), action=np.zeros((length, 1)),
                                  reward=np.where(done, -100.0, -0.1), done=done))
    lengths = series_lengths(paths)
    rng = np.random.default_rng(0)
    if carry_state:
        (batch,) = stream_chunks(paths, lengths, 1, 2 * length, rng)
        order = [0, 1] if batch.reward[0, terminal] == -100 else [1, 0]  # one stream of both, in either order
        expected = np.concatenate([np.arange(length) <= terminal if i == 0 else np.ones(length) for i in order])
        np.testing.assert_array_equal(batch.head_mask[0], expected[:-1])
    else:
        batch = episode_batches(paths, lengths, 2, length, rng)
        for row in range(2):
            hits = batch.reward[row, :-1] == -100
            expected = np.ones(length - 1) if hits.sum() <= 1 else np.arange(length - 1) <= terminal
            np.testing.assert_array_equal(batch.head_mask[row], expected)
        assert (batch.head_mask == 0).any()
    # episodes that end at their terminal step (Doom's) mask nothing, and the loss takes its unmasked path
    assert episode_batches(paths[1:], lengths[1:], 2, length, rng).head_mask is None


def fixed_rows(log_pi: list[float], mu: list[float], log_sigma: list[float], samples: int) -> torch.Tensor:
    """One z dimension repeated `samples` times as head rows [logits, mu, log sigma]: (samples, 1, 3K)."""
    return torch.tensor([*log_pi, *mu, *log_sigma]).expand(samples, 1, 3 * len(log_pi))


def noise(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(uniform in (0, 1), standard normals), each of `shape`, from a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator), torch.randn(shape, generator=generator)


def test_sampling_picks_components_by_inverse_cdf() -> None:
    """Component k_j is the first whose cumulative tempered probability reaches uniform_j; z = its mu plus
    its sigma * sqrt(tau) * eps_j. Unnormalised logits pick as their log-softmax does (head_step's raw rows)."""
    probabilities = torch.tensor([0.2, 0.3, 0.5])
    means, log_sigma = [-1.0, 2.0, 7.0], [0.0, math.log(3.0), -1.0]
    rows = fixed_rows(probabilities.log().tolist(), means, log_sigma, 6)
    uniform = torch.tensor([0.05, 0.19, 0.21, 0.49, 0.51, 0.99])[:, None]
    picked = sample_mixture(rows, 1.0, uniform, torch.zeros(6, 1))
    torch.testing.assert_close(picked[:, 0], torch.tensor([-1.0, -1.0, 2.0, 2.0, 7.0, 7.0]))
    shifted = fixed_rows((probabilities.log() + 4.0).tolist(), means, log_sigma, 6)  # logits + a constant
    torch.testing.assert_close(sample_mixture(shifted, 1.0, uniform, torch.zeros(6, 1)), picked)
    # eps scales by the picked component's sigma and sqrt(tau); at tau 4 the weights are p^(1/4), renormalised
    eps = torch.full((6, 1), 0.5)
    hot = sample_mixture(rows, 4.0, uniform, eps)
    tempered = (probabilities ** 0.25 / (probabilities ** 0.25).sum()).cumsum(0)
    index = (tempered[None] < uniform).sum(-1)
    expected = torch.tensor(means)[index] + torch.tensor(log_sigma).exp()[index] * 2.0 * 0.5
    torch.testing.assert_close(hot[:, 0], expected)


def test_sampling_low_temperature_collapses_to_most_likely_mean() -> None:
    log_pi = torch.log_softmax(torch.tensor([0.1, 0.5, 0.3]), 0).tolist()
    rows = fixed_rows(log_pi, [-3.0, 2.0, 7.0], [0.0, 0.0, 0.0], 2000)
    sample = sample_mixture(rows, 1e-4, *noise((2000, 1), 0))
    assert sample.shape == (2000, 1)
    torch.testing.assert_close(sample, torch.full_like(sample, 2.0), atol=0.05, rtol=0)


def test_sampling_single_component_variance_scales_with_temperature() -> None:
    n = 200_000
    for temperature in (0.5, 1.0, 1.5):
        rows = fixed_rows([0.0], [1.0], [math.log(2.0)], n)
        sample = sample_mixture(rows, temperature, *noise((n, 1), 1))
        assert float(sample.mean()) == pytest.approx(1.0, abs=0.03)
        assert float(sample.var()) == pytest.approx(temperature * 4.0, rel=0.02)


def test_sampling_component_frequencies_follow_tempered_softmax() -> None:
    n = 100_000
    log_pi = torch.log_softmax(torch.tensor([0.0, 1.0, -1.0]), 0)
    means = torch.tensor([-10.0, 0.0, 10.0])
    for temperature in (0.5, 1.0, 2.0):
        rows = fixed_rows(log_pi.tolist(), means.tolist(), [-4.0, -4.0, -4.0], n)
        sample = sample_mixture(rows, temperature, *noise((n, 1), 2))
        component = (sample - means).abs().argmin(-1)
        frequencies = torch.bincount(component, minlength=3).float() / n
        expected = torch.softmax(log_pi / temperature, 0)
        torch.testing.assert_close(frequencies, expected, atol=0.006, rtol=0)


def test_sampling_is_per_dimension_and_reproducible() -> None:
    torch.manual_seed(0)
    shape = (1024, 64, 5)
    rows = torch.cat([torch.log_softmax(torch.randn(shape), -1), torch.randn(shape), torch.randn(shape)], -1)
    first = sample_mixture(rows, 1.15, *noise((1024, 64), 7))
    second = sample_mixture(rows, 1.15, *noise((1024, 64), 7))
    assert first.shape == (1024, 64)
    assert torch.equal(first, second)
    assert not torch.equal(first, sample_mixture(rows, 1.15, *noise((1024, 64), 8)))
    # Components are drawn per dimension: with two equiprobable, well-separated components the two dims of one
    # sample pick independently (about a quarter of the samples pick (0, 1)).
    two = torch.cat([
        torch.log(torch.full((20_000, 2, 2), 0.5)),
        torch.tensor([-5.0, 5.0]).expand(20_000, 2, 2),
        torch.full((20_000, 2, 2), -3.0),
    ], -1)
    picks = sample_mixture(two, 1.0, *noise((20_000, 2), 3)) > 0
    mixed = (picks[:, 0] != picks[:, 1]).float().mean()
    assert float(mixed) == pytest.approx(0.5, abs=0.02)


def test_bf16_training_step_keeps_fp32_state_and_loss_close_to_fp32() -> None:
    """mdnrnn.precision=bfloat16: products in bf16, but the loss, its gradients' target and the carried
    state are fp32, and the loss is the fp32 one to within bf16's ~3 significant digits."""
    import numpy as np

    from worldmodels.data.sequences import Sequences
    from worldmodels.stages.train_mdnrnn import train_step

    rng = np.random.default_rng(0)
    b, length = 4, 20
    restart = np.zeros((b, length), np.float32)
    restart[:, 0] = 1
    batch = Sequences(
        mu=rng.normal(size=(b, length, 64)).astype(np.float32), logvar=np.full((b, length, 64), -3.0, np.float32),
        action=rng.uniform(-1, 1, (b, length, 1)).astype(np.float32), reward=np.ones((b, length), np.float32),
        restart=restart, done_target=(rng.uniform(size=(b, length - 1)) < 0.1).astype(np.float32),
    )
    torch.manual_seed(0)
    model = doom()
    results = {}
    for precision in ("float32", "bfloat16"):
        losses, state = train_step(model, batch, None, torch.Generator().manual_seed(1), "cpu", 10.0, precision)
        assert losses.loss.dtype == torch.float32 and all(s.dtype == torch.float32 for s in state)
        losses.loss.backward()
        assert all(p.grad.dtype == torch.float32 for p in model.parameters())
        model.zero_grad()
        results[precision] = losses.loss.item()
    assert results["bfloat16"] == pytest.approx(results["float32"], rel=0.02)
    assert results["bfloat16"] != results["float32"]  # bf16 really ran


def test_dropout_masks_of_ones_change_nothing_and_zeros_cut_the_recurrence():
    """M's training dropout (`mdnrnn.input_dropout`, `recurrent_dropout`): all-ones masks give the same
    outputs as none (Doom's unrolled LSTM bitwise; CarRacing's, unrolled only for the mask, as the fused
    LSTM to rounding); a zero recurrent mask leaves the first step (h_0 = 0) as it was and changes the later
    ones; a zero input mask is M fed z = 0."""
    torch.manual_seed(0)
    for restart_input in (True, False):
        model = MDNRNN(6, 2, 16, restart_input=restart_input, done_head=restart_input)
        z, action = torch.randn(3, 7, 6), torch.randn(3, 7, 2)
        restart = torch.zeros(3, 7) if restart_input else None
        plain, h_plain, _ = model(z, action, restart)
        ones, h_ones, _ = model(z, action, restart, None, torch.ones(3, 6), torch.ones(3, 16))
        if restart_input:
            assert torch.equal(h_ones, h_plain) and torch.equal(ones.mu, plain.mu)
        else:
            torch.testing.assert_close(h_ones, h_plain)
    _, h_cut, _ = model(z, action, None, None, None, torch.zeros(3, 16))
    torch.testing.assert_close(h_cut[:, 0], h_plain[:, 0])  # h_0 = 0: nothing to drop at the first step
    assert not torch.allclose(h_cut[:, 1:], h_plain[:, 1:])
    _, h_blind, _ = model(z, action, None, None, torch.zeros(3, 6))
    _, h_zero, _ = model(torch.zeros_like(z), action, None)
    torch.testing.assert_close(h_blind, h_zero)
