"""The compare engine: plan the matrix, measure each cell, judge it, build records.

Data flows one way: kernel -> executor -> measurement -> records -> verdict. The
engine reports progress through callbacks and never prints; only gillab.measure
reads clocks.
"""
from __future__ import annotations

import functools
import pickle
import statistics
import subprocess
import sys
from dataclasses import dataclass, field

from gillab import kernels
from gillab.kernels import DEFAULT_P
from gillab.environment import collect_env, cpu_count
from gillab.executors import (EXECUTORS, IN_PROCESS, PER_RUN_STARTUP, PROCESS_EXECUTORS,
                              WorkerFailed, open_executor)
from gillab.measure import (CellMeasurement, PeakMemory, calibrate_n, measure_cell,
                            measure_startup, tree_pss_mb)
from gillab.results import Cell, CompareRun
from gillab.verdict import ideal_speedup, judge, os_share

__all__ = ["Plan", "run_compare", "plan_cells", "Progress", "measure_gevent_cells",
           "measure_lesson_costs"]


@dataclass(frozen=True)
class Plan:
    """What to measure. ``target`` ("module:func") replaces the kernels when given."""

    kernels: tuple = tuple(kernels.names())
    executors: tuple = EXECUTORS
    workers: tuple = (1, 2, 4)
    repeat: int = 3
    target_s: float = 0.3
    p: int = DEFAULT_P
    target: str | None = None
    noise_limit: float = 0.10
    max_tries: int = 3
    cost: bool = False                 # also measure start-up, memory and dispatch
    start_methods: tuple = (None,)     # process executors run once per start method
    dask_shapes: tuple | None = None   # ("2x1", "1x2"); None: every shape of each k
    dask_scheduler: str | None = None  # an existing cluster instead of a local one
    dask_config: str | None = None     # gillab.dask_cells.CONFIGS; None: its default

    @property
    def subjects(self) -> tuple:
        return (self.target,) if self.target else self.kernels


class Progress:
    """Callbacks the engine calls; the CLI draws them. The default draws nothing."""

    def start(self, total_cells: int) -> None: ...
    def step(self, label: str) -> None: ...
    def cell_done(self, cell: Cell) -> None: ...


def plan_cells(plan: Plan) -> list[tuple[str, str, int, str | None]]:
    """Every (subject, executor, workers, start method) to run, in order.

    Serial runs once, at 1 worker, first for each subject: it is the baseline
    every speedup divides. Process executors run once per start method asked for.
    """
    cells = []
    for subject in plan.subjects:
        cells.append((subject, "serial", 1, None))
        for executor in plan.executors:
            if executor == "serial":
                continue
            if executor == "dask":
                cells.extend((subject, "dask", k, None) for k in _dask_worker_counts(plan))
                continue
            methods = plan.start_methods if executor in PROCESS_EXECUTORS else (None,)
            cells.extend((subject, executor, w, m) for m in methods for w in plan.workers)
    return cells


def _dask_worker_counts(plan: Plan) -> list[int]:
    """k of every dask cell (one per cluster shape); one cell for an existing cluster."""
    if plan.dask_scheduler:
        return [0]
    from gillab.dask_cells import plan_shapes

    return [k for k, _ in plan_shapes(plan.workers, plan.dask_shapes)]


@dataclass
class _Subject:
    """A kernel (or target) sized for this run, with the answer it must give."""

    name: str
    task: kernels.Task
    io_bound: bool
    n: int | None = None
    seconds: float | None = None
    expected: object = None
    checked: bool = True           # False for a target: answers are compared to serial's
    serial_s: float | None = None
    extra: dict = field(default_factory=dict)


