"""Dask cells: the lab's question asked through dask.distributed itself.

Should my Dask workers be processes or threads for *this* function? A cell runs k
identical tasks on a cluster shaped P processes x T threads (P x T = k), one task
pinned to each worker thread, through the client (``pure=False``, so k identical
calls stay k tasks), checks every answer, and measures it with gillab.measure like
every other cell: wall and CPU time of the whole cluster, ``gil_wait`` inside the
tasks, the noise guard.

Beside gillab's figures, each cell carries two of Dask's own:

- ``loop_stall_s``: the longest gap between two ticks of a worker's event loop
  (distributed's own ``tick-duration``, the figure behind its "Event loop was
  unresponsive" message; 0.02 s, the tick interval, when nothing stalls). A task
  that holds the GIL inside one C call freezes the loop for the whole call:
  no heartbeats, and the worker can look dead.
- ``dask_gil_contention``: what distributed's system monitor reports through
  gilknocker (None without gilknocker, which distributed then leaves off silently).

By default each shape gets a LocalCluster of its own on 127.0.0.1, with no fixed
port, started before the timed runs and closed after them (also on Ctrl-C).
Workers start with ``spawn``: whatever a task needs must be importable. With
``scheduler=ADDRESS`` an existing cluster is measured as it is shaped.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import math
import multiprocessing.resource_tracker
import os
import signal
import statistics
import threading
import time

import psutil

from gillab import kernels
from gillab.errors import UserError
from gillab.measure import (CellMeasurement, StartupCost, machine_busy,
                            measure_cell, measure_startup, run_task, time_call)

__all__ = ["plan_shapes", "parse_shape", "shape_of", "measure_dask", "local_cluster",
           "connect", "check_scheduler", "dispatch_us_dask", "CONNECT_TIMEOUT_S"]

#: How long to wait for an existing scheduler before saying it cannot be reached.
CONNECT_TIMEOUT_S = 5
#: Distributed's own event-loop tick: an idle loop's longest gap is about this.
_TICK_METRIC = "tick-duration"


class DaskCellFailed(Exception):
    """A dask cell could not be measured (a worker died or hung): the cell says why."""


# --- shapes ----------------------------------------------------------------------------


def parse_shape(shape: str) -> tuple[int, int]:
    """"2x1" -> (2, 1): P worker processes x T threads each, both >= 1."""
    procs, sep, threads = str(shape).lower().partition("x")
    try:
        p, t = int(procs), int(threads)
    except ValueError:
        p = t = 0
    if not sep or p < 1 or t < 1:
        raise ValueError(f"a dask shape is PxT with P, T >= 1, like 2x1: got {shape!r}")
    return p, t


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


def _probe_start(dask_worker):
    """Forget the worker's longest tick so far; close a system-monitor window."""
    dask_worker.digests_max.pop(_TICK_METRIC, None)
    monitor = dask_worker.monitor
    if not getattr(monitor, "monitor_gil_contention", False):
        return None
    if not hasattr(monitor, "cumulative_gil_contention"):
        return None  # older distributed: no running total to take a window of
    monitor.update()  # resets gilknocker: the cell's window starts here
    return monitor.cumulative_gil_contention, monitor.last_time


def _probe_read(start, dask_worker):
    """(longest tick since _probe_start, mean gil_contention since then or None)."""
    from distributed.metrics import time as dask_time  # the clock distributed ticks by

    tick = dask_worker.digests_max.get(_TICK_METRIC)
    last_tick = getattr(dask_worker, "_last_tick", None)
    if last_tick is not None:  # the gap still open counts too (a short run may end in it)
        tick = max(tick or 0.0, dask_time() - last_tick)
    contention = None
    monitor = dask_worker.monitor
    if start is not None:
        monitor.update()
        cumulative0, time0 = start
        span = monitor.last_time - time0
        if span > 0:
            contention = (monitor.cumulative_gil_contention - cumulative0) / span
    return tick, contention


def _process_cpu():
    """This process's CPU seconds, and who it is (to tell a local process from a remote one)."""
    proc = psutil.Process()
    times = proc.cpu_times()
    return {"pid": proc.pid, "create_time": proc.create_time(), "boot_id": _boot_id(),
            "cpu_s": times.user + times.system}


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


