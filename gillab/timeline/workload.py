"""The child program `gillab timeline` watches for the lab's own cells.

    python -m gillab.timeline.workload --kernel py --executor threads --workers 2

It starts its threads and parks them on a Barrier, prints one JSON line with their
TIDs (``ready``), waits for ``go`` on stdin, runs, and prints one JSON line with its
own ground truth (``truth``): per task the CLOCK_MONOTONIC start and end and the
thread's CPU time, and in the convoy, how late each 1 ms sleep came back. With
``--truth`` each task is a pure-Python loop that stamps its progress and also reports
when it did not run (``gaps_ns``). The parent compares its rebuilt timeline with this
truth (record.cpu_agreement, scripts/timeline_accuracy.py, the slow tests).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import queue
import sys
import sysconfig
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from gillab import kernels
from gillab.measure.calibrate import calibrate_n
from gillab.measure.runs import StartLine, ThreadRun
from gillab.measure.stamps import stamped_loop, stamped_steps, task_clocks

#: The convoy's IO thread: sleep this long, again and again, beside a CPU thread.
CONVOY_SLEEP_S = 0.001


def _runtime_address() -> int | None:
    """&_PyRuntime as this interpreter sees it: only a cross-check for the parent."""
    try:
        return ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
    except (ValueError, AttributeError):
        return None


def _task(kernel, n: int, p: int) -> dict:
    t0, c0 = task_clocks()
    kernel(n, p)
    t1, c1 = task_clocks()
    return {"tid": threading.get_native_id(), "t0_ns": t0, "t1_ns": t1, "cpu_ns": c1 - c0}


def _truth_task(steps: int) -> dict:
    t0, c0 = task_clocks()
    gaps = stamped_loop(steps)
    t1, c1 = task_clocks()
    return {"tid": threading.get_native_id(), "t0_ns": t0, "t1_ns": t1, "cpu_ns": c1 - c0,
            "gaps_ns": gaps}


def _sleeper(stop: threading.Event) -> dict:
    lates = []
    t_first = task_clocks()[0]
    while not stop.is_set():
        t0 = task_clocks()[0]
        time.sleep(CONVOY_SLEEP_S)
        lates.append((task_clocks()[0] - t0) / 1e6 - CONVOY_SLEEP_S * 1e3)
    return {"tid": threading.get_native_id(), "t0_ns": t_first, "t1_ns": task_clocks()[0],
            "sleeps": len(lates), "late_ms": lates}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gillab.timeline.workload")
    parser.add_argument("--kernel", default="py")
    parser.add_argument("--executor", default="threads",
                        choices=["threads", "thread_pool", "serial"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=0.4,
                        help="serial seconds of one task")
    parser.add_argument("--n", type=int, help="loop length (default: calibrated to --seconds)")
    parser.add_argument("--switch-interval", type=float)
    parser.add_argument("--convoy", action="store_true",
                        help="one CPU thread running KERNEL beside a thread doing 1 ms sleeps")
    parser.add_argument("--truth", action="store_true",
                        help="instead of KERNEL, a pure-Python loop that stamps its progress: "
                             "each task reports when it did not run (gaps_ns)")
    return parser


def _task_of(args) -> tuple:
    """(one task as a zero-argument callable, its loop length n)."""
    p = kernels.DEFAULT_P
    if args.truth:
        n = args.n or stamped_steps(args.seconds)
        return (lambda: _truth_task(n)), n
    kernel = kernels.get(args.kernel)
    n = args.n or calibrate_n(kernel, args.seconds, p)
    return (lambda: _task(kernel, n, p)), n


@dataclass
class _Cell:
    """The child's threads, parked before 'go': who they are, how to let them go, how
    to wait for them. ``results`` fills as the tasks end."""

    tids: list
    names: dict
    release: Callable[[], object]
    run: Callable[[], object]
    results: list = field(default_factory=list)


def _convoy_cell(task) -> _Cell:
    line, stop, results = StartLine(2), threading.Event(), []
    tids: "queue.Queue[int]" = queue.Queue()

    def cpu_side():
        tids.put(threading.get_native_id())
        line.wait()
        try:
            results.append({"role": "cpu", **task()})
        finally:
            stop.set()

    def io_side():
        tids.put(threading.get_native_id())
        line.wait()
        results.append({"role": "io", **_sleeper(stop)})

    threads = [threading.Thread(target=cpu_side, name="cpu"),
               threading.Thread(target=io_side, name="io-sleep")]
    for t in threads:
        t.start()
    ids = [tids.get() for _ in threads]
    return _Cell(ids, dict(zip(map(str, ids), ["cpu", "io-sleep"])), line.release,
                 lambda: [t.join() for t in threads], results)


def _serial_cell(task, workers: int) -> _Cell:
    tid = threading.get_native_id()
    cell = _Cell([tid], {str(tid): "serial"}, lambda: None, lambda: None)
    cell.run = lambda: cell.results.extend(task() for _ in range(workers))
    return cell


def _threads_cell(task, workers: int) -> _Cell:
    run = ThreadRun(lambda i, at: task(), workers, name="worker").start()
    ids = [t.native_id for t in run.threads]
    return _Cell(ids, {str(t.native_id): t.name for t in run.threads}, run.go,
                 lambda: [t.join() for t in run.threads], run.results)


def _pool_cell(task, workers: int) -> _Cell:
    line, results = StartLine(workers), []
    tids: "queue.Queue[tuple]" = queue.Queue()

    def parked():
        tids.put((threading.get_native_id(), threading.current_thread().name))
        line.wait()
        results.append(task())

    pool = ThreadPoolExecutor(workers, thread_name_prefix="pool")
    futures = [pool.submit(parked) for _ in range(workers)]

    def run():
        for f in futures:
            f.result()
        pool.shutdown()

    named = [tids.get() for _ in range(workers)]
    return _Cell([tid for tid, _ in named], {str(tid): name for tid, name in named},
                 line.release, run, results)


def _ready_report(args, cell: _Cell, n: int) -> dict:
    return {"tids": cell.tids, "names": cell.names, "n": n,
            "kernel": "truth" if args.truth else args.kernel,
            "executor": "convoy" if args.convoy else args.executor,
            "workers": 2 if args.convoy else args.workers,
            "switch_interval": sys.getswitchinterval(),
            "python": sys.version.split()[0],
            "gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)(),
            "free_threaded_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
            "runtime_address": _runtime_address()}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    task, n = _task_of(args)
    if args.convoy:
        cell = _convoy_cell(task)
    elif args.executor == "serial":
        cell = _serial_cell(task, args.workers)
    elif args.executor == "threads":
        cell = _threads_cell(task, args.workers)
    else:
        cell = _pool_cell(task, args.workers)
    print(json.dumps(_ready_report(args, cell, n)), flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    t_go = task_clocks()[0]
    cell.release()
    cell.run()
    print(json.dumps({"t_go_ns": t_go, "t_done_ns": task_clocks()[0],
                      "tasks": [r for r in cell.results if r is not None]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