def _prepare(name: str, plan: Plan) -> _Subject:
    if plan.target:
        task = kernels.Task(target=name)
        task.resolve()  # a bad MODULE:FUNC fails here, before anything runs
        return _Subject(name, task, io_bound=False, checked=False)
    kernel = kernels.get(name)
    if kernel.io_bound:
        return _Subject(name, kernels.Task(name, (plan.target_s,)), True,
                        seconds=plan.target_s, expected=plan.target_s)
    n = calibrate_n(kernel, plan.target_s, plan.p)
    return _Subject(name, kernels.Task(name, (n, plan.p)), False, n=n,
                    expected=kernels.reference(n, plan.p))


def _timeout(subject: _Subject, workers: int) -> float:
    base = subject.serial_s or 1.0
    return max(30.0, 20.0 * workers * base)


def _measure_local(subject: _Subject, executor: str, workers: int, plan: Plan,
                   start_method: str | None):
    """Measure one cell here; with plan.cost, also its start-up and memory.

    Returns (CellMeasurement, extra Cell fields).
    """
    timeout_s = _timeout(subject, workers)
    baseline_mb = tree_pss_mb() if plan.cost else None
    startup, ex = measure_startup(
        lambda: open_executor(executor, workers, start_method, timeout_s))
    with ex:
        measured = measure_cell(lambda: ex.run(subject.task, workers), repeat=plan.repeat,
                                noise_limit=plan.noise_limit, max_tries=plan.max_tries,
                                probe_gil=executor in IN_PROCESS)
        if not plan.cost:
            return measured, {}
        if executor in PER_RUN_STARTUP:
            startup, _ = measure_startup(ex.start_idle)
        # An untimed pass: sampling memory costs CPU the timed runs must not see.
        with PeakMemory() as memory:
            ex.run(subject.task, workers)
    return measured, {"startup_s": startup.wall_s, "startup_cpu_s": startup.cpu_s,
                      "mem_mb": max(0.0, memory.peak_mb - baseline_mb),
                      "dispatch_us": _dispatch_us(executor, workers, start_method)}


@functools.lru_cache(maxsize=None)
def _dispatch_us(executor: str, workers: int, start_method: str | None) -> float | None:
    """Per-task dispatch cost, once per executor shape (it does not depend on the kernel).

    None for threads and processes: they start a worker per task, so their cost is
    start-up, measured apart.
    """
    from gillab.dispatch import DISPATCH_EXECUTORS, dispatch_us

    if executor not in DISPATCH_EXECUTORS or executor == "gevent":
        return None  # gevent's is measured in its own patched process
    return dispatch_us(executor, n_tasks=1000, n_workers=workers, start_method=start_method)


def _measure_gevent(subject: _Subject, workers_list, plan: Plan):
    """The compare engine's gevent cells for one subject; see measure_gevent_cells."""
    return measure_gevent_cells(subject.task, workers_list, repeat=plan.repeat,
                                noise_limit=plan.noise_limit, cost=plan.cost,
                                timeout_s=_timeout(subject, max(workers_list)))


