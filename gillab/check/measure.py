"""Measuring for `gillab check`: the only module of the checker that reads clocks.

It runs a statement's loop on 1..k threads (or k forked processes), each task timed
from the inside from the moment the start signal is given, with the cell's CPU time,
the machine's load and, on the lone thread, the GIL probe beside it. It returns plain
records; it never prints and never judges.

Every run is bounded by a deadline: a statement that never returns leaves a daemon
thread behind and raises CheckTimeout here (the CLI runs the whole check in a child
process it can kill, so even a C call that never returns nor releases the GIL is bounded).
"""
from __future__ import annotations

import pickle
import resource
import threading
import time
from dataclasses import dataclass

from gillab.measure.clocks import GilProbe, machine_busy, run_delay

__all__ = ["CheckTimeout", "TaskClock", "Run", "NOT_SENT", "call_bounded", "autorange",
           "run_threads", "run_processes", "deadline_in", "past", "PROBE_INTERVAL_S"]

#: The probe sleeps this long without the GIL between tries to take it. Short, so a
#: holder is caught almost every time (held ~0.98 for a pure-Python loop; at 1 ms it
#: reads ~0.75), long enough that the probe's own use of the GIL stays negligible.
PROBE_INTERVAL_S = 0.0001


class CheckTimeout(Exception):
    """The statement (or SETUP) did not return within the check's time limit."""


class _NotSent:
    """A worker process's answer that could not be pickled back: not compared."""

    def __repr__(self):
        return "<not sent>"

    def __reduce__(self):
        return "NOT_SENT"


NOT_SENT = _NotSent()


@dataclass(frozen=True)
class TaskClock:
    """One task's own clocks, from the start signal to its end, and its answer."""

    value: object
    error: str | None
    wall_s: float
    cpu_s: float                  # CPU time of the thread (process) that ran it
    run_delay_s: float | None     # runnable but queued for a CPU (Linux schedstat)

    @property
    def off_cpu(self) -> float:
        """Share of the task's wall its thread was not on a CPU."""
        if self.wall_s <= 0:
            return 0.0
        return min(1.0, max(0.0, 1.0 - self.cpu_s / self.wall_s))

    @property
    def waited(self) -> float:
        """Off-CPU share minus the OS queue: blocked (on the GIL, a lock, IO, sleep).

        A thread waiting for the GIL is blocked, not runnable, so other processes
        taking the CPUs (the OS queue) do not count here: this figure holds on a busy
        machine where cores used does not.
        """
        queued = 0.0
        if self.run_delay_s is not None and self.wall_s > 0:
            queued = max(0.0, self.run_delay_s / self.wall_s)
        return max(0.0, self.off_cpu - queued)


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


def _own_cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def deadline_in(seconds: float) -> float:
    """The time.monotonic() reading ``seconds`` from now: what every wait here is bounded by."""
    return time.monotonic() + seconds


def past(deadline: float) -> bool:
    return time.monotonic() >= deadline


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def call_bounded(func, deadline: float, what: str):
    """Run ``func()`` in a daemon thread; its result, its error (raised here), or
    CheckTimeout if it has not returned by ``deadline`` (time.monotonic())."""
    box: dict = {}

    def target():
        try:
            box["value"] = func()
        except BaseException as exc:  # SystemExit too: the statement's, not ours
            box["error"] = exc

    thread = threading.Thread(target=target, name="gillab-check", daemon=True)
    thread.start()
    thread.join(_remaining(deadline))
    if thread.is_alive():
        raise CheckTimeout(f"{what} did not return")
    if "error" in box:
        raise box["error"]
    return box["value"]


def autorange(loop, deadline: float, min_task_s: float = 0.1) -> tuple[int, float, object]:
    """Calls per task, like timeit.Timer.autorange: 1, 2, 5, 10, 20, 50, ... until one
    task (``loop(calls)``) takes at least ``min_task_s``. Returns (calls, seconds, answer)."""

    def grow():
        calls = 1
        while True:
            for factor in (1, 2, 5):
                n = calls * factor
                t0 = time.perf_counter()
                value = loop(n)
                elapsed = time.perf_counter() - t0
                if elapsed >= min_task_s:
                    return n, elapsed, value
            calls *= 10

    return call_bounded(grow, deadline, "the statement")


def _noise(busy0, busy1, own_cpu: float, wall: float) -> float | None:
    if busy0 is None or busy1 is None or wall <= 0:
        return None
    ticks = busy1[1] / (_tick())
    others = (busy1[0] - busy0[0]) - own_cpu - ticks
    return min(1.0, max(0.0, others) / (wall * busy1[1]))


