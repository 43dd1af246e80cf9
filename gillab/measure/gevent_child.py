"""Run gevent cells in a process of their own: ``python -m gillab.measure.gevent_child``.

monkey.patch_all() must come before anything imports threading, socket or time
users, and must never touch the process that measures the other executors; so
gevent cells are measured here, by the same measuring code, and their records go
back to the parent as pickles on stdout.

Protocol: the parent writes one pickled dict to stdin
``{"cells": [(Task, n_workers), ...], "repeat": r, "noise_limit": x, "timeout_s": t,
"cost": bool}``; for each cell this process writes one pickled reply to stdout, in
order: a ``Measured(CellMeasurement, extra_fields)`` or a ``CellFailure(message)``
(gillab.measure.outcome).
"""
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import pickle  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402

from gillab.core.errors import one_line  # noqa: E402
from gillab.measure.footprint import PeakMemory, measure_startup, tree_pss_mb  # noqa: E402
from gillab.measure.clocks import now, run_task
from gillab.measure.cell import measure_cell  # noqa: E402
from gillab.measure.outcome import CellFailure, Measured  # noqa: E402


def run_greenlets(task, n_tasks, timeout_s):
    """k greenlets, one task each, in this one OS thread. Each counts its wall from
    the spawn (the start signal): a greenlet that waited for the others shows it."""
    start_at = now()
    greenlets = [gevent.spawn(run_task, task, start_at) for _ in range(n_tasks)]
    done = gevent.joinall(greenlets, timeout=timeout_s)
    if len(done) < n_tasks:
        gevent.killall(greenlets)
        raise TimeoutError(f"greenlets gave no answer within {timeout_s:.0f} s")
    return [g.get() for g in greenlets]


def _noop():
    return None


def measure_cost(task, n_tasks, timeout_s) -> dict:
    """Start-up (k idle greenlets spawned and joined) and peak memory of one untimed run."""
    startup, _ = measure_startup(
        lambda: gevent.joinall([gevent.spawn(_noop) for _ in range(n_tasks)]))
    baseline_mb = tree_pss_mb()
    with PeakMemory() as memory:
        run_greenlets(task, n_tasks, timeout_s)
    from gillab.measure.dispatch import dispatch_us

    return {"startup_s": startup.wall_s, "startup_cpu_s": startup.cpu_s,
            "mem_mb": max(0.0, memory.peak_mb - baseline_mb),
            "dispatch_us": dispatch_us("gevent", n_tasks=1000)}


def main() -> int:
    from gillab.core.procutil import worker_setup

    # Ctrl-C belongs to the parent, which kills this process; and this process dies
    # with the parent (the parent's preexec asked already; asking twice is harmless).
    worker_setup()
    request = pickle.load(sys.stdin.buffer)
    # The replies get a descriptor of their own; what a task prints goes to stderr,
    # so a --target that prints cannot corrupt the pickles.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for task, n_workers in request["cells"]:
        try:
            measured = measure_cell(
                lambda: run_greenlets(task, n_workers, request["timeout_s"]),
                repeat=request["repeat"], noise_limit=request["noise_limit"],
                max_tries=request.get("max_tries", 3))
            reply = Measured(measured, measure_cost(task, n_workers, request["timeout_s"])
                             if request.get("cost") else {})
        except (TimeoutError, ValueError) as exc:
            reply = CellFailure(one_line(exc))
        try:
            data = pickle.dumps(reply)
        except Exception as exc:  # a task's result that cannot travel: the cell's error
            why = one_line(exc)
            data = pickle.dumps(CellFailure("a result cannot be sent back from the gevent "
                                            f"process ({why})"))
        out.write(data)
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