def measure_gevent_cells(task: kernels.Task, workers_list, *, repeat: int,
                         noise_limit: float = 0.10, cost: bool = False,
                         timeout_s: float = 300.0):
    """Measure gevent cells (one per worker count) in a fresh, patched child process.

    Yields (workers, CellMeasurement or error message, extra Cell fields) in order.
    Public, so the benchmark suite measures gevent exactly as compare does.
    """
    request = {"cells": [(task, w) for w in workers_list], "repeat": repeat,
               "noise_limit": noise_limit, "cost": cost, "timeout_s": timeout_s}
    proc = subprocess.Popen([sys.executable, "-m", "gillab.gevent_child"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        pickle.dump(request, proc.stdin)
        proc.stdin.close()
        for workers in workers_list:
            try:
                status, payload, extra = pickle.load(proc.stdout)
            except EOFError:
                proc.wait()
                err = proc.stderr.read().decode(errors="replace").strip().splitlines()
                last = err[-1] if err else "no output"
                yield (workers, f"the gevent process exited with code {proc.returncode}: "
                                f"{last}", {})
                return
            yield workers, payload, extra  # payload: a CellMeasurement, or an error message
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            stream.close()


def _build_cell(subject: _Subject, executor: str, workers: int, measured, plan: Plan,
                n_cpus: int, **extra) -> Cell:
    """Numbers -> a Cell with its verdict. ``extra`` carries executor-specific fields
    (a dask cell's shape, loop stall, ...)."""
    common = dict(kernel=subject.name, executor=executor, workers=workers, n=subject.n,
                  seconds=subject.seconds, serial_s=subject.serial_s, **extra)
    if isinstance(measured, str):  # the cell could not be measured at all
        verdict = judge(executor=executor, workers=workers, speedup=None, cores_used=None,
                        correct=False, io_bound=subject.io_bound, cpu_count=n_cpus,
                        error=measured)
        return Cell(**common, wall_s=None, verdict=verdict.verdict, reason=verdict.reason,
                    error=measured)
    assert isinstance(measured, CellMeasurement)
    tasks = [t for r in measured.repeats for t in r.tasks]
    error = next((t.error for t in tasks if t.error), None)
    if subject.checked:
        correct = error is None and all(t.value == subject.expected for t in tasks)
    else:
        correct = error is None and all(t.value == tasks[0].value for t in tasks)
        if correct and subject.expected is not None:
            correct = tasks[0].value == subject.expected
    wall = measured.wall_s
    cpu = statistics.median(r.cpu_s for r in measured.repeats)
    cores = cpu / wall if wall > 0 else 0.0
    serial_s = subject.serial_s if subject.serial_s is not None else wall
    speedup = workers * serial_s / wall if wall > 0 else 0.0
    io_bound = subject.io_bound
    off_cpu = statistics.fmean(t.off_cpu for t in tasks)
    queued = [t.os_queue for t in tasks]
    if all(q is not None for q in queued):
        os_wait = statistics.fmean(queued)   # measured: time runnable but queued
    else:
        os_wait = os_share(workers, n_cpus, io_bound, executor)  # modelled
    gil_wait = max(0.0, off_cpu - os_wait)
    verdict = judge(executor=executor, workers=workers, speedup=speedup, cores_used=cores,
                    correct=correct, io_bound=io_bound, cpu_count=n_cpus,
                    noise=measured.noise, noise_limit=plan.noise_limit, tries=measured.tries,
                    error=error, gil_wait=gil_wait, os_wait=os_wait, serial_s=serial_s,
                    shape=extra.get("shape"), loop_stall_s=extra.get("loop_stall_s"))
    return Cell(**{**common, "serial_s": serial_s}, wall_s=wall,
                wall_s_all=tuple(r.wall_s for r in measured.repeats), cpu_s=cpu,
                cores_used=cores, speedup=speedup, correct=correct, gil_wait=gil_wait,
                gil_held=measured.gil_held, noise=measured.noise, verdict=verdict.verdict, reason=verdict.reason,
                ideal=None if executor == "serial" else ideal_speedup(workers, n_cpus, io_bound),
                os_wait=os_wait, tries=measured.tries, error=error)


def unavailable_executors(executors) -> dict[str, str]:
    """{executor: why it cannot run here} for the executors asked for."""
    from gillab.executors import unavailable_reason

    reasons = {}
    for name in executors:
        reason = unavailable_reason(name)
        if reason:
            reasons[name] = reason
    return reasons


def _measure_dask(subject: _Subject, plan: Plan, progress: Progress):
    """Yield (workers, CellMeasurement or error message, extra Cell fields, shape among
    them), as measure_gevent_cells does."""
    from gillab.dask_cells import measure_dask

    yield from measure_dask(subject.task, list(plan.workers), shapes=plan.dask_shapes,
                            scheduler=plan.dask_scheduler, repeat=plan.repeat,
                            noise_limit=plan.noise_limit, max_tries=plan.max_tries,
                            timeout_s=_timeout(subject, max(plan.workers)), cost=plan.cost,
                            **({"config": plan.dask_config} if plan.dask_config else {}),
                            on_start=lambda k, shape: progress.step(
                                f"{subject.name} on dask {shape}"))


#: Executors measured somewhere else than in this process's own executor loop.
_REMOTE = ("gevent", "dask")


def run_compare(plan: Plan, progress: Progress | None = None) -> CompareRun:
    """Measure the whole matrix of ``plan``; return every cell with its verdict.

    Executors that cannot run here (see executors.unavailable_reason) are skipped,
    and the run says why.
    """
    progress = progress or Progress()
    n_cpus = cpu_count()
    env = collect_env()
    if plan.start_methods[0]:
        env["start_method"] = plan.start_methods[0]
    if len(plan.start_methods) > 1:
        env["start_methods"] = list(plan.start_methods)
    skipped = unavailable_executors(plan.executors)
    planned = [c for c in plan_cells(plan) if c[1] not in skipped]
    progress.start(len(planned))
    cells: list[Cell] = []

    def add(cell: Cell) -> None:
        cells.append(cell)
        progress.cell_done(cell)

    for name in plan.subjects:
        progress.step(f"{name}: calibrating")
        subject = _prepare(name, plan)
        for _, executor, workers, method in [c for c in planned if c[0] == name]:
            if executor in _REMOTE:
                continue
            label = f"{executor}/{method}" if len(plan.start_methods) > 1 and method else executor
            progress.step(f"{name} on {label} x{workers}")
            extra = ({"start_method": method or env["start_method"]}
                     if executor in PROCESS_EXECUTORS else {})
            try:
                measured, costs = _measure_local(subject, executor, workers, plan, method)
                extra.update(costs)
            except WorkerFailed as exc:
                measured = str(exc)
            cell = _build_cell(subject, executor, workers, measured, plan, n_cpus, **extra)
            if executor == "serial":
                subject.serial_s = cell.wall_s
                if not subject.checked and cell.correct:
                    # A target's answer is whatever its serial run gave; its kind
                    # (CPU or waiting) is read from how much CPU that run used.
                    subject.expected = measured.repeats[0].tasks[0].value
                    subject.io_bound = (cell.cores_used or 0) < 0.5
                    cell = _build_cell(subject, executor, workers, measured, plan, n_cpus,
                                       **extra)
            add(cell)
        if "gevent" in plan.executors and "gevent" not in skipped:
            progress.step(f"{name} on gevent (own process)")
            for workers, measured, extra in _measure_gevent(subject, list(plan.workers), plan):
                add(_build_cell(subject, "gevent", workers, measured, plan, n_cpus, **extra))
        if "dask" in plan.executors and "dask" not in skipped:
            for workers, measured, extra in _measure_dask(subject, plan, progress):
                add(_build_cell(subject, "dask", workers, measured, plan, n_cpus, **extra))
    settings = {"kernels": list(plan.kernels), "executors": list(plan.executors),
                "workers": list(plan.workers), "repeat": plan.repeat, "cost": plan.cost,
                "start_methods": [m or env["start_method"] for m in plan.start_methods],
                "target_s": plan.target_s, "p": plan.p, "target": plan.target,
                "noise_limit": plan.noise_limit}
    lesson_costs = None
    if plan.cost:
        progress.step("the lesson's costs: 100 threads vs 100 processes")
        lesson_costs = measure_lesson_costs(plan.start_methods[0])
    return CompareRun(env, tuple(cells), settings,
                      skipped=tuple({"executor": e, "reason": r} for e, r in skipped.items()),
                      lesson_costs=lesson_costs)


def measure_lesson_costs(start_method: str | None = None, n_workers: int = 100,
                         n_small_tasks: int = 200, pool_size: int = 2,
                         p: int = DEFAULT_P) -> dict:
    """The lesson's cost claims, measured: 100 threads against 100 processes (start-up
    and memory), and a pool of k against fresh processes for many small tasks."""
    from gillab.measure import time_call

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
