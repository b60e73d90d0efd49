"""The Ray executor on a real two-node Ray cluster on this machine: collect and a CMA-ES generation in
the real environment give what the local executors give, and killed workers, lost nodes and hung tasks
cost nothing but time.

One cluster (two nodes of 1 CPU each, on the loopback interface) is shared by the module and stopped at
its end. This process is connected to it, so the executors here use that connection; the CLI test runs
a separate driver that connects with `--ray-address`. The test workers below reach the actors by value
(their code travels with them), so an actor never imports this module and its heavy imports.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

# Ray turns 127.0.0.1 into this machine's outward address before connecting, which a cluster bound to
# the loopback does not listen on; this setting (read when Ray is imported, and by the nodes and the
# CLI's driver, which inherit the environment) keeps every address on the loopback.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from conftest import ok, run_cli, sets  # noqa: E402
from dream_fixtures import make_dream_run  # noqa: E402
from worldmodels.artifacts import controller_spec  # noqa: E402
from worldmodels.config import load_run_config  # noqa: E402
from worldmodels.data.episodes import list_episodes, read_episode  # noqa: E402
from worldmodels.errors import UserError  # noqa: E402
from worldmodels.es import CMAES, paired_seeds  # noqa: E402
from worldmodels.executors import RAY_MISSING, RayExecutor, make_executor  # noqa: E402
from worldmodels.runtime import Runtime  # noqa: E402
from worldmodels.stages.train_controller import RealScorer  # noqa: E402

pytestmark = pytest.mark.ray

MB = 1024 * 1024


class Worker:
    """Test tasks; each records where it ran in `log_dir` (file `<task>.<pid>`)."""

    def __call__(self, task):
        kind, arg = task
        if kind == "square":
            return arg * arg
        if kind == "record":  # (log_dir, i, seconds): sleep, then i * i
            log_dir, i, seconds = arg
            Path(log_dir, f"{i}.{os.getpid()}").touch()
            time.sleep(seconds)
            return i * i
        if kind in ("kill_once", "hang_once"):  # kill or hang this actor's process on the first attempt
            marker = Path(arg)
            if not marker.exists():
                marker.touch()
                if kind == "kill_once":
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(60)
            return "second attempt"
        if kind == "kill_always":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "raise":
            raise ValueError(arg)
        if kind == "user_error":
            raise UserError(arg)
        if kind == "unpicklable":  # even for cloudpickle, which Ray uses
            return threading.Lock()
        raise AssertionError(f"unknown task {task!r}")


class Factory:
    def __call__(self) -> Worker:
        return Worker()


class BrokenFactory:
    def __call__(self) -> Worker:
        raise UserError("checkpoint vae.pt does not exist: run train-vae first")


def test_missing_ray_is_a_user_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UserError) as failure:
        make_executor("ray", Factory(), workers=2)
    assert str(failure.value) == RAY_MISSING
    assert "pip install -e '.[ray]'" in str(failure.value) and "\n" not in str(failure.value)


@pytest.fixture(scope="module")
def cluster():
    """A head and one worker node, 1 CPU each, on the loopback; this process connected to it."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    module = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(module)  # see the module's docstring
    nodes = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": 80 * MB, "include_dashboard": False},
    )
    try:
        nodes.add_node(num_cpus=1, object_store_memory=80 * MB)
        nodes.wait_for_nodes()
        ray.init(address=nodes.address, log_to_driver=False, logging_level="WARNING")
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(module)


def test_collect_cli_on_two_nodes_matches_the_process_pool(cluster, doom_run, tmp_path):
    """`worldmodels collect --executor ray`: the same episode files as the session's process-pool run."""
    run_dir = tmp_path / "ray"
    proc = ok(run_cli("collect", "--preset", "doom-smoke", "--run-dir", run_dir, *sets("collect.episodes=2"),
                      "--executor", "ray", "--ray-address", cluster.address, "--workers", "2", "--quiet"))
    assert "Traceback" not in proc.stderr
    paths = list_episodes(run_dir / "episodes")
    assert [p.name for p in paths] == ["000000.npz", "000001.npz"]
    assert sorted(p.name for p in (run_dir / "episodes").iterdir()) == [p.name for p in paths]  # no temps
    for path in paths:
        ours, theirs = read_episode(path), read_episode(doom_run.path / "episodes" / path.name)
        for a, b in zip(ours[:4], theirs[:4]):  # obs, action, reward, done
            np.testing.assert_array_equal(a, b)
        assert ours.meta == theirs.meta


