"""`worldmodels collect` in the real games: episode files, determinism, resume after SIGKILL, memory."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from conftest import DOOM_EPISODES, assert_user_error, kill_group, ok, run_cli, run_driver, sets, start_cli
from worldmodels.data.episodes import episode_length, list_episodes, read_episode
from worldmodels.seeding import derive_seed
from worldmodels.tools.inspect import format_report, inspect_run

pytestmark = pytest.mark.realenv

FRAME_BYTES = 64 * 64 * 3


def episode_files(run_dir):
    return sorted(p.name for p in (run_dir / "episodes").iterdir())


def expected_names(n):
    return [f"{i:06d}.npz" for i in range(n)]


def assert_same_episodes(dir_a, dir_b, count):
    for i in range(count):
        a = read_episode(dir_a / "episodes" / f"{i:06d}.npz")
        b = read_episode(dir_b / "episodes" / f"{i:06d}.npz")
        np.testing.assert_array_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.action, b.action)
        np.testing.assert_array_equal(a.reward, b.reward)
        np.testing.assert_array_equal(a.done, b.done)
        assert a.meta == b.meta


def check_doom_episode(path, index, seed=0):
    ep = read_episode(path)
    T = len(ep.obs)
    assert 101 <= T <= 2100  # kept only with more than 100 frames; capped at 2100
    assert ep.obs.shape == (T, 64, 64, 3) and ep.obs.dtype == np.uint8
    assert ep.action.shape == (T, 1) and ep.action.dtype == np.float32
    assert ep.action.min() >= -1 and ep.action.max() <= 1
    assert ep.reward.shape == (T,) and ep.done.shape == (T,) and ep.done.dtype == bool
    assert not ep.done[:-1].any()  # the episode stops at the first done (the death frame is not recorded)
    assert ep.done[-1] or T == 2100
    assert (ep.reward == 1).all()  # living reward
    # a real video: frames change, and the policy's holds of 1..10 frames show in the actions
    assert np.abs(np.diff(ep.obs.astype(np.int16), axis=0)).max(axis=(1, 2, 3)).mean() > 0
    changes = np.flatnonzero(np.diff(ep.action[:, 0]) != 0)
    assert np.diff(np.concatenate([[-1], changes])).max() <= 10
    meta = ep.meta
    assert meta["env"] == "doom" and meta["policy"] == "random" and meta["index"] == index
    assert meta["tries"] >= 1
    assert meta["seed"] == derive_seed(seed, "collect", index, meta["tries"] - 1)
    return T


def test_doom_smoke_collects_the_episodes(doom_run):
    run_dir = doom_run.path
    assert episode_files(run_dir) == expected_names(DOOM_EPISODES)
    lengths = [check_doom_episode(p, i) for i, p in enumerate(list_episodes(run_dir / "episodes"))]
    assert len(set(lengths)) > 1  # episodes end when the agent dies, at different times
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml", "episodes"]


def test_inspect_reports_collect_done(doom_run):
    proc = ok(run_cli("inspect", doom_run.path, "--json"))
    report = json.loads(proc.stdout)
    frames = sum(episode_length(p) for p in list_episodes(doom_run.path / "episodes"))
    assert report["stages"]["collect"] == {"status": "done", "episodes": 4, "of": 4, "frames": frames}
    assert report["stages"]["train-vae"]["status"] == "missing"
    assert report["config"]["env"] == "doom" and report["config"]["collect"]["episodes"] == 4
    # and the human-readable form (the same report, formatted in this process)
    text = format_report(inspect_run(doom_run.path))
    line = next(ln for ln in text.splitlines() if ln.split()[:1] == ["collect"])
    assert line.split()[1] == "done" and f"frames {frames}" in line
    assert "env doom" in text


def test_same_seed_same_episodes_on_any_executor(doom_run, tmp_path):
    """A second run directory, 2 episodes, in one process and one env at a time instead of 2 workers with up
    to 16 envs in lockstep: the same files' contents."""
    run_dir = tmp_path / "again"
    ok(run_cli("collect", "--preset", "doom-smoke", "--run-dir", run_dir, *sets("collect.episodes=2"),
               "--executor", "inprocess", "--envs", "1", "--quiet"))
    assert episode_files(run_dir) == expected_names(2)
    assert_same_episodes(doom_run.path, run_dir, 2)


@pytest.mark.slow
def test_carracing_smoke_episodes_have_exactly_max_frames(tmp_path):
    run_dir = tmp_path / "car"
    args = ("collect", "--preset", "carracing-smoke", "--run-dir", run_dir, *sets("collect.max_frames=45"),
            "--workers", "2", "--quiet")
    ok(run_cli(*args))
    assert episode_files(run_dir) == expected_names(2)
    for i, path in enumerate(list_episodes(run_dir / "episodes")):
        ep = read_episode(path)
        assert ep.obs.shape == (45, 64, 64, 3) and ep.obs.dtype == np.uint8
        assert ep.action.shape == (45, 3) and np.isfinite(ep.action).all()
        steer, gas, brake = ep.action.T
        assert steer.min() >= -1 and steer.max() <= 1
        assert gas.min() >= 0 and gas.max() <= 1 and brake.min() >= 0 and brake.max() <= 1
        assert ep.meta["env"] == "carracing" and ep.meta["policy"] == "random" and ep.meta["index"] == i
        assert ep.meta["tries"] == 1  # CarRacing keeps every episode
        assert not np.array_equal(ep.obs[0], ep.obs[-1])  # the zoom-in at least moves the picture
    # a second run finds every episode and writes nothing
    mtimes = {p.name: p.stat().st_mtime_ns for p in list_episodes(run_dir / "episodes")}
    proc = ok(run_cli(*args))
    assert "all 2 episodes" in proc.stdout
    assert {p.name: p.stat().st_mtime_ns for p in list_episodes(run_dir / "episodes")} == mtimes


