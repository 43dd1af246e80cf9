"""One cell's numbers and verdict: measured repeats in, a Cell record out.

The compare engine measures; this module turns what it measured into figures
(speedup, cores, waits, where the time went), asks gillab.compare.verdict for the word, and
builds the record. It reads no clocks and prints nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gillab import kernels
from gillab.core import stats
from gillab.core.registry import spec as executor_spec
from gillab.measure.cell import CellMeasurement
from gillab.measure.outcome import CellFailure
from gillab.compare.records import Cell
from gillab.compare.verdict import MARGIN, Losses, ideal_speedup, judge, os_share, where_the_time_went

__all__ = ["Subject", "Figures", "figures", "verdict_of", "settled_for", "build_cell",
           "adopt_baseline", "SERIAL_SPREAD"]


@dataclass
class Subject:
    """A kernel (or target) sized for this run, with the answer it must give."""

    name: str
    task: kernels.Task
    io_bound: bool
    n: int | None = None
    seconds: float | None = None
    expected: object = None
    checked: bool = True           # False for a target: answers are compared to serial's
    serial_s: float | None = None  # median wall of the serial cell: the speedup's baseline
    serial_tasks: tuple = ()       # the serial cell's TaskClocks: each task's own clocks
    serial_spread: float | None = None
    extra: dict = field(default_factory=dict)
    #: The run's GIL as measured (env["gil_enabled"]), a fact the verdict needs: without
    #: a GIL, threads that keep every core busy may still run no faster (contended).
    gil_enabled: bool = True


@dataclass(frozen=True)
class Figures:
    """The numbers of one cell (or of one repeat of it), before any verdict."""

    wall_s: float
    cpu_s: float
    cores: float
    speedup: float | None
    speedup_all: tuple            # one per repeat paired with a serial run; () unpaired
    gil_wait: float
    os_wait: float
    task_slowdown: float | None
    losses: Losses | None


def serial_task(subject: Subject) -> tuple[float, float] | None:
    """(median wall, median CPU) of one serial task, or None without a baseline."""
    if not subject.serial_tasks:
        return None
    return (stats.median(t.wall_s for t in subject.serial_tasks),
            stats.median(t.cpu_s for t in subject.serial_tasks))


def paired_speedups(workers: int, repeats) -> tuple:
    """k x T(serial) / T(cell) for each repeat measured next to a serial run of its own
    (RepeatResult.before); () unless every repeat has one."""
    if not repeats or any(r.before is None or r.wall_s <= 0 for r in repeats):
        return ()
    return tuple(workers * r.before / r.wall_s for r in repeats)


def figures(subject: Subject, executor: str, workers: int, repeats, n_cpus: int) -> Figures:
    """Speedup, cores, waits and where the time went, from the given repeats.

    Paired repeats (each after a serial run of its own) give a speedup per pair, and
    the median of those: a drift of the machine moves both sides of each pair alike.
    Otherwise the speedup divides the subject's serial cell.
    """
    wall = stats.median(r.wall_s for r in repeats)
    cpu = stats.median(r.cpu_s for r in repeats)
    tasks = [t for r in repeats for t in r.tasks]
    io_bound = subject.io_bound
    baseline = executor_spec(executor).baseline
    pairs = () if baseline else paired_speedups(workers, repeats)
    if pairs:
        speedup = stats.median(pairs)
    else:
        speedup = (workers * subject.serial_s / wall
                   if subject.serial_s is not None and wall > 0 else None)
    queued = [t.os_queue for t in tasks]
    modelled = os_share(workers, n_cpus, io_bound, executor)
    if all(q is not None for q in queued):
        os_wait = stats.mean(queued)            # measured: time runnable but queued
    else:
        os_wait = modelled

    def gil_share(t) -> float:
        """Off-CPU share of a task beyond the OS queue: waiting for the GIL (or, for a
        greenlet, for the one OS thread)."""
        return max(0.0, t.off_cpu - (t.os_queue if t.os_queue is not None else modelled))

    # The task that waited longest, median over repeats: two cy_gil threads race for
    # the GIL after the first call returns, so the first thread reads 0% or 50% by
    # chance (measured here), while the second always waits the whole call. The
    # longest wait is the figure that does not depend on that race.
    gil_wait = stats.median(max(gil_share(t) for t in r.tasks) for r in repeats)
    serial = serial_task(subject)
    task_cpu = stats.median(t.cpu_s for t in tasks)
    slowdown = losses = None
    if serial is not None and not io_bound and serial[1] > 1e-4 and not baseline:
        slowdown = task_cpu / serial[1]
        losses = where_the_time_went(
            workers=workers, cpu_count=n_cpus, cell_wall_s=wall,
            last_task_wall_s=stats.median(max(t.wall_s for t in r.tasks) for r in repeats),
            task_cpu_s=task_cpu, serial_cpu_s=serial[1], serial_wall_s=serial[0])
    return Figures(wall, cpu, cpu / wall if wall > 0 else 0.0, speedup, pairs,
                   gil_wait, os_wait, slowdown, losses)


def verdict_of(subject: Subject, executor: str, workers: int, fig: Figures, noise_limit: float,
                n_cpus: int, *, correct=True, error=None, noise=None, tries=1,
                gil_held=None, extra: dict | None = None, nudge: float = 0.0):
    """judge() on a cell's figures; ``nudge`` moves cores and speedup by that share of the
    ideal, to see whether a figure sits on a boundary."""
    extra = extra or {}
    ideal = ideal_speedup(workers, n_cpus, subject.io_bound)
    shift = nudge * ideal
    return judge(executor=executor, workers=workers,
                 speedup=None if fig.speedup is None else fig.speedup + shift,
                 cores_used=fig.cores + shift, correct=correct, io_bound=subject.io_bound,
                 cpu_count=n_cpus, noise=noise, noise_limit=noise_limit, tries=tries,
                 error=error, gil_wait=fig.gil_wait, os_wait=fig.os_wait,
                 serial_s=fig.wall_s if executor_spec(executor).baseline else subject.serial_s,
                 shape=extra.get("shape"), loop_stall_s=extra.get("loop_stall_s"),
                 losses=fig.losses, task_slowdown=fig.task_slowdown,
                 baseline_spread=subject.serial_spread,
                 extra_reason=extra.get("extra_reason"), gil_enabled=subject.gil_enabled)


#: The serial baseline gets more repeats while its runs differ by more than this.
SERIAL_SPREAD = 0.10


def settled_for(subject: Subject, executor: str, workers: int, noise_limit: float, n_cpus: int):
    """For measure_cell: are a cell's repeats clear enough to stop? Clear when every
    repeat leads to the same verdict, and a lone repeat is not on a boundary."""
    baseline = executor_spec(executor).baseline

    def settled(measured: CellMeasurement) -> bool:
        repeats = measured.repeats
        if baseline:  # the run every speedup divides: steady enough?
            return measured.spread <= SERIAL_SPREAD
        words = {verdict_of(subject, executor, workers,
                             figures(subject, executor, workers, [r], n_cpus), noise_limit,
                             n_cpus).verdict for r in repeats}
        if len(repeats) == 1:
            fig = figures(subject, executor, workers, repeats, n_cpus)
            words |= {verdict_of(subject, executor, workers, fig, noise_limit, n_cpus,
                                  nudge=d).verdict for d in (-MARGIN, MARGIN)}
        return len(words) == 1
    return settled


def _correct(subject: Subject, tasks) -> tuple[bool, str | None]:
    """Whether every task gave the subject's answer (a target: the same answer as every
    other task, and serial's), and the first task error."""
    error = next((t.error for t in tasks if t.error), None)
    if subject.checked:
        return error is None and all(t.value == subject.expected for t in tasks), error
    correct = error is None and all(t.value == tasks[0].value for t in tasks)
    if correct and subject.expected is not None:
        correct = tasks[0].value == subject.expected
    return correct, error


