"""C: parameter counts, flat layout, action mapping and one controller per row (SPEC section 3)."""

import math

import numpy as np
import pytest
import torch

from worldmodels.models.controller import (
    ControllerSpec,
    controller_actions,
    controller_features,
    controller_input_size,
    controller_num_params,
    env_action,
)

CARRACING_ZH = ControllerSpec("zh", 32, 256, 3)
DOOM_ZCH = ControllerSpec("zch", 64, 512, 1, env="doom")
CARRACING_Z = ControllerSpec("z", 32, 256, 3)
CARRACING_Z_HIDDEN = ControllerSpec("z_hidden", 32, 256, 3)
ALL_SPECS = [CARRACING_ZH, DOOM_ZCH, CARRACING_Z, CARRACING_Z_HIDDEN]


def test_parameter_counts_match_paper() -> None:
    assert controller_num_params("zh", 32, 256, 3) == 867
    assert controller_num_params("zch", 64, 512, 1) == 1088
    assert controller_num_params("z", 32, 256, 3) == 99
    assert controller_num_params("z_hidden", 32, 256, 3) == 1443
    assert [spec.num_params for spec in ALL_SPECS] == [867, 1088, 99, 1443]
    assert controller_num_params("zch", 64, 512, 1, bias=True) == 1089
    assert controller_num_params("zh", 32, 256, 3, bias=False) == 864


def test_spec_defaults_and_validation() -> None:
    assert CARRACING_ZH.bias is True and DOOM_ZCH.bias is False and CARRACING_Z_HIDDEN.bias is True
    assert controller_input_size("zh", 32, 256) == CARRACING_ZH.input_size == 288
    assert controller_input_size("zch", 64, 512) == DOOM_ZCH.input_size == 1088
    assert CARRACING_Z.input_size == 32
    with pytest.raises(ValueError):
        ControllerSpec("zhc", 32, 256, 3)
    with pytest.raises(ValueError):
        ControllerSpec("zh", 32, 256, 2)  # carracing needs steer, gas, brake
    with pytest.raises(ValueError):
        ControllerSpec("zh", 32, 256, 3, env="atari")
    with pytest.raises(ValueError):  # one parameter short
        controller_actions(CARRACING_ZH, torch.zeros(1, 866), torch.zeros(1, 288))
    with pytest.raises(ValueError):  # features of another width
        controller_actions(CARRACING_ZH, torch.zeros(1, 867), torch.zeros(1, 289))
    with pytest.raises(ValueError):  # rows of weights and features must pair up
        controller_actions(CARRACING_ZH, torch.zeros(2, 867), torch.zeros(3, 288))
    with pytest.raises(ValueError):  # one controller per row: (N, input_size), not the old (P, R, input_size)
        controller_actions(CARRACING_ZH, torch.zeros(1, 867), torch.zeros(1, 1, 288))


def test_features_order() -> None:
    z, c, h = torch.full((2, 32), 1.0), torch.full((2, 256), 2.0), torch.full((2, 256), 3.0)
    zh = controller_features(CARRACING_ZH, z, h, c)
    assert zh.shape == (2, 288) and float(zh[0, 31]) == 1.0 and float(zh[0, 32]) == 3.0
    spec = ControllerSpec("zch", 32, 256, 1, env="doom")
    zch = controller_features(spec, z, h, c)
    assert zch.shape == (2, 544)
    assert float(zch[0, 32]) == 2.0 and float(zch[0, 32 + 256]) == 3.0  # [z, c, h] as doomrnn/model.py
    assert torch.equal(controller_features(CARRACING_Z, z, None, None), z)


