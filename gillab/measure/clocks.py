"""Task clocks and CPU accounting: one task's own clocks (TaskClock, run_task), and the
CPU a whole cell used (snapshots, the machine's load). A cell's repeats, the noise guard
and the GIL probe are gillab.measure.cell's. Returns plain data; never prints."""
from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass, field


from gillab import kernels
from gillab.core.errors import one_line
from gillab.measure.noise import CLOCK_TICK

__all__ = ["TaskClock", "TASK_ERRORS", "timed", "timed_await", "run_task_awaited", "now",
           "run_delay", "run_task", "own_cpu", "CpuSnapshot", "cpu_snapshot", "process_cpu",
           "boot_id", "machine_busy"]


# --- inside a worker ------------------------------------------------------------------


@dataclass(frozen=True)
class TaskClock:
    """One task's answer (or error) and its own clocks, read inside the thread that ran it.

    The one task record of every command: compare's cells, check's runs, convoy's
    background. It crosses processes (pickled back from workers), so it holds plain data.
    ``wall_s`` counts from the start signal when there is one (a thread that first
    waited for the GIL shows that wait), else from the task's first call; ``cpu_s`` is
    the CPU time of the thread that ran it: wall minus that is the time it waited.
    """

    value: object
    error: str | None
    wall_s: float
    cpu_s: float                      # CPU time of the thread (process) that ran it
    run_delay_s: float | None = None  # runnable but queued for a CPU (Linux schedstat)
    pid: int = 0
    calls: int = 1                    # calls of the function this task made (autorange)
    late_s: float = 0.0               # from the start signal to the task's first call

    @property
    def off_cpu(self) -> float:
        """Share of the task's wall time its thread was not on a CPU."""
        if self.wall_s <= 0:
            return 0.0
        return min(1.0, max(0.0, 1.0 - self.cpu_s / self.wall_s))

    @property
    def os_queue(self) -> float | None:
        """Share of the task's wall time its thread was runnable but waiting for a CPU.

        That part of off-CPU time is the OS's queue (more runnable threads than
        CPUs, or other processes), not the GIL: a thread waiting for the GIL is
        blocked, not runnable.
        """
        if self.run_delay_s is None or self.wall_s <= 0:
            return None
        return min(self.off_cpu, max(0.0, self.run_delay_s / self.wall_s))

    @property
    def waited(self) -> float:
        """Off-CPU share minus the OS queue: blocked (on the GIL, a lock, IO, sleep).

        Other processes taking the CPUs (the OS queue) do not count here: this figure
        holds on a busy machine where cores used does not.
        """
        queued = 0.0
        if self.run_delay_s is not None and self.wall_s > 0:
            queued = max(0.0, self.run_delay_s / self.wall_s)
        return max(0.0, self.off_cpu - queued)


