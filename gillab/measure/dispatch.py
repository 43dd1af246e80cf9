"""Dispatch cost: microseconds to hand one trivial task to an executor and get its answer back.

A task that does nothing leaves only the executor's own cost: queueing, waking a
worker, pickling there and back for processes, switching greenlets. It is the floor
under every task a pool runs, and why tiny tasks gain nothing from a pool.

``dispatch_us("mp_pool", chunksize=500)`` answers one question; a ``Dispatcher``
keeps one warm executor for many batches (the benchmarks time its ``send``).
Pools come from gillab.measure.executors.open_executor, started and warmed there, so a
batch never pays for start-up. Clocks are read through gillab.measure.clocks.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
from concurrent.futures.process import BrokenProcessPool

from gillab.core import registry
from gillab.core import stats
from gillab.measure.executors import WorkerFailed, open_executor
from gillab.measure.calibrate import time_call

__all__ = ["DISPATCH_EXECUTORS", "Dispatcher", "dispatch_us", "dispatch_us_client", "trivial",
           "dispatch_figure"]

#: Where a per-task dispatch cost is measured. ``serial`` is the floor: the same
#: calls with no executor in between.
#: Executors with a per-task dispatch figure that this module measures (the registry's
#: trait; dask measures its own, on its cluster: gillab.measure.dask_cells).
DISPATCH_EXECUTORS = tuple(n for n, s in registry.SPECS.items() if s.dispatch and n != "dask")

#: Pools: workers started when the executor opens and reused for every task.
_POOLS = registry.names_where(dispatch=True, remote=False) - {"serial"}


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def trivial(i: int) -> int:
    """The task that does nothing: what it costs through an executor is dispatch."""
    return i


class Dispatcher:
    """One warm executor, ready to send batches of trivial tasks: ``send(n)`` any number
    of times, then ``close()`` (or use it as a context manager).

    ``chunksize`` applies to ``mp_pool`` only (``Pool.map``); the futures pools submit
    one task at a time, as the lesson does. ``n_workers`` does not apply to ``serial``
    and ``gevent`` (one greenlet per task). ``start_method`` applies to the process pools.
    """

    def __init__(self, executor: str, n_workers: int = 2, chunksize: int = 1,
                 start_method: str | None = None, timeout_s: float = 60.0):
        if executor not in DISPATCH_EXECUTORS:
            raise ValueError(f"no per-task dispatch for {executor!r}; choose from "
                             f"{', '.join(DISPATCH_EXECUTORS)} (threads and processes start "
                             "a worker per task: compare measures that as start-up)")
        _check_count("n_workers", n_workers)
        _check_count("chunksize", chunksize)
        if chunksize != 1 and executor != "mp_pool":
            raise ValueError(f"chunksize applies to mp_pool only, not {executor}")
        self.executor = executor
        self.n_workers = n_workers
        self.chunksize = chunksize
        self.timeout_s = timeout_s
        self._open = None
        self._gevent = None
        if executor in _POOLS:
            self._open = open_executor(executor, n_workers, start_method, timeout_s)
        elif executor == "gevent":
            # Greenlets are spawned here, in the caller's process, and never
            # monkey-patched: spawning, switching to and joining a greenlet that does
            # no IO touches nothing patch_all replaces, so the cost is the same as in
            # a patched process, and the caller (pytest, or compare's measuring
            # process) stays exactly as it was. Importing gevent patches nothing.
            # A child process would add its start-up to every timed batch.
            import gevent

            self._gevent = gevent

    def send(self, n_tasks: int) -> list[int]:
        """Run ``trivial(i)`` for i in range(n_tasks) through the executor; answers in order.

        A worker that dies or hangs raises gillab.measure.executors.WorkerFailed.
        """
        _check_count("n_tasks", n_tasks)
        if self.executor == "serial":
            return [trivial(i) for i in range(n_tasks)]
        if self.executor == "gevent":
            return self._send_greenlets(n_tasks)
        if self._open is None:
            raise RuntimeError("this Dispatcher is closed")
        pool = self._open.pool
        if self.executor == "mp_pool":
            try:
                return pool.map_async(trivial, range(n_tasks), self.chunksize).get(self.timeout_s)
            except multiprocessing.TimeoutError:
                # Pool never notices a dead worker (bpo-22393): a lost task looks like this.
                raise WorkerFailed(f"no answer within {self.timeout_s:.0f} s") from None
        futures = [pool.submit(trivial, i) for i in range(n_tasks)]
        _, pending = concurrent.futures.wait(futures, timeout=self.timeout_s)
        if pending:
            for future in pending:
                future.cancel()
            raise WorkerFailed(f"no answer within {self.timeout_s:.0f} s")
        try:
            return [f.result() for f in futures]
        except BrokenProcessPool:
            raise WorkerFailed("a pool worker process died (BrokenProcessPool)") from None

    def _send_greenlets(self, n_tasks: int) -> list[int]:
        gevent = self._gevent
        greenlets = [gevent.spawn(trivial, i) for i in range(n_tasks)]
        done = gevent.joinall(greenlets, timeout=self.timeout_s, raise_error=True)
        if len(done) < n_tasks:
            gevent.killall(greenlets)
            raise WorkerFailed(f"greenlets gave no answer within {self.timeout_s:.0f} s")
        return [g.value for g in greenlets]

    def close(self) -> None:
        """Stop the executor's workers. Safe to call twice."""
        if self._open is not None:
            self._open.close()
            self._open = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def dispatch_us(executor: str, n_tasks: int = 2000, chunksize: int = 1, n_workers: int = 2,
                repeat: int = 3, start_method: str | None = None) -> float:
    """Microseconds per trivial task through ``executor``: the best of ``repeat``
    batches of ``n_tasks`` (as timeit: a busy machine only ever adds time), after
    one untimed batch that warms the workers.

    Raises ValueError for an executor or size it cannot measure, WorkerFailed if a
    worker dies or hangs, and RuntimeError if an answer comes back wrong.
    """
    _check_count("n_tasks", n_tasks)
    _check_count("repeat", repeat)
    expected = list(range(n_tasks))
    with Dispatcher(executor, n_workers, chunksize, start_method) as dispatcher:
        dispatcher.send(n_tasks)  # the first batch pays lazy costs (imports, the hub)
        seconds = []
        for _ in range(repeat):
            elapsed, answers = time_call(dispatcher.send, n_tasks)
            if answers != expected:
                raise RuntimeError(f"{executor} returned wrong answers for trivial tasks")
            seconds.append(elapsed)
    return stats.minimum(seconds) / n_tasks * 1e6


