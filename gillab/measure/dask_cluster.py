"""A dask cluster's life: start one, reach one, close it, leave nothing running.

A LocalCluster of P spawned worker processes x T threads on 127.0.0.1 (every port
chosen by the OS), or a Client on a scheduler someone else runs; tasks pinned to the
workers they are meant for, and a worker's death told within half a second. Starting and
stopping are never cut in half by Ctrl-C (it is held back, then raised), and a
worker process that outlives the close is killed. Which dask configuration the
workers run with (distributed's profiler and GIL monitor) is decided by the
caller: see ``DASK_DEFAULTS``/``QUIET`` in gillab.measure.dask_cells.

Its processes' CPU is read where they run (gillab.measure.clocks.process_cpu, through the
client) for a cluster that is not this process's children; the counters are read
by gillab.measure.clocks, this module only adds them up.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import math
import multiprocessing.resource_tracker
import os
import signal
import threading

import psutil

from gillab.core.errors import UserError, one_line
from gillab.measure.footprint import measure_startup
from gillab.measure.clocks import boot_id, process_cpu

__all__ = ["CONNECT_TIMEOUT_S", "DaskCellFailed", "submit_pinned", "local_cluster", "connect",
           "existing_cluster", "worker_threads", "child_pids", "sigint_deferred", "cluster_cpu",
           "cpu_delta"]

#: How long to wait for an existing scheduler before saying it cannot be reached.
CONNECT_TIMEOUT_S = 5

#: How often a run that waits for its tasks checks that their workers are alive.
POLL_S = 0.5

#: Always set for a local cluster: spawn (dask's own default, said out loud) and
#: daemonic workers, so that none outlives this process.
_BASE_CONFIG = {"distributed.worker.multiprocessing-method": "spawn",
                "distributed.worker.daemon": True}


class DaskCellFailed(Exception):
    """A dask cell could not be measured (a worker died or hung): the cell says why."""


# --- Ctrl-C ----------------------------------------------------------------------------


@contextlib.contextmanager
def sigint_deferred():
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


# --- reaping -----------------------------------------------------------------------------


def child_pids() -> set[int]:
    """Every live descendant of this process."""
    return {c.pid for c in psutil.Process().children(recursive=True)}


def _is_resource_tracker(proc: psutil.Process) -> bool:
    # multiprocessing's tracker serves the whole process and ends with it: not ours to stop.
    with contextlib.suppress(psutil.Error):
        return any("resource_tracker" in part for part in proc.cmdline())
    return False


def _reap(before: set[int], timeout_s: float = 5.0) -> None:
    """Kill any process the cluster started that outlived its close."""
    left = []
    for pid in child_pids() - before:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(pid)
            if not _is_resource_tracker(proc):
                left.append(proc)
    for proc in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(left, timeout=timeout_s)


# --- a local cluster ---------------------------------------------------------------------


@contextlib.contextmanager
def local_cluster(n_processes: int, n_threads: int, startup: list | None = None,
                  config: dict | None = None):
    """A Client on a fresh LocalCluster: P spawned worker processes x T threads, on
    127.0.0.1, every port chosen by the OS. Closed on the way out, Ctrl-C included;
    a worker process that survives the close is killed.

    ``config`` (dask config keys) is set while the cluster starts: the nannies hand
    it to their workers. If ``startup`` is a list, the cluster's start-up cost
    (gillab.measure.footprint.StartupCost) is appended.
    """
    import dask
    from distributed import Client, LocalCluster

    before = child_pids()
    cluster = client = None
    try:
        with sigint_deferred(), dask.config.set({**_BASE_CONFIG, **(config or {})}):
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
        with sigint_deferred():
            for obj in (client, cluster):
                if obj is not None:
                    # A worker stuck in a GIL-holding call may not close in time:
                    # _reap ends it, so a slow close is no reason to fail the run.
                    with contextlib.suppress(OSError, RuntimeError):
                        obj.close(timeout=10)
            _reap(before)


# --- remote CPU: a cluster that is not this process's children -------------------------


def cluster_cpu(client) -> dict:
    """CPU seconds of every cluster process (gillab.measure.clocks.process_cpu, run there)."""
    snapshot = dict(client.run(process_cpu).items())
    with contextlib.suppress(ValueError, OSError):
        snapshot["scheduler"] = client.run_on_scheduler(process_cpu)
    return snapshot


def _is_here(info: dict) -> tuple[bool, bool]:
    """(on this machine, a child of this process) for a process_cpu() answer."""
    if info["boot_id"] != boot_id():
        return False, False
    try:
        proc = psutil.Process(info["pid"])
        same = abs(proc.create_time() - info["create_time"]) < 0.05
    except psutil.Error:
        return False, False
    if not same:
        return False, False
    return True, proc.pid == os.getpid() or proc.pid in child_pids()


def cpu_delta(before: dict, after: dict) -> tuple[float, float]:
    """CPU seconds cluster processes used between two snapshots that cpu_snapshot()
    cannot see (not this process nor its children): (all of them, those on this machine).
    Snapshots come from cluster_cpu."""
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


# --- running tasks where they are meant to run --------------------------------------------


def submit_pinned(client, placement: list, timeout_s: float, func, *args) -> list:
    """func(*args) once on each worker address of ``placement`` (one per slot, none
    elsewhere); the answers in order, or DaskCellFailed (one line) when a worker dies
    or nothing answers within ``timeout_s``."""
    from distributed import KilledWorker

    futures = [client.submit(func, *args, pure=False, workers=[addr],
                             allow_other_workers=False) for addr in placement]
    try:
        _wait(client, futures, placement, timeout_s)
        return client.gather(futures)
    except BaseException as exc:
        # Unrun tasks must not stay queued (on a shared cluster, above all);
        # a task already running in a worker thread runs to its end.
        with contextlib.suppress(Exception):
            client.cancel(futures)
        if isinstance(exc, KilledWorker):
            raise DaskCellFailed("a dask worker died running the task: "
                                 + one_line(exc, with_type=False)) from None
        if isinstance(exc, OSError):  # TimeoutError, a lost connection
            raise DaskCellFailed(f"the cluster failed: {one_line(exc)}") from None
        raise


def _wait(client, futures, placement, timeout_s: float) -> None:
    """Wait for every task; fail as soon as a worker they are pinned to is gone
    (its nanny may restart it, under another address: the task would wait forever)."""
    from distributed import wait

    for _ in range(max(1, math.ceil(timeout_s / POLL_S))):
        try:
            with client.as_current():  # wait() asks for "the" client
                wait(futures, timeout=POLL_S)
            return
        except TimeoutError:
            gone = set(placement) - set(client.nthreads())
            if gone:
                raise DaskCellFailed(f"a dask worker died running the task "
                                     f"({len(gone)} of {len(set(placement))} "
                                     "gone from the scheduler)") from None
    raise DaskCellFailed(f"no answer within {timeout_s:.0f} s")


# --- a running cluster -------------------------------------------------------------------


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S):
    """A Client on a running scheduler; UserError (one line) if it cannot be reached."""
    from distributed import Client

    message = None
    try:
        client = Client(address, timeout=timeout_s, set_as_default=False)
    except (OSError, ValueError, TypeError) as exc:  # TimeoutError is an OSError
        message = one_line(exc, with_type=False)
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


@contextlib.contextmanager
def existing_cluster(address: str):
    """A Client on the scheduler at ``address`` (see connect), closed on the way out;
    the cluster itself is left running: it is not ours."""
    client = connect(address)
    try:
        yield client
    finally:
        with sigint_deferred(), contextlib.suppress(OSError, RuntimeError):
            client.close()


def worker_threads(client) -> dict[str, int]:
    """{worker address: threads}, in address order."""
    return dict(sorted(client.nthreads().items()))
