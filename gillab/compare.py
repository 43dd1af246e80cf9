"""The compare engine: plan the matrix, measure each cell, judge it, build records.

Data flows one way: kernel -> executor -> measurement -> records -> verdict. The
engine reports progress through callbacks and never prints; only gillab.measure
reads clocks.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

from gillab import kernels, registry, stats
from gillab.environment import collect_env, cpu_count
from gillab.executors import WorkerFailed, open_executor
from gillab.gevent_cells import measure_gevent_cells
from gillab.kernels import DEFAULT_P
from gillab.measure import (CellMeasurement, PeakMemory, autorange_calls, calibrate_n,
                            measure_cell, measure_startup, tree_pss_mb)
from gillab.results import Cell, CompareRun
from gillab.verdict import MARGIN, Losses, ideal_speedup, judge, os_share, where_the_time_went

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
    noise_limit: float = 0.10
    max_tries: int = 3
    cost: bool = False                 # also measure start-up, memory and dispatch
    start_methods: tuple = (None,)     # process executors run once per start method
    dask_shapes: tuple | None = None   # ("2x1", "1x2"); None: every shape of each k
    dask_scheduler: str | None = None  # an existing cluster instead of a local one
    dask_config: str | None = None     # gillab.dask_cells.CONFIGS; None: its default
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
    serial_s: float | None = None  # median wall of the serial cell: the speedup's baseline
    serial_tasks: tuple = ()       # the serial cell's TaskResults: each task's own clocks
    serial_spread: float | None = None
    extra: dict = field(default_factory=dict)


def _autorange_bounded(func, target_s: float, timeout_s: float = 30.0):
    """(calls, None) from autorange_calls, run in a daemon thread: a target that raises
    or exits is looped once (its cells report the error); one that never returns is
    left behind and must not run here again: (1, why)."""
    import threading

    from gillab import procutil

    box = []

    def calibrate():
        try:
            box.append(autorange_calls(func, target_s))
        except (Exception, SystemExit):  # noqa: BLE001 - the cells run it and report it
            box.append(1)

    thread = threading.Thread(target=calibrate, daemon=True, name="gillab-autorange")
    thread.start()
    thread.join(timeout_s)
    if box:
        return box[0], None
    why = (f"no answer within {timeout_s:.0f} s while being calibrated; a thread cannot "
           "be killed, so it is left running and gillab exits without waiting for it")
    procutil.abandon(thread, why)
    return 1, why


def _prepare(name: str, plan: Plan) -> _Subject:
    if plan.target:
        if plan.target_unsafe:  # ends its process or hangs: never called here
            return _Subject(name, kernels.Task(target=name, calls=1,
                                               unsafe_in_process=plan.target_unsafe),
                            io_bound=False, checked=False)
        func = kernels.Task(target=name).resolve()  # a bad MODULE:FUNC fails here
        calls, hung = _autorange_bounded(func, plan.target_s)
        return _Subject(name, kernels.Task(target=name, calls=calls, unsafe_in_process=hung),
                        io_bound=False, checked=False)
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
                                settled=_settled(subject, executor, workers, plan, n_cpus))
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
    from gillab.dispatch import dispatch_us

    spec = registry.spec(executor)
    if not spec.dispatch or spec.remote:
        return None  # gevent's and dask's are measured where they run
    return dispatch_us(executor, n_tasks=1000, n_workers=workers, start_method=start_method)


def _measure_gevent(subject: _Subject, workers_list, plan: Plan):
    """The compare engine's gevent cells for one subject; see measure_gevent_cells."""
    return measure_gevent_cells(subject.task, workers_list, repeat=plan.repeat,
                                noise_limit=plan.noise_limit, cost=plan.cost,
                                timeout_s=_timeout(subject, max(workers_list)))


@dataclass(frozen=True)
class _Figures:
    """The numbers of one cell (or of one repeat of it), before any verdict."""

    wall_s: float
    cpu_s: float
    cores: float
    speedup: float | None
    gil_wait: float
    os_wait: float
    task_slowdown: float | None
    losses: Losses | None


