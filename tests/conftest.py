"""Shared helpers and the expensive shared run directory of the foundation and V/M tests.

The CLI is run as a subprocess, as a user would. One doom-smoke run directory is collected once per
session (`doom_run`) and copied by the tests that change it, so the real environment runs once.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "worldmodels"
CLI = [str(BIN)] if BIN.is_file() else [sys.executable, "-m", "worldmodels"]

# The driver's own peak RSS (kB), printed after the command: the workers are other processes. VmHWM, not
# getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so it would include the RSS of the (large)
# pytest process the driver was forked from.
DRIVER = (
    "import re, sys\n"
    "from worldmodels.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "hwm = re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)\n"
    "print('DRIVER_MAXRSS_KB', hwm, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)

# The session's doom-smoke run: 4 real episodes, and small V/M budgets fixed at collection time so the
# later stages run with `--run-dir` alone (the run directory's config).
DOOM_EPISODES = 4
DOOM_SETS = [
    f"collect.episodes={DOOM_EPISODES}",
    "vae.epochs=3",
    "vae.batch_size=32",
    "vae.max_episodes=2",
    "mdnrnn.epochs=6",
]


def sets(*items: str) -> list[str]:
    """['a=1', 'b=2'] -> ['--set', 'a=1', '--set', 'b=2']."""
    out: list[str] = []
    for item in items:
        out += ["--set", item]
    return out


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONWARNINGS", None)
    # One torch thread per process: the tiny test batches gain nothing from two, and two spinning
    # threads per process make a busy 2-core machine several times slower.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_cli(*args: str | Path, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """`worldmodels ARGS` in a subprocess; returns the completed process with text stdout/stderr."""
    return subprocess.run(
        [*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env=subprocess_env(),
    )


def start_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.Popen:
    """`worldmodels ARGS` started in its own process group (so the whole group can be killed)."""
    return subprocess.Popen(
        [*CLI, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(), start_new_session=True,
    )


def run_driver(*args: str | Path, timeout: float = 180) -> tuple[subprocess.CompletedProcess, int]:
    """Like run_cli, also returning the driver process's peak RSS in kB."""
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, args)], capture_output=True, text=True, timeout=timeout,
        env=subprocess_env(),
    )
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("DRIVER_MAXRSS_KB")]
    assert lines, proc.stderr[-3000:]
    return proc, int(lines[-1].split()[1])


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process started by start_cli and everything in its process group; reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=30)
    # give the (re-parented) workers of the group a moment to disappear
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Assert exit code 0, showing the output otherwise."""
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    return proc


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2, stderr exactly one line without a traceback, containing every fragment; returns it."""
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr}"
    line = lines[0]
    assert line.startswith("worldmodels: error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def copy_run(src: Path, dst: Path, parts: tuple[str, ...] = ("config.yaml", "episodes")) -> Path:
    """Copy the named parts of a run directory (files or directories) into a new run directory."""
    dst.mkdir(parents=True)
    for part in parts:
        s = src / part
        if s.is_dir():
            shutil.copytree(s, dst / part)
        else:
            shutil.copy2(s, dst / part)
    return dst


@dataclass(frozen=True)
class DoomRun:
    path: Path  # run directory holding config.yaml and episodes/ only
    driver_maxrss_kb: int  # peak RSS of the collect driver


@pytest.fixture(scope="session")
def doom_run(tmp_path_factory) -> DoomRun:
    """A doom-smoke run directory with 4 real episodes from 2 worker processes. Do not modify: copy it."""
    run_dir = tmp_path_factory.mktemp("doom") / "run"
    proc, maxrss = run_driver(
        "collect", "--preset", "doom-smoke", "--run-dir", run_dir, *sets(*DOOM_SETS),
        "--workers", "2", "--quiet",
    )
    ok(proc)
    return DoomRun(run_dir, maxrss)