# --- Ctrl-C ----------------------------------------------------------------------------


@contextlib.contextmanager
def _sigint_deferred():
    """Hold Ctrl-C back until the block is done, then raise it.

    Starting or stopping a cluster must not be cut in half (a half-made cluster
    leaves worker processes behind). Threads started meanwhile (distributed's loop
    and process watchers) keep SIGINT blocked, and so do the worker processes they
    spawn: the terminal's Ctrl-C reaches the whole process group, but only this
    process should act on it, by closing the cluster.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # multiprocessing unblocks SIGINT in the thread that first starts its resource
    # tracker; start it now so no thread started below does.
    multiprocessing.resource_tracker.ensure_running()
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    if previous is None:  # a handler installed outside Python: the default is the best guess
        previous = signal.default_int_handler
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        signal.signal(signal.SIGINT, previous)  # runs a Ctrl-C pending meanwhile first
        if caught:
            raise KeyboardInterrupt


# --- clusters --------------------------------------------------------------------------


def _child_pids() -> set[int]:
    return {c.pid for c in psutil.Process().children(recursive=True)}


def _is_resource_tracker(proc: psutil.Process) -> bool:
    # multiprocessing's tracker serves the whole process and ends with it: not ours to stop.
    with contextlib.suppress(psutil.Error):
        return any("resource_tracker" in part for part in proc.cmdline())
    return False


def _reap(before: set[int], timeout_s: float = 5.0) -> None:
    """Kill any process the cluster started that outlived its close."""
    left = []
    for pid in _child_pids() - before:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(pid)
            if not _is_resource_tracker(proc):
                left.append(proc)
    for proc in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(left, timeout=timeout_s)


@contextlib.contextmanager
def local_cluster(n_processes: int, n_threads: int, startup: list | None = None):
    """A Client on a fresh LocalCluster: P spawned worker processes x T threads, on
    127.0.0.1, every port chosen by the OS. Closed on the way out, Ctrl-C included;
    a worker process that survives the close is killed.

    If ``startup`` is a list, the cluster's start-up cost (StartupCost) is appended.
    """
    import dask
    from distributed import Client, LocalCluster

    config = {"distributed.worker.multiprocessing-method": "spawn",
              "distributed.worker.daemon": True}
    before = _child_pids()
    cluster = client = None
    try:
        with _sigint_deferred(), dask.config.set(config):
            cost, cluster = measure_startup(lambda: LocalCluster(
                n_workers=n_processes, threads_per_worker=n_threads, processes=True,
                host="127.0.0.1", scheduler_port=0,
                # The scheduler serves HTTP (health, metrics) even with the dashboard
                # off, on 8787 unless told otherwise: an OS-chosen port on loopback.
                dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
                worker_dashboard_address=None,
                # Dask's own log lines (a stalled loop, a heartbeat lost while closing)
                # would land in the progress display; a cell reports its failures itself.
                silence_logs=logging.CRITICAL))
            client = Client(cluster, set_as_default=False)
        if startup is not None:
            startup.append(cost)
        yield client
    finally:
        with _sigint_deferred():
            for obj in (client, cluster):
                if obj is not None:
                    # A worker stuck in a GIL-holding call may not close in time:
                    # _reap ends it, so a slow close is no reason to fail the run.
                    with contextlib.suppress(OSError, RuntimeError):
                        obj.close(timeout=10)
            _reap(before)


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S):
    """A Client on a running scheduler; UserError (one line) if it cannot be reached."""
    from distributed import Client

    message = None
    try:
        client = Client(address, timeout=timeout_s, set_as_default=False)
    except (OSError, ValueError, TypeError) as exc:  # TimeoutError is an OSError
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if message is not None:
        # The half-made Client lives on in the exception's frames; collect it now,
        # while its loop runs, or its __del__ waits out a timeout at exit.
        gc.collect()
        raise UserError(f"cannot reach the dask scheduler at {address}: {message}")
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except (OSError, TimeoutError):
        client.close()
        raise UserError(f"the dask scheduler at {address} has no workers "
                        f"(waited {timeout_s:g} s)") from None
    return client


def check_scheduler(address: str) -> str:
    """The shape of the cluster at ``address`` ("2x1"), or UserError (one line) within
    about CONNECT_TIMEOUT_S: for the command line to fail before measuring anything."""
    with _existing_cluster(address) as client:
        return shape_of(_worker_threads(client).values())


@contextlib.contextmanager
def _existing_cluster(address: str):
    client = connect(address)
    try:
        yield client
    finally:
        with _sigint_deferred(), contextlib.suppress(OSError, RuntimeError):
            client.close()


def _worker_threads(client) -> dict[str, int]:
    """{worker address: threads}, in address order."""
    return dict(sorted(client.nthreads().items()))


# --- the cells -------------------------------------------------------------------------


class _Runner:
    """run() for measure_cell: one task per worker thread, through the client."""

    #: How often a run that waits for its tasks checks that their workers are alive.
    poll_s = 0.5

    def __init__(self, client, task: kernels.Task, threads: dict[str, int],
                 timeout_s: float, remote_cpu: bool):
        self.client = client
        self.task = task
        # Pinned: one task per worker thread, so that a shape is measured as named
        # (left alone, the scheduler may queue two tasks on one worker).
        self.placement = [addr for addr, t in threads.items() for _ in range(t)]
        self.timeout_s = timeout_s
        self.remote_cpu = remote_cpu
        self.cluster_cpu: list[tuple[dict, dict]] = []  # per run: snapshots before, after

    def __call__(self):
        before = _cluster_cpu(self.client) if self.remote_cpu else None
        results = self.submit(run_task, self.task)
        if before is not None:  # the two round trips are inside the timed run; the sums are not
            self.cluster_cpu.append((before, _cluster_cpu(self.client)))
        return results

    def submit(self, func, *args):
        """func(*args) once per placement slot; the answers in order, or DaskCellFailed."""
        from distributed import KilledWorker

        futures = [self.client.submit(func, *args, pure=False, workers=[addr],
                                      allow_other_workers=False)
                   for addr in self.placement]
        try:
            self._wait(futures)
            return self.client.gather(futures)
        except BaseException as exc:
            # Unrun tasks must not stay queued (on a shared cluster, above all);
            # a task already running in a worker thread runs to its end.
            with contextlib.suppress(Exception):
                self.client.cancel(futures)
            if isinstance(exc, KilledWorker):
                raise DaskCellFailed(f"a dask worker died running the task: {exc}"
                                     .splitlines()[0]) from None
            if isinstance(exc, OSError):  # TimeoutError, a lost connection
                raise DaskCellFailed(f"the cluster failed: {type(exc).__name__}: {exc}"
                                     .splitlines()[0]) from None
            raise

    def _wait(self, futures) -> None:
        """Wait for every task; fail as soon as a worker they are pinned to is gone
        (its nanny may restart it, under another address: the task would wait forever)."""
        from distributed import wait

        for _ in range(max(1, math.ceil(self.timeout_s / self.poll_s))):
            try:
                with self.client.as_current():  # wait() asks for "the" client
                    wait(futures, timeout=self.poll_s)
                return
            except TimeoutError:
                gone = set(self.placement) - set(self.client.nthreads())
                if gone:
                    raise DaskCellFailed(f"a dask worker died running the task "
                                         f"({len(gone)} of {len(set(self.placement))} "
                                         "gone from the scheduler)") from None
        raise DaskCellFailed(f"no answer within {self.timeout_s:.0f} s")


def _cluster_cpu(client) -> dict:
    """CPU seconds of every cluster process that is not this process's child."""
    snapshot = {addr: info for addr, info in client.run(_process_cpu).items()}
    with contextlib.suppress(ValueError, OSError):
        snapshot["scheduler"] = client.run_on_scheduler(_process_cpu)
    return snapshot