def test_cmaes_generation_in_the_real_game_same_fitness_as_in_process(cluster, tmp_path):
    """One generation of 4 candidates x 2 rollouts with untrained V and M, scored by RealScorer."""
    run_dir = make_dream_run(tmp_path / "run", [
        "controller.where=real", "controller.population_size=4", "controller.rollouts=2",
        "controller.max_steps=150",  # a random agent dies after 100 to 400 steps: returns differ
    ])
    config = load_run_config(run_dir)
    spec = controller_spec(config)
    candidates = CMAES(spec.num_params, 4, 0.5, seed=7).ask()
    seeds = paired_seeds(config.controller.seed, 0, 4, 2)

    on_cluster = Runtime(run_dir, config, workers=2, executor="ray", ray_address=cluster.address)
    scorer = RealScorer(on_cluster, spec)
    try:
        on_ray = scorer(candidates, seeds)
        pids = scorer.executor.pids
    finally:
        scorer.close()
    assert len(set(pids)) == 2 and os.getpid() not in pids  # two actors, one per node (1 CPU each)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in every worker process (and faster on a busy machine)
    local = RealScorer(Runtime(run_dir, config, executor="inprocess"), spec)
    try:
        in_process = local(candidates, seeds)
    finally:
        local.close()
        torch.set_num_threads(threads)

    assert on_ray.shape == (4, 2)
    np.testing.assert_array_equal(on_ray, in_process)
    np.testing.assert_array_equal(on_ray.mean(axis=1), in_process.mean(axis=1))  # the fitness
    assert len(set(on_ray.ravel())) > 1  # not all episodes capped at max_steps


def test_killed_workers_tasks_run_again_each_result_once(cluster, tmp_path):
    """One task SIGKILLs its own actor; the driver SIGKILLs another actor after the first result."""
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    tasks = [("record", (str(log_dir), i, 0.3)) for i in range(8)]
    tasks[3] = ("kill_once", str(tmp_path / "killed"))
    seen: list[int] = []
    killed: list[int] = []

    with RayExecutor(Factory(), workers=2, max_retries=2) as executor:
        def progress(n_done: int) -> None:
            seen.append(n_done)
            if n_done == 1:
                killed.append(executor.pids[0])
                os.kill(killed[0], signal.SIGKILL)

        results = executor.map(tasks, progress=progress)
        assert executor.map([("square", 3)]) == [9]  # still usable
        assert killed[0] not in executor.pids

    assert results == [i * i if i != 3 else "second attempt" for i in range(8)]
    assert seen == list(range(1, 9))  # every result counted once
    runs: dict[int, list[int]] = {}
    for path in log_dir.iterdir():
        i, pid = map(int, path.name.split("."))
        runs.setdefault(i, []).append(pid)
    assert sorted(runs) == [0, 1, 2, 4, 5, 6, 7]
    rerun = [i for i, pids in runs.items() if len(pids) > 1]
    assert len(rerun) <= 1  # at most the task the killed actor held, then on another process
    for i in rerun:
        assert len(runs[i]) == 2 and killed[0] in runs[i] and len(set(runs[i])) == 2


def test_lost_node_tasks_run_on_the_others(cluster, tmp_path):
    """A third node dies mid-map (its raylet and workers killed): its tasks finish on the other nodes."""
    node = cluster.add_node(num_cpus=1, object_store_memory=80 * MB)
    cluster.wait_for_nodes()
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    tasks = [("record", (str(log_dir), i, 0.5)) for i in range(9)]
    try:
        with RayExecutor(Factory(), workers=3, max_retries=1) as executor:
            def progress(n_done: int) -> None:
                if n_done == 1:
                    cluster.remove_node(node, allow_graceful=False)

            assert executor.map(tasks, progress=progress) == [i * i for i in range(9)]
    finally:
        if node in cluster.worker_nodes:
            cluster.remove_node(node)
    assert {int(p.name.split(".")[0]) for p in log_dir.iterdir()} == set(range(9))


def test_hung_task_is_killed_and_run_again(cluster, tmp_path):
    with RayExecutor(Factory(), workers=1, task_timeout=2.0, max_retries=1) as executor:
        start = time.monotonic()
        results = executor.map([("square", 2), ("hang_once", str(tmp_path / "hung")), ("square", 3)])
        assert results == [4, "second attempt", 9]
        assert time.monotonic() - start < 30  # not the 60 s sleep


def test_errors(cluster):
    with RayExecutor(Factory(), workers=1, max_retries=1) as executor:
        with pytest.raises(RuntimeError) as failure:
            executor.map([("square", 1), ("raise", "boom")])
        assert str(failure.value) == "task 1 failed in a worker: ValueError: boom"
        assert "raise ValueError(arg)" in failure.value.__notes__[0]  # the worker's traceback
        with pytest.raises(UserError, match=r"^bad config value$"):
            executor.map([("user_error", "bad config value")])
        with pytest.raises(RuntimeError, match=r"^task 0 failed in a worker: "):
            executor.map([("unpicklable", None)])
        with pytest.raises(RuntimeError, match=r"^task 1 lost its Ray worker 2 times \(last: its actor died"):
            executor.map([("square", 1), ("kill_always", None)])
        assert executor.map([("square", i) for i in range(3)]) == [0, 1, 4]  # still usable

    broken = RayExecutor(BrokenFactory(), workers=1)
    with pytest.raises(UserError, match=r"run train-vae first \(in a Ray worker on [^ ]+\)$"):
        broken.map([("square", 1)])
    broken.close()
    with pytest.raises(RuntimeError, match="closed"):
        broken.map([("square", 1)])
