"""The compare engine: plan the matrix, measure each cell, judge it, build records.

Data flows one way: kernel -> executor -> measurement -> records -> verdict. The
engine reports progress through callbacks and never prints; the measuring modules
read the clocks, gillab.compare.cells turns what they measured into a judged Cell.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field, replace
from typing import Callable

from gillab import kernels
from gillab.core import registry
from gillab.compare.cells import Subject, adopt_baseline, build_cell, settled_for
from gillab.compare.defaults import DEFAULT_TARGET_S
from gillab.core.environment import collect_env, cpu_count, free_threaded_build
from gillab.core.gilstate import gil_enabled, watch_gil
from gillab.measure.executors import WorkerFailed, open_executor
from gillab.measure.footprint import PeakMemory, measure_startup, tree_pss_mb
from gillab.measure.gevent_cells import measure_gevent_cells
from gillab.kernels import DEFAULT_P
from gillab.measure.bounded import CallTimeout, call_bounded, deadline_in, hang_timeout_s
from gillab.measure.dispatch import dispatch_figure
from gillab.measure.clocks import now
from gillab.measure.cell import measure_cell
from gillab.measure.calibrate import autorange_calls, calibrate_n
from gillab.measure.noise import NOISE_LIMIT
from gillab.measure.outcome import CellFailure, Measured
from gillab.compare.records import Cell, CompareRun

__all__ = ["Plan", "run_compare", "plan_cells", "Progress", "measure_gevent_cells",
           ]


@dataclass(frozen=True)
class Plan:
    """What to measure. ``target`` ("module:func") replaces the kernels when given."""

    # py_shared joins the default rows on a free-threaded build only (kernels.default_names)
    kernels: tuple = tuple(kernels.default_names(free_threaded_build()))
    executors: tuple = registry.DEFAULT_EXECUTORS
    workers: tuple = (1, 2, 4)
    repeat: int = 2                    # timed runs at least; more while a verdict is unclear
    max_repeat: int = 5                # ... up to this many
    target_s: float = DEFAULT_TARGET_S
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
    event_loop: str = "asyncio"        # the loop of the executors that run on one (uvloop)
    #: The default matrix's trim: executors on an event loop run CPU kernels at worker
    #: counts up to this (the CPU count) only; past it, k coroutines repeat k=2's lesson
    #: (serialized) and to_thread's threads repeat thread_pool's. None: every count.
    loop_cpu_workers: int | None = None

    @property
    def subjects(self) -> tuple:
        return (self.target,) if self.target else self.kernels


class Progress:
    """Callbacks the engine calls; the CLI draws them. The default draws nothing."""

    def start(self, total_cells: int) -> None: ...
    def step(self, label: str) -> None: ...
    def cell_done(self, cell: Cell) -> None: ...


@dataclass(frozen=True)
class MeasuredCell:
    """One cell as measured, before it is judged: where it ran, what came back (a
    CellMeasurement or a CellFailure), the extra Cell fields its executor adds, and
    the executor's own clause for the reason (dask's), if any."""

    executor: str
    workers: int
    outcome: object
    fields: dict = field(default_factory=dict)
    explain: Callable | None = None


def plan_cells(plan: Plan) -> list[tuple[str, str, int, str | None]]:
    """Every (subject, executor, workers, start method) to run, in order.

    Serial runs once, at 1 worker, first for each subject: it is the baseline
    every speedup divides. Process executors run once per start method asked for.
    """
    cells = []
    for subject in plan.subjects:
        cells.append((subject, "serial", 1, None))
        for executor in plan.executors:
            spec = registry.spec(executor)
            if spec.baseline:
                continue
            if spec.shaped:
                cells.extend((subject, executor, k, None) for k in _dask_worker_counts(plan))
                continue
            methods = plan.start_methods if spec.start_method else (None,)
            cells.extend((subject, executor, w, m) for m in methods
                         for w in _worker_counts(plan, spec, subject))
    return cells


def _worker_counts(plan: Plan, spec: registry.ExecutorSpec, subject: str) -> tuple:
    """The worker counts of one executor's cells for one subject (see loop_cpu_workers)."""
    if not (spec.event_loop and plan.loop_cpu_workers) or plan.target:
        return plan.workers
    if kernels.get(subject).io_bound:
        return plan.workers
    return tuple(w for w in plan.workers if w <= plan.loop_cpu_workers) or plan.workers[:1]


def _dask_worker_counts(plan: Plan) -> list[int]:
    """k of every dask cell (one per cluster shape); one cell for an existing cluster."""
    if plan.dask_scheduler:
        return [0]
    from gillab.measure.dask_cells import plan_shapes

    return [k for k, _ in plan_shapes(plan.workers, plan.dask_shapes)]


