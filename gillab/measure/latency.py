"""Latency of small operations beside a busy thread: the clocks of ``gillab convoy``.

The main thread times one small operation at a time (a probe's ``once()``) while one
background thread calls a CPU kernel; every GIL hand-off the main thread needs shows
as latency. For ``convoy -p loop``, an asyncio loop in the main thread times its own
1 ms timer (``measure_loop_lag``) while the kernel runs on a thread, inline, or in a
process pool, and counts what the kernel got done meanwhile. Returns plain records;
never prints, never judges.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from gillab import kernels
from gillab.core import stats
from gillab.core.errors import UserError, one_line
from gillab.measure.calibrate import calibrate_n, ns_per_iter
from gillab.measure.cell import run_counted

__all__ = ["LatencySamples", "calibrate_call", "BackgroundThread", "sample",
           "measure_latencies", "LoopSamples", "timed_call", "measure_loop_lag"]


@dataclass(frozen=True)
class LatencySamples:
    """Seconds of each timed operation of one row, and the machine's noise meanwhile."""

    latencies: tuple             # seconds per operation, in the order they ran
    noise: float | None          # share of the machine other processes used meanwhile
    wall_s: float = 0.0          # the whole sampling, untimed gaps included


def calibrate_call(name: str, target_s: float, p: int = kernels.DEFAULT_P) -> int:
    """n such that one call of kernel ``name`` takes about ``target_s`` on this machine.

    calibrate_n finds the size; the best of three timed calls then fixes the rate,
    so one slow call on a busy machine does not halve the calls.
    """
    kernel = kernels.get(name)
    n = calibrate_n(kernel, target_s, p)
    ns = ns_per_iter(kernel, n, p, repeat=3)
    return max(1, round(target_s * 1e9 / ns))


class BackgroundThread:
    """One thread calling a CPU kernel in calls of fixed size until stopped.

    Use as a context manager: the thread runs inside the ``with`` block and is
    stopped (within about one call) and joined on the way out, also on Ctrl-C.
    Call lengths are kept by the thread and read only after it has been joined.
    Waiting for it longer than ``timeout_s`` is a failure (UserError), not a latency.
    """

    def __init__(self, name: str, n: int, p: int = kernels.DEFAULT_P, timeout_s: float = 10.0):
        self.name = name
        self.timeout_s = timeout_s
        self._kernel = kernels.get(name)
        self._args = (n, p)
        self._stop = threading.Event()
        self._running = threading.Event()
        self._call_s: list[float] = []
        self._error: str | None = None
        self._reported = False
        self._thread = threading.Thread(target=self._run, name=f"gillab-convoy-{name}",
                                        daemon=True)

    def _run(self) -> None:
        try:
            self._running.set()
            while not self._stop.is_set():
                t0 = time.perf_counter()
                self._kernel(*self._args)
                self._call_s.append(time.perf_counter() - t0)
        except Exception as exc:  # reported by stop(), in the main thread, as one line
            self._error = one_line(exc)
        finally:
            self._running.set()  # never leave start() waiting

    def start(self) -> None:
        self._thread.start()
        if not self._running.wait(self.timeout_s):
            raise UserError(f"the {self.name} background thread did not start")

    def check(self) -> None:
        """Raise UserError if the thread has died: a row without it would lie."""
        if not self._thread.is_alive():
            self._reported = True
            raise UserError(f"the {self.name} background thread stopped early"
                            + (f": {self._error}" if self._error else ""))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is None:
            return
        self._thread.join(self.timeout_s)
        if self._thread.is_alive():
            raise UserError(f"the {self.name} background thread did not stop "
                            f"within {self.timeout_s:g} s")
        if self._error and not self._reported:
            self._reported = True
            raise UserError(f"the {self.name} background thread failed: {self._error}")

    @property
    def call_s(self) -> float | None:
        """Median seconds per kernel call; read it after stop()."""
        if self._thread.is_alive():
            raise RuntimeError("read call_s after stop()")
        return stats.median(self._call_s) if self._call_s else None

    def __enter__(self) -> "BackgroundThread":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def sample(probe, n_samples: int, warmup: int) -> tuple:
    """Seconds of each of ``n_samples`` ``probe.once()``, each after the probe's untimed
    ``gap_s``; the first ``warmup`` operations are not kept."""
    latencies = []
    for i in range(warmup + n_samples):
        if probe.gap_s:
            time.sleep(probe.gap_s)
        t0 = time.perf_counter()
        probe.once()
        elapsed = time.perf_counter() - t0
        if i >= warmup:
            latencies.append(elapsed)
    return tuple(latencies)


def measure_latencies(probe, n_samples: int, warmup: int) -> LatencySamples:
    """sample() between the machine-load counters: the latencies and the noise."""
    latencies, counted = run_counted(lambda: sample(probe, n_samples, warmup))
    return LatencySamples(latencies, counted.noise, counted.wall_s)


# --- the event loop's timer (convoy -p loop) -----------------------------------------


