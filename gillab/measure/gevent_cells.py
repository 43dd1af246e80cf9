"""The parent side of the gevent cells: start ``gillab.measure.gevent_child``, send it the
cells, read its answers, and bound it (the child sits beside this module).

gevent is never imported here: monkey.patch_all() must never touch the process that
measures the other executors.
"""
from __future__ import annotations

import functools
import os
import pickle
import select
import subprocess
import sys
import tempfile
import time

from gillab import kernels
from gillab.core.procutil import child_preexec, forking
from gillab.measure.outcome import CellFailure, Measured
from gillab.measure.noise import NOISE_LIMIT

__all__ = ["measure_gevent_cells"]


def measure_gevent_cells(task: kernels.Task, workers_list, *, repeat: int,
                         noise_limit: float = NOISE_LIMIT, cost: bool = False,
                         timeout_s: float = 300.0, max_tries: int = 3,
                         startup_s: float = 30.0):
    """Measure gevent cells (one per worker count) in a fresh, patched child process.

    Yields (workers, Measured or CellFailure) in order: one
    for every worker count asked, also when the child dies or hangs (a greenlet that
    never yields cannot be timed out from inside its own thread, so the parent bounds
    each cell and kills the child past it). Public, so the benchmark suite measures
    gevent exactly as compare does.
    """
    request = {"cells": [(task, w) for w in workers_list], "repeat": repeat,
               "noise_limit": noise_limit, "cost": cost, "timeout_s": timeout_s,
               "max_tries": max_tries}
    # Every try of every repeat may run to the timeout, plus the child's start-up.
    cell_budget_s = timeout_s * repeat * max_tries + startup_s
    with tempfile.TemporaryFile() as errors:  # a pipe could fill and block the child
        # preexec: the child ignores Ctrl-C (ours to handle) and dies with this process,
        # or at once if this process died before it asked.
        preexec = functools.partial(child_preexec, os.getpid())
        proc = None
        try:
            # A Ctrl-C during the start is raised as the block ends, proc already set:
            # inside the try, so the child is killed with the rest.
            with forking():  # preexec_fn runs at-fork hooks here: see gillab.core.procutil
                proc = subprocess.Popen([sys.executable, "-m", "gillab.measure.gevent_child"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=errors, preexec_fn=preexec)
            pickle.dump(request, proc.stdin)
            proc.stdin.close()
            failure = None
            for workers in workers_list:
                if failure is None:
                    failure = _await_child(proc, cell_budget_s)
                    if failure is None:
                        try:
                            reply = pickle.load(proc.stdout)
                        except EOFError:
                            failure = _child_died(proc, errors)
                        else:
                            if not isinstance(reply, (Measured, CellFailure)):
                                raise TypeError(f"the gevent process sent {reply!r}, "
                                                "not a Measured or a CellFailure")
                            yield workers, reply
                            continue
                yield workers, CellFailure(failure)
        finally:
            if proc is not None:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                proc.stdout.close()


def _await_child(proc, budget_s: float) -> str | None:
    """Wait until the child has a reply ready; an error message if it hangs past budget."""
    deadline = time.monotonic() + budget_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            return (f"the gevent process gave no answer within {budget_s:.0f} s (a greenlet "
                    "that never yields cannot be stopped from inside): killed")
        if select.select([proc.stdout], [], [], min(remaining, 1.0))[0]:
            return None


def _child_died(proc, errors) -> str:
    proc.wait()
    errors.seek(0)
    err = errors.read().decode(errors="replace").strip().splitlines()
    last = err[-1] if err else "no output"
    return f"the gevent process exited with code {proc.returncode}: {last}"


