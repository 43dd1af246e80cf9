"""The glue between pytest-benchmark and gillab's own measuring.

pytest-benchmark times the rounds; gillab.measure.clocks reads the CPU counters around
them; the figures every benchmark carries (speedup, cores used, correctness) go
into ``benchmark.extra_info``. gevent cells are measured in a patched child by
gillab's compare engine, since this process must never be patched.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from gillab import kernels
from gillab.measure import gevent_cells
from gillab.measure.outcome import CellFailure
from gillab.measure import cell as measure
from gillab.core import stats
from gillab.core.environment import cpu_count, gil_enabled
from gillab.compare.verdict import judge
from gillab.measure.noise import NOISE_LIMIT

@dataclass(frozen=True)
class Timed:
    """What one benchmark ran: each round's return value, and what the clocks said.

    ``wall_s`` is the best round (a busy machine only ever adds time), ``cores_used``
    the CPU seconds of the whole process tree over the wall seconds of all rounds;
    both are None when pytest-benchmark is disabled (plain ``pytest``) and timed nothing.
    """

    rounds: tuple
    wall_s: float | None
    cores_used: float | None
    noise: float | None
    timed_by: str


def run_rounds(benchmark, run, rounds: int) -> Timed:
    """Time ``run()`` for ``rounds`` rounds with pytest-benchmark, here in this process.

    gillab.measure.cell.measure_once reads the CPU and machine-load counters around all the
    rounds, outside pytest-benchmark's timed region (a snapshot scans /proc and would
    otherwise be timed with the work), and computes the share of the machine other
    processes took exactly as compare's noise guard does. It cannot retry like
    measure_cell: pytest-benchmark's fixture runs once per test.
    """
    returned = []

    def one_round():
        out = run()
        returned.append(out)
        return out

    def all_rounds():
        benchmark.pedantic(one_round, rounds=rounds, iterations=1)
        return returned

    measured = measure.measure_once(all_rounds)
    if not benchmark.enabled:
        return Timed(tuple(returned), None, None, None, "nothing (benchmarks disabled)")
    total = benchmark.stats["total"]
    return Timed(measured.tasks, benchmark.stats["min"], measured.cpu_s / total,
                 measured.noise, "pytest-benchmark")


def run_gevent_cell(benchmark, task: kernels.Task, workers: int, *, expected, serial_s: float,
                    io_bound: bool, repeat: int) -> Timed:
    """Measure one gevent cell in a fresh, monkey-patched child, as ``compare`` does.

    The child times its own ``repeat`` runs (gillab.measure.cell.measure_cell); those are the
    cell's figures. pytest-benchmark can only time the child as a whole, start-up
    included, so its one round is an upper bound, comparable between saved runs.
    """
    def measure_in_child():
        # The compare engine's own gevent path, so the suite and `gillab compare`
        # measure gevent the same way. Noise is reported, never retried (retries
        # pause a second each, and the suite has a time budget).
        ((_, reply),) = gevent_cells.measure_gevent_cells(
            task, [workers], repeat=repeat if benchmark.enabled else 1,
            noise_limit=math.inf, timeout_s=max(60.0, 40 * workers * serial_s))
        return reply

    reply = benchmark.pedantic(measure_in_child, rounds=1, iterations=1)
    if isinstance(reply, CellFailure):  # the child could not measure the cell at all
        raise AssertionError(f"gevent cell failed: {reply.message}")
    measured = reply.measurement
    tasks = tuple(tuple(r.tasks) for r in measured.repeats)
    wall = sum(r.wall_s for r in measured.repeats)
    cores = sum(r.cpu_s for r in measured.repeats) / wall if wall > 0 else None
    best = stats.minimum(r.wall_s for r in measured.repeats)
    return Timed(tasks, best, cores, measured.noise,
                 "the patched gevent child (pytest-benchmark's time includes its start-up)")


def record(benchmark, timed: Timed, *, workers: int, serial_s: float, correct: bool,
           n_tasks: int | None = None, **fields) -> None:
    """Write the figures every benchmark carries into ``benchmark.extra_info``.

    speedup = n_tasks x T(one serial task) / T(cell), and a cell runs one task per
    worker unless told otherwise: workers x T(one serial task) / T(cell), weak
    scaling as DESIGN.md defines it. cores_used = CPU seconds of the whole run / wall.
    """
    n_tasks = workers if n_tasks is None else n_tasks
    info = benchmark.extra_info
    info.update(fields)
    info.update(workers=workers, n_tasks=n_tasks, correct=correct, serial_s=serial_s,
                wall_s=timed.wall_s, speedup=None, cores_used=timed.cores_used,
                noise=timed.noise, timed_by=timed.timed_by)
    if timed.wall_s:
        info["speedup"] = n_tasks * serial_s / timed.wall_s


def check_tasks(timed: Timed, expected) -> tuple[bool, str | None]:
    """Every TaskClock of every round answered ``expected``, with no error."""
    tasks = [t for r in timed.rounds for t in r]
    error = next((t.error for t in tasks if t.error), None)
    correct = bool(tasks) and error is None and all(t.value == expected for t in tasks)
    return correct, error


def record_cell(benchmark, timed: Timed, *, executor: str, workers: int, serial_s: float,
                expected, io_bound: bool, **fields) -> bool:
    """record() for a cell of k tasks on k workers, with the lab's verdict; returns correct."""
    correct, error = check_tasks(timed, expected)
    record(benchmark, timed, workers=workers, serial_s=serial_s, correct=correct,
           executor=executor, **fields)
    info = benchmark.extra_info
    if info["speedup"] is not None or error or not correct:
        verdict = judge(executor=executor, workers=workers, speedup=info["speedup"],
                        cores_used=info["cores_used"], correct=correct, io_bound=io_bound,
                        cpu_count=cpu_count(), noise=timed.noise, noise_limit=NOISE_LIMIT,
                        error=error, serial_s=serial_s,
                        # as measured now, in this process: a free-threaded build's GIL
                        # may be off, and then busy threads must show a speedup too
                        gil_enabled=gil_enabled())
        info.update(verdict=verdict.verdict, reason=verdict.reason)
    if error:
        info["error"] = error
    return correct
