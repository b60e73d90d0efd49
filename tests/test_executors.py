"""The executors: order, one build per process, surviving killed and hanging workers, errors.

Worker processes start with 'spawn' and import this module by name to unpickle the factory, so the
factory and worker classes live at the top level here. One pool is shared by most tests because each
process costs ~1.5 s to start.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worldmodels.errors import UserError
from worldmodels.executors import InProcessExecutor, ProcessPoolExecutor, make_executor

BUILDS = 0  # per process: how many workers this process has built


class Worker:
    def __init__(self, builds: int) -> None:
        self.builds = builds
        self.calls = 0

    def __call__(self, task):
        self.calls += 1
        kind, arg = task
        if kind == "square":
            time.sleep(0.01 * (arg % 3))  # finish out of order
            return arg * arg
        if kind == "whoami":
            return os.getpid(), self.builds, self.calls
        if kind == "start_child":  # as an environment that runs in its own process (ViZDoom)
            return os.getpid(), subprocess.Popen(["sleep", "1000"]).pid
        if kind in ("kill_once", "hang_once"):
            marker = Path(arg)
            if not marker.exists():
                marker.touch()
                if kind == "kill_once":
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(60)
            return "second attempt"
        if kind == "kill_always":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "sleep":
            time.sleep(arg)
            return arg
        if kind == "unpicklable":
            return lambda: None
        if kind == "raise":
            raise ValueError(arg)
        if kind == "user_error":
            raise UserError(arg)
        raise AssertionError(f"unknown task {task!r}")


class Factory:
    def __call__(self) -> Worker:
        global BUILDS
        BUILDS += 1
        return Worker(BUILDS)


class BrokenFactory:
    def __call__(self) -> Worker:
        raise UserError("checkpoint vae.pt does not exist: run train-vae first")


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(Factory(), workers=2, task_timeout=2.0, max_retries=1) as executor:
        yield executor


def squares(n: int) -> list:
    return [("square", i) for i in range(n)]


def test_results_in_order_with_progress(pool):
    seen = []
    assert pool.map(squares(20), progress=seen.append) == [i * i for i in range(20)]
    assert seen == list(range(1, 21))
    assert pool.map([]) == []


def test_worker_built_once_per_process(pool):
    first = pool.map([("whoami", None)] * 20)
    second = pool.map([("whoami", None)] * 20)  # processes persist across map calls
    by_pid: dict[int, list[int]] = {}
    for pid, builds, calls in first + second:
        assert builds == 1
        by_pid.setdefault(pid, []).append(calls)
    assert os.getpid() not in by_pid
    assert set(by_pid) <= set(pool.pids) and len(by_pid) <= 2
    for calls in by_pid.values():
        assert calls == sorted(calls) and len(set(calls)) == len(calls)


def test_killed_worker_is_replaced_and_task_retried(pool, tmp_path):
    tasks = squares(6)
    tasks.insert(3, ("kill_once", str(tmp_path / "killed")))
    results = pool.map(tasks)
    assert results == [0, 1, 4, "second attempt", 9, 16, 25]
    assert (tmp_path / "killed").exists()
    assert pool.map(squares(4)) == [0, 1, 4, 9]


def test_hanging_worker_is_killed_and_task_retried(pool, tmp_path):
    start = time.monotonic()
    results = pool.map([("square", 2), ("hang_once", str(tmp_path / "hung")), ("square", 3)])
    assert results == [4, "second attempt", 9]
    assert time.monotonic() - start < 30  # not the 60 s sleep


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_replaced_worker_leaves_no_process_it_started(pool):
    worker_pid, child_pid = pool.map([("start_child", None)])[0]
    assert _running(child_pid)
    os.kill(worker_pid, signal.SIGKILL)  # as a crash inside an environment would
    time.sleep(0.2)
    assert pool.map(squares(4)) == [0, 1, 4, 9]  # the pool finds it dead and replaces it
    assert worker_pid not in pool.pids
    _wait_until_gone(child_pid)


def test_task_that_always_kills_its_worker_gives_up(pool):
    with pytest.raises(
        RuntimeError, match=r"task 1 lost its worker process 2 times \(last: it died with exit code -9\)"
    ):
        pool.map([("square", 1), ("kill_always", None)])
    assert pool.map(squares(3)) == [0, 1, 4]


def test_raising_task_is_not_retried(pool):
    with pytest.raises(RuntimeError) as failure:
        pool.map([("sleep", 0.5), ("raise", "boom")])
    assert str(failure.value) == "task 1 failed in a worker: ValueError: boom"
    assert "raise ValueError(arg)" in failure.value.__notes__[0]  # the worker's traceback
    with pytest.raises(UserError, match=r"^bad config value$"):
        pool.map([("user_error", "bad config value")])
    with pytest.raises(RuntimeError, match=r"^task 0 failed in a worker: its result cannot be pickled"):
        pool.map([("unpicklable", None)])
    assert pool.map(squares(3)) == [0, 1, 4]  # the pool is still usable


def test_in_process_matches_pool(pool):
    tasks = squares(10)
    with InProcessExecutor(Factory()) as local:
        seen = []
        assert local.map(tasks, progress=seen.append) == pool.map(tasks)
        assert seen == list(range(1, 11))
        pid, _, calls = local.map([("whoami", None)] * 3)[-1]
        assert pid == os.getpid() and calls == 13
        with pytest.raises(RuntimeError) as failure:
            local.map([("raise", "boom")])
        assert str(failure.value) == "task 0 failed in a worker: ValueError: boom"
        with pytest.raises(UserError, match="bad"):
            local.map([("user_error", "bad")])


def test_build_failure_and_close():
    broken = ProcessPoolExecutor(BrokenFactory(), workers=1)
    with pytest.raises(UserError, match="run train-vae first"):
        broken.map([("square", 1)])
    broken.close()

    executor = ProcessPoolExecutor(Factory(), workers=1)
    processes = [slot.process for slot in executor._slots]
    assert executor.map(squares(2)) == [0, 1]
    executor.close()
    executor.close()  # idempotent
    assert not any(p.is_alive() for p in processes)
    with pytest.raises(RuntimeError, match="closed"):
        executor.map(squares(1))


def test_make_executor(monkeypatch):
    assert isinstance(make_executor("inprocess", Factory()), InProcessExecutor)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(UserError, match=r"pip install -e '\.\[ray\]'"):
        make_executor("ray", Factory())
    with pytest.raises(UserError, match="inprocess, process, ray"):
        make_executor("threads", Factory())
    with pytest.raises(UserError, match="workers >= 1"):
        make_executor("process", Factory(), workers=0)


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from test_executors import Factory
from worldmodels.executors import ProcessPoolExecutor

if __name__ == "__main__":
    pool = ProcessPoolExecutor(Factory(), workers=1)
    print(*pool.map([("start_child", None)])[0], flush=True)
    {then}
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; nobody may be left to reap it


def _wait_until_gone(*pids: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_running(pid) for pid in pids), "a process outlived its worker"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize("then", ['pool.map([("sleep", 1000)])', "__import__('time').sleep(1000)"],
                         ids=["busy", "idle"])
def test_worker_ends_when_driver_is_killed(tmp_path, then):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(Path(__file__).parent), then=then))
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        worker_pid, child_pid = map(int, driver.stdout.readline().split())
        time.sleep(0.5)  # let it start the 1000 s task, or wait idle
        assert _running(worker_pid) and _running(child_pid)
    finally:
        driver.kill()  # SIGKILL: no exit handlers run in the driver
        driver.wait()
    _wait_until_gone(worker_pid, child_pid)  # the worker, and the process it started
