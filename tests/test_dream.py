"""The dream: batched == one at a time, Gymnasium API, CMA-ES improves in it, train-controller resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import worldmodels  # noqa: F401  (registers worldmodels/Dream-v0)
from conftest import assert_user_error
from dream_fixtures import LATENT, make_dream_run, save_mdnrnn, survival_mdnrnn
from worldmodels.checkpoint import load_checkpoint
from worldmodels.data.episodes import write_arrays
from worldmodels.envs.dream import CounterRandom, DreamBatch, DreamWorld, rollout_population, splitmix64
from worldmodels.es import CMAES, paired_seeds
from worldmodels.logger import read_metrics
from worldmodels.models.controller import ControllerSpec


@pytest.fixture(scope="module")
def dream_run(tmp_path_factory):
    return make_dream_run(tmp_path_factory.mktemp("dream"))


def test_splitmix64_matches_reference():
    """The int64 tensor hash equals splitmix64 computed with numpy's well-defined uint64 arithmetic."""
    values = np.array([0, 1, 12345, 2**40 + 7, 2**62], dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = values + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        expected = x ^ (x >> np.uint64(31))
    got = splitmix64(torch.from_numpy(values.astype(np.int64))).numpy().astype(np.uint64)
    np.testing.assert_array_equal(got, expected)


def test_counter_random_is_uniform_and_normal():
    rng = CounterRandom(torch.arange(2000))
    steps = torch.zeros(2000, dtype=torch.int64)
    u = rng.uniform(steps, 0, 50)
    n = rng.normal(steps, 1, 50)
    assert 0 < u.min() and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.005
    assert abs(n.mean().item()) < 0.02 and abs(n.std().item() - 1) < 0.02
    assert not torch.equal(rng.uniform(steps + 1, 0, 50), u)  # another step gives other numbers


def _world(mdnrnn=None) -> DreamWorld:
    rng = np.random.default_rng(1)
    mu = torch.from_numpy(rng.normal(size=(10, LATENT)).astype(np.float32))
    return DreamWorld(mdnrnn or survival_mdnrnn(), mu, torch.full_like(mu, -1.0), survival_reward=True)


def test_batched_generation_equals_one_at_a_time():
    world = _world()
    spec = ControllerSpec("zch", LATENT, world.mdnrnn.hidden_size, 1, env="doom")
    params = np.random.default_rng(0).normal(scale=0.5, size=(8, spec.num_params))
    seeds = paired_seeds(3, 0, 8, 4)
    batched = rollout_population(world, spec, params, seeds, temperature=1.15, max_steps=60)
    single = np.stack([
        np.concatenate([rollout_population(world, spec, params[p : p + 1], seeds[p : p + 1, r : r + 1], 1.15, 60)[0]
                        for r in range(4)])
        for p in range(8)
    ])
    assert len(np.unique(batched)) > 3, "episodes should end at different steps for this test to mean something"
    np.testing.assert_array_equal(batched, single)


def test_dream_env_passes_check_env(dream_run):
    env = gym.make("worldmodels/Dream-v0", run_dir=dream_run, temperature=1.15, render_mode="rgb_array",
                   device="cpu")
    check_env(env.unwrapped, skip_render_check=False)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (LATENT + 2 * 8,) and obs.dtype == np.float32
    assert env.render().shape == (64, 64, 3)
    env.close()


def test_dream_env_defaults_to_the_controllers_temperature_and_m(tmp_path):
    """temperature=None: before any controller, controller.temperature; with one, the tau its best.npz was
    trained at, in a dream of the M it was trained with (its mdnrnn.pt snapshot), not the run's current M."""
    from worldmodels.artifacts import BEST, CONTROLLER_DIR, M_SNAPSHOT, load_mdnrnn
    from worldmodels.data.episodes import write_arrays

    run_dir = make_dream_run(tmp_path / "run", ["controller.temperature=1.25"])
    env = gym.make("worldmodels/Dream-v0", run_dir=run_dir, device="cpu")
    assert env.unwrapped.batch.temperature == 1.25
    env.close()
    controller = run_dir / CONTROLLER_DIR
    controller.mkdir()
    write_arrays(controller / BEST, compress=False, params=np.zeros(LATENT + 2 * 8, np.float32),
                 meta={"temperature": 0.75, "generation": 1})
    snapshot = survival_mdnrnn()
    with torch.no_grad():
        snapshot.output_layer.bias[0] = -7.0  # another M: its done logit never fires
    save_mdnrnn(controller / M_SNAPSHOT, snapshot)
    env = gym.make("worldmodels/Dream-v0", run_dir=run_dir, device="cpu")
    batch = env.unwrapped.batch
    assert batch.temperature == 0.75
    assert float(batch.world.mdnrnn.output_layer.bias[0]) == -7.0
    assert float(load_mdnrnn(run_dir).output_layer.bias[0]) == 1.0  # ...which the run's M is not
    env.close()
    explicit = gym.make("worldmodels/Dream-v0", run_dir=run_dir, temperature=1.5, device="cpu")
    assert explicit.unwrapped.batch.temperature == 1.5  # an explicit temperature wins
    explicit.close()


def test_dream_rejects_a_non_positive_temperature():
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError):
            DreamBatch(_world(), bad, 10)


