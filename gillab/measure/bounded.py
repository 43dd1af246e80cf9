"""Calls and joins bounded by a deadline: the one place a wait gets a time limit.

A call that never returns (a C call that holds on, a user's infinite loop) cannot be
stopped from Python: it is left in a daemon thread and CallTimeout tells the caller,
who decides what that means (a check that failed, a cell marked, a thread abandoned).
Deadlines are time.monotonic() readings: they bound waits and are never a figure.
"""
from __future__ import annotations

import math
import os
import threading
import time

__all__ = ["CallTimeout", "deadline_in", "past", "remaining", "call_bounded", "join_all",
           "HANG_TIMEOUT_S", "hang_timeout_s"]


class CallTimeout(Exception):
    """A call or a worker did not return by its deadline; ``threads`` are still running."""

    def __init__(self, message: str, threads: tuple = ()):
        super().__init__(message)
        self.threads = tuple(threads)


def deadline_in(seconds: float) -> float:
    """The deadline ``seconds`` from now."""
    return time.monotonic() + seconds


def past(deadline: float) -> bool:
    return time.monotonic() >= deadline


def remaining(deadline: float) -> float:
    """Seconds left before ``deadline`` (0 once it is past)."""
    return max(0.0, deadline - time.monotonic())


def join_all(threads, deadline: float) -> list:
    """Join every thread until ``deadline``; the ones still running."""
    for t in threads:
        t.join(remaining(deadline))
    return [t for t in threads if t.is_alive()]


def call_bounded(func, deadline: float, what: str, name: str = "gillab-bounded"):
    """Run ``func()`` in a daemon thread named ``name``: its result, its error (raised
    here, SystemExit included), or CallTimeout("WHAT did not return") carrying the
    thread if it has not returned by ``deadline``."""
    box: dict = {}

    def target():
        try:
            box["value"] = func()
        except BaseException as exc:  # SystemExit too: the callee's, raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    if join_all([thread], deadline):
        raise CallTimeout(f"{what} did not return", (thread,))
    if "error" in box:
        raise box["error"]
    return box["value"]


#: Seconds a call may go without answering before it counts as hung: how long compare's
#: calibration of a --target waits, and the least any of its cells waits. $GILLAB_HANG_TIMEOUT_S
#: changes it (docs/contract.md): the tests shrink it to see a hang reported in seconds.
HANG_TIMEOUT_S = 30.0


def hang_timeout_s() -> float:
    """$GILLAB_HANG_TIMEOUT_S (at least 0.5 s), else HANG_TIMEOUT_S; a value that is not
    a finite number is ignored, as $GILLAB_PROBE_TIMEOUT_S's is."""
    try:
        chosen = float(os.environ.get("GILLAB_HANG_TIMEOUT_S", HANG_TIMEOUT_S))
    except ValueError:
        return HANG_TIMEOUT_S
    return max(0.5, chosen) if math.isfinite(chosen) else HANG_TIMEOUT_S
