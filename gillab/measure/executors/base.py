"""The shared signature of every executor, and what its workers run."""
from __future__ import annotations

import multiprocessing
import pickle
import time
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from gillab import kernels
from gillab.core import procutil
from gillab.core.errors import one_line
from gillab.measure.clocks import TaskClock, now, run_task

class WorkerFailed(Exception):
    """A worker died or hung: the cell reports it and the run goes on."""


def _worker_init(parent_pid: int | None = None) -> None:
    # Ctrl-C belongs to the parent, which stops the workers itself: a worker
    # printing its own KeyboardInterrupt traceback would only be noise. And a worker
    # must not outlive its parent (SIGKILL of the parent): see gillab.core.procutil.
    procutil.worker_setup(parent_pid)


def _run_task_shipped(task: kernels.Task, start_at: float | None = None) -> TaskClock:
    """run_task in a worker process: a result that cannot be pickled back becomes the
    task's error (the cell is wrong, the run goes on) instead of a worker traceback."""
    import dataclasses

    result = run_task(task, start_at)
    try:
        pickle.dumps(result)
    except Exception as exc:  # any pickling failure: the value cannot travel
        why = one_line(exc)
        return dataclasses.replace(
            result, value=None,
            error=f"the result cannot be sent back from a worker process ({why})")
    return result


#: Tasks whose threads hung in this process: task -> (those threads, why). Running such a
#: task here again would only leave another thread behind. Held while one of its
#: threads is alive, no longer: a later run (or a later gillab.check in the same
#: session) is not refused for a hang that is over.
_HUNG_HERE: dict = {}


def _refuse_in_process(task: kernels.Task) -> None:
    why = task.unsafe_in_process or _still_hung(task)
    if why:
        raise WorkerFailed(why)


def _still_hung(task: kernels.Task) -> str | None:
    threads, why = _HUNG_HERE.get(task, ((), None))
    if any(t.is_alive() for t in threads):
        return why
    _HUNG_HERE.pop(task, None)
    return None


def _join_or_abandon(threads, deadline: float, timeout_s: float, task) -> None:
    """Join threads until ``deadline``; any still running is abandoned (a thread cannot
    be killed) and the cell fails with the reason."""
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t for t in threads if t.is_alive()]
    if alive:
        why = (f"no answer within {timeout_s:.0f} s; a thread cannot be killed, so "
               f"{len(alive)} is left running and gillab exits without waiting for it")
        for t in alive:
            procutil.abandon(t, why)
        earlier, _ = _HUNG_HERE.get(task, ((), None))
        _HUNG_HERE[task] = ([*earlier, *alive], f"hung earlier in this run (no answer "
                                                 f"within {timeout_s:.0f} s)")
        raise WorkerFailed(why)


def _warm(seconds: float) -> int:
    time.sleep(seconds)
    return 0


class Executor:
    """The shared signature. Subclasses start in __init__ and stop in close()."""

    name = "?"

    def __init__(self, n_workers: int, start_method: str | None = None,
                 timeout_s: float = 300.0):
        self.n_workers = n_workers
        self.timeout_s = timeout_s
        self.context = multiprocessing.get_context(start_method)

    def run(self, task: kernels.Task, n_tasks: int) -> list[TaskClock]:
        raise NotImplementedError

    def start_idle(self) -> None:
        """Bring up n_workers workers that do nothing, and wait for them to end.

        For executors that start workers inside each run (threads, processes), this
        is their start-up cost, measured apart from the work (compare --cost). Pools
        pay theirs when they open.
        """

    def close(self) -> None:
        """Stop every worker. Safe to call twice and after Ctrl-C."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        # Interrupted (Ctrl-C, a failed cell): stop at once rather than wait for tasks.
        self.aborting = exc_type is not None
        self.close()


class _FuturesExecutor(Executor):
    in_process = False   # workers are threads of this process (never ship a task there)
    #: Workers that share this process's clock and GIL get the start signal: a pool
    #: thread that waits for the GIL before its task starts shows that wait.
    start_signal = False

    def run(self, task, n_tasks):
        if self.in_process:
            _refuse_in_process(task)
        args = (task, now()) if self.start_signal else (task,)
        func = run_task if self.in_process else _run_task_shipped
        futures = [self.pool.submit(func, *args) for _ in range(n_tasks)]
        try:
            return [f.result(timeout=self.timeout_s) for f in futures]
        except BrokenProcessPool:
            raise WorkerFailed("a pool worker process died (BrokenProcessPool)") from None
        except FutureTimeout:
            if self.in_process:  # pool threads stuck in the task: never joined at exit
                _join_or_abandon(list(self.pool._threads), time.monotonic(),
                                 self.timeout_s, task)
            raise WorkerFailed(f"no answer within {self.timeout_s:.0f} s") from None