def _is_here(info: dict) -> tuple[bool, bool]:
    """(on this machine, a child of this process) for a _process_cpu() answer."""
    if info["boot_id"] != _boot_id():
        return False, False
    try:
        proc = psutil.Process(info["pid"])
        same = abs(proc.create_time() - info["create_time"]) < 0.05
    except psutil.Error:
        return False, False
    if not same:
        return False, False
    mine = proc.pid == os.getpid() or proc.pid in _child_pids()
    return True, mine


def _cpu_delta(before: dict, after: dict) -> tuple[float, float]:
    """CPU seconds cluster processes used between two snapshots that cpu_snapshot()
    cannot see (not this process nor its children): (all of them, those on this machine)."""
    total = local = 0.0
    for key, info in after.items():
        if key not in before or before[key]["pid"] != info["pid"]:
            continue  # restarted meanwhile: its CPU is unknown
        here, mine = _is_here(info)
        if mine:
            continue  # cpu_snapshot() counts it already
        used = max(0.0, info["cpu_s"] - before[key]["cpu_s"])
        total += used
        if here:
            local += used
    return total, local


def _with_cluster_cpu(measured: CellMeasurement, cluster_cpu, n_cpus: int) -> CellMeasurement:
    """Add the cluster's CPU to each repeat, and take its share on this machine out of
    the noise (it was the cell's own work, not another process's)."""
    repeats = []
    for r, (before, after) in zip(measured.repeats, cluster_cpu):
        total, local = _cpu_delta(before, after)
        noise = r.noise
        if noise is not None and r.wall_s > 0:
            noise = max(0.0, noise - local / (r.wall_s * n_cpus))
        repeats.append(dataclasses.replace(r, cpu_s=r.cpu_s + total, noise=noise))
    return CellMeasurement(tuple(repeats), measured.tries)


