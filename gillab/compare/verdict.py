"""Numbers -> a verdict word from the fixed vocabulary, and its reason in numbers.

The CPU evidence leads. Cores used (CPU seconds of the whole cell / its wall) and
each task's own clocks cannot be fooled by a slow baseline; a wall-clock speedup
can. So a CPU cell is ``parallel`` only if its cores say the work overlapped, and a
speedup the cores cannot account for is named as a slow baseline, never taken at
its word. Where the speedup falls short of the ideal, ``where_the_time_went``
splits the gap into measured parts (slower tasks, waits, the executor) and the
reason names the largest.

Without a GIL (a free-threaded build with its GIL off, told to judge() as the fact
``gil_enabled=False``) busy cores no longer prove scaling: threads that fight over
objects they share keep every core busy and run no faster than one. There a cell of
threads must show it in its speedup too, or it is ``contended``.

Pure functions over plain data: no clocks, no printing. Executors are judged by
their traits (gillab.core.registry), not their names.
"""
from __future__ import annotations

from dataclasses import dataclass

from gillab.core.registry import ExecutorSpec, spec as executor_spec
from gillab.measure.noise import NOISE_LIMIT

__all__ = ["VERDICTS", "EXPLANATIONS", "Judgement", "Losses", "ideal_speedup", "judge",
           "os_share", "where_the_time_went", "parallel_cores", "unbacked_speedup",
           "contended_speedup", "shares_memory"]

VERDICTS = ("GIL-bound", "parallel", "IO-overlapped", "serialized", "overhead-bound",
            "noisy", "wrong", "baseline", "overhead", "contended")
#: Words only k >= 2 workers can earn: one worker has nothing to run beside.
MANY_WORKER_WORDS = ("GIL-bound", "parallel", "IO-overlapped", "serialized", "overhead-bound",
                     "contended")

#: One line per verdict word: what it means, for the report's legend.
EXPLANATIONS = {
    "GIL-bound": "threads took turns holding the GIL: about one core did the work",
    "parallel": "the workers ran at once on separate cores (cores used near the ideal; "
                "without a GIL, the speedup too)",
    "IO-overlapped": "the waits overlapped: k waits took about as long as one",
    "serialized": "the work ran one task at a time for a reason other than the GIL "
                  "(one by one by design, or greenlets or coroutines sharing one OS "
                  "thread)",
    "overhead-bound": "the gain was lost to a cost other than the GIL: slower tasks in "
                      "their workers, start-up, dispatch or partial overlap (the reason "
                      "names the largest part)",
    "noisy": "other processes took the CPU during the cell even after retries: no verdict",
    "wrong": "an answer differed from the reference, or a task failed",
    "baseline": "the serial run: one task, a plain call; every speedup divides this",
    "overhead": "one worker: what running the task in that worker cost beside a plain "
                "call (nothing ran at once, so no word about parallelism applies)",
    "contended": "no GIL, and the threads kept every core busy, yet ran little or no "
                 "faster than one: they fought over objects they share (reference "
                 "counts, per-object locks, cache lines)",
}

# Margins chosen for a busy 2-core machine. A parallel CPU cell used >= 80% of the
# ideal in cores (and reached 80% of it in speedup); a GIL-bound one stays under 1.3
# cores however many threads it has.
PARALLEL_EFFICIENCY = 0.8
IO_EFFICIENCY = 0.7
ONE_CORE = 1.3
OVERHEAD_AT_ONE = 0.8
#: A speedup this much above the cores used is not backed by CPU: a slow baseline.
UNBACKED = 1.2
#: A CPU speedup this far above the ideal (min(k, CPUs)) is no speedup: a slow baseline.
ABOVE_IDEAL = 1.1
#: A boundary this close (share of the ideal) to a figure makes a lone figure unsure.
MARGIN = 0.05
#: Without a GIL, threads whose cores reached parallel_cores are contended when their
#: speedup is at most this: no scaling at all (CPython's Tools/ftscalingbench marks a
#: speedup <= 1.1x red, "not scaling") ...
CONTENDED_SPEEDUP = 1.1
#: ... or at most this share of the cores they used: more than half of the CPU they
#: burned did no work of the task's (ftscalingbench's yellow band, speedup under half
#: the threads, is this with the cores at the thread count).
CONTENDED_SHARE = 0.5