@dataclass(frozen=True)
class LoopSamples:
    """The lags of one row's 1 ms timers and what the work beside them got done."""

    latencies: tuple             # seconds each timer fired late (actual interval - tick)
    noise: float | None          # share of the machine other processes used meanwhile
    wall_s: float = 0.0
    call_s: float | None = None  # median seconds of one call of the work (None: no work)
    rate: float | None = None    # kernel iterations per second while the timers ran
    fastest_s: float | None = None  # the shortest call: the kernel's speed unhindered


def timed_call(name: str, n: int, p: int) -> float:
    """Seconds of one ``kernel(n, p)`` call, read where it runs (a thread, the loop, or a
    pool process: module level, so a process pool can import it)."""
    kernel = kernels.get(name)
    t0 = time.perf_counter()
    kernel(n, p)
    return time.perf_counter() - t0


def _work(where: str, name: str, n: int, p: int, tick_s: float, pool):
    """An async callable: one call of the kernel where the row runs it; returns seconds.

    ``thread``: asyncio.to_thread (the loop's default executor). ``loop``: inline, then
    a wait of one tick, as a handler that computes and then waits for its next request:
    without it the call would always be queued ahead of the timer and the lag would be
    two calls, not one. ``process``: loop.run_in_executor(pool).
    """
    import asyncio

    if where == "thread":
        return lambda: asyncio.to_thread(timed_call, name, n, p)
    if where == "process":
        return lambda: asyncio.get_running_loop().run_in_executor(pool, timed_call, name, n, p)
    if where == "loop":
        async def inline() -> float:
            seconds = timed_call(name, n, p)  # blocks the loop: that is the row's point
            await asyncio.sleep(tick_s)
            return seconds
        return inline
    raise ValueError(f"unknown place to run the work: {where!r}")


async def _ticks_beside(work, n_samples: int, warmup: int, tick_s: float,
                        timeout_s: float) -> tuple:
    """Lags of ``n_samples`` 1-tick sleeps while ``work`` (or nothing) runs on and on.

    Returns (lags, spans, window): spans are (start, end) of each call of the work,
    window the (start, end) of the timed ticks. The work is stopped between two calls
    and waited for (at most ``timeout_s``) before this returns.
    """
    import asyncio

    spans: list = []
    stopping = False

    async def drive() -> None:
        while not stopping:
            seconds = await work()
            end = time.perf_counter()
            spans.append((end - seconds, end))

    driver = asyncio.create_task(drive()) if work is not None else None
    try:
        await asyncio.sleep(0)  # let the work start before the first tick
        lags, start = [], None
        for i in range(warmup + n_samples):
            if i == warmup:
                start = time.perf_counter()
            t0 = time.perf_counter()
            await asyncio.sleep(tick_s)
            lag = time.perf_counter() - t0 - tick_s
            if i >= warmup:
                lags.append(lag)
            if driver is not None and driver.done():
                break
        window = (start, time.perf_counter())
    finally:
        stopping = True
        if driver is not None and not driver.done():
            try:
                await asyncio.wait_for(asyncio.shield(driver), timeout_s)
            except TimeoutError:
                raise UserError(f"the work beside the loop did not stop within "
                                f"{timeout_s:g} s") from None
    if driver is not None and driver.exception() is not None:
        raise UserError(f"the work beside the loop failed: {one_line(driver.exception())}")
    return tuple(lags), spans, window


def _rate(spans, window, n: int) -> float | None:
    """Kernel iterations per second in ``window``: each call's n iterations, counted in
    proportion to the part of the call inside the window."""
    lo, hi = window
    if not spans or hi <= lo:
        return None
    done = sum(n * max(0.0, min(end, hi) - max(start, lo)) / (end - start)
               for start, end in spans if end > start)
    return done / (hi - lo)


def measure_loop_lag(name: str | None, n: int, where: str, n_samples: int, warmup: int,
                     tick_s: float, pool=None, p: int = kernels.DEFAULT_P,
                     timeout_s: float = 10.0) -> LoopSamples:
    """One row of ``convoy -p loop``: a fresh event loop in this thread times its 1-tick
    timer while kernel ``name`` (None: nothing) runs ``where`` (thread, loop, process).

    The lag is read with perf_counter around ``asyncio.sleep(tick_s)``; the noise from
    run_counted. ``pool`` is the process pool for ``where='process'``.
    """
    import asyncio

    work = None if name is None else _work(where, name, n, p, tick_s, pool)
    (lags, spans, window), counted = run_counted(
        lambda: asyncio.run(_ticks_beside(work, n_samples, warmup, tick_s, timeout_s)))
    if work is not None and not spans:
        raise UserError(f"the {name} work ({where}) finished no call while the loop ran")
    return LoopSamples(lags, counted.noise, counted.wall_s,
                       stats.median([end - start for start, end in spans]) if spans else None,
                       _rate(spans, window, n) if work is not None else None,
                       min((end - start for start, end in spans), default=None))