def run_delay() -> float | None:
    """Seconds this thread has spent runnable but not running (Linux schedstat)."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def now() -> float:
    """The lab's clock (perf_counter: CLOCK_MONOTONIC on Linux, so one clock for every
    thread of this process, and of its forked children). Start signals are read here."""
    return time.perf_counter()


#: Errors a task's own code may raise that belong to the task (its record says so and
#: the run goes on), sys.exit() included. KeyboardInterrupt still stops the run.
TASK_ERRORS = (Exception, SystemExit)


def timed(call, start_at: float | None = None, calls: int = 1,
          catch: tuple = TASK_ERRORS) -> TaskClock:
    """Run ``call()`` in this thread, timed from the inside: the one task timer.

    ``start_at`` is the start signal (``now()`` where the workers were released): the
    wall then counts from it. An error in ``catch`` becomes the record's one-line error.
    """
    watch = _Stopwatch(start_at)
    try:
        value, error = call(), None
    except catch as exc:
        value, error = None, one_line(exc)
    return watch.stop(value, error, calls)


async def timed_await(make_awaitable, start_at: float | None = None, calls: int = 1,
                      catch: tuple = TASK_ERRORS) -> TaskClock:
    """``timed`` for a coroutine on an event loop: awaits ``make_awaitable()``.

    The clocks are the loop thread's over the coroutine's life, from its first step to
    its end: ``cpu_s`` then includes the steps of the other coroutines that ran while
    this one awaited (the loop's one thread does not tell them apart), and ``wall_s``
    counts from the start signal, so a coroutine that first waited for the others to
    give the thread back shows that wait as off-CPU time, as a greenlet does.
    """
    watch = _Stopwatch(start_at)
    try:
        value, error = await make_awaitable(), None
    except catch as exc:
        value, error = None, one_line(exc)
    return watch.stop(value, error, calls)


class _Stopwatch:
    """The clocks of one task, read in the thread that runs it: started at creation,
    read once by stop()."""

    __slots__ = ("delay0", "cpu0", "begin", "wall0")

    def __init__(self, start_at: float | None):
        self.delay0 = run_delay()
        self.cpu0 = time.thread_time()
        self.begin = time.perf_counter()
        self.wall0 = self.begin if start_at is None else min(start_at, self.begin)

    def stop(self, value, error: str | None, calls: int) -> TaskClock:
        end = time.perf_counter()
        cpu = time.thread_time() - self.cpu0
        delay1 = run_delay()
        delay = None if self.delay0 is None or delay1 is None else delay1 - self.delay0
        return TaskClock(value, error, end - self.wall0, cpu, delay, os.getpid(), calls,
                         self.begin - self.wall0)


def run_task(task: kernels.Task, start_at: float | None = None) -> TaskClock:
    """Run one task (``task.calls`` calls) in whatever worker calls this (see timed)."""
    try:
        func = task.resolve()
    except ValueError as exc:  # a target that cannot be loaded here (a worker's own path)
        return TaskClock(None, str(exc), 0.0, 0.0, pid=os.getpid())

    def call():
        value = None
        for _ in range(task.calls):
            value = func(*task.args)
        return value

    return timed(call, start_at, task.calls)


async def run_task_awaited(task: kernels.Task, start_at: float | None = None) -> TaskClock:
    """Run one task as a coroutine on an event loop: an IO kernel with an awaitable form
    (Kernel.awaitable) is awaited, so the loop runs other coroutines meanwhile; anything
    else is called inline (run_task), holding the loop's one thread until it returns."""
    try:
        func = task.resolve()
    except ValueError as exc:
        return TaskClock(None, str(exc), 0.0, 0.0, pid=os.getpid())
    form = func.awaitable if isinstance(func, kernels.Kernel) else None
    if form is None:
        return run_task(task, start_at)

    async def call():
        value = None
        for _ in range(task.calls):
            value = await form(*task.args)
        return value

    return await timed_await(call, start_at, task.calls)


# --- CPU accounting for a whole cell --------------------------------------------------


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far by this process, its reaped children and each live child."""

    self_s: float
    reaped_children_s: float
    live_children_s: dict = field(default_factory=dict)  # pid -> seconds

    def seconds_since(self, before: "CpuSnapshot") -> float:
        """CPU seconds of the whole cell between two snapshots.

        RUSAGE_CHILDREN only sees children that were waited for; pool workers
        still alive are read one by one (psutil), counting only what they used
        since the first snapshot.
        """
        live = sum(cpu - before.live_children_s.get(pid, 0.0)
                   for pid, cpu in self.live_children_s.items())
        return (self.self_s - before.self_s
                + self.reaped_children_s - before.reaped_children_s + live)


def cpu_snapshot() -> CpuSnapshot:
    # Imported here: psutil cannot load in a subinterpreter with its own GIL, and
    # tasks run there import this module for run_task alone.
    import psutil

    me = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    live = {}
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue  # gone between listing and reading: RUSAGE_CHILDREN has it once reaped
        live[child.pid] = times.user + times.system
    return CpuSnapshot(me.ru_utime + me.ru_stime, reaped.ru_utime + reaped.ru_stime, live)


def own_cpu() -> float:
    """CPU seconds of this process and its reaped children (no psutil: cheap, and
    enough where every child is waited for before the reading)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def process_cpu() -> dict:
    """This process's CPU seconds, and who it is: run inside a remote worker, the
    answer tells a process on this machine (and this process's own child) from one
    elsewhere. {"pid", "create_time", "boot_id", "cpu_s"}."""
    import psutil

    proc = psutil.Process()
    times = proc.cpu_times()
    return {"pid": proc.pid, "create_time": proc.create_time(), "boot_id": boot_id(),
            "cpu_s": times.user + times.system}


def boot_id() -> str | None:
    """This machine's boot id (Linux), to tell one machine from another; None elsewhere."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def machine_busy() -> tuple[float, int] | None:
    """CPU seconds the whole machine has been busy (all processes), and its CPU count.

    From /proc/stat; None where there is no /proc (the noise guard is then off).
    """
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
            n_cpus = sum(1 for line in f if line.startswith("cpu"))
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICK, max(n_cpus, 1)