@dataclass(frozen=True)
class Judgement:
    verdict: str
    reason: str
    unbacked: bool = False  # a wall-clock speedup the cores cannot account for


@dataclass(frozen=True)
class Losses:
    """Where the gap between a cell's speedup and its ideal went, in shares of the cell's
    wall time: ``slower_tasks`` (each task used more CPU than the serial task),
    ``waiting`` (tasks waited: for the GIL, or queued by the OS beyond what sharing the
    CPUs explains), ``executor`` (the cell's wall beyond its tasks: start-up, dispatch,
    moving results). Any part may be negative (a task ran faster than serially)."""

    slower_tasks: float
    waiting: float
    executor: float

    @property
    def main(self) -> str:
        parts = {"slower_tasks": self.slower_tasks, "waiting": self.waiting,
                 "executor": self.executor}
        return max(parts, key=parts.get)

    def to_dict(self) -> dict:
        return {"slower_tasks": round(self.slower_tasks, 4), "waiting": round(self.waiting, 4),
                "executor": round(self.executor, 4)}


def ideal_speedup(workers: int, cpu_count: int, io_bound: bool) -> float:
    """k tasks on k workers: CPU work can use at most every CPU; waits can all overlap."""
    return float(workers) if io_bound else float(min(workers, cpu_count))


def parallel_cores(workers: int, cpu_count: int) -> float:
    """Cores a CPU cell must use to be called parallel."""
    return PARALLEL_EFFICIENCY * ideal_speedup(workers, cpu_count, io_bound=False)


def os_share(workers: int, cpu_count: int, io_bound: bool, executor: str) -> float:
    """The share of a task's wall time the OS queue alone keeps it off a CPU.

    With more CPU-bound workers (OS threads or processes) than CPUs, each gets
    cpu_count / workers of a CPU whether or not there is a GIL.
    """
    spec = executor_spec(executor)
    if io_bound or spec.baseline or spec.one_os_thread or workers <= cpu_count:
        return 0.0
    return 1.0 - cpu_count / workers


def where_the_time_went(*, workers: int, cpu_count: int, cell_wall_s: float,
                        last_task_wall_s: float, task_cpu_s: float, serial_cpu_s: float,
                        serial_wall_s: float) -> Losses:
    """Split a CPU cell's lost time into measured parts, as shares of its wall.

    k tasks ideally take k/ideal serial tasks' time. What the cell took beyond that
    is: each task's extra CPU (it ran slower in its worker than alone), the waits of
    the task that finished last beyond the share the OS must queue it when workers
    outnumber CPUs, and the executor's own time (cell wall beyond that task). Task
    walls count from the moment a task could have run, so a wait before a task
    started is a wait, not the executor's. ``task_cpu_s`` is the median task's CPU.
    """
    if cell_wall_s <= 0:
        return Losses(0.0, 0.0, 0.0)
    turns = max(1.0, workers / min(workers, cpu_count))  # tasks each CPU runs in a row
    slower = turns * (task_cpu_s - serial_cpu_s)
    waiting = last_task_wall_s - turns * task_cpu_s
    # Serial's own off-CPU time (rarely zero) is part of the ideal, not a loss.
    waiting -= turns * max(0.0, serial_wall_s - serial_cpu_s)
    executor = cell_wall_s - last_task_wall_s
    return Losses(slower / cell_wall_s, waiting / cell_wall_s, executor / cell_wall_s)


def unbacked_speedup(speedup: float | None, cores_used: float | None, io_bound: bool,
                     ideal: float | None = None) -> bool:
    """A CPU cell whose wall-clock speedup the cores it used cannot account for (well
    above them, or above the ideal itself): the serial baseline was slow (or noisy),
    not the cell fast."""
    if io_bound or speedup is None or cores_used is None:
        return False
    above_ideal = ideal is not None and speedup > ABOVE_IDEAL * ideal
    return above_ideal or speedup > UNBACKED * cores_used + 0.1


