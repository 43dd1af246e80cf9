"""Dask cells: the lab's question asked through dask.distributed itself.

Should my Dask workers be processes or threads for *this* function? A cell runs k
identical tasks on a cluster shaped P processes x T threads (P x T = k), one task
pinned to each worker thread, through the client (``pure=False``, so k identical
calls stay k tasks), checks every answer, and is measured by gillab.measure.cell.measure_cell
like every other cell: wall and CPU time of the whole cluster, ``gil_wait`` inside
the tasks, the one noise guard. The cluster's life (start, Ctrl-C, reaping) is
gillab.measure.dask_cluster's.

Beside gillab's figures, each cell carries Dask's own and what they cost:

- ``loop_stall_s``: the longest gap between two ticks of a worker's event loop
  (distributed's own ``tick-duration``; 0.02 s, the tick interval, when nothing stalls).
- ``dask_gil_contention``: distributed's system monitor through gilknocker (None
  without gilknocker, or with the monitor off).
- ``dask_config``: which dask configuration the workers ran with (CONFIGS), and
  ``dask_own_cores``: CPU the cluster used beyond its tasks' own threads, per second
  of the cell (distributed's threads: profiler, monitor, event loops, the scheduler).
"""
from __future__ import annotations

import contextlib
import os
import time

from gillab import kernels
from gillab.core import stats
from gillab.measure.dask_cluster import (DaskCellFailed, cluster_cpu, cpu_delta, existing_cluster,
                                 local_cluster, submit_pinned, worker_threads)
from gillab.core.errors import UserError, one_line
from gillab.measure.footprint import StartupCost
from gillab.measure.clocks import run_task
from gillab.measure.cell import CellMeasurement, ExtraCpu, measure_cell
from gillab.measure.noise import NOISE_LIMIT

__all__ = ["CONFIGS", "DEFAULT_CONFIG", "plan_shapes", "parse_shape", "parse_shapes",
           "shape_of", "measure_dask", "cell_figures", "check_scheduler", "dispatch_us_dask",
           "dask_reason"]

#: The dask configurations a local cell can run with. "dask" is distributed's own
#: defaults; "quiet" switches off the statistical profiler, which samples every
#: worker thread's stack every 10 ms under the worker's GIL: see docs/dask.md for
#: what each of distributed's own threads costs a pure-Python task.
CONFIGS: dict[str, dict] = {
    "dask": {},
    "quiet": {"distributed.worker.profile.enabled": False},
}
DEFAULT_CONFIG = "quiet"

#: Distributed's own event-loop tick: an idle loop's longest gap is about this.
_TICK_METRIC = "tick-duration"
_NO_FIGURES = {"loop_stall_s": None, "dask_gil_contention": None}


# --- shapes: the one place a "PxT" is read ----------------------------------------------


def parse_shape(shape: str) -> tuple[int, int]:
    """"2x1" -> (2, 1): P worker processes x T threads each, both >= 1."""
    procs, sep, threads = str(shape).strip().lower().partition("x")
    try:
        p, t = int(procs), int(threads)
    except ValueError:
        p = t = 0
    if not sep or p < 1 or t < 1:
        raise ValueError(f"a dask shape is PxT with P, T >= 1, like 2x1: got {shape!r}")
    return p, t


def parse_shapes(text: str) -> tuple[str, ...]:
    """"2x1, 1X2,2x1" -> ("2x1", "1x2"): the command line's --dask-shape, in order,
    without repeats; ValueError (one line) for a bad or empty list."""
    shapes = [f"{p}x{t}" for p, t in
              (parse_shape(part) for part in text.split(",") if part.strip())]
    if not shapes:
        raise ValueError("give dask shapes like 2x1,1x2")
    return tuple(dict.fromkeys(shapes))


def plan_shapes(workers, shapes=None) -> list[tuple[int, str]]:
    """The (k, "PxT") dask cells to run, in order.

    Without ``shapes``: for each worker count k, every shape with P x T = k, most
    processes first (4: 4x1, 2x2, 1x4). With ``shapes``: each one given, at
    k = P x T tasks, whatever ``workers`` says; asking for a shape by name means
    wanting it measured. Sorted by k, in the order given within one k.
    """
    if shapes:
        planned = [(p * t, f"{p}x{t}") for p, t in map(parse_shape, shapes)]
        return sorted(dict.fromkeys(planned), key=lambda cell: cell[0])
    cells = []
    for k in sorted(set(workers)):
        cells.extend((k, f"{p}x{k // p}") for p in range(k, 0, -1) if k % p == 0)
    return cells


