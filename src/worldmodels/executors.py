"""Where rollouts run: in this process, in a pool of local processes, or on a Ray cluster.

A task is a small picklable object (a candidate's parameters and its seeds, say). A worker is a
callable `worker(task) -> result`, built once per process by a picklable factory
(`worker_factory() -> worker`), so that each process loads V and M once and keeps them. Every executor
returns the results in task order, and since seeds come from the tasks, never from which process ran
them, every executor gives the same results for the same tasks.

The process pool and the Ray executor survive their workers: a worker process that dies (SIGKILL, a
segfault inside an environment, a lost Ray node) or hangs past `task_timeout` is killed, replaced by a
fresh one, and its task is run again, up to `max_retries` times. A task that raises a Python exception
is not retried: the error is raised in the driver.

Ray is an optional dependency (`pip install -e '.[ray]'` in the checkout), imported only by `RayExecutor`.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time
import traceback
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.reduction import ForkingPickler
from typing import Any, NoReturn, Self

from worldmodels.errors import UserError

__all__ = [
    "EXECUTOR_KINDS",
    "Executor",
    "InProcessExecutor",
    "ProcessPoolExecutor",
    "RayExecutor",
    "WorkerFactory",
    "make_executor",
]

WorkerFactory = Callable[[], Callable[[Any], Any]]
"""Builds a worker once per process; must be picklable (e.g. an instance of a top-level class)."""

EXECUTOR_KINDS = ("inprocess", "process", "ray")


class Executor(ABC):
    """Runs `worker(task)` for every task; results in task order."""

    @abstractmethod
    def map(self, tasks: Sequence[Any], progress: Callable[[int], None] | None = None) -> list[Any]:
        """Results in task order; `progress(n_done)` is called as results arrive.

        A task that raises fails the whole call: RuntimeError("task i failed in a worker: ...").
        A UserError raised by a task or by the worker factory is raised as a UserError.
        """

    def close(self) -> None:
        """Release processes and connections; the executor cannot be used afterwards.

        Intentionally a no-op here, not abstract: an executor that holds nothing need not override it.
        """
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _task_failed(index: int | None, error: str) -> RuntimeError:
    return RuntimeError(f"task {index} failed in a worker: {error}")


class _Ledger:
    """One `map` call's bookkeeping, shared by the process pool and Ray: the tasks still to hand out, the
    results in task order (each counted once: a late duplicate from a replaced worker is ignored), and how
    often each task lost its worker (a death or a timeout), against `max_retries`."""

    def __init__(self, n_tasks: int, max_retries: int, progress: Callable[[int], None] | None,
                 worker_name: str) -> None:
        self.results: list[Any] = [None] * n_tasks
        self.done = [False] * n_tasks
        self.n_done = 0
        self.pending = deque(range(n_tasks))
        self.losses = [0] * n_tasks
        self.max_retries, self.progress, self.worker_name = max_retries, progress, worker_name

    @property
    def finished(self) -> bool:
        return self.n_done == len(self.results)

    def record(self, index: int | None, result: Any) -> None:
        if index is not None and not self.done[index]:
            self.results[index] = result
            self.done[index] = True
            self.n_done += 1
            if self.progress is not None:
                self.progress(self.n_done)

    def lost(self, index: int | None, how: str, note: str = "") -> None:
        """The worker holding task `index` died or hung (`how`): run the task again first, or give up."""
        if index is None or self.done[index]:
            return
        self.losses[index] += 1
        if self.losses[index] > self.max_retries:
            error = RuntimeError(f"task {index} lost its {self.worker_name} {self.losses[index]} times (last: "
                                 f"{how}); giving up after {self.max_retries} retries")
            if note:
                error.add_note(note)
            raise error
        self.pending.appendleft(index)


class InProcessExecutor(Executor):
    """Runs every task in this process, one after another: for debugging, tests and single-CPU runs."""

    def __init__(self, worker_factory: WorkerFactory) -> None:
        self._factory = worker_factory
        self._worker: Callable[[Any], Any] | None = None

    def map(self, tasks: Sequence[Any], progress: Callable[[int], None] | None = None) -> list[Any]:
        if self._worker is None:
            self._worker = self._factory()  # built once, on first use
        results = []
        for i, task in enumerate(tasks):
            try:
                results.append(self._worker(task))
            except UserError:
                raise
            except Exception as e:  # the same error type as the pool's, with the original chained
                raise _task_failed(i, f"{type(e).__name__}: {e}") from e
            if progress is not None:
                progress(i + 1)
        return results

    def close(self) -> None:
        self._worker = None


# Messages from a worker process to the driver, one pipe per process: (status, task index, payload).
_READY = "ready"  # the worker is built; payload None
_RESULT = "result"  # payload: the result
_ERROR = "error"  # payload: (message, traceback text)
_USER_ERROR = "user_error"  # payload: message
_BUILD_FAILED = "build_failed"  # the factory raised; payload: (is_user_error, message, traceback text)


def _worker_main(
    worker_factory: WorkerFactory, conn: multiprocessing.connection.Connection, driver_pid: int
) -> None:
    """The loop of one worker process: build the worker once, then answer (index, task) until None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle; it then closes us
    if hasattr(os, "setpgid"):
        # A process group of its own, shared with what it starts (ViZDoom runs each game as a child
        # process): killing the group leaves no orphan game behind (`_kill_group`, `_exit_when_gone`).
        os.setpgid(0, 0)
    threading.Thread(target=_exit_when_gone, args=(driver_pid,), daemon=True).start()
    import torch

    torch.set_num_threads(1)  # one process per core; intra-op threads would oversubscribe
    try:
        worker = worker_factory()
    except Exception as e:  # noqa: BLE001 - any failure is reported to the driver, which raises it
        _send(conn, (_BUILD_FAILED, None, (isinstance(e, UserError), _describe(e), traceback.format_exc())))
        return
    if not _send(conn, (_READY, None, None)):
        _end_group()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the driver is gone
            _end_group()
        if message is None:  # the driver's close(): it then kills what is left of our group
            return
        index, task = message
        try:
            reply = (_RESULT, index, worker(task))
        except UserError as e:
            reply = (_USER_ERROR, index, str(e))
        except Exception as e:  # noqa: BLE001 - reported to the driver, which raises it
            reply = (_ERROR, index, (_describe(e), traceback.format_exc()))
        if not _send(conn, reply):
            _end_group()


