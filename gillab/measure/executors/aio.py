"""Executors on one asyncio event loop: k coroutines (``asyncio``), and k
``asyncio.to_thread`` calls gathered on it (``to_thread``).

One loop per executor, kept running in a daemon thread of its own between runs,
started (and, for to_thread, its default executor's k threads warmed) when the
executor opens, like thread_pool's threads: a run's figures hold the tasks, not the
creation of a loop and its thread pool, and an application keeps one loop for its
life. The loop runs in its own thread, never the caller's, so a coroutine that never
returns (CPU work inline, forever) holds that thread alone: the run gives up at its
timeout, the thread is abandoned like a hung worker thread, and Ctrl-C still reaches
the main thread.

What a coroutine's clocks mean (gillab.measure.clocks.timed_await): its wall counts
from the start signal; its CPU is the loop thread's over the coroutine's life. k CPU
coroutines run one after another on that thread, so the last one shows (k-1)/k of its
time off CPU, waiting for the thread, not the GIL: the same reading as gevent's
greenlets, judged alike through the registry's ``one_os_thread`` trait.
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from gillab.core import procutil
from gillab.measure.bounded import CallTimeout, deadline_in, join_all
from gillab.measure.clocks import run_task, run_task_awaited
from gillab.measure.executors.base import (Executor, WorkerFailed, _HUNG_HERE, _join_or_abandon,
                                           _refuse_in_process)
from gillab.measure.runs import LoopRun

__all__ = ["EVENT_LOOPS", "loop_unavailable", "AsyncioCoroutines", "ToThread"]

#: Event loops a run may use: asyncio's own, or uvloop's where it is installed.
EVENT_LOOPS = ("asyncio", "uvloop")


def loop_unavailable(kind: str) -> str | None:
    """Why event loop ``kind`` cannot run here, or None if it can."""
    import importlib.util

    if kind not in EVENT_LOOPS:
        return f"unknown event loop {kind!r}; choose from {', '.join(EVENT_LOOPS)}"
    if kind == "uvloop" and importlib.util.find_spec("uvloop") is None:
        return "uvloop is not installed: pip install uvloop"
    return None


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class _LoopExecutor(Executor):
    """An event loop running in a daemon thread, and k coroutines on it per run."""

    def __init__(self, *args, event_loop: str = "asyncio", **kwargs):
        super().__init__(*args, **kwargs)
        self.event_loop = event_loop
        self.loop = new_loop(event_loop)
        self._stuck = None  # why the loop's thread can no longer run anything
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name=f"gillab-{self.name}-loop")
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._prepare(), self.loop).result(timeout=30)
        except BaseException:
            self.close()
            raise

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    async def _prepare(self) -> None:
        """Ready the loop for the runs (to_thread warms its threads here)."""

    def work(self, task):
        """The coroutine function each of the k coroutines awaits: work(i, at)."""
        raise NotImplementedError

    def run(self, task, n_tasks):
        _refuse_in_process(task)
        if self._stuck:
            raise WorkerFailed(self._stuck)
        deadline = deadline_in(self.timeout_s)
        run = LoopRun(self.work(task), n_tasks, self.loop)
        try:
            run.start(deadline).go()
            return run.finish(deadline, "a coroutine")
        except CallTimeout:
            raise WorkerFailed(self._abandon(task)) from None

    def _abandon(self, task) -> str:
        """A run timed out: the loop's thread is stuck in a coroutine that never awaits
        (it cannot be killed: left running, and this executor runs nothing more). Why."""
        why = (f"no answer within {self.timeout_s:.0f} s; the event loop's thread is "
               "stuck in a coroutine that never awaits and cannot be killed, so it is left "
               "running and gillab exits without waiting for it")
        self._stuck = why
        procutil.abandon(self._thread, why)
        earlier, _ = _HUNG_HERE.get(task, ((), None))
        _HUNG_HERE[task] = ([*earlier, self._thread], "hung earlier in this run (no answer "
                                                      f"within {self.timeout_s:.0f} s)")
        return why

    async def _wind_down(self) -> None:
        # Cancel what an interrupted or timed-out run left, so no task is destroyed
        # pending (asyncio would log it at exit), then stop the loop.
        me = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not me]
        for t in left:
            t.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        asyncio.get_running_loop().stop()

    def close(self) -> None:
        loop, self.loop = getattr(self, "loop", None), None
        if loop is None:
            return
        if self._stuck:  # its thread never comes back: leave the loop to it
            return
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self._wind_down(), loop)
        # Interrupted (Ctrl-C): a short wait only; the loop's thread is a daemon.
        wait_s = 1.0 if getattr(self, "aborting", False) else 5.0
        if not join_all([self._thread], deadline_in(wait_s)):
            loop.close()


class AsyncioCoroutines(_LoopExecutor):
    """k coroutines on one event loop: CPU kernels run inline, one after another; an IO
    kernel with an awaitable form (sleep: asyncio.sleep) is awaited, and the k waits
    overlap."""

    name = "asyncio"

    def work(self, task):
        return lambda i, at: run_task_awaited(task, at)


class ToThread(_LoopExecutor):
    """k asyncio.to_thread calls gathered on one event loop: threads of the loop's
    default executor, set to k threads and all started before the run, sharing one GIL."""

    name = "to_thread"

    async def _prepare(self) -> None:
        # Python's default executor has min(32, CPUs + 4) threads: fewer than k on a
        # small machine would queue the calls. k threads, all started now (the pool
        # starts one per submit while none is idle; a barrier keeps each one busy).
        self.pool = ThreadPoolExecutor(self.n_workers, thread_name_prefix="gillab-to_thread")
        self.loop.set_default_executor(self.pool)
        barrier = threading.Barrier(self.n_workers)
        await asyncio.gather(*(asyncio.to_thread(barrier.wait, 30)
                               for _ in range(self.n_workers)))

    def work(self, task):
        return lambda i, at: asyncio.to_thread(run_task, task, at)

    def _abandon(self, task) -> str:
        # The loop is free (it awaits the calls); the pool's threads are stuck in the task
        # (_join_or_abandon raises WorkerFailed with why, unless they just ended).
        self._stuck = "a to_thread call hung earlier in this run"
        _join_or_abandon(list(self.pool._threads), deadline_in(0.0), self.timeout_s, task)
        return f"no answer within {self.timeout_s:.0f} s"

    def close(self) -> None:
        pool = getattr(self, "pool", None)
        super().close()
        if pool is not None:
            pool.shutdown(wait=not (self._stuck or getattr(self, "aborting", False)),
                          cancel_futures=True)
            self.pool = None