def _dask_figures(client, starts: dict) -> dict:
    """Read what the workers saw since _probe_start: the longest event-loop tick (max
    over workers) and the system monitor's gil_contention (mean over workers)."""
    readings = []
    for addr, start in starts.items():
        with contextlib.suppress(OSError, KeyError, ValueError):  # a worker gone meanwhile
            readings.append(client.run(_probe_read, start, workers=[addr])[addr])
    ticks = [tick for tick, _ in readings if tick is not None]
    contentions = [c for _, c in readings if c is not None]
    return {"loop_stall_s": max(ticks) if ticks else None,
            "dask_gil_contention": statistics.fmean(contentions) if contentions else None}


def _measure_guarded(client, runner: _Runner, repeat, noise_limit, max_tries, pause_s=1.0):
    """measure_cell's noise guard, one try at a time, so that Dask's own figures are
    read for each try and kept with it (not averaged over the pauses between tries),
    and, for a cluster that is not this process's children, so that the guard judges
    the noise once the cluster's own CPU is taken out of it.

    Returns (CellMeasurement, Dask's figures for the try that was kept).
    """
    busy = machine_busy()
    n_cpus = busy[1] if busy else (os.cpu_count() or 1)
    best = None
    for attempt in range(1, max_tries + 1):
        runner.cluster_cpu.clear()
        try:
            starts = client.run(_probe_start)
        except OSError:  # a worker went away between tries: the run will say more
            starts = {}
        # One try: the guard's decision is taken here, on the corrected figures.
        raw = measure_cell(runner, repeat, noise_limit=math.inf, max_tries=1)
        if runner.remote_cpu:
            raw = _with_cluster_cpu(raw, runner.cluster_cpu, n_cpus)
        current = CellMeasurement(raw.repeats, attempt), _dask_figures(client, starts)
        noise = current[0].noise
        if noise is None or noise <= noise_limit:
            return current
        if best is None or noise < best[0].noise:
            best = current
        if attempt < max_tries:
            time.sleep(pause_s)
    return CellMeasurement(best[0].repeats, max_tries), best[1]


def _measure_on(client, task, repeat, noise_limit, max_tries, timeout_s, remote, cost):
    """Measure one cell on a started cluster: (CellMeasurement or error, extra fields)."""
    runner = _Runner(client, task, _worker_threads(client), timeout_s, remote_cpu=remote)
    try:
        runner.submit(_warm, task, 0.05)
        measured, extra = _measure_guarded(client, runner, repeat, noise_limit, max_tries)
    except DaskCellFailed as exc:
        return str(exc), {"loop_stall_s": None, "dask_gil_contention": None}
    if cost:
        with contextlib.suppress(OSError):  # no answer in time: no figure, the cell stands
            extra["dispatch_us"] = _dispatch_us(client, n_tasks=200, repeat=3,
                                                timeout_s=timeout_s)
    return measured, extra