def shape_of(nthreads) -> str:
    """The shape of a running cluster from its workers' thread counts: "2x1", or
    "1x2+2x1" when the workers differ."""
    counts: dict[int, int] = {}
    for t in nthreads:
        counts[t] = counts.get(t, 0) + 1
    return "+".join(f"{p}x{t}" for t, p in sorted(counts.items(), key=lambda kv: -kv[0]))


# --- inside a worker (shipped with client.run; must stay importable) ---------------------


def _warm(task: kernels.Task, seconds: float) -> int:
    """Import what the task needs and hold a worker thread for a moment, so that every
    thread of the worker's pool is started before the timed runs."""
    task.resolve()
    time.sleep(seconds)
    return os.getpid()


def _probe_start(open_window: bool, dask_worker):
    """Forget the worker's longest tick so far; with ``open_window``, open a
    system-monitor window (gilknocker's figure needs about a second to mean anything)."""
    dask_worker.digests_max.pop(_TICK_METRIC, None)
    monitor = dask_worker.monitor
    if not open_window or not getattr(monitor, "monitor_gil_contention", False):
        return None
    if not hasattr(monitor, "cumulative_gil_contention"):
        return None  # older distributed: no running total to take a window of
    monitor.update()  # resets gilknocker: the window starts here
    return monitor.cumulative_gil_contention, monitor.last_time


def _probe_read(start, dask_worker):
    """(longest tick since _probe_start, mean gil_contention since the window it opened,
    or None)."""
    from distributed.metrics import time as dask_time  # the clock distributed ticks by

    tick = dask_worker.digests_max.get(_TICK_METRIC)
    last_tick = getattr(dask_worker, "_last_tick", None)
    if last_tick is not None:  # the gap still open counts too (a short run may end in it)
        tick = max(tick or 0.0, dask_time() - last_tick)
    contention = None
    if start is not None:
        monitor = dask_worker.monitor
        monitor.update()
        cumulative0, time0 = start
        span = monitor.last_time - time0
        if span > 0:
            contention = (monitor.cumulative_gil_contention - cumulative0) / span
    return tick, contention


# --- the run and what it sees ------------------------------------------------------------


class _Runner:
    """run() for measure_cell: one task per worker thread, pinned, through the client
    (left alone, the scheduler may queue two tasks on one worker: a shape is measured
    as named)."""

    def __init__(self, client, task: kernels.Task, threads: dict[str, int], timeout_s: float):
        self.client = client
        self.task = task
        self.placement = [addr for addr, t in threads.items() for _ in range(t)]
        self.timeout_s = timeout_s

    def __call__(self):
        return self.submit(run_task, self.task)

    def submit(self, func, *args):
        """func(*args) once per placement slot; the answers in order, or DaskCellFailed."""
        return submit_pinned(self.client, self.placement, self.timeout_s, func, *args)


class _ClusterSource:
    """measure_cell's ``cpu_source`` for a dask cell: around each timed run, reads Dask's
    own figures on every worker (the loop's longest tick per run; gil_contention over
    each try of ``repeat`` runs, where it is kept with the try's last run) and, for a
    cluster that is not this process's children, its processes' CPU."""

    def __init__(self, client, repeat: int, remote_cpu: bool):
        self.client = client
        self.repeat = repeat
        self.remote_cpu = remote_cpu
        self.runs = 0
        self.window: dict = {}

    def __call__(self):
        first, last = self.runs % self.repeat == 0, self.runs % self.repeat == self.repeat - 1
        self.runs += 1
        try:
            starts = self.client.run(_probe_start, first)
        except OSError:  # a worker gone: the run itself will say more
            starts = {}
        if first:
            self.window = {addr: start for addr, start in starts.items() if start is not None}
        before = cluster_cpu(self.client) if self.remote_cpu else None

        def stop() -> ExtraCpu:
            total = local = 0.0
            if before is not None:
                total, local = cpu_delta(before, cluster_cpu(self.client))
            windows = {addr: self.window.get(addr) if last else None for addr in starts}
            return ExtraCpu(total, local, _read_probes(self.client, windows))

        return stop