def _serial_task(subject: _Subject) -> tuple[float, float] | None:
    """(median wall, median CPU) of one serial task, or None without a baseline."""
    if not subject.serial_tasks:
        return None
    return (stats.median(t.wall_s for t in subject.serial_tasks),
            stats.median(t.thread_cpu_s for t in subject.serial_tasks))


def _figures(subject: _Subject, executor: str, workers: int, repeats, n_cpus: int) -> _Figures:
    """Speedup, cores, waits and where the time went, from the given repeats."""
    wall = stats.median(r.wall_s for r in repeats)
    cpu = stats.median(r.cpu_s for r in repeats)
    tasks = [t for r in repeats for t in r.tasks]
    io_bound = subject.io_bound
    speedup = (workers * subject.serial_s / wall
               if subject.serial_s is not None and wall > 0 else None)
    off_cpu = stats.mean(t.off_cpu for t in tasks)
    queued = [t.os_queue for t in tasks]
    if all(q is not None for q in queued):
        os_wait = stats.mean(queued)            # measured: time runnable but queued
    else:
        os_wait = os_share(workers, n_cpus, io_bound, executor)  # modelled
    serial = _serial_task(subject)
    task_cpu = stats.median(t.thread_cpu_s for t in tasks)
    slowdown = losses = None
    if serial is not None and not io_bound and serial[1] > 1e-4 and executor != "serial":
        slowdown = task_cpu / serial[1]
        losses = where_the_time_went(
            workers=workers, cpu_count=n_cpus, cell_wall_s=wall,
            last_task_wall_s=stats.median(max(t.wall_s for t in r.tasks) for r in repeats),
            task_cpu_s=task_cpu, serial_cpu_s=serial[1], serial_wall_s=serial[0])
    return _Figures(wall, cpu, cpu / wall if wall > 0 else 0.0, speedup,
                    max(0.0, off_cpu - os_wait), os_wait, slowdown, losses)


def _verdict_of(subject: _Subject, executor: str, workers: int, fig: _Figures, plan: Plan,
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
                 cpu_count=n_cpus, noise=noise, noise_limit=plan.noise_limit, tries=tries,
                 error=error, gil_wait=fig.gil_wait, os_wait=fig.os_wait,
                 serial_s=subject.serial_s if executor != "serial" else fig.wall_s,
                 shape=extra.get("shape"), loop_stall_s=extra.get("loop_stall_s"),
                 losses=fig.losses, task_slowdown=fig.task_slowdown,
                 baseline_spread=subject.serial_spread,
                 extra_reason=extra.get("extra_reason"))


#: The serial baseline gets more repeats while its runs differ by more than this.
SERIAL_SPREAD = 0.10


def _settled(subject: _Subject, executor: str, workers: int, plan: Plan, n_cpus: int):
    """For measure_cell: are a cell's repeats clear enough to stop? Clear when every
    repeat leads to the same verdict, and a lone repeat is not on a boundary."""
    def settled(measured: CellMeasurement) -> bool:
        repeats = measured.repeats
        if executor == "serial":  # the baseline every speedup divides: steady enough?
            return measured.spread <= SERIAL_SPREAD
        words = {_verdict_of(subject, executor, workers,
                             _figures(subject, executor, workers, [r], n_cpus), plan,
                             n_cpus).verdict for r in repeats}
        if len(repeats) == 1:
            fig = _figures(subject, executor, workers, repeats, n_cpus)
            words |= {_verdict_of(subject, executor, workers, fig, plan, n_cpus,
                                  nudge=d).verdict for d in (-MARGIN, MARGIN)}
        return len(words) == 1
    return settled