def test_carracing_layout_and_mapping_by_hand() -> None:
    # Flat layout [b(3), W (288 x 3) row-major]: W[5, 1] sits at 3 + 5 * 3 + 1.
    params = torch.zeros(1, 867)
    params[0, :3] = torch.tensor([0.1, 0.2, -0.3])
    params[0, 3 + 5 * 3 + 1] = 0.7
    params[0, 3 + 7 * 3 + 0] = -2.0  # W[7, 0]
    features = torch.zeros(2, 288)  # two agents running the same controller
    features[0, 5] = 1.0
    features[1, 7] = 1.0
    weights = params.repeat(2, 1)
    actions = controller_actions(CARRACING_ZH, weights, features)
    assert actions.shape == (2, 3)
    expected = torch.tensor(
        [
            [math.tanh(0.1), (math.tanh(0.9) + 1) / 2, 0.0],  # brake = clamp(tanh(-0.3), 0, 1) = 0
            [math.tanh(-1.9), (math.tanh(0.2) + 1) / 2, 0.0],
        ]
    )
    torch.testing.assert_close(actions, expected)
    weights[0, 2] = 0.4  # only agent 0's brake bias: agent 1 keeps its action
    changed = controller_actions(CARRACING_ZH, weights, features)
    torch.testing.assert_close(changed[0, 2], torch.tensor(math.tanh(0.4)))
    assert torch.equal(changed[1], actions[1])


def test_env_action_maps_the_output_layer() -> None:
    """`env_action`: tanh, then CarRacing's steer / gas / brake mapping, or Doom's tanh alone."""
    u = torch.tensor([[0.3, -0.8, 1.2], [-2.0, 0.5, -0.4]])
    t = torch.tanh(u)
    expected = torch.stack([t[:, 0], (t[:, 1] + 1) / 2, t[:, 2].clamp(0, 1)], dim=-1)
    torch.testing.assert_close(env_action(CARRACING_ZH, u), expected)
    assert float(env_action(CARRACING_ZH, u)[1, 2]) == 0.0  # negative brake clamps to 0
    doom_u = torch.linspace(-3, 3, 37).reshape(37, 1)  # 37 rows: not a multiple of any vector width
    torch.testing.assert_close(env_action(DOOM_ZCH, doom_u), torch.tanh(doom_u))


def test_doom_has_no_bias_and_reads_z_c_h() -> None:
    params = torch.zeros(1, 1088)
    params[0, 64] = 1.0  # weight of c[0]
    params[0, 64 + 512 + 3] = -0.5  # weight of h[3]
    z, c, h = torch.zeros(1, 64), torch.zeros(1, 512), torch.zeros(1, 512)
    c[0, 0], h[0, 3] = 0.4, 1.0
    features = controller_features(DOOM_ZCH, z, h, c)
    action = controller_actions(DOOM_ZCH, params, features)
    assert action.shape == (1, 1)
    assert float(action) == pytest.approx(math.tanh(0.4 - 0.5), abs=1e-6)
    # No bias: zero features give exactly zero whatever the parameters.
    assert float(controller_actions(DOOM_ZCH, torch.randn(1, 1088), torch.zeros(1, 1088))) == 0.0