def _read_probes(client, starts: dict) -> dict:
    """The longest event-loop tick (max over workers) and gil_contention (mean over
    workers) since _probe_start."""
    readings = []
    for addr, start in starts.items():
        with contextlib.suppress(OSError, KeyError, ValueError):  # a worker gone meanwhile
            readings.append(client.run(_probe_read, start, workers=[addr])[addr])
    ticks = [tick for tick, _ in readings if tick is not None]
    contentions = [c for _, c in readings if c is not None]
    return {"loop_stall_s": max(ticks) if ticks else None,
            "dask_gil_contention": stats.mean(contentions) if contentions else None}


# --- the cells ---------------------------------------------------------------------------


def cell_figures(measured: CellMeasurement) -> dict:
    """Dask's own figures over the kept repeats, and the cluster's CPU beyond its tasks:
    the ``extra`` fields a dask cell adds (see the module's docstring)."""
    seen = [r.observed for r in measured.repeats if r.observed]
    stalls = [s["loop_stall_s"] for s in seen if s["loop_stall_s"] is not None]
    contentions = [s["dask_gil_contention"] for s in seen
                   if s["dask_gil_contention"] is not None]
    own = [max(0.0, r.cpu_s - sum(t.cpu_s for t in r.tasks)) / r.wall_s
           for r in measured.repeats if r.wall_s > 0]
    return {"loop_stall_s": max(stalls) if stalls else None,
            "dask_gil_contention": stats.mean(contentions) if contentions else None,
            "dask_own_cores": stats.median(own) if own else None}


def _measure_on(client, task, repeat, noise_limit, max_tries, timeout_s, remote, cost):
    """Measure one cell on a started cluster: (CellMeasurement or error, extra fields)."""
    runner = _Runner(client, task, worker_threads(client), timeout_s)
    try:
        runner.submit(_warm, task, 0.05)
        measured = measure_cell(runner, repeat, noise_limit=noise_limit, max_tries=max_tries,
                                cpu_source=_ClusterSource(client, repeat, remote_cpu=remote))
    except DaskCellFailed as exc:
        return str(exc), dict(_NO_FIGURES)
    extra = cell_figures(measured)
    if cost:
        from gillab.measure.dispatch import dispatch_us_client

        with contextlib.suppress(OSError):  # no answer in time: no figure, the cell stands
            extra["dispatch_us"] = dispatch_us_client(client, n_tasks=200, repeat=3,
                                                      timeout_s=timeout_s)
    return measured, extra