def _build_cell(subject: _Subject, executor: str, workers: int, measured, plan: Plan,
                n_cpus: int, **extra) -> Cell:
    """Numbers -> a Cell with its verdict. ``extra`` carries executor-specific fields
    (a dask cell's shape, loop stall, costs, ...)."""
    explain = extra.pop("explain", None)  # an executor's own clause: explain(gil_wait, ...)
    common = dict(kernel=subject.name, executor=executor, workers=workers, n=subject.n,
                  seconds=subject.seconds, serial_s=subject.serial_s,
                  calls_per_task=subject.task.calls if subject.task.target else None, **extra)
    if isinstance(measured, str):  # the cell could not be measured at all
        return Cell(**common, wall_s=None, verdict="wrong", reason=measured, error=measured)
    assert isinstance(measured, CellMeasurement)
    tasks = [t for r in measured.repeats for t in r.tasks]
    error = next((t.error for t in tasks if t.error), None)
    if subject.checked:
        correct = error is None and all(t.value == subject.expected for t in tasks)
    else:
        correct = error is None and all(t.value == tasks[0].value for t in tasks)
        if correct and subject.expected is not None:
            correct = tasks[0].value == subject.expected
    fig = _figures(subject, executor, workers, measured.repeats, n_cpus)
    extra_reason = (explain(fig.gil_wait, task_slowdown=fig.task_slowdown)
                    if explain is not None and not subject.io_bound else None)
    settled = _settled(subject, executor, workers, plan, n_cpus)(measured)
    verdict = _verdict_of(subject, executor, workers, fig, plan, n_cpus, correct=correct,
                          error=error, noise=measured.noise, tries=measured.tries,
                          extra={**extra, "extra_reason": extra_reason})
    reason = verdict.reason
    uncertain = not settled and verdict.verdict not in ("wrong", "noisy")
    if uncertain:
        reason += (f" (uncertain: its {len(measured.repeats)} runs, spread "
                   f"{measured.spread:.0%}, do not all lead to this verdict)")
    if executor == "serial":
        common["serial_s"] = fig.wall_s
    return Cell(**common, wall_s=fig.wall_s,
                wall_s_all=tuple(r.wall_s for r in measured.repeats), cpu_s=fig.cpu_s,
                cores_used=fig.cores, speedup=fig.speedup if executor != "serial" else 1.0,
                correct=correct, gil_wait=fig.gil_wait, gil_held=measured.gil_held,
                noise=measured.noise, verdict=verdict.verdict, reason=reason,
                ideal=None if executor == "serial" else ideal_speedup(workers, n_cpus,
                                                                     subject.io_bound),
                os_wait=fig.os_wait, tries=measured.tries, error=error,
                spread=measured.spread, uncertain=uncertain,
                task_slowdown=fig.task_slowdown,
                losses=fig.losses.to_dict() if fig.losses else None,
                main_loss=_main_loss(fig, executor, workers, n_cpus, subject.io_bound))


def _main_loss(fig: _Figures, executor: str, workers: int, n_cpus: int,
               io_bound: bool) -> str | None:
    """The largest part of a missing speedup, named for the table; None when nothing
    worth naming is missing (under 10% of the ideal)."""
    if fig.losses is None or fig.speedup is None or executor == "serial":
        return None
    if fig.speedup >= 0.9 * ideal_speedup(workers, n_cpus, io_bound):
        return None
    return fig.losses.main


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


def _local_cells(subject: _Subject, cells, plan: Plan, env: dict, n_cpus: int,
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


def _remote_cells(subject: _Subject, executors, plan: Plan, progress: "Progress"):
    """The same shape as _local_cells, for executors measured in their own processes."""
    if "gevent" in executors:
        progress.step(f"{subject.name} on gevent (own process)")
        for workers, measured, extra in _measure_gevent(subject, list(plan.workers), plan):
            yield "gevent", workers, measured, extra
    if "dask" in executors:
        from gillab.dask_cells import dask_reason

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
        for executor, workers, measured, extra in (*_local_cells(subject, local, plan, env,
                                                                n_cpus, progress),
                                                   *_remote_cells(subject, remote, plan,
                                                                  progress)):
            cell = _build_cell(subject, executor, workers, measured, plan, n_cpus, **extra)
            if executor == "serial":
                cell = _baseline(subject, cell, measured, plan, n_cpus, extra)
            cells.append(cell)
            progress.cell_done(cell)
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


def _baseline(subject: _Subject, cell: Cell, measured, plan: Plan, n_cpus: int,
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
    return _build_cell(subject, "serial", 1, measured, plan, n_cpus, **extra)


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
