"""M: the mixture-density recurrent network of World Models (docs/faithfulness.md#m).

An LSTM over [z_t, a_t] (plus Doom's restart flag) followed by one linear head giving, for every latent
dimension independently, a 1-D mixture of K Gaussians over z_{t+1} (`carracing/rnn/rnn.py` L120-160),
optionally a done (restart) logit (`doomrnn/doomrnn.py` L254-416) and a reward prediction (this project's
addition, off in the paper presets).

Shape letters: B batch, T time, N any batch of single steps, Z latent, A action, H hidden, K mixtures.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "MDNRNN",
    "MDNLoss",
    "MDNOutput",
    "dropout_mask",
    "mdnrnn_loss",
    "mixture_nll",
    "StepWeights",
    "head_step",
    "lstm_cell",
    "lstm_step",
    "paper_parameter_count",
    "sample_mixture",
]

State = tuple[Tensor, Tensor]
"""The LSTM state (h, c), each (B, H)."""

_LOG_SQRT_TWO_PI = 0.5 * math.log(2.0 * math.pi)


class MDNOutput(NamedTuple):
    """M's predictions for the next step; leading dims (...) are (B, T) from `forward`."""

    log_pi: Tensor
    """(..., Z, K) log mixture weights, normalised over K (log_softmax)."""
    mu: Tensor
    """(..., Z, K) component means."""
    log_sigma: Tensor
    """(..., Z, K) component log standard deviations, unbounded (no clamp, as the original)."""
    done_logit: Tensor | None
    """(...,) logit of "the next frame starts a new episode" (Doom's restart head), if that head exists."""
    reward: Tensor | None
    """(...,) predicted reward, when the reward head exists."""