def measure_dask(task: kernels.Task, workers, *, shapes=None, scheduler: str | None = None,
                 repeat: int = 3, noise_limit: float = 0.10, max_tries: int = 3,
                 timeout_s: float = 300.0, cost: bool = False, on_start=None):
    """Measure ``task`` on dask clusters; yield (k, shape, measured, extra) per cell.

    ``measured`` is a gillab.measure.CellMeasurement, or a one-line message for a
    cell that could not be measured; ``extra`` holds the Cell fields only dask has:
    ``loop_stall_s`` (max over workers) and ``dask_gil_contention`` (mean over
    workers, None without gilknocker); ``start_method``; with ``cost``, also
    ``startup_s``, ``startup_cpu_s`` (the LocalCluster's) and ``dispatch_us``.

    Cells: see plan_shapes; one LocalCluster per shape, started before its timed runs
    and closed before the cell is yielded. With ``scheduler`` (an address), the
    running cluster is measured once, at k = all its worker threads, and its shape
    is read from the scheduler; ``shapes`` cannot apply there (UserError), and an
    unreachable scheduler raises UserError within CONNECT_TIMEOUT_S.

    ``on_start(k, shape)``, if given, is called as each cell begins (for progress;
    the shape of an existing cluster is only known once connected).
    """
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
        n_processes, n_threads = parse_shape(shape)
        startup: list[StartupCost] = []
        try:
            with local_cluster(n_processes, n_threads, startup) as client:
                measured, extra = _measure_on(client, task, repeat, noise_limit, max_tries,
                                              timeout_s, remote=False, cost=cost)
        except OSError as exc:  # the cluster did not start, or lost its scheduler
            measured = f"the local dask cluster failed: {type(exc).__name__}: {exc}"
            measured, extra = measured.splitlines()[0], {"loop_stall_s": None,
                                                         "dask_gil_contention": None}
        extra["start_method"] = "spawn"
        if cost and startup:
            extra["startup_s"], extra["startup_cpu_s"] = startup[0].wall_s, startup[0].cpu_s
        yield k, shape, measured, extra  # the cluster is closed: nothing runs meanwhile


def _measure_existing(task, address, repeat, noise_limit, max_tries, timeout_s, cost,
                      on_start):
    with _existing_cluster(address) as client:
        threads = _worker_threads(client)
        if on_start is not None:
            on_start(sum(threads.values()), shape_of(threads.values()))
        measured, extra = _measure_on(client, task, repeat, noise_limit, max_tries,
                                      timeout_s, remote=True, cost=cost)
    return sum(threads.values()), shape_of(threads.values()), measured, extra


# --- dispatch cost ---------------------------------------------------------------------


def _dispatch_us(client, n_tasks: int, repeat: int, timeout_s: float = 60.0) -> float:
    from distributed import wait

    from gillab.dispatch import trivial

    expected = list(range(n_tasks))

    def send():
        futures = client.map(trivial, range(n_tasks), pure=False)
        with client.as_current():
            wait(futures, timeout=timeout_s)
        return client.gather(futures)

    send()  # the first batch pays lazy costs (imports in the workers)
    seconds = []
    for _ in range(repeat):
        elapsed, answers = time_call(send)
        if answers != expected:
            raise RuntimeError("dask returned wrong answers for trivial tasks")
        seconds.append(elapsed)
    return statistics.median(seconds) / n_tasks * 1e6


def dispatch_us_dask(n_tasks: int = 500, shape: str = "2x1", repeat: int = 3,
                     scheduler: str | None = None) -> float:
    """Microseconds per trivial task through ``client.map`` (gillab.dispatch.trivial):
    the median of ``repeat`` batches of ``n_tasks`` after one untimed batch, on a
    local cluster of ``shape`` (or the running cluster at ``scheduler``).

    The same question gillab.dispatch.dispatch_us answers for the pools; the figure
    is wall time: the client, the scheduler and the worker each take their part.
    Raises ValueError for a bad size, UserError for an unreachable scheduler, and
    TimeoutError if the cluster does not answer within a minute.
    """
    for name, value in (("n_tasks", n_tasks), ("repeat", repeat)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if scheduler is not None:
        with _existing_cluster(scheduler) as client:
            return _dispatch_us(client, n_tasks, repeat)
    with local_cluster(*parse_shape(shape)) as client:
        return _dispatch_us(client, n_tasks, repeat)