@pytest.mark.slow
def test_collect_resumes_after_sigkill(doom_run, tmp_path):
    run_dir = tmp_path / "resume"
    episodes = run_dir / "episodes"
    # one env per worker, so that episodes finish one by one (in lockstep the smoke episodes end together)
    args = ("collect", "--preset", "doom-smoke", "--run-dir", run_dir, *sets("collect.episodes=12"),
            "--workers", "2", "--envs", "1", "--quiet")
    proc = start_cli(*args)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(list_episodes(episodes)) < 2:
        time.sleep(0.02)
    finished_before_kill = proc.poll() is not None
    kill_group(proc)  # the driver and its worker processes, mid-collection
    assert not finished_before_kill, proc.stderr.read() if proc.stderr else ""
    survivors = {p.name: p.stat().st_mtime_ns for p in list_episodes(episodes)}
    assert 0 < len(survivors) < 12, survivors
    for path in list_episodes(episodes):  # every file that has its name is complete
        read_episode(path)
    assert inspect_run(run_dir)["stages"]["collect"]["status"] == "partial"

    proc = ok(run_cli(*args))
    assert episode_files(run_dir) == expected_names(12)  # all, once each, no temporaries, nothing else
    for i, path in enumerate(list_episodes(episodes)):
        check_doom_episode(path, i)
    # the episodes made before the kill were kept, not made again
    assert {n: (episodes / n).stat().st_mtime_ns for n in survivors} == survivors
    # and the result is the run an uninterrupted collection gives
    assert_same_episodes(doom_run.path, run_dir, DOOM_EPISODES)
    report = json.loads(ok(run_cli("inspect", run_dir, "--json")).stdout)
    assert report["stages"]["collect"]["status"] == "done"
    assert report["stages"]["collect"]["episodes"] == report["stages"]["collect"]["of"] == 12


@pytest.mark.slow
def test_driver_memory_does_not_grow_with_the_episodes(doom_run, tmp_path):
    """Peak RSS of the collect driver for 16 episodes vs 4: frames never pass through the driver."""
    run_dir = tmp_path / "many"
    proc, maxrss_16 = run_driver("collect", "--preset", "doom-smoke", "--run-dir", run_dir,
                                 *sets("collect.episodes=16"), "--workers", "2", "--quiet")
    ok(proc)
    maxrss_4 = doom_run.driver_maxrss_kb
    paths = list_episodes(run_dir / "episodes")
    assert len(paths) == 16
    extra_bytes = sum(episode_length(p) for p in paths[DOOM_EPISODES:]) * FRAME_BYTES
    growth = (maxrss_16 - maxrss_4) * 1024
    assert extra_bytes > 30e6  # holding the 12 extra episodes' frames would show plainly
    assert growth < 12e6, f"driver peak RSS grew {growth / 1e6:.1f} MB ({maxrss_4} -> {maxrss_16} kB) " \
        f"for {extra_bytes / 1e6:.0f} MB more frames"


def test_driven_spreads_the_drivers_share_evenly():
    from worldmodels.stages.collect import driven

    assert [driven(i, 0.9) for i in range(10)].count(True) == 9
    assert sum(driven(i, 0.9) for i in range(100)) == 90 and sum(driven(i, 0.25) for i in range(8)) == 2
    assert not any(driven(i, 0.0) for i in range(10)) and all(driven(i, 1.0) for i in range(10))


@pytest.mark.realenv
def test_a_driver_runs_agent_drives_its_share_of_the_episodes(tmp_path):
    from dream_fixtures import make_dream_run
    from worldmodels.artifacts import controller_spec
    from worldmodels.config import load_run_config
    from worldmodels.data.episodes import write_arrays

    driver = make_dream_run(tmp_path / "driver")
    missing = run_cli("collect", "--preset", "doom-smoke", "--run-dir", tmp_path / "run",
                      *sets("collect.episodes=4", f"collect.driver={driver}"), "--quiet")
    assert_user_error(missing, "train-controller")  # the driver has no controller yet
    assert not list_episodes(tmp_path / "run" / "episodes")
    spec = controller_spec(load_run_config(driver))
    params = np.random.default_rng(0).normal(0.0, 0.5, spec.num_params).astype(np.float32)
    write_arrays(driver / "controller" / "best.npz", compress=False, params=params, meta={"generation": 1})
    ok(run_cli("collect", "--preset", "doom-smoke", "--run-dir", tmp_path / "run", "--force", "--quiet",
               *sets("collect.episodes=4", f"collect.driver={driver}", "collect.driver_fraction=0.5"),
               "--executor", "inprocess", "--envs", "2"))
    policies = [read_episode(p).meta["policy"] for p in list_episodes(tmp_path / "run" / "episodes")]
    assert policies == ["random", "agent", "random", "agent"]
    assert_user_error(run_cli("collect", "--preset", "doom-smoke", "--run-dir", tmp_path / "other", "--quiet",
                              *sets(f"collect.driver={tmp_path / 'nowhere'}")), "not a run directory")
