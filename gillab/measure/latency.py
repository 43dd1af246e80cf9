"""Latency of small operations beside a busy thread: the clocks of ``gillab convoy``.

The main thread times one small operation at a time (a probe's ``once()``) while one
background thread calls a CPU kernel; every GIL hand-off the main thread needs shows
as latency. Returns plain records; never prints, never judges.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from gillab import kernels
from gillab.core import stats
from gillab.core.errors import UserError, one_line
from gillab.measure.calibrate import calibrate_n, ns_per_iter
from gillab.measure.clocks import run_counted

__all__ = ["LatencySamples", "calibrate_call", "BackgroundThread", "sample",
           "measure_latencies"]


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
