"""The compare engine: plan the matrix, measure each cell, judge it, build records.

Data flows one way: kernel -> executor -> measurement -> records -> verdict. The
engine reports progress through callbacks and never prints; the measuring modules
read the clocks, gillab.compare.cells turns what they measured into a judged Cell.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from gillab import kernels
from gillab.core import registry
from gillab.compare.cells import Subject, adopt_baseline, build_cell, settled_for
from gillab.core.environment import collect_env, cpu_count
from gillab.measure.executors import WorkerFailed, open_executor
from gillab.measure.footprint import PeakMemory, measure_startup, tree_pss_mb
from gillab.measure.gevent_cells import measure_gevent_cells
from gillab.kernels import DEFAULT_P
from gillab.measure.bounded import CallTimeout, call_bounded, deadline_in
from gillab.measure.clocks import CellMeasurement, autorange_calls, calibrate_n, measure_cell
from gillab.measure.noise import NOISE_LIMIT
from gillab.compare.records import Cell, CompareRun

__all__ = ["Plan", "run_compare", "plan_cells", "Progress", "measure_gevent_cells",
           "measure_lesson_costs"]


@dataclass(frozen=True)
class Plan:
    """What to measure. ``target`` ("module:func") replaces the kernels when given."""

    kernels: tuple = tuple(kernels.names())
    executors: tuple = registry.DEFAULT_EXECUTORS
    workers: tuple = (1, 2, 4)
    repeat: int = 2                    # timed runs at least; more while a verdict is unclear
    max_repeat: int = 5                # ... up to this many
    target_s: float = 0.3
    p: int = DEFAULT_P
    target: str | None = None
    noise_limit: float = NOISE_LIMIT
    max_tries: int = 3
    cost: bool = False                 # also measure start-up, memory and dispatch
    start_methods: tuple = (None,)     # process executors run once per start method
    dask_shapes: tuple | None = None   # ("2x1", "1x2"); None: every shape of each k
    dask_scheduler: str | None = None  # an existing cluster instead of a local one
    dask_config: str | None = None     # gillab.measure.dask_cells.CONFIGS; None: its default
    target_unsafe: str | None = None   # why the target must not run in this process

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
            methods = plan.start_methods if registry.spec(executor).start_method else (None,)
            cells.extend((subject, executor, w, m) for m in methods for w in plan.workers)
    return cells


def _dask_worker_counts(plan: Plan) -> list[int]:
    """k of every dask cell (one per cluster shape); one cell for an existing cluster."""
    if plan.dask_scheduler:
        return [0]
    from gillab.measure.dask_cells import plan_shapes

    return [k for k, _ in plan_shapes(plan.workers, plan.dask_shapes)]


def _autorange_bounded(func, target_s: float, timeout_s: float = 30.0):
    """(calls, None) from autorange_calls, run in a daemon thread: a target that raises
    or exits is looped once (its cells report the error); one that never returns is
    left behind and must not run here again: (1, why)."""
    from gillab.core import procutil

    try:
        return call_bounded(lambda: autorange_calls(func, target_s), deadline_in(timeout_s),
                            "the target", name="gillab-autorange"), None
    except CallTimeout as exc:
        why = (f"no answer within {timeout_s:.0f} s while being calibrated; a thread "
               "cannot be killed, so it is left running and gillab exits without waiting "
               "for it")
        for thread in exc.threads:
            procutil.abandon(thread, why)
        return 1, why
    except (Exception, SystemExit):  # noqa: BLE001 - the cells run it and report it
        return 1, None


def _prepare(name: str, plan: Plan) -> Subject:
    if plan.target:
        if plan.target_unsafe:  # ends its process or hangs: never called here
            return Subject(name, kernels.Task(target=name, calls=1,
                                               unsafe_in_process=plan.target_unsafe),
                            io_bound=False, checked=False)
        func = kernels.Task(target=name).resolve()  # a bad MODULE:FUNC fails here
        calls, hung = _autorange_bounded(func, plan.target_s)
        return Subject(name, kernels.Task(target=name, calls=calls, unsafe_in_process=hung),
                        io_bound=False, checked=False)
    kernel = kernels.get(name)
    if kernel.io_bound:
        return Subject(name, kernels.Task(name, (plan.target_s,)), True,
                        seconds=plan.target_s, expected=plan.target_s)
    n = calibrate_n(kernel, plan.target_s, plan.p)
    return Subject(name, kernels.Task(name, (n, plan.p)), False, n=n,
                    expected=kernels.reference(n, plan.p))


def _timeout(subject: Subject, workers: int) -> float:
    base = subject.serial_s or 1.0
    return max(30.0, 20.0 * workers * base)


def _measure_local(subject: Subject, executor: str, workers: int, plan: Plan,
                   start_method: str | None, n_cpus: int):
    """Measure one cell here; with plan.cost, also its start-up and memory.

    Returns (CellMeasurement, extra Cell fields).
    """
    spec = registry.spec(executor)
    timeout_s = _timeout(subject, workers)
    baseline_mb = tree_pss_mb() if plan.cost else None
    startup, ex = measure_startup(
        lambda: open_executor(executor, workers, start_method, timeout_s))
    with ex:
        measured = measure_cell(lambda: ex.run(subject.task, workers), repeat=plan.repeat,
                                noise_limit=plan.noise_limit, max_tries=plan.max_tries,
                                probe_gil=spec.shares_gil,
                                max_repeat=max(plan.repeat, plan.max_repeat),
                                settled=settled_for(subject, executor, workers,
                                                    plan.noise_limit, n_cpus))
        if not plan.cost:
            return measured, {}
        if spec.starts_per_run:
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
    from gillab.measure.dispatch import dispatch_us

    spec = registry.spec(executor)
    if not spec.dispatch or spec.remote:
        return None  # gevent's and dask's are measured where they run
    return dispatch_us(executor, n_tasks=1000, n_workers=workers, start_method=start_method)


def _measure_gevent(subject: Subject, workers_list, plan: Plan):
    """The compare engine's gevent cells for one subject; see measure_gevent_cells."""
    return measure_gevent_cells(subject.task, workers_list, repeat=plan.repeat,
                                noise_limit=plan.noise_limit, cost=plan.cost,
                                timeout_s=_timeout(subject, max(workers_list)))