def build_cell(subject: Subject, executor: str, workers: int, measured, noise_limit: float,
                n_cpus: int, *, explain=None, **extra) -> Cell:
    """A CellMeasurement (or a CellFailure) -> a Cell with its verdict. ``extra`` carries
    executor-specific Cell fields (a dask cell's shape, loop stall, costs, ...);
    ``explain(gil_wait, task_slowdown=...)``, if given, is the executor's own clause."""
    spec = executor_spec(executor)  # an unknown executor is an error here too
    common = dict(kernel=subject.name, executor=executor, workers=workers, n=subject.n,
                  seconds=subject.seconds, serial_s=subject.serial_s,
                  io_bound=subject.io_bound,
                  calls_per_task=subject.task.calls if subject.task.target else None, **extra)
    if isinstance(measured, CellFailure):  # the cell could not be measured at all
        return Cell(**common, wall_s=None, verdict="wrong", reason=measured.message,
                    error=measured.message)
    tasks = [t for r in measured.repeats for t in r.tasks]
    correct, error = _correct(subject, tasks)
    fig = figures(subject, executor, workers, measured.repeats, n_cpus)
    extra_reason = (explain(fig.gil_wait, task_slowdown=fig.task_slowdown)
                    if explain is not None and not subject.io_bound else None)
    settled = settled_for(subject, executor, workers, noise_limit, n_cpus)(measured)
    verdict = verdict_of(subject, executor, workers, fig, noise_limit, n_cpus, correct=correct,
                          error=error, noise=measured.noise, tries=measured.tries,
                          extra={**extra, "extra_reason": extra_reason})
    reason = verdict.reason
    # The baseline's own spread is in its record; its verdict is fixed by design.
    uncertain = (not settled and not spec.baseline
                 and verdict.verdict not in ("wrong", "noisy"))
    if uncertain:
        reason += (f" (uncertain: its {len(measured.repeats)} runs, spread "
                   f"{measured.spread:.0%}, do not all lead to this verdict)")
    if spec.baseline:
        common["serial_s"] = fig.wall_s
    elif fig.speedup_all:  # judged against the serial runs taken next to its own
        common["serial_s"] = stats.median(r.before for r in measured.repeats)
    return Cell(**common, wall_s=fig.wall_s,
                wall_s_all=tuple(r.wall_s for r in measured.repeats), cpu_s=fig.cpu_s,
                cores_used=fig.cores, speedup=1.0 if spec.baseline else fig.speedup,
                speedup_all=fig.speedup_all, paired=bool(fig.speedup_all),
                speedup_spread=stats.spread(fig.speedup_all) if fig.speedup_all else None,
                correct=correct, gil_wait=fig.gil_wait, gil_held=measured.gil_held,
                noise=measured.noise, verdict=verdict.verdict, reason=reason,
                unbacked=verdict.unbacked,
                ideal=None if spec.baseline else ideal_speedup(workers, n_cpus,
                                                               subject.io_bound),
                os_wait=fig.os_wait, tries=measured.tries, error=error,
                spread=measured.spread, uncertain=uncertain,
                task_slowdown=fig.task_slowdown,
                losses=fig.losses.to_dict() if fig.losses else None,
                main_loss=main_loss(fig, executor, workers, n_cpus, subject.io_bound))