def _autorange_bounded(func, target_s: float, timeout_s: float | None = None):
    """(calls, None) from autorange_calls, run in a daemon thread: a target that raises
    or exits is looped once (its cells report the error); one that never returns is
    left behind and must not run here again: (1, why)."""
    from gillab.core import procutil

    timeout_s = hang_timeout_s() if timeout_s is None else timeout_s
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
    """The subject ``name`` sized for this run, with the GIL as it stands once the subject
    is loaded (a --target's import can turn a free-threaded build's GIL on): without a
    GIL, busy cores no longer prove scaling, and the verdict must know it. Unknown
    (None) counts as on: the old rules."""
    return replace(_sized(name, plan), gil_enabled=gil_enabled() is not False)


def _sized(name: str, plan: Plan) -> Subject:
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
    return max(hang_timeout_s(), 20.0 * workers * base)


def _measure_local(subject: Subject, executor: str, workers: int, plan: Plan,
                   start_method: str | None, n_cpus: int, dispatch: dict,
                   paired: bool = False) -> Measured:
    """Measure one cell here; with plan.cost, also its start-up and memory.

    ``paired``: each timed run comes right after one serial run of the task, outside
    the run's clocks (RepeatResult.before), so a drift of the machine moves both sides
    of each speedup. ``dispatch`` caches dispatch figures for this run only.
    """
    spec = registry.spec(executor)
    timeout_s = _timeout(subject, workers)
    baseline_mb = tree_pss_mb() if plan.cost else None
    startup, ex = measure_startup(
        lambda: open_executor(executor, workers, start_method, timeout_s,
                              event_loop=plan.event_loop))
    with ex, _PairedSerial(subject, paired) as serial_run:
        measured = measure_cell(lambda: ex.run(subject.task, workers), repeat=plan.repeat,
                                noise_limit=plan.noise_limit, max_tries=plan.max_tries,
                                probe_gil=spec.shares_gil,
                                max_repeat=max(plan.repeat, plan.max_repeat),
                                settled=settled_for(subject, executor, workers,
                                                    plan.noise_limit, n_cpus),
                                before_each=serial_run)
        if not plan.cost:
            return Measured(measured)
        if spec.starts_per_run:
            startup, _ = measure_startup(ex.start_idle)
        # An untimed pass: sampling memory costs CPU the timed runs must not see.
        with PeakMemory() as memory:
            ex.run(subject.task, workers)
    key = (executor, workers, start_method)
    if key not in dispatch:
        dispatch[key] = dispatch_figure(executor, workers, start_method)
    return Measured(measured, {"startup_s": startup.wall_s, "startup_cpu_s": startup.cpu_s,
                               "mem_mb": max(0.0, memory.peak_mb - baseline_mb),
                               "dispatch_us": dispatch[key]})


class _PairedSerial:
    """With ``paired``, a serial executor open for the cell and a callable timing one
    serial run of the task (its wall seconds); without, None."""

    def __init__(self, subject: Subject, paired: bool):
        self.subject, self.paired, self.ex = subject, paired, None

    def __enter__(self):
        if not self.paired:
            return None
        self.ex = open_executor("serial", 1, None, _timeout(self.subject, 1))
        self.ex.__enter__()
        return self.run

    def run(self) -> float:
        start = now()
        self.ex.run(self.subject.task, 1)
        return now() - start

    def __exit__(self, *exc):
        if self.ex is not None:
            self.ex.__exit__(*exc)


def _measure_dask(subject: Subject, plan: Plan, progress: Progress):
    """Yield a MeasuredCell per dask cell, with dask's own clause for the reason."""
    from gillab.measure.dask_cells import dask_reason, measure_dask

    for workers, measured, extra in measure_dask(
            subject.task, list(plan.workers), shapes=plan.dask_shapes,
            scheduler=plan.dask_scheduler, repeat=plan.repeat, noise_limit=plan.noise_limit,
            max_tries=plan.max_tries, timeout_s=_timeout(subject, max(plan.workers)),
            cost=plan.cost, **({"config": plan.dask_config} if plan.dask_config else {}),
            on_start=lambda k, shape: progress.step(f"{subject.name} on dask {shape}")):
        # What Dask itself took from the tasks, named in the verdict's reason.
        explain = functools.partial(dask_reason, extra.get("shape"),
                                    dask_own_cores=extra.get("dask_own_cores"),
                                    config=extra.get("dask_config"))
        outcome = CellFailure(measured) if isinstance(measured, str) else measured
        yield MeasuredCell("dask", workers, outcome, extra, explain)


def _measure_gevent(subject: Subject, plan: Plan, progress: Progress):
    """Yield a MeasuredCell per gevent cell (one child process measures them all)."""
    progress.step(f"{subject.name} on gevent (own process)")
    for workers, reply in measure_gevent_cells(
            subject.task, list(plan.workers), repeat=plan.repeat,
            noise_limit=plan.noise_limit, cost=plan.cost,
            timeout_s=_timeout(subject, max(plan.workers))):
        if isinstance(reply, CellFailure):
            yield MeasuredCell("gevent", workers, reply)
        else:
            yield MeasuredCell("gevent", workers, reply.measurement, reply.extra)