def _end_group() -> NoReturn:
    """Exit with everything this worker started: its environments' processes are in its group."""
    if hasattr(os, "killpg"):
        os.killpg(0, signal.SIGKILL)  # 0: this process's own group
    os._exit(1)


def _send(conn: multiprocessing.connection.Connection, reply: tuple[str, int | None, Any]) -> bool:
    """Send one message to the driver; False if the driver is gone."""
    try:
        data = ForkingPickler.dumps(reply)  # pickle first, so a failure cannot leave half a message
    except Exception as e:  # noqa: BLE001 - pickling raises many types
        _, index, _ = reply
        data = ForkingPickler.dumps((_ERROR, index, (f"its result cannot be pickled: {_describe(e)}", "")))
    try:
        conn.send_bytes(data)
    except OSError:
        return False
    return True


def _exit_when_gone(driver_pid: int, interval: float = 1.0) -> None:
    """End this worker process soon after the driver dies, even in the middle of a task.

    An idle worker notices on its own (its pipe closes), but one busy in a long or hung rollout would
    run on as an orphan after a driver killed with SIGKILL or SIGTERM, which run no exit handlers. It takes
    its process group with it: the environments' own processes.
    """
    while True:
        time.sleep(interval)
        try:
            os.kill(driver_pid, 0)  # signal 0: only asks whether the process exists
        except (ProcessLookupError, PermissionError):  # PermissionError: the pid was reused by another user
            _end_group()


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _worker_context() -> multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext:
    """'forkserver' with torch preloaded where it exists (Linux, macOS), else 'spawn'; never plain fork.

    Forking the driver is unsafe once torch has started its thread pools. The fork server is a clean
    process that only imports torch and numpy, so a worker forked from it starts in a fraction of a
    second instead of the 1-2 s a spawned interpreter needs to import torch: that matters when a
    worker that died inside an environment is replaced. Like every child, it gets the driver's
    sys.path and imports the worker factory's module by name.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["numpy", "torch"])  # only has effect before the server starts
        return context
    return multiprocessing.get_context("spawn")


@dataclass(eq=False)  # compared by identity
class _Slot:
    """One worker process and what the driver knows about it."""

    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    ready: bool = False
    task: int | None = None  # index of the task it holds, if any
    deadline: float = float("inf")  # time.monotonic() by which its task must be done


def _kill_group(process: multiprocessing.process.BaseProcess) -> None:
    """Kill a worker process and whatever it started (they share its process group), alive or not."""
    assert process.pid is not None  # started: `_spawn` starts every process it makes
    try:
        os.killpg(process.pid, signal.SIGKILL)  # a group that no longer exists, or not yet: nothing to do
    except (ProcessLookupError, PermissionError, AttributeError):  # AttributeError: no killpg (Windows)
        pass
    if process.is_alive():
        process.kill()


def _stop(slots: list[_Slot], grace: float = 2.0) -> None:
    """Ask idle built workers to exit, kill the others and any that do not exit; safe to call twice."""
    graceful = [slot for slot in slots if slot.ready and slot.task is None]
    for slot in graceful:
        try:
            slot.conn.send(None)
        except (OSError, ValueError):
            pass
    end = time.monotonic() + grace
    for slot in slots:
        if slot in graceful:
            slot.process.join(max(0.0, end - time.monotonic()))
        _kill_group(slot.process)
        slot.process.join()
        slot.conn.close()
    slots.clear()


class ProcessPoolExecutor(Executor):
    """`workers` long-lived processes, each building its worker once; survives dying and hanging workers.

    Processes start from a fork server (or with 'spawn'; see `_worker_context`), never by forking the
    driver (torch and fork do not mix), and persist across `map` calls until `close()`. Each process
    has its own pipe to the driver, so the driver always knows which task each process holds, and a
    process killed mid-message can only garble its own pipe, which is discarded with it. (A shared
    multiprocessing.Queue would not survive that: a writer killed while holding the queue's lock
    blocks every other writer for ever.)

    A process that exits, or holds one task longer than `task_timeout` seconds (the clock starts once
    the worker is built and has the task), is killed and replaced, and its task runs again; a task is
    attempted at most `1 + max_retries` times. The worker processes are daemons, are stopped when the
    driver exits, and end themselves within a second of a driver killed outright, so no orphans. Each
    process leads its own process group, and a process is always stopped with its group, so the processes
    its environments started (ViZDoom's game) go with it.
    """

    def __init__(
        self,
        worker_factory: WorkerFactory,
        workers: int,
        task_timeout: float | None = None,
        max_retries: int = 3,
    ) -> None:
        if workers < 1:
            raise UserError(f"the process executor needs workers >= 1, got {workers}")
        if task_timeout is not None and not task_timeout > 0:
            raise UserError(f"task_timeout must be > 0 seconds or None, got {task_timeout}")
        if max_retries < 0:
            raise UserError(f"max_retries must be >= 0, got {max_retries}")
        self.worker_factory = worker_factory
        self.workers = int(workers)
        self.task_timeout = task_timeout
        self.max_retries = int(max_retries)
        self._context = _worker_context()
        self._slots: list[_Slot] = []
        self._closed = False
        self._startup_deaths = 0  # processes that died before they were built, since one last was
        # Stops the processes at interpreter exit or when this object is collected, whichever first.
        self._finalizer = weakref.finalize(self, _stop, self._slots)
        self._start_missing()

    @property
    def pids(self) -> list[int | None]:
        """Process ids of the current worker processes (they change when a process is replaced)."""
        return [slot.process.pid for slot in self._slots]

    def _spawn(self) -> _Slot:
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(self.worker_factory, child_conn, os.getpid()),
            name="worldmodels-worker",
            daemon=True,
        )
        process.start()
        child_conn.close()  # only the child holds its end, so the driver sees EOF when the child dies
        return _Slot(process, parent_conn)

    def _start_missing(self) -> None:
        """Start processes until there are `workers` of them.

        Dead processes are not dropped here: only `map` drops them, after it has taken back the task a
        dead process held (a process dying between that check and this call must not lose its task).
        """
        while len(self._slots) < self.workers:
            self._slots.append(self._spawn())

    def _discard(self, slot: _Slot) -> None:
        _kill_group(slot.process)  # a process that died on its own may have left an environment running
        slot.process.join()
        slot.conn.close()
        self._slots.remove(slot)

    def map(self, tasks: Sequence[Any], progress: Callable[[int], None] | None = None) -> list[Any]:
        if self._closed:
            raise RuntimeError("this ProcessPoolExecutor is closed")
        ledger = _Ledger(len(tasks), self.max_retries, progress, "worker process")
        try:
            for slot in [s for s in self._slots if not s.process.is_alive()]:
                self._discard(slot)  # died between calls, holding no task
            self._start_missing()
            while not ledger.finished:
                self._assign(tasks, ledger.pending)
                # Sleep until a message, a death or the nearest deadline.
                deadline = min((s.deadline for s in self._slots), default=float("inf"))
                timeout = None if deadline == float("inf") else max(0.0, deadline - time.monotonic())
                waitables = [s.conn for s in self._slots] + [s.process.sentinel for s in self._slots]
                multiprocessing.connection.wait(waitables, timeout)
                lost: list[tuple[_Slot, bool]] = []  # (slot, timed out rather than died)
                for slot in list(self._slots):
                    # Liveness first, then read: everything a dead process sent is in its pipe by now,
                    # so a result sent just before dying still counts.
                    alive = slot.process.is_alive()
                    try:
                        while slot.conn.poll():
                            ledger.record(*self._receive(slot, slot.conn.recv()))
                    except (EOFError, OSError):  # it died mid-message
                        alive = False
                    if not alive:
                        lost.append((slot, False))
                    elif slot.task is not None and time.monotonic() >= slot.deadline:
                        lost.append((slot, True))
                for slot, timed_out in lost:
                    index = slot.task
                    self._replace(slot)  # kills it if it is hanging
                    how = (f"it timed out after {self.task_timeout} s" if timed_out
                           else f"it died with exit code {slot.process.exitcode}")
                    ledger.lost(index, how)
        except BaseException:
            # Processes still holding a task are in an unknown state: stop them; the next call starts
            # fresh ones.
            for slot in [s for s in self._slots if s.task is not None]:
                self._discard(slot)
            raise
        return ledger.results

    def _assign(self, tasks: Sequence[Any], pending: deque[int]) -> None:
        """Send pending tasks to idle workers that are built."""
        for slot in self._slots:
            if not (slot.ready and slot.task is None and pending):
                continue
            index = pending.popleft()
            try:
                slot.conn.send((index, tasks[index]))
            except (OSError, ValueError):  # it just died; `map` sees the death next
                pending.appendleft(index)
                continue
            slot.task = index
            slot.deadline = time.monotonic() + self.task_timeout if self.task_timeout else float("inf")

    def _receive(self, slot: _Slot, message: tuple[str, int | None, Any]) -> tuple[int | None, Any]:
        """Handle one message from a worker: (task index, result) for a result, (None, None) otherwise.

        Raises what a failed task or a failed worker build should raise in the driver.
        """
        status, index, payload = message
        if status == _READY:
            slot.ready = True
            self._startup_deaths = 0
            return None, None
        if status == _BUILD_FAILED:
            is_user_error, text, trace = payload
            if is_user_error:
                raise UserError(text)
            error = RuntimeError(f"building the worker failed in a worker: {text}")
            error.add_note(f"traceback in the worker:\n{trace}")
            raise error
        slot.task = None
        slot.deadline = float("inf")
        if status == _USER_ERROR:
            raise UserError(payload)
        if status == _ERROR:
            text, trace = payload
            error = _task_failed(index, text)
            if trace:
                error.add_note(f"traceback in the worker:\n{trace}")
            raise error
        return index, payload

    def _replace(self, slot: _Slot) -> None:
        """Kill and drop a dead or hanging process and start a fresh one in its place."""
        if not slot.ready:
            self._startup_deaths += 1
            if self._startup_deaths > self.max_retries:
                exitcode = slot.process.exitcode
                self._discard(slot)
                raise RuntimeError(
                    f"worker processes keep exiting before they are ready (last exit code {exitcode}): "
                    f"see the error printed above, or run with the inprocess executor to debug"
                )
        self._discard(slot)
        self._start_missing()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._finalizer()  # runs _stop once


RAY_MISSING = "the ray executor needs Ray, which is not installed: pip install -e '.[ray]' in the worldmodels checkout"


class _RayActor:
    """The body of one Ray actor (made remote in `RayExecutor`): builds the worker once, then runs tasks.

    Nothing raises out of it: build failures and task errors come back as values, in the pool's message
    format, so the driver tells a task's own exception (not retried) from the death of the actor's
    process (retried), and a UserError keeps its one-line message.
    """

    def __init__(self, worker_factory: WorkerFactory) -> None:
        self._worker: Callable[[Any], Any] | None = None
        self._build_error: tuple[bool, str, str] | None = None
        try:
            self._worker = worker_factory()
        except Exception as e:  # noqa: BLE001 - reported to the driver by `ready`, which raises it
            # which machine, since on a cluster it is often "the run directory is not on this node"
            where = f" (in a Ray worker on {socket.gethostname()})"
            text = str(e) if isinstance(e, UserError) else _describe(e)
            self._build_error = (isinstance(e, UserError), text + where, traceback.format_exc())
        torch = sys.modules.get("torch")
        if torch is not None:  # one process per CPU, as in the pool; Ray also sets OMP_NUM_THREADS=1
            torch.set_num_threads(1)

    def ready(self) -> tuple[int, tuple[bool, str, str] | None]:
        """(process id, the build error or None); returns once the worker is built."""
        return os.getpid(), self._build_error

    def run(self, index: int, task: Any) -> tuple[str, int, Any]:
        try:
            assert self._worker is not None  # the driver sends no task to an actor whose build failed
            return (_RESULT, index, self._worker(task))
        except UserError as e:
            return (_USER_ERROR, index, str(e))
        except Exception as e:  # noqa: BLE001 - reported to the driver, which raises it
            return (_ERROR, index, (_describe(e), traceback.format_exc()))


@dataclass(eq=False)  # compared by identity
class _RayWorker:
    """One actor and what the driver knows about it (the Ray counterpart of `_Slot`)."""

    actor: Any  # ray.actor.ActorHandle
    ready_ref: Any  # ObjectRef of `ready()`: None once the worker is built
    pid: int | None = None
    task: int | None = None  # index of the task it holds, if any
    ref: Any = None  # ObjectRef of that task's result
    deadline: float = float("inf")


class RayExecutor(Executor):
    """`workers` Ray actors (1 CPU each) on a Ray cluster, each building its worker once.

    `ray_address`: None starts a private local Ray instance with `workers` CPUs (stopped by `close()`);
    "auto" joins the cluster already running on this machine (`ray start`); "HOST:PORT" joins that
    cluster. If this process is already connected to Ray, that connection is used as it is.

    Every actor is kept busy with one task at a time, so a slow actor never holds a queue of others'
    tasks, and results are collected with `ray.wait` as they arrive. An actor that dies (its process
    killed, its node lost), or holds one task longer than `task_timeout` seconds (the clock starts once
    the worker is built), is killed and replaced by a fresh actor, which Ray places on any node with a
    free CPU; the task is run again, at most `1 + max_retries` times in all. Ray's own retries are off
    (max_restarts=0, max_task_retries=0), so a task runs again only when this executor says so, and a
    task's result is taken once: a result that arrives late, from an actor given up on, is ignored.
    """

    def __init__(
        self,
        worker_factory: WorkerFactory,
        workers: int,
        task_timeout: float | None = None,
        max_retries: int = 3,
        ray_address: str | None = None,
    ) -> None:
        if workers < 1:
            raise UserError(f"the ray executor needs workers >= 1, got {workers}")
        if task_timeout is not None and not task_timeout > 0:
            raise UserError(f"task_timeout must be > 0 seconds or None, got {task_timeout}")
        if max_retries < 0:
            raise UserError(f"max_retries must be >= 0, got {max_retries}")
        try:
            import ray
        except ImportError:
            raise UserError(RAY_MISSING) from None
        self._ray = ray
        # Errors after which a task runs again on a fresh actor: its actor's process or node died, or its
        # result was lost with the node that held it.
        self._lost_errors = (ray.exceptions.RayActorError, ray.exceptions.ObjectLostError,
                             ray.exceptions.NodeDiedError, ray.exceptions.WorkerCrashedError)
        self.worker_factory = worker_factory
        self.workers = int(workers)
        self.task_timeout = task_timeout
        self.max_retries = int(max_retries)
        self._owns_connection = not ray.is_initialized()  # then close() calls ray.shutdown()
        if self._owns_connection:
            if ray_address is not None:
                _check_reachable(ray_address)
            # Workers' output is not forwarded: their errors reach the driver as values (see _RayActor).
            try:
                if ray_address is None:  # "local": a new private instance, even if a cluster is running
                    # (its note that token authentication is on, Ray's safe default, is only noise here)
                    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
                    ray.init(address="local", num_cpus=self.workers, include_dashboard=False,
                             log_to_driver=False, logging_level=logging.WARNING)
                else:
                    ray.init(address=ray_address, log_to_driver=False, logging_level=logging.WARNING)
            except Exception as e:  # noqa: BLE001 - no cluster there, a malformed address, a timeout...
                what = "start Ray" if ray_address is None else f"connect to Ray at {ray_address!r}"
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise UserError(f"cannot {what}: {reason}") from None
        # Actors hold one CPU each; Ray retries nothing itself (see the class docstring).
        self._actor_class = ray.remote(_RayActor).options(num_cpus=1, max_restarts=0, max_task_retries=0)
        self._workers: list[_RayWorker] = []
        self._closed = False
        self._startup_deaths = 0
        cpus = ray.cluster_resources().get("CPU", 0)
        if cpus < self.workers:
            print(f"worldmodels: warning: the Ray cluster has {cpus:g} CPUs for {self.workers} workers; "
                  f"the others wait until CPUs are free", file=sys.stderr)
        self._start_missing()

    @property
    def pids(self) -> list[int]:
        """Process ids of the actors built so far (they change when an actor is replaced)."""
        return [w.pid for w in self._workers if w.pid is not None]

    def _start_missing(self) -> None:
        while len(self._workers) < self.workers:
            actor = self._actor_class.remote(self.worker_factory)
            # Ray types the handle as `ActorHandle[T] | type[T]`, so T's plain methods seem to lack .remote
            self._workers.append(_RayWorker(actor, actor.ready.remote()))  # type: ignore[attr-defined]

    def _discard(self, worker: _RayWorker) -> None:
        self._ray.kill(worker.actor, no_restart=True)  # a no-op for an actor that is already dead
        self._workers.remove(worker)

    def map(self, tasks: Sequence[Any], progress: Callable[[int], None] | None = None) -> list[Any]:
        if self._closed:
            raise RuntimeError("this RayExecutor is closed")
        ray = self._ray
        ledger = _Ledger(len(tasks), self.max_retries, progress, "Ray worker")
        try:
            self._start_missing()
            while not ledger.finished:
                self._assign(tasks, ledger.pending)
                # Sleep until an actor is built, a result (or an actor's death) arrives, or a deadline.
                by_ref = {w.ready_ref if w.ready_ref is not None else w.ref: w for w in self._workers}
                by_ref.pop(None, None)  # built and idle
                deadline = min((w.deadline for w in self._workers), default=float("inf"))
                timeout = None if deadline == float("inf") else max(0.0, deadline - time.monotonic())
                ready, _ = ray.wait(list(by_ref), num_returns=1, timeout=timeout)
                if ready:  # take everything that is ready by now, not just the first
                    ready, _ = ray.wait(list(by_ref), num_returns=len(by_ref), timeout=0)
                lost: list[tuple[_RayWorker, str, str]] = []  # (worker, what happened, Ray's account)
                for ref in ready:
                    worker = by_ref[ref]
                    try:
                        reply = ray.get(ref)
                    except self._lost_errors as e:
                        lost.append((worker, f"its actor died ({type(e).__name__})", str(e)))
                        continue
                    except ray.exceptions.RayTaskError as e:  # e.g. the result could not be serialised
                        if worker.ready_ref is not None:
                            raise RuntimeError(f"building the worker failed in a Ray worker: {e}") from None
                        index = worker.task
                        worker.task, worker.ref, worker.deadline = None, None, float("inf")  # it is fine
                        raise _task_failed(index, f"{type(e.cause).__name__}: {e.cause}") from None
                    if worker.ready_ref is not None:
                        self._built(worker, reply)
                    else:
                        ledger.record(*self._receive(worker, reply))
                now = time.monotonic()
                lost += [(w, f"it timed out after {self.task_timeout} s", "")
                         for w in self._workers if w.task is not None and now >= w.deadline]
                for worker, how, account in lost:
                    index = worker.task
                    self._replace(worker, account)  # kills it if it is hanging
                    ledger.lost(index, how, f"Ray says: {account}" if account else "")
        except BaseException:
            # Actors still holding a task would finish it for nobody: kill them; the next call starts
            # fresh ones.
            for worker in [w for w in self._workers if w.task is not None]:
                self._discard(worker)
            raise
        return ledger.results

    def _assign(self, tasks: Sequence[Any], pending: deque[int]) -> None:
        """Give pending tasks to idle actors that are built."""
        for worker in self._workers:
            if worker.ready_ref is None and worker.task is None and pending:
                index = pending.popleft()
                worker.task, worker.ref = index, worker.actor.run.remote(index, tasks[index])
                worker.deadline = time.monotonic() + self.task_timeout if self.task_timeout else float("inf")

    def _built(self, worker: _RayWorker, reply: tuple[int, tuple[bool, str, str] | None]) -> None:
        """Handle an actor's `ready()` reply; raises what a failed worker build should raise."""
        worker.pid, build_error = reply
        worker.ready_ref = None
        if build_error is not None:
            is_user_error, text, trace = build_error
            if is_user_error:
                raise UserError(text)
            error = RuntimeError(f"building the worker failed: {text}")
            error.add_note(f"traceback in the worker:\n{trace}")
            raise error
        self._startup_deaths = 0

    def _receive(self, worker: _RayWorker, reply: tuple[str, int, Any]) -> tuple[int, Any]:
        """(task index, result) of a task's reply; raises what a failed task should raise."""
        status, index, payload = reply
        worker.task, worker.ref, worker.deadline = None, None, float("inf")
        if status == _USER_ERROR:
            raise UserError(payload)
        if status == _ERROR:
            text, trace = payload
            error = _task_failed(index, text)
            error.add_note(f"traceback in the worker:\n{trace}")
            raise error
        return index, payload

    def _replace(self, worker: _RayWorker, account: str = "") -> None:
        """Kill and drop a dead or hanging actor and start a fresh one in its place."""
        if worker.ready_ref is not None:  # it died before its worker was built
            self._startup_deaths += 1
            if self._startup_deaths > self.max_retries:
                self._discard(worker)
                error = RuntimeError(
                    "Ray workers keep dying before they are ready (is worldmodels installed on every "
                    "node?): see the note below and the Ray logs (/tmp/ray/session_latest/logs on each "
                    "node), or run with the inprocess executor to debug"
                )
                if account:
                    error.add_note(f"Ray says: {account}")
                raise error
        self._discard(worker)
        self._start_missing()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ray.is_initialized():  # (not if someone shut Ray down already: the actors are gone)
            for worker in list(self._workers):
                self._discard(worker)
        self._workers.clear()
        if self._owns_connection:
            self._ray.shutdown()  # a private instance stops; a cluster is only disconnected from


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """A UserError at once if nothing answers at HOST:PORT (Ray itself would retry for many minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:  # "auto", "ray://...": left to Ray
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise UserError(
            f"cannot connect to Ray at {address!r}: nothing answers there ({e.strerror or e}); start the "
            f"head with `ray start --head` and pass HEAD_IP:6379, or 'auto' on a node of the cluster"
        ) from None


def make_executor(
    kind: str,
    worker_factory: WorkerFactory,
    workers: int = 1,
    task_timeout: float | None = None,
    ray_address: str | None = None,
) -> Executor:
    """An executor by name: "inprocess", "process" (a local pool of `workers` processes) or "ray"
    (`workers` Ray actors on the cluster at `ray_address`; see RayExecutor)."""
    if kind == "inprocess":
        return InProcessExecutor(worker_factory)
    if kind == "process":
        return ProcessPoolExecutor(worker_factory, workers=workers, task_timeout=task_timeout)
    if kind == "ray":
        return RayExecutor(worker_factory, workers, task_timeout=task_timeout, ray_address=ray_address)
    raise UserError(f"unknown executor {kind!r}: choose one of {', '.join(EXECUTOR_KINDS)}")
