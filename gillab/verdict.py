"""Numbers -> a verdict word from DESIGN.md's fixed vocabulary, and its reason in numbers.

Pure functions over plain data: no clocks, no printing.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VERDICTS", "Judgement", "ideal_speedup", "judge", "os_share", "EXPLANATIONS"]

VERDICTS = ("GIL-bound", "parallel", "IO-overlapped", "serialized", "overhead-bound",
            "noisy", "wrong")

#: One line per verdict word: what it means, for the report's legend.
EXPLANATIONS = {
    "GIL-bound": "threads took turns holding the GIL: about one core did the work",
    "parallel": "the workers ran at once on separate cores, near the ideal speedup",
    "IO-overlapped": "the waits overlapped: k waits took about as long as one",
    "serialized": "the work ran one task at a time for a reason other than the GIL "
                  "(one by one by design, or greenlets sharing one OS thread)",
    "overhead-bound": "cores were free, but starting workers and shipping tasks ate the gain",
    "noisy": "other processes took the CPU during the cell even after retries: no verdict",
    "wrong": "an answer differed from the reference, or a task failed",
}

IN_PROCESS_THREADS = frozenset({"threads", "thread_pool"})
NOUNS = {"serial": "task", "threads": "threads", "processes": "processes",
         "mp_pool": "pool processes", "thread_pool": "pool threads",
         "process_pool": "pool processes", "gevent": "greenlets",
         "dask": "dask worker threads", "interpreters": "subinterpreters"}

# Margins chosen for a busy 2-core machine: a parallel cell reaches >= 80% of the
# ideal; a GIL-bound one stays under 1.3 cores however many threads it has.
PARALLEL_EFFICIENCY = 0.8
IO_EFFICIENCY = 0.7
ONE_CORE = 1.3
OVERHEAD_AT_ONE = 0.8


@dataclass(frozen=True)
class Judgement:
    verdict: str
    reason: str


def ideal_speedup(workers: int, cpu_count: int, io_bound: bool) -> float:
    """k tasks on k workers: CPU work can use at most every CPU; waits can all overlap."""
    return float(workers) if io_bound else float(min(workers, cpu_count))


def os_share(workers: int, cpu_count: int, io_bound: bool, executor: str) -> float:
    """The share of a task's wall time the OS queue alone keeps it off a CPU.

    With more CPU-bound workers (OS threads or processes) than CPUs, each gets
    cpu_count / workers of a CPU whether or not there is a GIL.
    """
    if io_bound or executor in ("serial", "gevent") or workers <= cpu_count:
        return 0.0
    return 1.0 - cpu_count / workers


def judge(*, executor: str, workers: int, speedup: float | None, cores_used: float | None,
          correct: bool, io_bound: bool, cpu_count: int, noise: float | None = None,
          noise_limit: float = 0.10, tries: int = 1, error: str | None = None,
          gil_wait: float | None = None, os_wait: float | None = None,
          serial_s: float | None = None, shape: str | None = None,
          loop_stall_s: float | None = None) -> Judgement:
    """The verdict for one cell, with the numbers that led to it.

    ``shape`` ("PxT", or "1x2+2x1" for a mixed cluster) is a dask cell's: its
    threads share their worker process's GIL, its processes do not.
    """
    if error:
        return Judgement("wrong", error)
    if not correct:
        return Judgement("wrong", "an answer differed from the reference")
    if noise is not None and noise > noise_limit:
        return Judgement("noisy", f"other processes used {noise:.0%} of the machine during "
                                  f"the cell, still after {tries} tries")
    noun = NOUNS.get(executor, "workers")
    numbers = f"speedup {speedup:.2f}x on {workers} {noun}, {cores_used:.2f} cores used"
    if executor == "dask" and shape:
        numbers = (f"speedup {speedup:.2f}x on dask {shape} (processes x threads), "
                   f"{cores_used:.2f} cores used")
    judged = _judge_numbers(executor, workers, speedup, cores_used, io_bound, cpu_count,
                            numbers, gil_wait, os_wait, serial_s, shape)
    if loop_stall_s is not None and loop_stall_s >= 1.0:
        return Judgement(judged.verdict, f"{judged.reason}; a task froze its worker's event "
                                         f"loop for {loop_stall_s:.2f} s (no heartbeats)")
    return judged


def _shares_gil(executor: str, shape: str | None, cores_used: float) -> bool:
    """Were the workers threads taking turns on one GIL, by the numbers?"""
    if executor in IN_PROCESS_THREADS:
        return cores_used < ONE_CORE
    if executor == "dask" and shape:
        groups = [tuple(int(x) for x in group.split("x")) for group in shape.split("+")]
        n_processes = sum(p for p, _ in groups)
        most_threads = max(t for _, t in groups)
        # One core per worker process at most: its threads took turns.
        return most_threads > 1 and cores_used < ONE_CORE * n_processes
    return False


def _judge_numbers(executor, workers, speedup, cores_used, io_bound, cpu_count, numbers,
                   gil_wait, os_wait, serial_s, shape) -> Judgement:
    if executor == "serial":
        base = f"{serial_s:.3f} s" if serial_s is not None else "the baseline"
        return Judgement("serialized", f"the baseline: one task at a time by design "
                                       f"({base} a task, {cores_used:.2f} cores used)")
    ideal = ideal_speedup(workers, cpu_count, io_bound)
    good = "IO-overlapped" if io_bound else "parallel"
    if workers == 1:
        if speedup < OVERHEAD_AT_ONE:
            return Judgement("overhead-bound", f"{numbers}: one worker is {1 / speedup:.2f}x "
                                               "slower than a plain call")
        return Judgement(good, f"{numbers} (ideal 1: no overhead to speak of)")
    if io_bound:
        if speedup >= IO_EFFICIENCY * ideal:
            return Judgement(good, f"{numbers}: the waits overlapped (ideal {ideal:.0f})")
        if speedup < ONE_CORE:
            return Judgement("serialized", f"{numbers}: the waits ran one after another")
        return Judgement("overhead-bound", f"{numbers}: below the ideal {ideal:.0f}, "
                                           "lost to starting workers and dispatch")
    if executor == "gevent" and speedup < ONE_CORE:
        return Judgement("serialized", f"{numbers}: greenlets share one OS thread and CPU "
                                       "work never yields; the GIL is not the cause")
    if speedup >= PARALLEL_EFFICIENCY * ideal:
        return Judgement("parallel", f"{numbers} (ideal {ideal:.0f})")
    if _shares_gil(executor, shape, cores_used):
        wait = (f", each thread waited {gil_wait:.0%} of its time for the GIL"
                if gil_wait is not None and gil_wait >= 0.05 else "")
        if os_wait and os_wait >= 0.05:
            wait += f" (and {os_wait:.0%} queued for a CPU)"
        holder = ("the threads of each worker process take turns holding its GIL"
                  if executor == "dask" else "one thread holds the GIL at a time")
        return Judgement("GIL-bound", f"{numbers}{wait}: {holder}")
    return Judgement("overhead-bound", f"{numbers}: below the ideal {ideal:.0f}, lost to "
                                       "starting workers, dispatch or sharing the CPUs")
