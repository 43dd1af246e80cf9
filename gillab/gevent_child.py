"""Run gevent cells in a process of their own: ``python -m gillab.gevent_child``.

monkey.patch_all() must come before anything imports threading, socket or time
users, and must never touch the process that measures the other executors; so
gevent cells are measured here, by the same measuring code, and their records go
back to the parent as pickles on stdout.

Protocol: the parent writes one pickled dict to stdin
``{"cells": [(Task, n_workers), ...], "repeat": r, "noise_limit": x, "timeout_s": t}``;
for each cell this process writes one pickled ``("ok", CellMeasurement)`` or
``("error", message)`` to stdout, in order.
"""
from gevent import monkey

monkey.patch_all()

import pickle  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402

from gillab.measure import measure_cell, run_task  # noqa: E402


def run_greenlets(task, n_tasks, timeout_s):
    """k greenlets, one task each, in this one OS thread."""
    greenlets = [gevent.spawn(run_task, task) for _ in range(n_tasks)]
    done = gevent.joinall(greenlets, timeout=timeout_s)
    if len(done) < n_tasks:
        gevent.killall(greenlets)
        raise TimeoutError(f"greenlets gave no answer within {timeout_s:.0f} s")
    return [g.get() for g in greenlets]


def main() -> int:
    # Ctrl-C belongs to the parent, which kills this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    request = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    for task, n_workers in request["cells"]:
        try:
            measured = measure_cell(
                lambda: run_greenlets(task, n_workers, request["timeout_s"]),
                repeat=request["repeat"], noise_limit=request["noise_limit"])
            reply = ("ok", measured)
        except (TimeoutError, ValueError) as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(reply, out)
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
