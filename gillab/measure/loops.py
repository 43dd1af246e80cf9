"""A statement's loop on 1..k threads or k forked processes: what `gillab check` measures.

Each task is timed from the inside from the start signal (gillab.measure.clocks.timed),
with the run's CPU, the machine's load and, on the lone thread, the GIL probe beside
it. Plain records back; nothing printed, nothing judged. Every run is bounded by a
deadline (gillab.measure.bounded): a statement that never returns leaves a daemon
thread behind and raises CallTimeout (the CLI runs the whole check in a child process
it can kill, so even a C call that never returns nor releases the GIL is bounded).
"""
from __future__ import annotations

import dataclasses
import pickle
import threading
from dataclasses import dataclass

from gillab.core.errors import one_line
from gillab.measure.bounded import CallTimeout, call_bounded, remaining
from gillab.measure.calibrate import autorange
from gillab.measure.clocks import TaskClock, machine_busy, now, own_cpu, timed
from gillab.measure.cell import GilProbe
from gillab.measure.noise import noise_share
from gillab.measure.runs import ForkedRun, ThreadRun

__all__ = ["Run", "NOT_SENT", "PROBE_INTERVAL_S", "autorange_loop", "run_threads",
           "run_processes"]

#: The probe sleeps this long without the GIL between tries to take it. Short, so a
#: holder is caught almost every time (held ~0.98 for a pure-Python loop; at 1 ms it
#: reads ~0.75), long enough that the probe's own use of the GIL stays negligible.
PROBE_INTERVAL_S = 0.0001

#: In a statement's thread even KeyboardInterrupt raised by the statement is its
#: failure: a worker thread never receives the real Ctrl-C.
_STATEMENT_ERRORS = (BaseException,)


class _NotSent:
    """A worker process's answer that could not be pickled back: not compared."""

    def __repr__(self):
        return "<not sent>"

    def __reduce__(self):
        return "NOT_SENT"


NOT_SENT = _NotSent()


@dataclass(frozen=True)
class Run:
    """k tasks on k workers (threads or processes), started by one signal."""

    kind: str                     # "threads" or "processes"
    workers: int
    wall_s: float                 # start signal -> last task's end
    cpu_s: float                  # CPU seconds of this process (and its children) meanwhile
    noise: float | None           # share of the machine other processes used meanwhile
    tasks: tuple                  # TaskClock per task
    gil_held: float | None = None  # share of the run the probe found the GIL taken
    probe_samples: int | None = None

    @property
    def cores_used(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


def autorange_loop(loop, deadline: float, min_task_s: float = 0.1) -> tuple[int, float, object]:
    """Calls per task (gillab.measure.calibrate.autorange) until one task
    (``loop(calls)``) takes ``min_task_s``, bounded by ``deadline``: (calls, seconds,
    answer); CallTimeout if the statement never returns."""
    return call_bounded(lambda: autorange(loop, min_task_s), deadline, "the statement",
                        name="gillab-check")


class _OwnLoops:
    """Each thread's own loop, made in that thread before the start signal by
    ``own(i)`` (SETUP run once per thread): what SETUP makes is the thread's alone."""

    def __init__(self, own, n_threads: int):
        self.own = own
        self.loops: list = [None] * n_threads
        self.errors: list = [None] * n_threads
        self.made = [threading.Event() for _ in range(n_threads)]

    def ready(self, i: int) -> None:
        try:
            self.loops[i] = self.own(i)
        except _STATEMENT_ERRORS as exc:  # the worker must still park: reported as its error
            self.errors[i] = one_line(exc)
        finally:
            self.made[i].set()

    def wait(self, deadline: float) -> None:
        for made in self.made:
            if not made.wait(remaining(deadline)):
                raise CallTimeout("SETUP (once per thread) did not return")

    def task(self, calls: int):
        def work(i, at):
            if self.errors[i] is not None:
                return TaskClock(None, f"SETUP in its own thread: {self.errors[i]}", 0.0, 0.0)
            return timed(lambda: self.loops[i](calls), at, calls, _STATEMENT_ERRORS)
        return work


def run_threads(loop, calls: int, n_threads: int, deadline: float,
                probe: bool = False, own=None) -> Run:
    """``n_threads`` threads each run ``loop(calls)`` from one start signal.

    With ``own`` (``own(i) -> loop``), each thread first makes its own loop, before the
    start signal and outside the clocks: SETUP run once per thread, so no object SETUP
    makes is shared (CallTimeout if one never returns by ``deadline``)."""
    if own is None:
        run = ThreadRun(lambda i, at: timed(lambda: loop(calls), at, calls, _STATEMENT_ERRORS),
                        n_threads, name="gillab-check").start()
    else:
        owned = _OwnLoops(own, n_threads)
        run = ThreadRun(owned.task(calls), n_threads, name="gillab-check",
                        ready=owned.ready).start()
        owned.wait(deadline)
    gil_probe = GilProbe(PROBE_INTERVAL_S) if probe else None
    if gil_probe is not None:
        gil_probe.__enter__()
    try:
        busy0, cpu0 = machine_busy(), own_cpu()
        run.go()
        tasks = tuple(run.finish(deadline, "the statement"))
        cpu = own_cpu() - cpu0
        busy1 = machine_busy()
    finally:
        if gil_probe is not None:
            gil_probe.__exit__(None, None, None)
    wall = max(t.wall_s for t in tasks)
    held = samples = None
    if gil_probe is not None:
        held, samples = gil_probe.held, gil_probe.samples
    return Run("threads", n_threads, wall, cpu, noise_share(busy0, busy1, cpu, wall), tasks,
               held, samples)


def _process_task(loop, calls: int, at: float) -> TaskClock:
    clock = timed(lambda: loop(calls), at, calls, _STATEMENT_ERRORS)
    try:
        pickle.dumps(clock.value)
    except Exception:  # any pickling failure: the answer cannot travel, the clock can
        clock = dataclasses.replace(clock, value=NOT_SENT)
    return clock


def run_processes(loop, calls: int, n_procs: int, deadline: float) -> Run:
    """``n_procs`` forked processes each run ``loop(calls)`` from one start signal.

    Forked, because the statement's namespace (SETUP's objects, the caller's globals)
    need not be picklable.
    """
    with ForkedRun(lambda i, at: _process_task(loop, calls, at), n_procs) as run:
        run.start()
        busy0, cpu0 = machine_busy(), own_cpu()
        at = run.go()
        answers = run.finish(deadline, "the statement (in a process)")
        own = own_cpu() - cpu0   # with the reaped children: whole lives, fork included
        busy1 = machine_busy()
    tasks = tuple(t if t is not None else
                  TaskClock(None, "the worker process died", now() - at, 0.0) for t in answers)
    wall = max(t.wall_s for t in tasks)
    # Cores used counts the tasks' own CPU from the signal on, not each child's start-up.
    cpu = sum(t.cpu_s for t in tasks)
    return Run("processes", n_procs, wall, cpu, noise_share(busy0, busy1, own, wall), tasks)
