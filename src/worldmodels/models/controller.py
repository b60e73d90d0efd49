"""C: the controller of World Models (docs/faithfulness.md#c), batched over a CMA-ES population.

Modes (`carracing/model.py` L15-133, `doomrnn/model.py`):

* "zh": x = [z, h], u = tanh(x W + b). CarRacing paper agent (288 x 3 + 3 = 867 parameters).
* "zch": x = [z, c, h], a = tanh(x W), no bias by default. Doom paper agent (1088 x 1 = 1088 parameters).
* "z": x = z, tanh(x W + b). The paper's "V model only" ablation (99 parameters for CarRacing).
* "z_hidden": z -> tanh(40 units) -> tanh(outputs), with biases. "With a hidden layer" ablation (1443).

The flat parameter vector has the original's layout (`set_model_params` L131-132): linear modes
[b (A) if bias, W row-major (in, A)]; "z_hidden" [b_h (40), W_h (in x 40), b_o (A), W_o (40 x A)].

Shape letters: P population, R rollouts per candidate, Z latent, H hidden, A action.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "ENVS",
    "MODES",
    "ControllerSpec",
    "controller_actions",
    "env_action",
    "controller_features",
    "controller_input_size",
    "controller_num_params",
]

MODES = ("zh", "zch", "z", "z_hidden")
ENVS = ("carracing", "doom")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown controller mode {mode!r}; expected one of {', '.join(MODES)}")


def _default_bias(mode: str) -> bool:
    """Biases everywhere except the Doom paper's "zch" controller, which has none (`doomrnn/model.py`)."""
    return mode != "zch"


def controller_input_size(mode: str, latent_dim: int, hidden_size: int) -> int:
    """Length of C's input vector: Z + H ("zh"), Z + 2H ("zch"), Z ("z", "z_hidden")."""
    _check_mode(mode)
    if mode == "zh":
        return latent_dim + hidden_size
    if mode == "zch":
        return latent_dim + 2 * hidden_size
    return latent_dim


def controller_num_params(
    mode: str,
    latent_dim: int,
    hidden_size: int,
    action_dim: int,
    bias: bool | None = None,
    hidden_units: int = 40,
) -> int:
    """Number of controller parameters (the CMA-ES dimension).

    CarRacing "zh": 867, Doom "zch" (no bias): 1088, CarRacing "z": 99, "z_hidden": 1443.

    Args:
        bias: whether the layers have biases; None for the mode's default (True except "zch").
        hidden_units: width of the hidden layer in "z_hidden" mode.
    """
    input_size = controller_input_size(mode, latent_dim, hidden_size)
    bias = _default_bias(mode) if bias is None else bias
    if mode == "z_hidden":
        return (
            input_size * hidden_units + hidden_units * action_dim + (hidden_units + action_dim if bias else 0)
        )
    return input_size * action_dim + (action_dim if bias else 0)


@dataclass(frozen=True)
class ControllerSpec:
    """Everything needed to interpret a flat controller parameter vector.

    bias=None resolves to the mode's default (True except for "zch"). env selects the action mapping:
    "carracing" (A = 3: steer, gas, brake) or "doom" (continuous a in [-1, 1]).
    """

    mode: str
    latent_dim: int
    hidden_size: int
    action_dim: int
    bias: bool | None = None
    hidden_units: int = 40
    env: str = "carracing"

    def __post_init__(self) -> None:
        _check_mode(self.mode)
        if self.env not in ENVS:
            raise ValueError(f"unknown controller env {self.env!r}; expected one of {', '.join(ENVS)}")
        if self.env == "carracing" and self.action_dim != 3:
            raise ValueError(
                f"the carracing controller has 3 actions (steer, gas, brake), got {self.action_dim}"
            )
        if min(self.latent_dim, self.action_dim, self.hidden_units) < 1 or self.hidden_size < 0:
            raise ValueError(f"controller sizes must be positive: {self}")
        if self.bias is None:
            object.__setattr__(self, "bias", _default_bias(self.mode))

    @property
    def input_size(self) -> int:
        """Length of the feature vector C reads."""
        return controller_input_size(self.mode, self.latent_dim, self.hidden_size)

    @property
    def num_params(self) -> int:
        """Length of the flat parameter vector."""
        return controller_num_params(
            self.mode, self.latent_dim, self.hidden_size, self.action_dim, self.bias, self.hidden_units
        )