def numpy_reference(spec: ControllerSpec, params: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The original's numpy controller (`carracing/model.py` get_action / set_model_params)."""
    if spec.mode == "z_hidden":
        units, inputs, actions = spec.hidden_units, spec.input_size, spec.action_dim
        bias_h, rest = params[:units], params[units:]
        weight_h, rest = rest[: inputs * units].reshape(inputs, units), rest[inputs * units :]
        bias_o, weight_o = rest[:actions], rest[actions:].reshape(units, actions)
        u = np.tanh(np.tanh(x @ weight_h + bias_h) @ weight_o + bias_o)
    elif spec.bias:
        u = np.tanh(
            x @ params[spec.action_dim :].reshape(spec.input_size, spec.action_dim)
            + params[: spec.action_dim]
        )
    else:
        u = np.tanh(x @ params.reshape(spec.input_size, spec.action_dim))
    if spec.env == "doom":
        return u
    return np.array([u[0], (u[1] + 1) / 2, np.clip(u[2], 0, 1)])


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda spec: spec.mode)
def test_batched_equals_per_candidate_loop_and_reference(spec: ControllerSpec) -> None:
    """A population of P candidates x R rollouts as P * R rows, row i running candidate i // R (as the dream
    lays them out): each candidate's rows equal its own call, and every row the original's numpy controller."""
    rng = np.random.default_rng(0)
    population, rollouts = 6, 4
    params = rng.normal(size=(population, spec.num_params)) * 0.3
    features = rng.normal(size=(population * rollouts, spec.input_size))
    weights = torch.tensor(params, dtype=torch.float32).repeat_interleave(rollouts, 0)
    batched = controller_actions(spec, weights, torch.tensor(features, dtype=torch.float32))
    assert batched.shape == (population * rollouts, spec.action_dim) and batched.dtype == torch.float32
    # the same in float64 (nothing is cast: the product runs in the inputs' dtype), to the reference's precision
    exact = controller_actions(spec, torch.tensor(params).repeat_interleave(rollouts, 0), torch.tensor(features))
    assert exact.dtype == torch.float64
    for p in range(population):
        rows = slice(p * rollouts, (p + 1) * rollouts)
        single = controller_actions(spec, weights[rows], torch.tensor(features[rows], dtype=torch.float32))
        torch.testing.assert_close(batched[rows], single)
        for row in range(rows.start, rows.stop):
            reference = numpy_reference(spec, params[p], features[row])
            np.testing.assert_allclose(exact[row].numpy(), reference, atol=1e-12)
            np.testing.assert_allclose(batched[row].numpy(), reference, atol=1e-5)
    # rows are independent: another candidate in row 0 changes row 0 only
    other = weights.clone()
    other[0] = torch.tensor(params[-1], dtype=torch.float32)
    moved = controller_actions(spec, other, torch.tensor(features, dtype=torch.float32))
    assert not torch.allclose(moved[0], batched[0])
    torch.testing.assert_close(moved[1:], batched[1:])


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda spec: spec.mode)
def test_action_ranges(spec: ControllerSpec) -> None:
    torch.manual_seed(0)
    weights = (torch.randn(8, spec.num_params) * 3).repeat_interleave(50, 0)  # 8 controllers x 50 inputs
    actions = controller_actions(spec, weights, torch.randn(400, spec.input_size))
    assert actions.shape == (400, spec.action_dim)
    if spec.env == "doom":
        assert float(actions.min()) >= -1 and float(actions.max()) <= 1
        assert float(actions.min()) < -1 / 3 and float(actions.max()) > 1 / 3
        return
    steer, gas, brake = actions.unbind(-1)
    assert float(steer.min()) >= -1 and float(steer.max()) <= 1 and float(steer.min()) < -0.5
    assert float(gas.min()) >= 0 and float(gas.max()) <= 1
    assert float(brake.min()) == 0.0 and float(brake.max()) <= 1 and float(brake.max()) > 0.5


def test_single_agent_is_a_one_row_call() -> None:
    """One agent (the random collection agent, a dream video) acts through a 1-row call of controller_actions."""
    rng = np.random.default_rng(1)

    def f32(x: np.ndarray) -> torch.Tensor:
        return torch.tensor(x, dtype=torch.float32)[None]

    params = rng.normal(size=867) * 0.1
    z, h, c = rng.normal(size=32), rng.normal(size=256), rng.normal(size=256)
    action = controller_actions(CARRACING_ZH, f32(params), controller_features(CARRACING_ZH, f32(z), f32(h), f32(c)))
    assert action.shape == (1, 3)
    np.testing.assert_allclose(
        action[0].numpy(), numpy_reference(CARRACING_ZH, params, np.concatenate([z, h])), atol=1e-5
    )
    doom_params = rng.normal(size=1088) * 0.1
    z64 = rng.normal(size=64)
    h512, c512 = rng.normal(size=512), rng.normal(size=512)
    features = controller_features(DOOM_ZCH, f32(z64), f32(h512), f32(c512))
    doom_action = controller_actions(DOOM_ZCH, f32(doom_params), features)
    expected = numpy_reference(DOOM_ZCH, doom_params, np.concatenate([z64, c512, h512]))
    np.testing.assert_allclose(doom_action[0].numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError):
        controller_actions(CARRACING_ZH, f32(params[:-1]), controller_features(CARRACING_ZH, f32(z), f32(h), None))