def main_loss(fig: Figures, executor: str, workers: int, n_cpus: int,
               io_bound: bool) -> str | None:
    """The largest part of a missing speedup, named for the table; None when nothing
    worth naming is missing (under 10% of the ideal)."""
    if fig.losses is None or fig.speedup is None or executor_spec(executor).baseline:
        return None
    if fig.speedup >= 0.9 * ideal_speedup(workers, n_cpus, io_bound):
        return None
    return fig.losses.main


def adopt_baseline(subject: Subject, cell: Cell, measured, noise_limit: float, n_cpus: int,
                   extra: dict) -> Cell:
    """Keep the serial cell's figures as the subject's baseline; for a --target, its
    answer becomes the reference and its CPU use tells CPU work from waiting."""
    if not isinstance(measured, CellMeasurement) or cell.wall_s is None or not cell.correct:
        return cell  # no baseline: later cells get no speedup, never a made-up one
    subject.serial_s = cell.wall_s
    subject.serial_tasks = tuple(t for r in measured.repeats for t in r.tasks)
    subject.serial_spread = measured.spread
    if subject.checked:
        return cell
    subject.expected = measured.repeats[0].tasks[0].value
    subject.io_bound = (cell.cores_used or 0) < 0.5
    return build_cell(subject, "serial", 1, measured, noise_limit, n_cpus, **extra)