def test_vector_dream_env(dream_run):
    envs = gym.make_vec("worldmodels/Dream-v0", num_envs=6, vectorization_mode="vector_entry_point",
                        run_dir=dream_run, temperature=1.0, max_steps=5, device="cpu")
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (6, LATENT + 16)
    ended = np.zeros(6, bool)
    for t in range(12):
        previous_end = ended
        obs, reward, terminated, truncated, _ = envs.step(np.ones((6, 1), np.float32))  # a = 1 survives
        assert obs.shape == (6, LATENT + 16) and reward.shape == (6,)
        np.testing.assert_array_equal(reward[previous_end], 0.0)  # autoreset step: no reward
        ended = terminated | truncated
        if t == 4:
            assert truncated.all() and not terminated.any()  # survived to the cap of 5 steps
    obs, reward, terminated, truncated, _ = envs.step(-np.ones((6, 1), np.float32))
    envs.close()


def test_cmaes_in_the_dream_improves_mean_return():
    """The sign: maximising survival in the dream raises the population's mean return."""
    world = _world()
    spec = ControllerSpec("zch", LATENT, world.mdnrnn.hidden_size, 1, env="doom")
    es = CMAES(spec.num_params, population_size=16, sigma0=0.1, seed=1)
    means = []
    for generation in range(12):
        candidates = es.ask()
        returns = rollout_population(world, spec, candidates, paired_seeds(0, generation, 16, 4), 1.0, 50)
        es.tell(candidates, returns.mean(axis=1))
        means.append(returns.mean())
    assert np.mean(means[-3:]) > np.mean(means[:3]) + 10, means


def test_train_controller_stops_where_the_population_survives_too_long(tmp_path, capsys):
    """stop_fitness (iterate.abandon): the first generation whose mean fitness reaches it is the last; the
    distribution mean is still evaluated into best.npz, and a rerun finds the training complete."""
    from worldmodels.config import load_run_config
    from worldmodels.runtime import Runtime
    from worldmodels.stages import train_controller

    run_dir = make_dream_run(tmp_path / "run", ["controller.generations=8", "controller.eval_every=4"])
    rt = Runtime(run_dir, load_run_config(run_dir), device="cpu", quiet=True)
    never = train_controller.run(rt, out=tmp_path / "never", stop_fitness=1e9)
    assert never["generations"] == 8
    first = read_metrics(tmp_path / "never" / "metrics.jsonl")[0]["fitness/mean"]
    stopped = train_controller.run(rt, out=tmp_path / "stopped", stop_fitness=first)  # same seeds: stops at 1
    assert stopped["generations"] == 1 and stopped["generation"] == 1
    rows = read_metrics(tmp_path / "stopped" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1] and "eval/mean" in rows[0]
    assert (tmp_path / "stopped" / "best.npz").is_file()
    assert "stopped at generation 1" in capsys.readouterr().out
    assert train_controller.run(rt, out=tmp_path / "stopped", stop_fitness=first)["generations"] == 1