def contended_speedup(speedup: float, cores_used: float) -> bool:
    """A speedup that cores this busy cannot have come from without a fight: at most
    CONTENDED_SPEEDUP, or at most CONTENDED_SHARE of the cores used."""
    return speedup <= max(CONTENDED_SPEEDUP, CONTENDED_SHARE * cores_used)


def shares_memory(spec: ExecutorSpec, shape: str | None = None) -> bool:
    """Whether some workers are threads of one process, so every object is shared
    between them. The registry's ``shares_gil`` says it: threads of one process share
    its GIL and, on a build without one, still share its objects (trait ``shares_gil``
    reads "shares the process" there). A dask shape shares within a worker process of
    two threads or more."""
    if spec.baseline:
        return False
    if spec.shaped:
        return bool(shape) and _dask_gil_groups(shape)[1] > 1
    return spec.shares_gil


def _numbers(executor, workers, speedup, cores_used, shape) -> str:
    speed = f"speedup {speedup:.2f}x" if speedup is not None else "no speedup (no baseline)"
    if shape:
        return (f"{speed} on dask {shape} (processes x threads), "
                f"{cores_used:.2f} cores used")
    return (f"{speed} on {workers} {executor_spec(executor).workers_noun(workers)}, "
            f"{cores_used:.2f} cores used")


def judge(*, executor: str, workers: int, speedup: float | None, cores_used: float | None,
          correct: bool, io_bound: bool, cpu_count: int, noise: float | None = None,
          noise_limit: float = NOISE_LIMIT, tries: int = 1, error: str | None = None,
          gil_wait: float | None = None, os_wait: float | None = None,
          serial_s: float | None = None, shape: str | None = None,
          loop_stall_s: float | None = None, losses: Losses | None = None,
          task_slowdown: float | None = None, baseline_spread: float | None = None,
          extra_reason: str | None = None, gil_enabled: bool = True) -> Judgement:
    """The verdict for one cell, with the numbers that led to it.

    ``shape`` ("PxT", or "1x2+2x1" for a mixed cluster) is a dask cell's: its
    threads share their worker process's GIL, its processes do not. ``losses`` (from
    where_the_time_went) and ``task_slowdown`` let the reason name where a missing
    speedup went; ``extra_reason`` is a clause an executor adds (dask's own threads).
    ``gil_enabled`` is the measured interpreter's GIL (env["gil_enabled"], as measured
    in the run, never guessed from its name): False, and threads of one process are
    judged by speedup and cores together (``contended``).
    """
    if error:
        return Judgement("wrong", error)
    if not correct:
        return Judgement("wrong", "an answer differed from the reference")
    if noise is not None and noise > noise_limit:
        return Judgement("noisy", f"other processes used {noise:.0%} of the machine during "
                                  f"the cell, still after {tries} tries")
    spec = executor_spec(executor)  # an unknown executor is an error, never judged as another
    numbers = _numbers(executor, workers, speedup, cores_used, shape)
    judged = _judge_numbers(spec, workers, speedup, cores_used, io_bound, cpu_count, numbers,
                            gil_wait, os_wait, serial_s, shape, losses, task_slowdown,
                            gil_enabled)
    reason = judged.reason
    ideal = ideal_speedup(workers, cpu_count, io_bound)
    unbacked = not spec.baseline and unbacked_speedup(speedup, cores_used, io_bound, ideal)
    if unbacked:
        spread = (f", whose runs spread {baseline_spread:.0%}"
                  if baseline_spread is not None and baseline_spread >= 0.05 else "")
        above = f", above the ideal {ideal:.0f}," if speedup > ABOVE_IDEAL * ideal else ""
        reason += (f"; the {speedup:.2f}x wall-clock speedup{above} is not backed by CPU "
                   f"({cores_used:.2f} cores): the serial baseline was slow{spread}")
    if extra_reason:
        reason += f"; {extra_reason}"
    if loop_stall_s is not None and loop_stall_s >= 1.0:
        reason += f"; a task froze its worker's event loop for {loop_stall_s:.2f} s (no heartbeats)"
    return Judgement(judged.verdict, reason, unbacked)