def unavailable_executors(executors) -> dict[str, str]:
    """{executor: why it cannot run here} for the executors asked for."""
    from gillab.measure.executors import unavailable_reason

    reasons = {}
    for name in executors:
        reason = unavailable_reason(name)
        if reason:
            reasons[name] = reason
    return reasons


def _measure_dask(subject: Subject, plan: Plan, progress: Progress):
    """Yield (workers, CellMeasurement or error message, extra Cell fields, shape among
    them), as measure_gevent_cells does."""
    from gillab.measure.dask_cells import measure_dask

    yield from measure_dask(subject.task, list(plan.workers), shapes=plan.dask_shapes,
                            scheduler=plan.dask_scheduler, repeat=plan.repeat,
                            noise_limit=plan.noise_limit, max_tries=plan.max_tries,
                            timeout_s=_timeout(subject, max(plan.workers)), cost=plan.cost,
                            **({"config": plan.dask_config} if plan.dask_config else {}),
                            on_start=lambda k, shape: progress.step(
                                f"{subject.name} on dask {shape}"))


def _local_cells(subject: Subject, cells, plan: Plan, env: dict, n_cpus: int,
                 progress: "Progress"):
    """Yield (executor, workers, CellMeasurement or error, extra) for the cells this
    process measures itself, serial first."""
    for _, executor, workers, method in cells:
        label = f"{executor}/{method}" if len(plan.start_methods) > 1 and method else executor
        progress.step(f"{subject.name} on {label} x{workers}")
        extra = ({"start_method": method or env["start_method"]}
                 if registry.spec(executor).start_method else {})
        try:
            measured, costs = _measure_local(subject, executor, workers, plan, method, n_cpus)
            extra.update(costs)
        except WorkerFailed as exc:
            measured = str(exc)
        yield executor, workers, measured, extra