def test_train_controller_starts_at_controller_init(tmp_path, capsys):
    """controller.init: CMA-ES starts at another controller (a run directory's or a best.npz's directory);
    a missing source or another layout is a one-line error (exit 2) before anything is written."""
    from worldmodels.artifacts import controller_spec
    from worldmodels.cli import main
    from worldmodels.config import load_run_config

    source = make_dream_run(tmp_path / "source")
    start = np.full(controller_spec(load_run_config(source)).num_params, 3.0, np.float32)
    write_arrays(source / "controller" / "best.npz", compress=False, params=start, meta={"generation": 1})
    for init in (source, source / "controller"):
        run_dir = make_dream_run(tmp_path / f"run-{init.name}", ["controller.generations=1", f"controller.init={init}"])
        assert main(["train-controller", "--run-dir", str(run_dir), "--device", "cpu", "--quiet"]) == 0
        assert f"starting from the controller of {init}" in capsys.readouterr().out
        mean = CMAES.from_state_dict(load_checkpoint(run_dir / "controller" / "es.pt", "es")["es"]).mean
        assert np.abs(mean - 3.0).max() < 1.0  # one generation from 3.0 at sigma 0.1, far from x0 = 0

    bad = {
        "missing": (tmp_path / "nowhere", "neither a run directory nor a directory with best.npz"),
        "layout": (tmp_path / "wide", "has 3 parameters, this run's C has"),
    }
    write_arrays(tmp_path / "wide" / "best.npz", compress=False, params=np.zeros(3, np.float32), meta={})
    for name, (init, fragment) in bad.items():
        run_dir = make_dream_run(tmp_path / f"bad-{name}", [f"controller.init={init}"])
        code = main(["train-controller", "--run-dir", str(run_dir), "--device", "cpu"])
        captured = capsys.readouterr()
        assert_user_error(subprocess.CompletedProcess([], code, captured.out, captured.err), fragment)
        assert not (run_dir / "controller").exists()