def _dask_gil_groups(shape: str) -> tuple[int, int]:
    """(worker processes, most threads in one of them) of a dask shape like "1x2+2x1"."""
    groups = [tuple(int(x) for x in group.split("x")) for group in shape.split("+")]
    return sum(p for p, _ in groups), max(t for _, t in groups)


def _turn_takers(spec: ExecutorSpec, shape: str | None, cores_used: float) -> str | None:
    """Why the workers could use only about one core each group, if they could: "gil"
    (threads of one process), "thread" (greenlets or coroutines on one OS thread), or
    None."""
    if spec.one_os_thread:
        return "thread"
    if spec.shaped and shape:
        n_processes, most_threads = _dask_gil_groups(shape)
        if most_threads > 1 and cores_used < ONE_CORE * n_processes:
            return "gil"
        return None
    if spec.shares_gil and not spec.baseline:
        return "gil" if cores_used < ONE_CORE else None
    return None


def _loss_clause(losses: Losses | None, task_slowdown: float | None, gil_wait, os_wait,
                 noun: str, contention: bool = False) -> str:
    """The largest measured part of a missing speedup, in words and numbers.
    ``contention``: the workers are threads with no GIL between them, so a task that
    ran slower or waited most likely met the others on an object they share."""
    if losses is None:
        return "lost to slower tasks, waits or the executor (not measured apart)"
    main = losses.main
    share = getattr(losses, main)
    if main == "slower_tasks" and task_slowdown is not None:
        where = ("without a GIL, threads that touch one object slow each other down: "
                 "reference counts, per-object locks, cache lines; compare processes, which "
                 "share nothing" if contention else "shared caches, memory, the allocator")
        return (f"each task used {task_slowdown:.2f}x the CPU it needs serially ({share:.0%} "
                f"of the cell): the task ran slower in its worker ({where}), not start-up "
                f"or dispatch")
    if main == "waiting":
        parts = []
        if gil_wait is not None and gil_wait >= 0.05:
            # Off-CPU beyond the OS queue: with the GIL off, that is a lock, not the GIL.
            parts.append(f"{gil_wait:.0%} waiting off-CPU (a lock: the GIL is off)"
                         if contention else f"{gil_wait:.0%} waiting for the GIL")
        if os_wait is not None and os_wait >= 0.05:
            parts.append(f"{os_wait:.0%} queued for a CPU")
        what = " and ".join(parts) or "waiting"
        return f"the {noun} spent {what} ({share:.0%} of the cell)"
    return (f"{share:.0%} of the cell's wall time was outside the tasks: starting "
            f"workers, dispatch and moving results")