def _tick() -> int:
    import os

    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def run_threads(loop, calls: int, n_threads: int, deadline: float,
                probe: bool = False) -> Run:
    """``n_threads`` threads each run ``loop(calls)`` from one start signal.

    Each thread reads its CPU clock before it waits for the signal, and its wall time
    counts from the signal: a thread that waits for the GIL before its first bytecode
    has that wait counted (issue 12: GIL wait from the start signal).
    """
    start = threading.Event()
    signal_at: list = [0.0]
    results: list = [None] * n_threads

    def work(i):
        delay0, cpu0 = run_delay(), time.thread_time()
        start.wait()
        try:
            value, error = loop(calls), None
        except BaseException as exc:  # SystemExit in a thread is the statement failing
            value, error = None, _describe(exc)
        end, cpu1, delay1 = time.perf_counter(), time.thread_time(), run_delay()
        delay = None if delay0 is None or delay1 is None else delay1 - delay0
        results[i] = TaskClock(value, error, end - signal_at[0], cpu1 - cpu0, delay)

    threads = [threading.Thread(target=work, args=(i,), name=f"gillab-check-{i}", daemon=True)
               for i in range(n_threads)]
    for t in threads:
        t.start()
    gil_probe = GilProbe(PROBE_INTERVAL_S) if probe else None
    if gil_probe is not None:
        gil_probe.__enter__()
    try:
        busy0, cpu0 = machine_busy(), _own_cpu()
        signal_at[0] = time.perf_counter()
        start.set()
        for t in threads:
            t.join(_remaining(deadline))
            if t.is_alive():
                raise CheckTimeout("the statement did not return")
        cpu = _own_cpu() - cpu0
        busy1 = machine_busy()
    finally:
        if gil_probe is not None:
            gil_probe.__exit__(None, None, None)
    tasks = tuple(results)
    wall = max(t.wall_s for t in tasks)
    held = samples = None
    if gil_probe is not None and gil_probe._result is not None:
        held, samples = gil_probe.held, gil_probe._result[2]
    return Run("threads", n_threads, wall, cpu, _noise(busy0, busy1, cpu, wall), tasks,
               held, samples)


def _process_main(loop, calls, start, conn) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    delay0, cpu0 = run_delay(), time.thread_time()
    start.wait()
    try:
        value, error = loop(calls), None
    except BaseException as exc:
        value, error = None, _describe(exc)
    end, cpu1, delay1 = time.perf_counter(), time.thread_time(), run_delay()
    try:
        pickle.dumps(value)
    except Exception:
        value = NOT_SENT
    delay = None if delay0 is None or delay1 is None else delay1 - delay0
    conn.send((value, error, end, cpu1 - cpu0, delay))
    conn.close()


def run_processes(loop, calls: int, n_procs: int, deadline: float) -> Run:
    """``n_procs`` forked processes each run ``loop(calls)`` from one start signal.

    Forked, because the statement's namespace (SETUP's objects, the caller's globals)
    need not be picklable. perf_counter is CLOCK_MONOTONIC, shared by every process,
    so a child's end time is read against the parent's start signal.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    pipes = [ctx.Pipe(duplex=False) for _ in range(n_procs)]
    procs = [ctx.Process(target=_process_main, args=(loop, calls, start, send), daemon=True)
             for _, send in pipes]
    try:
        for p in procs:
            p.start()
        for _, send in pipes:
            send.close()
        time.sleep(0.02)  # let the children reach the start line (fork returns before)
        busy0, cpu0 = machine_busy(), _own_cpu()
        signal_at = time.perf_counter()
        start.set()
        tasks = []
        for recv, _ in pipes:
            if not recv.poll(_remaining(deadline)):
                raise CheckTimeout("the statement did not return (in a process)")
            try:
                value, error, end, cpu, delay = recv.recv()
            except EOFError:
                value, error, end, cpu, delay = None, "the worker process died", \
                    time.perf_counter(), 0.0, None
            tasks.append(TaskClock(value, error, end - signal_at, cpu, delay))
        for p in procs:
            p.join(_remaining(deadline))
        own = _own_cpu() - cpu0   # with the reaped children: whole lives, fork included
        busy1 = machine_busy()
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        for recv, _ in pipes:
            recv.close()
    wall = max(t.wall_s for t in tasks)
    # Cores used counts the tasks' own CPU from the signal on, not each child's start-up.
    cpu = sum(t.cpu_s for t in tasks)
    return Run("processes", n_procs, wall, cpu, _noise(busy0, busy1, own, wall), tuple(tasks))
