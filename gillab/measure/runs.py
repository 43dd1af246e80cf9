"""k workers behind one start signal: the one way gillab starts a timed run.

Every runner has the same three steps, so the executors, check and the timeline's lab
child start their workers alike (LoopRun's workers are k coroutines on one asyncio
event loop, running in one thread):

    run = ThreadRun(work, k).start()   # the workers exist and park at the start line
    at = run.go()                      # now(): the start signal; every worker goes
    results = run.finish(deadline)     # work(i, at) of each, in order, or CallTimeout

``work(i, at)`` runs in the worker, after the signal; ``at`` is the signal's now() (the
same CLOCK_MONOTONIC in every thread and forked process), so a worker's wall can count
from it and a thread that first waited for the GIL shows that wait.
"""
from __future__ import annotations

import pickle
import threading
import time

from gillab.measure.bounded import CallTimeout, join_all, remaining
from gillab.measure.clocks import now

__all__ = ["StartLine", "ThreadRun", "ForkedRun", "LoopRun"]


class StartLine:
    """k workers park at it; release() lets them all go at once and says when.

    A barrier, not an event: release() returns only once every worker is parked, so
    no worker is still being created while the others already run.
    """

    def __init__(self, n_workers: int):
        self._barrier = threading.Barrier(n_workers + 1)
        self.at: float | None = None

    def wait(self) -> float:
        """In a worker: park until released; the start signal's now()."""
        self._barrier.wait()
        return self.at

    def release(self) -> float:
        """Read the start signal, then let the parked workers go."""
        self.at = now()
        self._barrier.wait()
        return self.at


class ThreadRun:
    """k daemon threads of this process (daemon: one that never returns can be left
    behind), each running ``work(i, at)`` after the start signal."""

    def __init__(self, work, n_workers: int, name: str = "gillab-worker", ready=None):
        self.line = StartLine(n_workers)
        self.results: list = [None] * n_workers
        # ready(i) runs in worker i before it parks: what it builds is that thread's own
        # (a free-threaded CPython's biased reference counts favour the thread that made
        # an object). It must not raise: a worker that never parks stalls the start line.
        self.ready = ready
        self.threads = [threading.Thread(target=self._body, args=(work, i), daemon=True,
                                         name=f"{name}-{i}") for i in range(n_workers)]

    def _body(self, work, i: int) -> None:
        if self.ready is not None:
            self.ready(i)
        at = self.line.wait()
        self.results[i] = work(i, at)

    def start(self) -> "ThreadRun":
        for t in self.threads:
            t.start()
        return self

    def go(self) -> float:
        return self.line.release()

    def finish(self, deadline: float, what: str = "a worker") -> list:
        """Every worker's result; CallTimeout (with the threads still running) if one
        has not returned by ``deadline``."""
        alive = join_all(self.threads, deadline)
        if alive:
            raise CallTimeout(f"{what} did not return", alive)
        return self.results


def _forked_main(work, i, start, at, conn) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    start.wait()
    result = work(i, at.value)
    try:
        conn.send(result)
    except (pickle.PicklingError, TypeError, AttributeError):
        conn.send(None)  # the worker shapes its result to travel; None if it still cannot
    conn.close()


class ForkedRun:
    """k forked processes, each running ``work(i, at)`` after the start signal; the
    results come back through pipes (None for a worker that died or sent nothing).

    Forked, so ``work`` and what it closes over (a statement's namespace) need not be
    picklable; its result must be. Use as a context manager: close() kills what is left.
    """

    def __init__(self, work, n_workers: int):
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        self._start = ctx.Event()
        self._at = ctx.Value("d", 0.0, lock=False)
        self._pipes = [ctx.Pipe(duplex=False) for _ in range(n_workers)]
        self.procs = [ctx.Process(target=_forked_main,
                                  args=(work, i, self._start, self._at, send), daemon=True)
                      for i, (_, send) in enumerate(self._pipes)]

    def start(self) -> "ForkedRun":
        for p in self.procs:
            p.start()
        for _, send in self._pipes:
            send.close()
        time.sleep(0.02)  # let the children reach the start line (fork returns before)
        return self

    def go(self) -> float:
        at = now()
        self._at.value = at
        self._start.set()
        return at

    def finish(self, deadline: float, what: str = "a worker process") -> list:
        """Every worker's result, then every worker reaped; CallTimeout if one has not
        answered by ``deadline``."""
        results = []
        for recv, _ in self._pipes:
            if not recv.poll(remaining(deadline)):
                raise CallTimeout(f"{what} did not return")
            try:
                results.append(recv.recv())
            except EOFError:
                results.append(None)
        for p in self.procs:
            p.join(remaining(deadline))
        return results

    def close(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.kill()
                p.join()
        for recv, _ in self._pipes:
            recv.close()

    def __enter__(self) -> "ForkedRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LoopRun:
    """k coroutines on an asyncio event loop that runs in another thread (``loop``, kept
    running by its owner), each running ``await work(i, at)`` after the start signal.

    start() creates the k tasks and lets each take its first step, to park on an
    asyncio.Event; go() sets it from this thread. The loop's one thread then runs them
    in turn: a coroutine that never awaits (CPU work inline) keeps the others waiting,
    and their walls, counted from ``at``, show it.
    """

    def __init__(self, work, n_workers: int, loop):
        self.work, self.n_workers, self.loop = work, n_workers, loop
        self.at: float | None = None
        self._line = None
        self._parked = threading.Event()
        self._future = None

    async def _all(self):
        import asyncio

        self._line = asyncio.Event()
        tasks = [asyncio.ensure_future(self._body(i)) for i in range(self.n_workers)]
        await asyncio.sleep(0)  # every task takes its first step: it waits at the line
        self._parked.set()
        return await asyncio.gather(*tasks)

    async def _body(self, i: int):
        await self._line.wait()
        return await self.work(i, self.at)

    def _release(self, at: float) -> None:
        self.at = at
        self._line.set()

    def start(self, deadline: float | None = None) -> "LoopRun":
        """Create the k coroutines on the loop; CallTimeout if the loop's thread does not
        get to them by ``deadline`` (it is stuck in an earlier coroutine)."""
        import asyncio

        self._future = asyncio.run_coroutine_threadsafe(self._all(), self.loop)
        while not self._parked.wait(0.05):
            if self._future.done():  # the loop failed to start them: say why
                self._future.result()
            if deadline is not None and remaining(deadline) <= 0:
                self._future.cancel()
                raise CallTimeout("the event loop did not start the coroutines")
        return self

    def go(self) -> float:
        at = now()
        self.loop.call_soon_threadsafe(self._release, at)
        return at

    def finish(self, deadline: float, what: str = "a coroutine") -> list:
        """Every coroutine's result, in order; CallTimeout if they have not all
        returned by ``deadline`` (the caller decides what the loop's thread is worth)."""
        from concurrent.futures import TimeoutError as FutureTimeout

        try:
            return self._future.result(timeout=remaining(deadline))
        except FutureTimeout:
            self._future.cancel()
            raise CallTimeout(f"{what} did not return") from None