def controller_features(spec: ControllerSpec, z: Tensor, h: Tensor | None, c: Tensor | None) -> Tensor:
    """C's input vector from V's latent and M's state.

    Args:
        z: (..., Z) sampled latent.
        h: (..., H) LSTM output h (used by "zh" and "zch").
        c: (..., H) LSTM cell state c (used by "zch" only).

    Returns:
        (..., input_size): [z, h] for "zh", [z, c, h] for "zch" (`doomrnn/model.py` order), z otherwise.
    """
    if spec.mode == "zh":
        if h is None:
            raise ValueError("controller mode 'zh' needs h")
        return torch.cat([z, h], dim=-1)
    if spec.mode == "zch":
        if h is None or c is None:
            raise ValueError("controller mode 'zch' needs c and h")
        return torch.cat([z, c, h], dim=-1)
    return z


def _tanh(x: Tensor) -> Tensor:
    """tanh of (N, width) on rows padded to whole SIMD vectors: a vector kernel's tail loop rounds differently,
    and an agent's actions must not depend on the layer's width being a multiple of the vector."""
    width = x.shape[1]
    lanes = -(-width // 32) * 32
    return torch.tanh(torch.cat([x, x.new_zeros(x.shape[0], lanes - width)], dim=1))[:, :width]


def env_action(spec: ControllerSpec, u: Tensor) -> Tensor:
    """C's output layer (N, A) before tanh -> actions in the env's action space.

    CarRacing (`carracing/model.py` L98-118): u = tanh(.), steer = u0 in [-1, 1], gas = (u1 + 1) / 2 in [0, 1],
    brake = clamp(u2, 0, 1) (the commented-out sigmoid alternative there is not used). Doom: a = tanh(.) in
    [-1, 1], continuous (the env maps it to LEFT / no-op / RIGHT by thirds, not here).
    """
    u = _tanh(u)
    if spec.env == "doom":
        return u
    return torch.stack([u[:, 0], (u[:, 1] + 1.0) / 2.0, u[:, 2].clamp(0.0, 1.0)], dim=-1)


def controller_actions(spec: ControllerSpec, weights: Tensor, features: Tensor) -> Tensor:
    """Actions of N agents, each with its own controller: one batched product per layer.

    weights (N, num_params) flat parameter vectors (row i is agent i's); features (N, input_size) from
    `controller_features`. Returns (N, A) actions in the env's action space (`env_action`). The dream, the real
    agent and the random collection agent all act through this function.
    """
    if weights.dim() != 2 or weights.shape[1] != spec.num_params:
        raise ValueError(f"expected weights (N, {spec.num_params}), got {tuple(weights.shape)}")
    if features.dim() != 2 or features.shape[0] != weights.shape[0] or features.shape[1] != spec.input_size:
        raise ValueError(f"expected features ({weights.shape[0]}, {spec.input_size}), got {tuple(features.shape)}")
    n, bias = features.shape[0], bool(spec.bias)

    def affine(x: Tensor, offset: int, size_in: int, size_out: int) -> tuple[Tensor, int]:
        """x (N, in) @ W (N, in, out) + b (N, out), reading [b, W] from the weights at `offset`."""
        b = None
        if bias:
            b, offset = weights[:, offset : offset + size_out], offset + size_out
        w = weights[:, offset : offset + size_in * size_out].reshape(n, size_in, size_out)
        y = torch.bmm(x.unsqueeze(1), w).squeeze(1)  # one (1, in) x (in, out) product per agent
        return (y if b is None else y + b), offset + size_in * size_out

    if spec.mode == "z_hidden":
        hidden, offset = affine(features, 0, spec.input_size, spec.hidden_units)
        u, _ = affine(_tanh(hidden), offset, spec.hidden_units, spec.action_dim)
    else:
        u, _ = affine(features, 0, spec.input_size, spec.action_dim)
    return env_action(spec, u)
