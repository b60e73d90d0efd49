"""C: the controller of World Models (SPEC section 3), batched over a CMA-ES population.

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

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ENVS",
    "MODES",
    "Controller",
    "ControllerSpec",
    "controller_actions",
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


def _affine(
    x: Tensor, params: Tensor, offset: int, in_size: int, out_size: int, bias: bool
) -> tuple[Tensor, int]:
    """x (P, R, in) @ W (P, in, out) + b (P, 1, out), reading [b, W] from params (P, N) at offset."""
    population = params.shape[0]
    b = None
    if bias:
        b = params[:, offset : offset + out_size].unsqueeze(1)
        offset += out_size
    weight = params[:, offset : offset + in_size * out_size].reshape(population, in_size, out_size)
    offset += in_size * out_size
    y = torch.bmm(x, weight) if b is None else torch.baddbmm(b, x, weight)
    return y, offset


def controller_actions(spec: ControllerSpec, params: Tensor, features: Tensor) -> Tensor:
    """Actions for a whole population at once: one batched product per layer, no Python loop over P.

    Args:
        spec: the controller's description.
        params: (P, num_params) flat parameter vectors (numpy or tensor; cast to the features' dtype/device).
        features: (P, R, input_size) inputs from `controller_features`.

    Returns:
        (P, R, A) actions in the env's action space. CarRacing (`carracing/model.py` L98-118): u = tanh(.),
        steer = u0 in [-1, 1], gas = (u1 + 1) / 2 in [0, 1], brake = clamp(u2, 0, 1). Doom: a = tanh(.) in
        [-1, 1], continuous (the env maps it to LEFT / no-op / RIGHT by thirds, not here).
    """
    params = torch.as_tensor(params, dtype=features.dtype, device=features.device)
    if params.dim() != 2 or params.shape[1] != spec.num_params:
        raise ValueError(f"expected params (P, {spec.num_params}), got {tuple(params.shape)}")
    if features.dim() != 3 or features.shape[0] != params.shape[0] or features.shape[2] != spec.input_size:
        raise ValueError(
            f"expected features ({params.shape[0]}, R, {spec.input_size}), got {tuple(features.shape)}"
        )
    bias = bool(spec.bias)
    if spec.mode == "z_hidden":
        hidden, offset = _affine(features, params, 0, spec.input_size, spec.hidden_units, bias)
        u, offset = _affine(torch.tanh(hidden), params, offset, spec.hidden_units, spec.action_dim, bias)
    else:
        u, offset = _affine(features, params, 0, spec.input_size, spec.action_dim, bias)
    u = torch.tanh(u)
    if spec.env == "doom":
        return u
    # CarRacing mapping; the commented-out sigmoid alternative in `carracing/model.py` L101-106 is not used.
    steer = u[..., 0]
    gas = (u[..., 1] + 1.0) / 2.0
    brake = u[..., 2].clamp(0.0, 1.0)
    return torch.stack([steer, gas, brake], dim=-1)


class Controller:
    """Single-agent convenience wrapper around `controller_actions` (P = R = 1), float32."""

    def __init__(self, spec: ControllerSpec, params: np.ndarray) -> None:
        params = np.asarray(params, dtype=np.float64).reshape(-1)
        if params.shape[0] != spec.num_params:
            raise ValueError(f"expected {spec.num_params} controller parameters, got {params.shape[0]}")
        self.spec = spec
        self.params = params
        self._params = torch.as_tensor(params, dtype=torch.float32).unsqueeze(0)

    def act(
        self,
        z: np.ndarray | Tensor,
        h: np.ndarray | Tensor | None = None,
        c: np.ndarray | Tensor | None = None,
    ) -> np.ndarray:
        """Action (A,) for one step from z (Z,), h (H,) and c (H,) (h, c only where the mode uses them)."""

        def as_vector(value: np.ndarray | Tensor | None) -> Tensor | None:
            if value is None:
                return None
            return torch.as_tensor(value).detach().to(device="cpu", dtype=torch.float32).reshape(-1)

        with torch.no_grad():
            features = controller_features(self.spec, as_vector(z), as_vector(h), as_vector(c))
            actions = controller_actions(self.spec, self._params, features.reshape(1, 1, -1))
        return actions.reshape(-1).numpy()
