"""The `worldmodels` command as a user meets it: bad input gives exit code 2 and one line, never a traceback.

Every command starts a Python process that imports torch (~2 s), so the bad-input cases are started
together and awaited once.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import CLI, assert_user_error, ok, run_cli, subprocess_env
from worldmodels.cli import main
from worldmodels.config import PRESETS, field_paths, resolve, save_run_config

ALL_PRESETS = ["carracing", "doom", "carracing-quick", "doom-quick", "carracing-smoke", "doom-smoke"]

# name -> (arguments after `worldmodels`, fragments the one error line must contain)
# These run as real subprocesses (started together: each one imports torch, ~2 s).
BAD_INPUT = {
    "unknown preset": (["collect", "--preset", "pong"], ["unknown preset 'pong'", "doom-smoke", "carracing"]),
    "unknown key": (
        ["collect", "--preset", "doom-smoke", "--set", "vae.epoch=3"],
        ["unknown config key 'vae.epoch'", "did you mean vae.epochs"],
    ),
    "wrong type": (
        ["collect", "--preset", "doom-smoke", "--set", "vae.epochs=three"],
        ["vae.epochs", "expected an integer"],
    ),
    "unknown environment": (
        ["collect", "--preset", "doom-smoke", "--set", "env=pong"],
        ["env='pong'", "carracing, doom"],
    ),
    "unknown subcommand": (["frobnicate"], ["frobnicate"]),
}

# More bad input, through the same `main()` in this process (same code path, no process start-up).
MORE_BAD_INPUT = {
    "wrong bool": (
        ["train-mdnrnn", "--preset", "doom-smoke", "--set", "mdnrnn.done_head=perhaps"],
        ["mdnrnn.done_head", "expected true or false"],
    ),
    "no subcommand": ([], ["required"]),
    "unknown option": (["collect", "--preset", "doom-smoke", "--epochs", "3"], ["--epochs"]),
    "bad workers": (["collect", "--preset", "doom-smoke", "--workers", "0"], ["--workers 0"]),
    "not a number of workers": (["collect", "--preset", "doom-smoke", "--workers", "two"], ["--workers"]),
    "bad envs": (["evaluate", "--preset", "doom-smoke", "--envs", "0"], ["--envs 0", "at least 1"]),
    "bad device": (["collect", "--preset", "doom-smoke", "--device", "tpu"], ["--device"]),
    "key without value": (
        ["collect", "--preset", "doom-smoke", "--set", "vae.epochs"], ["expected key=value"]
    ),
    "inspect a non-run directory": (["inspect", "{tmp}/nothing-here"], ["not a run directory"]),
    "carracing backend for doom": (
        ["collect", "--preset", "doom-smoke", "--set", "carracing_backend=envpool"],
        ["carracing_backend='envpool' applies to carracing only"],
    ),
    "unknown carracing backend": (
        ["collect", "--preset", "carracing-smoke", "--set", "carracing_backend=box2d"],
        ["carracing_backend='box2d' is not valid", "gymnasium, envpool"],
    ),
    "changed config": (
        ["collect", "--preset", "doom-smoke", "--run-dir", "{tmp}/existing", "--set", "collect.episodes=5"],
        ["different config", "collect.episodes: 6 -> 5", "--force"],
    ),
}


@pytest.fixture(scope="module")
def bad_input_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    procs = {}
    for name, (args, _) in BAD_INPUT.items():
        argv = [a.replace("{tmp}", str(tmp)) for a in args]
        # every command that could make a run directory gets one under tmp
        if argv and argv[0] == "collect" and "--run-dir" not in argv:
            argv += ["--run-dir", str(tmp / name.replace(" ", "-"))]
        procs[name] = subprocess.Popen(
            [*CLI, *argv], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=subprocess_env(),
        )
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return tmp, results


@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_bad_input_exits_2_with_one_line(bad_input_results, name):
    tmp, results = bad_input_results
    assert_user_error(results[name], *BAD_INPUT[name][1])
    assert results[name].stdout == ""


def test_bad_input_creates_no_run_directory(bad_input_results):
    tmp, _ = bad_input_results
    for name in ("unknown preset", "unknown key", "wrong type", "unknown environment"):
        assert not (tmp / name.replace(" ", "-")).exists(), name
    assert not (tmp / "runs").exists()  # the default run directory was not made either


@pytest.mark.parametrize("name", list(MORE_BAD_INPUT))
def test_more_bad_input_through_main(tmp_path, monkeypatch, capsys, name):
    monkeypatch.chdir(tmp_path)  # a default run directory would land here
    save_run_config(tmp_path / "existing", resolve("doom-smoke"))
    args, fragments = MORE_BAD_INPUT[name]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code = main(argv)
    captured = capsys.readouterr()
    proc = subprocess.CompletedProcess(argv, code, captured.out, captured.err)
    assert_user_error(proc, *fragments)
    assert captured.out == ""
    # nothing was made besides the pre-existing run directory, whose config is unchanged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]
    assert sorted(p.name for p in (tmp_path / "existing").iterdir()) == ["config.yaml"]
    assert "episodes: 6" in (tmp_path / "existing" / "config.yaml").read_text()


def test_envpool_missing_is_one_line_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "envpool", None)  # `import envpool` now raises ImportError
    run_dir = tmp_path / "run"
    for command in ("collect", "train-controller", "run"):
        code = main([command, "--preset", "carracing-quick", "--run-dir", str(run_dir)])
        captured = capsys.readouterr()
        assert_user_error(subprocess.CompletedProcess([], code, captured.out, captured.err),
                          "needs EnvPool", "pip install 'worldmodels[envpool]'", "carracing_backend=gymnasium")
    assert not run_dir.exists()


def test_presets_lists_all_six_with_descriptions():
    proc = ok(run_cli("presets"))
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == len(ALL_PRESETS)
    for name in ALL_PRESETS:
        line = next((ln for ln in lines if ln.split()[0] == name), None)
        assert line is not None, f"{name} missing from:\n{proc.stdout}"
        assert PRESETS[name]["description"] in line
    assert proc.stderr == ""


def test_presets_fields_lists_every_key(capsys):
    assert main(["presets", "--fields"]) == 0
    out = capsys.readouterr().out
    for key, f in field_paths().items():
        assert f"\n{key} = " in out, key
        assert f.metadata["doc"] in out


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for command in ("collect", "train-vae", "encode", "train-mdnrnn", "inspect", "presets"):
        assert command in out