#: Executors measured outside this process's executor loop (registry trait ``remote``),
#: each by its own measurer: adding one is a row here and one in the registry.
REMOTE_MEASURERS = {"gevent": _measure_gevent, "dask": _measure_dask}


def unavailable_executors(executors) -> dict[str, str]:
    """{executor: why it cannot run here} for the executors asked for."""
    from gillab.measure.executors import unavailable_reason

    reasons = {}
    for name in executors:
        reason = unavailable_reason(name)
        if reason:
            reasons[name] = reason
    return reasons


def _local_cells(subject: Subject, cells, plan: Plan, env: dict, n_cpus: int,
                 progress: Progress, dispatch: dict):
    """Yield a MeasuredCell for each cell this process measures itself, the baseline
    first; every other cell is paired with serial runs of its own."""
    for _, executor, workers, method in cells:
        spec = registry.spec(executor)
        label = f"{executor}/{method}" if len(plan.start_methods) > 1 and method else executor
        progress.step(f"{subject.name} on {label} x{workers}")
        fields = {"start_method": method or env["start_method"]} if spec.start_method else {}
        paired = not spec.baseline and subject.serial_s is not None
        try:
            measured = _measure_local(subject, executor, workers, plan, method, n_cpus,
                                      dispatch, paired)
        except WorkerFailed as exc:
            yield MeasuredCell(executor, workers, CellFailure(str(exc)), fields)
            continue
        yield MeasuredCell(executor, workers, measured.measurement,
                           {**fields, **measured.extra})


def _remote_cells(subject: Subject, executors, plan: Plan, progress: Progress):
    """MeasuredCells of the executors measured in processes of their own."""
    for name in executors:
        yield from REMOTE_MEASURERS[name](subject, plan, progress)


def run_compare(plan: Plan, progress: Progress | None = None) -> CompareRun:
    """Measure the whole matrix of ``plan``; return every cell with its verdict.

    Executors that cannot run here (see executors.unavailable_reason) are skipped,
    and the run says why. Every cell, wherever it ran, comes back as a MeasuredCell
    and is judged once, as soon as it is measured.
    """
    progress = progress or Progress()
    n_cpus = cpu_count()
    env = collect_env()
    if plan.start_methods[0]:
        env["start_method"] = plan.start_methods[0]
    if len(plan.start_methods) > 1:
        env["start_methods"] = list(plan.start_methods)
    env["event_loop"] = plan.event_loop
    skipped = unavailable_executors(plan.executors)
    planned = [c for c in plan_cells(plan) if c[1] not in skipped]
    progress.start(len(planned))
    remote = [e for e in plan.executors if e not in skipped and registry.spec(e).remote]
    dispatch: dict = {}  # dispatch figures of this run, one per executor shape
    cells: list[Cell] = []
    # A free-threaded build turns its GIL on for good when an import (a --target's
    # module) never declared Py_mod_gil: env says so, as measured at the end, and each
    # subject is judged with the GIL as it stands once the subject is loaded.
    with watch_gil() as gil:
        for name in plan.subjects:
            progress.step(f"{name}: calibrating")
            subject = _prepare(name, plan)
            local = [c for c in planned if c[0] == name and not registry.spec(c[1]).remote]
            for one in itertools.chain(_local_cells(subject, local, plan, env, n_cpus,
                                                    progress, dispatch),
                                       _remote_cells(subject, remote, plan, progress)):
                cells.append(_judged(subject, one, plan, n_cpus))
                progress.cell_done(cells[-1])
    env.update(gil.env_fields())
    return CompareRun(env, tuple(cells), _settings(plan, env),
                      skipped=tuple({"executor": e, "reason": r} for e, r in skipped.items()),
                      lesson_costs=_lesson_costs(plan, progress))


def _judged(subject: Subject, one: MeasuredCell, plan: Plan, n_cpus: int) -> Cell:
    """The Cell of one measured cell; the baseline's figures become the subject's."""
    cell = build_cell(subject, one.executor, one.workers, one.outcome, plan.noise_limit,
                      n_cpus, explain=one.explain, **one.fields)
    if registry.spec(one.executor).baseline:
        cell = adopt_baseline(subject, cell, one.outcome, plan.noise_limit, n_cpus,
                              one.fields)
    return cell


def _settings(plan: Plan, env: dict) -> dict:
    return {"kernels": list(plan.kernels), "executors": list(plan.executors),
            "workers": list(plan.workers), "repeat": plan.repeat,
            "max_repeat": plan.max_repeat, "cost": plan.cost,
            "start_methods": [m or env["start_method"] for m in plan.start_methods],
            "target_s": plan.target_s, "p": plan.p, "target": plan.target,
            "noise_limit": plan.noise_limit, "event_loop": plan.event_loop}


def _lesson_costs(plan: Plan, progress: Progress) -> dict | None:
    if not plan.cost:
        return None
    progress.step("the lesson's costs: 100 threads vs 100 processes")
    from gillab.measure.footprint import measure_lesson_costs

    return measure_lesson_costs(plan.start_methods[0])