def test_train_controller_resumes_after_sigkill(tmp_path):
    run_dir = make_dream_run(tmp_path / "run", ["controller.generations=40", "controller.eval_every=10",
                                                 "controller.max_steps=300", "controller.rollouts=8"])
    command = [sys.executable, "-m", "worldmodels", "train-controller", "--run-dir", str(run_dir), "--device", "cpu"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    metrics = run_dir / "controller" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(read_metrics(metrics)) < 3:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(read_metrics(metrics))
    assert 3 <= done_before < 40, "kill the run midway"

    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    resumed_at = int(result.stdout.split("resuming at generation ")[1].split()[0])
    assert resumed_at >= done_before - 1  # at most the generation being checkpointed is redone
    generations = [row["step"] for row in read_metrics(metrics)]
    assert generations == list(range(1, 41))  # each generation logged exactly once
    report = json.loads(subprocess.run([sys.executable, "-m", "worldmodels", "inspect", str(run_dir), "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert report["stages"]["train-controller"]["status"] == "done"


@pytest.mark.realenv
def test_diagnose_flags_the_exploit(tmp_path):
    """In the synthetic dream a > 0.07 survives forever, so always RIGHT is an exploit; always LEFT is not."""
    from worldmodels.tools.diagnose import diagnose, format_table

    run_dir = make_dream_run(tmp_path / "run", ["controller.max_steps=600"])
    report = diagnose(run_dir, episodes=3, device="cpu")
    rows = {r["policy"]: r for r in report["rows"]}
    assert rows["always RIGHT"]["dream_mean"] == 600  # the cap: M never ends the episode
    assert 50 < rows["always RIGHT"]["real_mean"] < 300  # the real game ends it (SPEC: ~150)
    assert rows["always LEFT"]["dream_mean"] == 1
    assert "always RIGHT" in report["exploits"] and "always LEFT" not in report["exploits"]
    assert "exploitable" in format_table(report)


def test_rank_correlation():
    from worldmodels.tools.diagnose import rank_correlation

    assert rank_correlation(np.array([1.0, 5.0, 7.0]), np.array([10.0, 20.0, 90.0])) == pytest.approx(1.0)
    assert rank_correlation(np.array([1.0, 5.0, 7.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    # ties share their mean rank: ranks (0, 1.5, 1.5, 3) against (0, 1, 2, 3)
    assert rank_correlation(np.array([1.0, 2.0, 2.0, 3.0]), np.arange(4.0)) == pytest.approx(0.9486833)
    assert rank_correlation(np.ones(4), np.arange(4.0)) == 0.0


@pytest.mark.realenv
def test_diagnose_ranks_perturbed_controllers_in_the_dream_and_the_real_game(tmp_path):
    from worldmodels.artifacts import controller_spec
    from worldmodels.config import load_run_config
    from worldmodels.data.episodes import write_arrays
    from worldmodels.envs import make_env
    from worldmodels.rollout import load_agent
    from worldmodels.seeding import derive_seed
    from worldmodels.tools.diagnose import NOISE_SCALES, diagnose, format_table

    run_dir = make_dream_run(tmp_path / "run", ["controller.max_steps=60"])
    config = load_run_config(run_dir)
    best = np.random.default_rng(3).normal(0.0, 0.1, controller_spec(config).num_params).astype(np.float32)
    write_arrays(run_dir / "controller" / "best.npz", compress=False, params=best, meta={"generation": 1})
    report = diagnose(run_dir, episodes=1, device="cpu", controllers=7, rollouts=2)
    ranks = report["ranks"]
    assert len(ranks["dream"]) == len(ranks["real"]) == 7 and -1.0 <= ranks["spearman"] <= 1.0
    assert ranks["noise"][: len(NOISE_SCALES)] == list(NOISE_SCALES)
    # controller 0 is the run's C itself (noise 0), over the seeds seed and seed + 1 in both worlds
    seed = derive_seed(config.seed, "diagnose")
    dream = rollout_population(DreamWorld.from_run(run_dir, torch.device("cpu")), controller_spec(config),
                               best[None], np.array([[seed, seed + 1]]), config.controller.temperature, 60)
    assert ranks["dream"][0] == pytest.approx(float(dream.mean()))
    agent, _ = load_agent(run_dir, "cpu")
    real = [agent.run_episode(make_env("doom"), best, s, 60).total_reward for s in (seed, seed + 1)]
    assert ranks["real"][0] == pytest.approx(float(np.mean(real)))
    assert "rank correlation" in format_table(report)


@pytest.mark.realenv
def test_temperature_table(tmp_path):
    from worldmodels.tools.temperatures import markdown

    run_dir = make_dream_run(tmp_path / "run", ["controller.max_steps=100"])
    result = subprocess.run([sys.executable, "-m", "worldmodels", "temperatures", "--run-dir", str(run_dir),
                             "--taus", "0.5,1.15", "--episodes", "2", "--generations", "2", "--device", "cpu",
                             "--set", "controller.rollouts=1", "--quiet"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads((run_dir / "temperatures.json").read_text())
    assert [r["temperature"] for r in rows] == [0.5, 1.15]
    assert all(r["episodes"] == 2 and 1 <= r["dream_mean"] <= 100 and r["real_mean"] > 0 for r in rows)
    assert all(r["rollouts"] == 1 for r in rows)  # the table's own CMA-ES setting...
    assert "rollouts: 1\n" not in (run_dir / "config.yaml").read_text()  # ...not written into the run's config
    assert (run_dir / "temperatures.png").stat().st_size > 1000
    assert markdown(rows) in (run_dir / "temperatures.md").read_text()