def dispatch_us_client(client, n_tasks: int = 500, repeat: int = 3,
                       timeout_s: float = 60.0) -> float:
    """Microseconds per trivial task through a dask ``client.map`` (``pure=False``):
    the best of ``repeat`` batches after one untimed batch, like dispatch_us. Wall
    time: the client, the scheduler and the worker each take their part.
    Raises RuntimeError for a wrong answer, TimeoutError past ``timeout_s``."""
    from distributed import wait

    expected = list(range(n_tasks))

    def send():
        futures = client.map(trivial, range(n_tasks), pure=False)
        with client.as_current():
            wait(futures, timeout=timeout_s)
        return client.gather(futures)

    send()  # the first batch pays lazy costs (imports in the workers)
    seconds = []
    for _ in range(repeat):
        elapsed, answers = time_call(send)
        if answers != expected:
            raise RuntimeError("dask returned wrong answers for trivial tasks")
        seconds.append(elapsed)
    return stats.minimum(seconds) / n_tasks * 1e6


def dispatch_figure(executor: str, workers: int, start_method: str | None) -> float | None:
    """Per-task dispatch cost of an executor shape (it does not depend on the kernel).

    None for threads and processes: they start a worker per task, so their cost is
    start-up, measured apart.
    """
    traits = registry.spec(executor)
    if not traits.dispatch or traits.remote:
        return None  # gevent's and dask's are measured where they run
    return dispatch_us(executor, n_tasks=1000, n_workers=workers, start_method=start_method)
