"""Config: presets, typed --set overrides, validation, config.yaml, refusing to change a run's config."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml

from worldmodels import cli
from worldmodels.config import (
    CONFIG_FILE,
    PRESETS,
    Config,
    apply_overrides,
    field_paths,
    from_dict,
    load_run_config,
    resolve,
    save_run_config,
)
from worldmodels.errors import UserError

ALL_PRESETS = ["carracing", "doom", "carracing-quick", "doom-quick", "carracing-smoke", "doom-smoke"]


def test_the_six_presets_exist():
    assert sorted(PRESETS) == sorted(ALL_PRESETS)
    for name in ALL_PRESETS:
        assert PRESETS[name]["description"].strip()


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_every_preset_resolves_and_validates(name):
    config = resolve(name)
    assert isinstance(config, Config)
    assert config.env in ("carracing", "doom")
    assert config.env == ("doom" if name.startswith("doom") else "carracing")
    # round trip through the dict form (what config.yaml holds) validates and gives the same config
    assert from_dict(config.to_dict()) == config


def test_paper_presets_use_the_papers_numbers():
    car, doom = resolve("carracing"), resolve("doom")
    # V (SPEC section 1)
    assert (car.vae.latent_dim, doom.vae.latent_dim) == (32, 64)
    for c in (car, doom):
        v = c.vae
        assert (v.epochs, v.batch_size, v.learning_rate, v.kl_tolerance) == (10, 100, 1e-4, 0.5)
        assert (c.mdnrnn.num_mixtures, c.mdnrnn.batch_size, c.mdnrnn.grad_clip) == (5, 100, 1.0)
        assert (c.controller.population_size, c.controller.sigma0, c.controller.rollouts) == (64, 0.1, 16)
    # M (SPEC section 2)
    assert (car.mdnrnn.hidden_size, car.mdnrnn.carry_state, car.mdnrnn.restart_input) == (256, False, False)
    assert car.mdnrnn.learning_rate_decay == 1.0
    assert (doom.mdnrnn.hidden_size, doom.mdnrnn.sequence_length, doom.mdnrnn.epochs) == (512, 500, 400)
    assert (doom.mdnrnn.carry_state, doom.mdnrnn.restart_input, doom.mdnrnn.done_head) == (True, True, True)
    assert doom.mdnrnn.learning_rate_decay == 0.99999
    # C: Doom trains in the dream at the paper's tau, 2100-step episodes
    assert (doom.controller.where, doom.controller.mode, doom.controller.max_steps) == ("dream", "zch", 2100)
    assert doom.controller.temperature == 1.15
    assert (car.controller.where, car.controller.mode) == ("real", "zh")


def test_smaller_presets_inherit_their_base():
    smoke = resolve("doom-smoke")
    # from "doom" (its base), not the defaults
    assert (smoke.vae.latent_dim, smoke.mdnrnn.hidden_size, smoke.mdnrnn.restart_input) == (64, 512, True)
    # its own smaller budgets
    assert smoke.collect.episodes < 100 and smoke.mdnrnn.epochs < 400
    car_smoke = resolve("carracing-smoke")
    assert car_smoke.collect.max_frames == 60 and car_smoke.vae.latent_dim == 32


def test_set_overrides_are_typed():
    c = resolve(
        "doom-smoke",
        [
            "vae.epochs=3",  # int
            "vae.learning_rate=3e-4",  # float
            "controller.temperature=1",  # an int where a float is expected becomes a float
            "mdnrnn.reward_head=true",  # bool
            "controller.mode=z",  # str
            "collect.max_frames=50.0",  # an integral float is accepted as an int
        ],
    )
    assert c.vae.epochs == 3 and type(c.vae.epochs) is int
    assert c.vae.learning_rate == pytest.approx(3e-4) and type(c.vae.learning_rate) is float
    assert c.controller.temperature == 1.0 and type(c.controller.temperature) is float
    assert c.mdnrnn.reward_head is True
    assert c.controller.mode == "z"
    assert c.collect.max_frames == 50 and type(c.collect.max_frames) is int
    real = resolve("doom-smoke", ["mdnrnn.done_head=false", "controller.where=real"])
    assert real.mdnrnn.done_head is False


def test_seed_option_and_later_overrides_win():
    c = resolve("doom-smoke", ["vae.epochs=3", "vae.epochs=5"], seed=42)
    assert c.vae.epochs == 5 and c.seed == 42


@pytest.mark.parametrize(
    "item, fragment",
    [
        ("vae.epochs=three", "expected an integer"),
        ("vae.epochs=2.5", "expected an integer"),
        ("vae.epochs=true", "expected an integer"),
        ("vae.learning_rate=fast", "expected a number"),
        ("mdnrnn.reward_head=maybe", "expected true or false"),
        ("mdnrnn.reward_head=1", "expected true or false"),
    ],
)
def test_wrong_type_is_a_user_error(item, fragment):
    with pytest.raises(UserError) as e:
        resolve("doom-smoke", [item])
    assert fragment in str(e.value)
    assert item.split("=")[0] in str(e.value)


@pytest.mark.parametrize(
    "item, suggestion",
    [
        ("vae.epoch=3", "vae.epochs"),
        ("vae.lerning_rate=1e-3", "vae.learning_rate"),
        ("colect.episodes=3", "collect.episodes"),
    ],
)
def test_unknown_key_suggests_a_close_match(item, suggestion):
    with pytest.raises(UserError) as e:
        resolve("doom-smoke", [item])
    message = str(e.value)
    assert "unknown config key" in message and item.split("=")[0] in message
    assert f"did you mean {suggestion}" in message


def test_unknown_key_without_close_match_still_says_where_to_look():
    with pytest.raises(UserError) as e:
        resolve("doom-smoke", ["zzzzzz=1"])
    assert "did you mean" not in str(e.value)
    assert "presets --fields" in str(e.value)


def test_override_without_equals_sign():
    with pytest.raises(UserError, match="expected key=value"):
        resolve("doom-smoke", ["vae.epochs"])


def test_unknown_preset_lists_the_valid_choices():
    with pytest.raises(UserError) as e:
        resolve("pong")
    message = str(e.value)
    assert "'pong'" in message
    for name in ALL_PRESETS:
        assert name in message


@pytest.mark.parametrize(
    "items, fragment",
    [
        (["env=pong"], "choose one of: carracing, doom"),
        (["collect.episodes=0"], "collect.episodes=0 must be positive"),
        (["vae.batch_size=-1"], "vae.batch_size=-1 must be positive"),
        (["controller.temperature=0"], "controller.temperature"),
        (["controller.mode=zc"], "controller.mode='zc' is not valid"),
        (["mdnrnn.done_head=false"], "needs mdnrnn.done_head=true"),  # doom dream without a done head
        (["mdnrnn.restart_input=false"], "carry_state=true needs mdnrnn.restart_input=true"),
        (["collect.long_holds=1.5"], "collect.long_holds=1.5 must lie in [0, 1]"),
        (["controller.dream_dropout=1"], "controller.dream_dropout=1.0 must lie in [0, 1)"),
        (["mdnrnn.recurrent_dropout=-0.1"], "mdnrnn.recurrent_dropout=-0.1 must lie in [0, 1)"),
        (["iterate.keep=first"], "iterate.keep='first' is not valid"),
        (["iterate.siblings=0"], "iterate.siblings=0 must be positive"),
        (["iterate.temperature=-1"], "iterate.temperature=-1.0 must be >= 0"),
        (["iterate.mdnrnn_epochs=-2"], "iterate.mdnrnn_epochs must be >= 0"),
        (["collect.policy=brownian"], "unknown config key 'collect.policy'"),
        (["doom_resolution=640x480"], "doom_resolution='640x480' is not valid; choose one of: 320x240, 160x120"),
    ],
)
def test_validation_names_the_key(items, fragment):
    with pytest.raises(UserError) as e:
        resolve("doom-smoke", items)
    assert fragment in str(e.value)


def test_doom_resolution_is_refused_for_carracing():
    with pytest.raises(UserError, match="applies to doom only"):
        resolve("carracing-smoke", ["doom_resolution=160x120"])


def test_training_shortcuts_are_checked():
    with pytest.raises(UserError, match="negative_stop=-1 must be >= 0"):
        resolve("carracing-smoke", ["controller.negative_stop=-1"])
    config = resolve("carracing-quick")
    assert (config.carracing_backend, config.controller.shared_seeds, config.controller.negative_stop) == (
        "envpool", True, 50)


def test_carracing_dream_needs_the_reward_head():
    with pytest.raises(UserError, match="reward_head"):
        resolve("carracing-smoke", ["controller.where=dream"])
    c = resolve(
        "carracing-smoke", ["controller.where=dream", "mdnrnn.reward_head=true", "mdnrnn.done_head=true"]
    )
    assert c.controller.where == "dream"


def test_every_field_has_a_docstring_and_is_settable():
    paths = field_paths()
    assert {"env", "seed", "collect.episodes", "vae.latent_dim", "mdnrnn.hidden_size"} <= set(paths)
    for key, f in paths.items():
        assert f.metadata.get("doc"), f"{key} has no docstring"
    # every key can be set to its own default through --set syntax
    defaults = Config()
    items = []
    for key, f in paths.items():
        value = f.default
        items.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    assert apply_overrides(defaults, items) == defaults


def test_config_yaml_is_written_and_read_back(tmp_path):
    config = resolve("doom-smoke", ["vae.epochs=3"], seed=7)
    save_run_config(tmp_path, config)
    path = tmp_path / CONFIG_FILE
    assert path.is_file()
    data = yaml.safe_load(path.read_text())
    assert data["env"] == "doom" and data["seed"] == 7 and data["vae"]["epochs"] == 3
    assert data["vae"]["latent_dim"] == 64
    assert load_run_config(tmp_path) == config
    assert not [p for p in tmp_path.iterdir() if p.name != CONFIG_FILE]  # no temporary files left


def test_a_rerun_with_a_different_config_is_refused_unless_forced(tmp_path):
    first = resolve("doom-smoke", ["vae.epochs=3"])
    save_run_config(tmp_path, first)
    save_run_config(tmp_path, dataclasses.replace(first))  # the same config: fine
    second = resolve("doom-smoke", ["vae.epochs=4"])
    with pytest.raises(UserError) as e:
        save_run_config(tmp_path, second)
    message = str(e.value)
    assert "vae.epochs: 3 -> 4" in message and "--force" in message
    assert load_run_config(tmp_path) == first  # untouched
    save_run_config(tmp_path, second, force=True)
    assert load_run_config(tmp_path) == second


def test_bad_config_yaml_is_a_user_error(tmp_path):
    (tmp_path / CONFIG_FILE).write_text("vae: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_run_config(tmp_path)
    (tmp_path / CONFIG_FILE).write_text(yaml.safe_dump({"vae": {"epochs": "many"}}))
    with pytest.raises(UserError, match="vae.epochs"):
        load_run_config(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("- a list\n")
    with pytest.raises(UserError, match="not a mapping"):
        load_run_config(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        load_run_config(tmp_path / "nowhere")


def _runtime(argv):
    return cli.make_runtime(cli.build_parser().parse_args(argv))


def test_cli_runtime_writes_config_and_reuses_the_run_directorys(tmp_path):
    run_dir = tmp_path / "run"
    rt = _runtime(["collect", "--preset", "doom-smoke", "--run-dir", str(run_dir), "--set", "vae.epochs=3"])
    assert rt.config.vae.epochs == 3 and rt.config.env == "doom"
    assert load_run_config(run_dir) == rt.config
    # without --preset the run directory's config is used (not the default preset's)
    again = _runtime(["train-vae", "--run-dir", str(run_dir)])
    assert again.config == rt.config
    # a changed config is refused, and accepted with --force
    with pytest.raises(UserError, match="different config"):
        _runtime(["train-vae", "--run-dir", str(run_dir), "--set", "vae.epochs=4"])
    forced = _runtime(["train-vae", "--run-dir", str(run_dir), "--set", "vae.epochs=4", "--force"])
    assert forced.config.vae.epochs == 4 and load_run_config(run_dir).vae.epochs == 4


def test_bf16_warning_only_on_cpus_without_bf16_units(tmp_path, monkeypatch, capsys):
    from worldmodels import runtime

    avx2 = tmp_path / "avx2"
    avx2.write_text("flags\t\t: fpu sse avx2 fma\n")
    amx = tmp_path / "amx"
    amx.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n")
    assert not runtime.cpu_has_bf16_units(avx2) and runtime.cpu_has_bf16_units(amx)
    assert runtime.cpu_has_bf16_units(tmp_path / "missing")  # unknown: no warning
    monkeypatch.setattr(runtime, "cpu_has_bf16_units", lambda: False)
    runtime.warn_if_slow_bf16(torch.device("cpu"), "vae.precision", "float32")
    assert capsys.readouterr().err == ""
    runtime.warn_if_slow_bf16(torch.device("cpu"), "vae.precision", "bfloat16")
    assert "--set vae.precision=float32" in capsys.readouterr().err
    monkeypatch.setattr(runtime, "cpu_has_bf16_units", lambda: True)
    runtime.warn_if_slow_bf16(torch.device("cpu"), "vae.precision", "bfloat16")
    assert capsys.readouterr().err == ""
