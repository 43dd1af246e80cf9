"""What a model costs beside its work: memory (PSS) and start-up, for compare --cost.

A measuring module (it reads CPU counters and /proc); it never prints.
"""
from __future__ import annotations

from dataclasses import dataclass

from gillab.measure.calibrate import time_call
from gillab.measure.clocks import cpu_snapshot
from gillab.measure.cell import _BackgroundSampler

__all__ = ["pss_mb", "tree_pss_mb", "PeakMemory", "StartupCost", "measure_startup",
           "measure_lesson_costs"]


# --- memory: proportional set size ------------------------------------------------------
# PSS, not RSS: after fork, parent and children share most pages; RSS counts a shared
# page once in every process, PSS divides it among them, so the sum is what the tree
# really takes.


def pss_mb(pid: int) -> float | None:
    """Proportional set size of one process in MB (/proc/PID/smaps_rollup); None if gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_pss_mb(root: int | None = None) -> float:
    """PSS of a process and all its live descendants, in MB."""
    import psutil

    root_proc = psutil.Process(root)
    pids = [root_proc.pid]
    try:
        pids += [c.pid for c in root_proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        pass
    return sum(mb for mb in map(pss_mb, pids) if mb is not None)


class PeakMemory(_BackgroundSampler):
    """A thread that samples this process tree's PSS every ``interval_s``; keeps the peak.

    Only for an untimed pass (compare --cost): reading smaps costs CPU that would
    otherwise show up in the cell's cores used.
    """

    name = "gillab-pss"

    def __init__(self, interval_s: float = 0.01):
        super().__init__()
        self.interval_s = interval_s
        self.peak_mb = 0.0

    def _sample(self):
        while True:
            self.peak_mb = max(self.peak_mb, tree_pss_mb())
            if self._stop.wait(self.interval_s):
                break

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self.peak_mb = max(self.peak_mb, tree_pss_mb())


@dataclass(frozen=True)
class StartupCost:
    """Bringing workers up, apart from the work: wall seconds and CPU seconds it took."""

    wall_s: float
    cpu_s: float


def measure_startup(start) -> tuple[StartupCost, object]:
    """Time ``start()`` (which brings workers up and returns them) in wall and CPU time.

    A snapshot lists every child process, which costs about a millisecond of CPU
    itself: that cost, measured just before, is taken out of small start-ups.
    """
    before = cpu_snapshot()
    cpu0 = cpu_snapshot()
    own_cost = cpu0.seconds_since(before)
    wall, started = time_call(start)
    cpu = cpu_snapshot().seconds_since(cpu0) - own_cost
    return StartupCost(wall, max(0.0, cpu)), started


def measure_lesson_costs(start_method: str | None = None, n_workers: int = 100,
                         n_small_tasks: int = 200, pool_size: int = 2,
                         p: int | None = None) -> dict:
    """The lesson's cost claims, measured: 100 threads against 100 processes (start-up
    and memory), and a pool of k against fresh processes for many small tasks."""
    from gillab import kernels
    from gillab.measure.calibrate import calibrate_n
    from gillab.measure.executors import open_executor

    p = kernels.DEFAULT_P if p is None else p
    out: dict = {"workers": n_workers}
    for name in ("threads", "processes"):
        baseline_mb = tree_pss_mb()
        with open_executor(name, n_workers, start_method) as ex:
            startup, _ = measure_startup(ex.start_idle)
            with PeakMemory() as memory:
                ex.run(kernels.Task("sleep", (0.2,)), n_workers)
        out[name] = {"startup_s": startup.wall_s, "startup_cpu_s": startup.cpu_s,
                     "mem_mb": max(0.0, memory.peak_mb - baseline_mb)}
    small = kernels.Task("cy_nogil", (calibrate_n(kernels.get("cy_nogil"), 0.001, p), p))
    with open_executor("mp_pool", pool_size, start_method) as pool:
        pool_s, _ = time_call(pool.run, small, n_small_tasks)
    with open_executor("processes", pool_size, start_method) as fresh:
        fresh_s, _ = time_call(
            lambda: [fresh.run(small, pool_size) for _ in range(n_small_tasks // pool_size)])
    out["small_tasks"] = {"tasks": n_small_tasks, "pool_size": pool_size,
                          "pool_s": pool_s, "fresh_processes_s": fresh_s}
    return out