def _judge_numbers(spec, workers, speedup, cores_used, io_bound, cpu_count, numbers,
                   gil_wait, os_wait, serial_s, shape, losses, task_slowdown,
                   gil_enabled=True) -> Judgement:
    if spec.baseline:
        base = f"{serial_s:.3f} s a task" if serial_s is not None else "one task"
        return Judgement("baseline", f"the serial run: every speedup divides this ({base}, "
                                     f"{cores_used:.2f} cores used)")
    if workers == 1:
        return _judge_one_worker(spec, speedup, numbers, io_bound, losses, task_slowdown,
                                 gil_wait, os_wait)
    ideal = ideal_speedup(workers, cpu_count, io_bound)
    if io_bound:
        return _judge_io(workers, speedup, ideal, numbers)
    # CPU work on k >= 2 workers: the cores decide first.
    need = parallel_cores(workers, cpu_count)
    # Without a GIL, threads of one process share every object: busy cores prove nothing
    # alone. (On one CPU, fighting cannot be told from taking turns: ideal 1.)
    contention = not gil_enabled and shares_memory(spec, shape)
    lost = _loss_clause(losses, task_slowdown, gil_wait, os_wait, spec.noun, contention)
    if cores_used >= need:
        fought = (_judge_busy_without_gil(speedup, cores_used, numbers, spec.noun,
                                          task_slowdown) if contention and ideal >= 2 else None)
        if fought is not None:
            return fought
        if speedup is None or speedup >= PARALLEL_EFFICIENCY * ideal:
            return Judgement("parallel", f"{numbers} (ideal {ideal:.0f})")
        return Judgement("overhead-bound",
                         f"{numbers}: the cores were busy but the wall time did not drop "
                         f"(ideal {ideal:.0f}): " + lost)
    turns = _turn_takers(spec, shape, cores_used)
    if turns == "thread":
        return Judgement("serialized", f"{numbers}: {spec.noun} share one OS thread and "
                                       "CPU work never yields; the GIL is not the cause")
    if turns == "gil" and not gil_enabled:
        return Judgement("serialized", f"{numbers}: the GIL is off, yet the {spec.noun} ran "
                                       "about one at a time: they waited on each other (a "
                                       "lock, or an object they share), not on a GIL")
    if turns == "gil":
        wait = (f", a thread waited up to {gil_wait:.0%} of its time for the GIL"
                if gil_wait is not None and gil_wait >= 0.05 else "")
        if os_wait and os_wait >= 0.05:
            wait += f" (and {os_wait:.0%} queued for a CPU)"
        holder = ("the threads of each worker process take turns holding its GIL"
                  if spec.shaped else "one thread holds the GIL at a time")
        return Judgement("GIL-bound", f"{numbers}{wait}: {holder}")
    if (cores_used < ONE_CORE and losses is not None and losses.main == "waiting"
            and spec.processes):
        return Judgement("serialized", f"{numbers}: the {spec.noun} waited on each other, "
                                       "not on a GIL (each has its own): " + lost)
    return Judgement("overhead-bound",
                     f"{numbers}, short of the {need:.1f} cores parallel work would use "
                     f"(ideal {ideal:.0f}): " + lost)


def _judge_busy_without_gil(speedup, cores_used, numbers, noun,
                            task_slowdown) -> Judgement | None:
    """Threads with no GIL between them that kept the cores busy: ``contended`` if their
    speedup says the cores did little of the task's work, None if it does not."""
    if speedup is None:
        return Judgement("overhead-bound",
                         f"{numbers}: no serial run to compare with, and without a GIL busy "
                         "cores alone do not show the work scaled (threads fighting over "
                         "objects they share keep every core busy too)")
    if not contended_speedup(speedup, cores_used):
        return None
    slower = (f", each task using {task_slowdown:.2f}x the CPU it needs serially"
              if task_slowdown is not None and task_slowdown >= 1.05 else "")
    return Judgement("contended",
                     f"{numbers}{slower}: {cores_used:.2f} cores busy yet {speedup:.2f}x: the "
                     f"{noun} fought over objects they share (reference counts, per-object "
                     "locks, cache lines), not a GIL (it is off); processes, which share "
                     "nothing, show whether the work itself scales")


def _judge_one_worker(spec, speedup, numbers, io_bound, losses, task_slowdown, gil_wait,
                      os_wait) -> Judgement:
    """One worker runs nothing beside anything: what did running the task there cost?"""
    where = f"running the task in {spec.one_noun}"
    if speedup is None or speedup <= 0:
        return Judgement("overhead", f"{numbers}: no serial run to compare {where} with")
    cost = 1 / speedup - 1
    if cost >= 0:
        said = f"{where} cost {cost:.0%} beside a plain call"
    else:
        said = f"{where} took {-cost:.0%} less time than a plain call"
    if speedup < OVERHEAD_AT_ONE and not io_bound:
        said += ": " + _loss_clause(losses, task_slowdown, gil_wait, os_wait,
                                    spec.workers_noun(1))
    return Judgement("overhead", f"{said} ({numbers})")


def _judge_io(workers, speedup, ideal, numbers) -> Judgement:
    if speedup is None:
        return Judgement("overhead-bound", f"{numbers}: no baseline to judge the waits by")
    if speedup >= IO_EFFICIENCY * ideal:
        return Judgement("IO-overlapped", f"{numbers}: the waits overlapped (ideal {ideal:.0f})")
    if speedup < ONE_CORE:
        return Judgement("serialized", f"{numbers}: the waits ran one after another")
    return Judgement("overhead-bound", f"{numbers}: below the ideal {ideal:.0f}, "
                                       "lost to starting workers and dispatch")