class MDNRNN(nn.Module):
    """LSTM + mixture density head, with the original's TF-like initialisation.

    Parameter count = the paper's + 4H: PyTorch's LSTM has two bias vectors (bias_ih, bias_hh), TF's has one.
    CarRacing (Z=32, A=3, H=256): 422,368 + 1,024. Doom (Z=64, A=1, H=512, restart input, done head):
    1,678,785 + 2,048. `paper_parameter_count` gives the paper's number.
    """

    def __init__(
        self,
        latent_dim: int,
        action_dim: int,
        hidden_size: int = 256,
        num_mixtures: int = 5,
        restart_input: bool = False,
        done_head: bool = False,
        reward_head: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (
            ("latent_dim", latent_dim),
            ("action_dim", action_dim),
            ("hidden_size", hidden_size),
            ("num_mixtures", num_mixtures),
        ):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        self.latent_dim = latent_dim
        self.action_dim = action_dim
        self.hidden_size = hidden_size
        self.num_mixtures = num_mixtures
        self.restart_input = restart_input
        self.done_head = done_head
        self.reward_head = reward_head

        # Inputs [z, a] (+ [restart]): 35 for CarRacing, 66 for Doom (`doomrnn/doomrnn.py` L254-300).
        input_size = latent_dim + action_dim + (1 if restart_input else 0)
        self.input_size = input_size
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        # The extra columns come first, as Doom's restart logit is column 0 of its 961 outputs.
        self.num_extra_outputs = int(done_head) + int(reward_head)
        self.output_layer = nn.Linear(hidden_size, self.num_extra_outputs + latent_dim * num_mixtures * 3)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """TF-like initialisation (PyTorch's LSTM default is uniform(+-1/sqrt(H)) on everything).

        TF's LSTM has one kernel over concat[x, h] of shape [in + H, 4H], glorot-uniform, so both weight_ih
        and weight_hh get the limit sqrt(6 / ((in + H) + 4H)); its bias is zero and forget_bias = 1.0 is added
        inside the forget gate's sigmoid (`LayerNormBasicLSTMCell`; docs/faithfulness.md#m). Here that constant lives
        in bias_ih's forget-gate slice (PyTorch gate order i, f, g, o), and bias_hh stays zero.
        """
        hidden = self.hidden_size
        limit = math.sqrt(6.0 / (self.input_size + hidden + 4 * hidden))
        weight_ih, weight_hh, bias_ih, bias_hh = self.lstm_parameters()
        nn.init.uniform_(weight_ih, -limit, limit)
        nn.init.uniform_(weight_hh, -limit, limit)
        nn.init.zeros_(bias_ih)
        nn.init.zeros_(bias_hh)
        with torch.no_grad():
            bias_ih[hidden : 2 * hidden].fill_(1.0)
        nn.init.xavier_uniform_(self.output_layer.weight)
        nn.init.zeros_(self.output_layer.bias)

    def lstm_parameters(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The LSTM's (weight_ih, weight_hh, bias_ih, bias_hh), PyTorch gate order i, f, g, o.

        Looked up by name: `nn.LSTM` registers them under names built at run time, which type checkers
        cannot see. These are the parameters themselves, not copies.
        """
        get = self.lstm.get_parameter
        return get("weight_ih_l0"), get("weight_hh_l0"), get("bias_ih_l0"), get("bias_hh_l0")

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """Zero state (h, c), each (B, H), on the given device/dtype (default: the parameters')."""
        weight = self.lstm_parameters()[1]
        device = weight.device if device is None else device
        dtype = weight.dtype if dtype is None else dtype
        h = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return h, torch.zeros_like(h)

    def head(self, h: Tensor) -> MDNOutput:
        """Mixture (and done / reward) predictions from LSTM outputs.

        Args:
            h: (..., H) LSTM outputs.

        Returns:
            MDNOutput with log_pi, mu, log_sigma (..., Z, K) and done_logit, reward (...,) or None.
        """
        out = self.output_layer(h)
        extra, mixture = out[..., : self.num_extra_outputs], out[..., self.num_extra_outputs :]
        # Rows of 3K per z dimension, split [logpi(K), mu(K), logsigma(K)] as the original's reshape to
        # [-1, KMIX * 3] and tf.split (`carracing/rnn/rnn.py` L120-149).
        mixture = mixture.reshape(*h.shape[:-1], self.latent_dim, 3 * self.num_mixtures)
        log_pi, mu, log_sigma = mixture.split(self.num_mixtures, dim=-1)
        log_pi = F.log_softmax(log_pi, dim=-1)  # logpi - logsumexp(logpi) in the original
        done_logit = extra[..., 0] if self.done_head else None
        reward = extra[..., int(self.done_head)] if self.reward_head else None
        return MDNOutput(log_pi=log_pi, mu=mu, log_sigma=log_sigma, done_logit=done_logit, reward=reward)

    def _inputs(self, z: Tensor, action: Tensor, restart: Tensor | None) -> Tensor:
        """Concatenate [z, a] (+ [restart]) along the last dimension, checking the restart flag's presence."""
        if z.shape[-1] != self.latent_dim or action.shape[-1] != self.action_dim:
            raise ValueError(
                f"expected z (..., {self.latent_dim}) and action (..., {self.action_dim}), "
                f"got {tuple(z.shape)} and {tuple(action.shape)}"
            )
        if self.restart_input:
            if restart is None:
                raise ValueError("this MDNRNN takes a restart input: pass restart (B, T) or (N,)")
            return torch.cat([z, action, restart.to(z.dtype).unsqueeze(-1)], dim=-1)
        if restart is not None:
            raise ValueError("this MDNRNN has no restart input (restart_input=False): pass restart=None")
        return torch.cat([z, action], dim=-1)

    def forward(
        self, z: Tensor, action: Tensor, restart: Tensor | None = None, state: State | None = None,
        input_mask: Tensor | None = None, recurrent_mask: Tensor | None = None,
    ) -> tuple[MDNOutput, Tensor, State]:
        """Run M over sequences with teacher forcing.

        Args:
            z: (B, T, Z) latents z_t.
            action: (B, T, A) actions a_t.
            restart: (B, T) float {0, 1}, 1 on the first frame of an episode; required iff restart_input.
                Where restart_t > 0.5 the state is reset to zero before step t
                (`doomrnn/doomrnn.py` L324-348).
            state: initial (h, c), each (B, H), or None for zeros.
            input_mask, recurrent_mask: dropout masks (B, Z) on z and (B, H) on h in the recurrent product,
                the same at every step (Keras' LSTM dropout, as Dropout's Dream Land trains M); already scaled
                by 1 / (1 - rate). None: no dropout (the paper's M).

        Returns:
            (MDNOutput for z_{t+1} with shapes (B, T, Z, K) / (B, T), h_seq (B, T, H), final state (h, c)).
        """
        if input_mask is not None:
            z = z * input_mask.unsqueeze(1)
        x = self._inputs(z, action, restart)
        if not self.restart_input and recurrent_mask is None:
            # No resets: PyTorch's fused LSTM over the whole sequence.
            lstm_state = None if state is None else (state[0].unsqueeze(0), state[1].unsqueeze(0))
            h_seq, (h, c) = self.lstm(x, lstm_state)
            return self.head(h_seq), h_seq, (h.squeeze(0), c.squeeze(0))

        # The original's custom unroll: one matmul for the input half of the gates, then per step only
        # h @ W_hh^T and elementwise ops, with the state zeroed where restart_t > 0.5.
        batch, steps = x.shape[0], x.shape[1]
        if state is None:
            state = self.initial_state(batch, device=x.device, dtype=x.dtype)
        weight_ih, weight_hh, bias_ih, bias_hh = self.lstm_parameters()
        w_hh = weight_hh.t()  # (H, 4H)
        # x @ W_ih^T + b for all steps at once; unbind, not input_gates[:, t]: the backward of T slicings would
        # allocate T full-size gradients.
        input_gates = F.linear(x, weight_ih, bias_ih + bias_hh).unbind(dim=1)
        if restart is None:  # no restart input: unrolled only for the recurrent dropout
            restart = x.new_zeros(batch, steps)
        keep = (
            (restart <= 0.5).to(x.dtype).unsqueeze(-1).unbind(dim=1)
        )  # (B, 1) each: 0 where the state resets
        h, c = state
        outputs = []
        for t in range(steps):
            h, c = h * keep[t], c * keep[t]
            h_in = h if recurrent_mask is None else h * recurrent_mask  # Keras' recurrent dropout: h in the product
            h, c = lstm_cell(torch.addmm(input_gates[t], h_in, w_hh), c)
            outputs.append(h)
        h_seq = torch.stack(outputs, dim=1)
        return self.head(h_seq), h_seq, (h, c)


def dropout_mask(uniform: Tensor, rate: float) -> Tensor:
    """Inverted dropout from uniforms in (0, 1): 0 where uniform < rate, else 1 / (1 - rate). M's training
    masks (`train_mdnrnn.train_step`) and the dream's per-agent masks (`envs.dream.DreamBatch`) use this rule."""
    return (uniform >= rate).float() / (1.0 - rate)


def paper_parameter_count(model: MDNRNN) -> int:
    """The parameter count as the paper reports it: all parameters minus PyTorch's second LSTM bias (4H).

    TF's LSTM has a single bias vector; `torch.nn.LSTM` has bias_ih and bias_hh, which adds 4H parameters that
    are redundant (only their sum matters). 422,368 for CarRacing, 1,678,785 for Doom.
    """
    return sum(p.numel() for p in model.parameters()) - 4 * model.hidden_size


def mixture_nll(log_pi: Tensor, mu: Tensor, log_sigma: Tensor, target: Tensor) -> Tensor:
    """Mean negative log-likelihood of targets under per-dimension 1-D Gaussian mixtures.

    -log sum_k pi_k N(target_j; mu_k, sigma_k^2), averaged over all leading dimensions and Z
    (`carracing/rnn/rnn.py` L136-160), computed with logsumexp.

    Args:
        log_pi: (..., Z, K) normalised log mixture weights.
        mu: (..., Z, K) means.
        log_sigma: (..., Z, K) log standard deviations.
        target: (..., Z) values.

    Returns:
        Scalar tensor.
    """
    standardised = (target.unsqueeze(-1) - mu) * torch.exp(-log_sigma)
    log_normal = -0.5 * standardised.square() - log_sigma - _LOG_SQRT_TWO_PI
    return -torch.logsumexp(log_pi + log_normal, dim=-1).mean()


class MDNLoss(NamedTuple):
    """M's total loss and its terms (scalars); done / reward are None when not computed."""

    loss: Tensor
    z: Tensor
    done: Tensor | None
    reward: Tensor | None


def _masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def mdnrnn_loss(
    out: MDNOutput,
    target_z: Tensor,
    target_done: Tensor | None = None,
    target_reward: Tensor | None = None,
    restart_factor: float = 10.0,
    target_mask: Tensor | None = None,
    reward_optimism: float = 1.0,
) -> MDNLoss:
    """z mixture NLL + weighted done BCE + reward MSE.

    The done term is the original's (`doomrnn/doomrnn.py`): mean(w * BCEWithLogits(logit, target)) with
    w = 1 + (restart_factor - 1) * target, i.e. weight 10 on positives. Each of the done and reward terms is
    included only when both the head's output and the target are present; `target_mask` restricts both to
    the steps where it is 1 (the z term is never masked).

    Args:
        out: M's output for the sequence, (..., Z, K) / (...,).
        target_z: (..., Z) next latents z_{t+1}.
        target_done: (...,) float {0, 1}, 1 where the next frame starts a new episode.
        target_reward: (...,) rewards r_{t+1}.
        restart_factor: weight of positive done targets.
        target_mask: (...,) float {0, 1}, the steps whose done and reward targets count; None = all.
        reward_optimism: weight of the reward's squared error where M predicts more than the target (1: plain
            MSE). Above 1 M learns to under-promise, and a controller gains less in the dream by steering M
            into states it over-rates (`mdnrnn.reward_optimism`).

    Returns:
        MDNLoss(loss, z, done, reward).
    """
    z_loss = mixture_nll(out.log_pi, out.mu, out.log_sigma, target_z)
    loss = z_loss
    done_loss = None
    if out.done_logit is not None and target_done is not None:
        target_done = target_done.to(out.done_logit.dtype)
        weight = 1.0 + (restart_factor - 1.0) * target_done
        done_loss = _masked_mean(
            F.binary_cross_entropy_with_logits(out.done_logit, target_done, weight=weight, reduction="none"),
            target_mask,
        )
        loss = loss + done_loss
    reward_loss = None
    if out.reward is not None and target_reward is not None:
        error = out.reward - target_reward.to(out.reward.dtype)
        reward_loss = _masked_mean(torch.where(error > 0, reward_optimism, 1.0) * error**2, target_mask)
        loss = loss + reward_loss
    return MDNLoss(loss=loss, z=z_loss, done=done_loss, reward=reward_loss)


# --- one step of M, for agents that act: the dream, the real agent, the random agent ----------------------


def lstm_cell(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """The LSTM's cell update from its gate pre-activations (N, 4H) in PyTorch's order (i, f, g, o):
    c' = sigmoid(f) c + sigmoid(i) tanh(g), h' = sigmoid(o) tanh(c'). Returns (h', c'). Training's unroll
    and every agent's step (`lstm_step`) use this one function; `nn.LSTM` (training without restarts or
    dropout) computes the same (tests)."""
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class StepWeights:
    """M's weights laid out for stepping agents, in the compute dtype (float32, or bfloat16 for speed).

    One product per step for the LSTM: [z, a, (restart), h] (N, in + H) @ (in + H, 4H); then one product
    for the head, (N, H) @ (H, E + 3ZK). The state (h, c) and everything after the products stay float32.
    """

    @torch.no_grad()
    def __init__(self, mdnrnn: MDNRNN, dtype: torch.dtype = torch.float32) -> None:
        weight_ih, weight_hh, bias_ih, bias_hh = mdnrnn.lstm_parameters()
        weight = torch.cat([weight_ih, weight_hh], dim=1)  # (4H, in + H)
        self.w_lstm = weight.t().contiguous().to(dtype)  # (in + H, 4H)
        self.b_lstm = (bias_ih + bias_hh).contiguous().to(dtype)
        self.w_head = mdnrnn.output_layer.weight.t().contiguous().to(dtype)  # (H, E + 3ZK)
        self.b_head = mdnrnn.output_layer.bias.detach().contiguous().to(dtype)
        self.dtype = dtype
        self.latent_dim, self.num_mixtures = mdnrnn.latent_dim, mdnrnn.num_mixtures
        self.num_extra = mdnrnn.num_extra_outputs
        self.restart_input = mdnrnn.restart_input


def lstm_step(weights: StepWeights, z: Tensor, action: Tensor, restart: Tensor | None, h: Tensor, c: Tensor,
              masks: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """M reads (z_t, a_t, restart_t) and advances its state (h, c): one product; float32 in and out.

    z (N, Z), action (N, A), restart (N,) or None, h and c (N, H). Where restart > 0.5 the state is zeroed
    before the step (`doomrnn/doomrnn.py` L324-348). `masks`: dropout masks (N, Z) on z and (N, H) on h in
    the product (a dream agent's, `controller.dream_dropout`; the real agent has none).
    """
    flag = []
    if restart is not None:
        keep = (restart <= 0.5).to(h.dtype).unsqueeze(-1)
        h, c = h * keep, c * keep
        flag = [restart.to(z.dtype).unsqueeze(-1)]
    z_in, h_in = (z, h) if masks is None else (z * masks[0], h * masks[1])
    xh = torch.cat([x.to(weights.dtype) for x in (z_in, action, *flag, h_in)], dim=1)
    return lstm_cell(torch.addmm(weights.b_lstm, xh, weights.w_lstm).float(), c)


def head_step(weights: StepWeights, h: Tensor) -> tuple[Tensor, Tensor]:
    """M's head on the new h (N, H): (extra (N, E): done logit and / or reward columns, mixture (N, Z, 3K)
    raw rows [logits (K), mu (K), log sigma (K)] as `sample_mixture` takes them); float32 out."""
    out = torch.addmm(weights.b_head, h.to(weights.dtype), weights.w_head).float()  # (N, E + 3ZK)
    mixture = out[:, weights.num_extra :].reshape(h.shape[0], weights.latent_dim, 3 * weights.num_mixtures)
    return out[:, : weights.num_extra], mixture


def sample_mixture(mixture: Tensor, temperature: float, uniform: Tensor, eps: Tensor) -> Tensor:
    """z_{t+1} drawn from M's mixtures at temperature tau, given the noise (`carracing/rnn/rnn.py` L279-297).

    mixture (..., Z, 3K): per z dimension the head's raw rows [logits (K), mu (K), log sigma (K)]; uniform
    (..., Z) in (0, 1) and eps (..., Z) standard normals. Per dimension j independently: component k_j with
    probability softmax(logits_j / tau) by inverse CDF (the original's `get_pi_idx`; the log-softmax
    normalisation cancels), then z_j = mu_{j,k_j} + exp(log_sigma_{j,k_j}) * sqrt(tau) * eps_j.
    """
    K = mixture.shape[-1] // 3
    logits = mixture[..., :K]
    weights = torch.exp((logits - logits.amax(-1, keepdim=True)) * (1.0 / temperature))
    cumulative = weights.cumsum(-1)
    threshold = uniform.unsqueeze(-1) * cumulative[..., K - 1 :]
    index = (cumulative < threshold).sum(-1, keepdim=True).clamp_(max=K - 1)
    picked = mixture.gather(-1, torch.cat([index + K, index + 2 * K], dim=-1))  # (..., Z, 2): mu, log sigma
    return picked[..., 0] + torch.exp(picked[..., 1]) * (temperature**0.5) * eps