def measure_dask(task: kernels.Task, workers, *, shapes=None, scheduler: str | None = None,
                 repeat: int = 3, noise_limit: float = NOISE_LIMIT, max_tries: int = 3,
                 timeout_s: float = 300.0, cost: bool = False, on_start=None,
                 config: str = DEFAULT_CONFIG):
    """Measure ``task`` on dask clusters; yield (k, measured, extra) per cell, the shape
    of gillab.compare.engine.measure_gevent_cells.

    ``measured`` is a gillab.measure.cell.CellMeasurement, or a one-line message for a
    cell that could not be measured; ``extra`` holds the Cell fields only dask has:
    ``shape``, ``loop_stall_s`` (max over workers and runs), ``dask_gil_contention``
    (mean; None without gilknocker), ``dask_own_cores``, ``dask_config``,
    ``start_method``; with ``cost``, also ``startup_s``, ``startup_cpu_s`` (the
    LocalCluster's) and ``dispatch_us``.

    Cells: see plan_shapes; one LocalCluster per shape, run with CONFIGS[config],
    started before its timed runs and closed before the cell is yielded. With
    ``scheduler`` (an address), the running cluster is measured once, as it is
    configured, at k = all its worker threads, its shape read from the scheduler;
    ``shapes`` cannot apply there (UserError), and an unreachable scheduler raises
    UserError within gillab.measure.dask_cluster.CONNECT_TIMEOUT_S.

    ``on_start(k, shape)``, if given, is called as each cell begins (for progress;
    the shape of an existing cluster is only known once connected).
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown dask configuration {config!r}; choose from "
                         f"{', '.join(CONFIGS)}")
    if scheduler is not None:
        if shapes:
            raise UserError("--dask-shape cannot reshape an existing cluster "
                            f"({scheduler}): drop one of --dask-shape, --dask-scheduler")
        yield _measure_existing(task, scheduler, repeat, noise_limit, max_tries, timeout_s,
                                cost, on_start)
        return
    for k, shape in plan_shapes(workers, shapes):
        if on_start is not None:
            on_start(k, shape)
        startup: list[StartupCost] = []
        try:
            with local_cluster(*parse_shape(shape), startup, CONFIGS[config]) as client:
                measured, extra = _measure_on(client, task, repeat, noise_limit, max_tries,
                                              timeout_s, remote=False, cost=cost)
        except OSError as exc:  # the cluster did not start, or lost its scheduler
            measured = f"the local dask cluster failed: {one_line(exc)}"
            extra = dict(_NO_FIGURES)
        extra.update(shape=shape, start_method="spawn", dask_config=config)
        if cost and startup:
            extra["startup_s"], extra["startup_cpu_s"] = startup[0].wall_s, startup[0].cpu_s
        yield k, measured, extra  # the cluster is closed: nothing runs meanwhile


def _measure_existing(task, address, repeat, noise_limit, max_tries, timeout_s, cost,
                      on_start):
    with existing_cluster(address) as client:
        threads = worker_threads(client)
        k, shape = sum(threads.values()), shape_of(threads.values())
        if on_start is not None:
            on_start(k, shape)
        measured, extra = _measure_on(client, task, repeat, noise_limit, max_tries,
                                      timeout_s, remote=True, cost=cost)
    extra.update(shape=shape, dask_config="as running")
    return k, measured, extra


def check_scheduler(address: str) -> str:
    """The shape of the cluster at ``address`` ("2x1"), or UserError (one line) within
    about CONNECT_TIMEOUT_S: for the command line to fail before measuring anything."""
    with existing_cluster(address) as client:
        return shape_of(worker_threads(client).values())


# --- the reason's clause -------------------------------------------------------------------


def dask_reason(shape: str | None, gil_wait: float | None, dask_own_cores: float | None,
                config: str | None, task_slowdown: float | None = None) -> str | None:
    """A short clause for a dask cell's verdict to append, naming in numbers what Dask
    itself took from the tasks; None when that is too small to name. See docs/dask.md.

    ``dask_own_cores``: the cluster's CPU beyond its tasks' threads per second of the
    cell; ``gil_wait``: the tasks' share of time waiting for the GIL, which in
    single-threaded workers (shape Px1) only Dask's own threads can hold;
    ``task_slowdown``: a task's CPU time in the cell / the serial task's.
    """
    parts = []
    if task_slowdown is not None and task_slowdown >= 1.15:
        parts.append(f"each task used {task_slowdown:.1f}x its serial CPU")
    if dask_own_cores is not None and dask_own_cores >= 0.05:
        parts.append(f"Dask's own threads used {dask_own_cores:.2f} cores beside the tasks"
                     + (" (its profiler about half of it: --dask-config quiet turns it off)"
                        if config == "dask" else ""))
    single = shape is not None and all(p.endswith("x1") for p in shape.split("+"))
    if single and gil_wait is not None and gil_wait >= 0.02:
        parts.append(f"each task waited {gil_wait:.0%} of its time for the GIL of a worker "
                     "it had to itself: Dask's event loop and monitors held it")
    return "; ".join(parts) or None


# --- dispatch cost ---------------------------------------------------------------------


def dispatch_us_dask(n_tasks: int = 500, shape: str = "2x1", repeat: int = 3,
                     scheduler: str | None = None, config: str = DEFAULT_CONFIG) -> float:
    """Microseconds per trivial task through ``client.map``, measured as for the pools
    (gillab.measure.dispatch.dispatch_us_client), on a local cluster of ``shape`` run with
    CONFIGS[config], or on the running cluster at ``scheduler``.

    Raises ValueError for a bad size, UserError for an unreachable scheduler, and
    TimeoutError if the cluster does not answer within a minute.
    """
    from gillab.measure.dispatch import dispatch_us_client

    for name, value in (("n_tasks", n_tasks), ("repeat", repeat)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if scheduler is not None:
        with existing_cluster(scheduler) as client:
            return dispatch_us_client(client, n_tasks, repeat)
    with local_cluster(*parse_shape(shape), config=CONFIGS[config]) as client:
        return dispatch_us_client(client, n_tasks, repeat)