def _remote_cells(subject: Subject, executors, plan: Plan, progress: "Progress"):
    """The same shape as _local_cells, for executors measured in their own processes."""
    if "gevent" in executors:
        progress.step(f"{subject.name} on gevent (own process)")
        for workers, measured, extra in _measure_gevent(subject, list(plan.workers), plan):
            yield "gevent", workers, measured, extra
    if "dask" in executors:
        from gillab.measure.dask_cells import dask_reason

        for workers, measured, extra in _measure_dask(subject, plan, progress):
            # What Dask itself took from the tasks, named in the verdict's reason.
            explain = functools.partial(dask_reason, extra.get("shape"),
                                        dask_own_cores=extra.get("dask_own_cores"),
                                        config=extra.get("dask_config"))
            yield "dask", workers, measured, {**extra, "explain": explain}


def run_compare(plan: Plan, progress: Progress | None = None) -> CompareRun:
    """Measure the whole matrix of ``plan``; return every cell with its verdict.

    Executors that cannot run here (see executors.unavailable_reason) are skipped,
    and the run says why. Every cell, wherever it ran, comes back in one shape
    (executor, workers, measurement or error, extra fields) and is judged alike.
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
    remote = [e for e in plan.executors if e not in skipped and registry.spec(e).remote]

    for name in plan.subjects:
        progress.step(f"{name}: calibrating")
        subject = _prepare(name, plan)
        local = [c for c in planned if c[0] == name and not registry.spec(c[1]).remote]
        measured_cells = []
        for executor, workers, measured, extra in (*_local_cells(subject, local, plan, env,
                                                                n_cpus, progress),
                                                   *_remote_cells(subject, remote, plan,
                                                                  progress)):
            cell = build_cell(subject, executor, workers, measured, plan.noise_limit, n_cpus,
                              **extra)
            if executor == "serial":
                cell = adopt_baseline(subject, cell, measured, plan.noise_limit, n_cpus, extra)
            measured_cells.append((executor, workers, measured, extra))
            progress.cell_done(cell)
        cells += _bracketed(subject, measured_cells, plan, n_cpus, progress)
    settings = {"kernels": list(plan.kernels), "executors": list(plan.executors),
                "workers": list(plan.workers), "repeat": plan.repeat,
                "max_repeat": plan.max_repeat, "cost": plan.cost,
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


def _bracketed(subject: Subject, measured_cells: list, plan: Plan, n_cpus: int,
               progress: Progress) -> list[Cell]:
    """The subject's cells, judged against a baseline measured before *and* after them.

    The serial task's time drifts during a run (the first runs after calibration, the
    allocator's state, a neighbour): measured on this machine, one serial cell taken
    first gave bigint 0.349 s a task while the same task took 0.255-0.31 s in workers
    later, so speedups read 2.3-2.45x on 2 CPUs. Bracketing the cells with serial runs,
    and taking the median of both, is fair to early and late executors alike.
    """
    first = measured_cells[0] if measured_cells else None
    if (first is None or first[0] != "serial" or len(measured_cells) < 2
            or not isinstance(first[2], CellMeasurement) or subject.serial_s is None):
        return [build_cell(subject, e, w, m, plan.noise_limit, n_cpus, **x)
                for e, w, m, x in measured_cells]
    progress.step(f"{subject.name} on serial again (the baseline, after the cells)")
    try:
        after, _ = _measure_local(subject, "serial", 1, plan, None, n_cpus)
    except WorkerFailed:
        after = None
    before = first[2]
    both = before if after is None else CellMeasurement(before.repeats + after.repeats,
                                                        max(before.tries, after.tries))
    serial = build_cell(subject, "serial", 1, both, plan.noise_limit, n_cpus, **first[3])
    serial = adopt_baseline(subject, serial, both, plan.noise_limit, n_cpus, first[3])
    return [serial] + [build_cell(subject, e, w, m, plan.noise_limit, n_cpus, **x)
                       for e, w, m, x in measured_cells[1:]]


def measure_lesson_costs(start_method: str | None = None, n_workers: int = 100,
                         n_small_tasks: int = 200, pool_size: int = 2,
                         p: int = DEFAULT_P) -> dict:
    """The lesson's cost claims, measured: 100 threads against 100 processes (start-up
    and memory), and a pool of k against fresh processes for many small tasks."""
    from gillab.measure.clocks import time_call

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
