"""Checking what a user typed, before anything is measured.

argparse types that refuse nonsense in one line (exit 2), the bounds every number
lives within, and the --target probe: the user's function is imported and called
once in a throwaway child process (gillab.cli.target_probe), so a module that raises,
exits or hangs on import, a function that takes arguments, or one that ends its
process when called is found out here, not in the middle of a run.

Measures nothing and prints nothing.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys

from gillab.core.errors import UsageError

__all__ = ["MIN_TASK_S", "MAX_TARGET_S", "MAX_REPEAT", "MAX_SAMPLES", "MAX_COUNT",
           "whole_number", "bounded_int", "bounded_float", "worker_list", "task_seconds", "nonempty",
           "TargetProbe", "probe_target", "shadowing_problem"]

#: Below this a task is too short to time: thread start-up, dispatch and clock ticks
#: are of the same size, and "cores used" on a 4 ms cell read 10-16 on 2 CPUs.
MIN_TASK_S = 0.01
#: Above this one task alone takes a minute; calibration and cells take many times that.
MAX_TARGET_S = 60.0
MAX_REPEAT = 100
MAX_SAMPLES = 10_000
#: Any other count (limits such as --max-processes): past this it is a typo.
MAX_COUNT = 1_000_000
#: How long the --target probe may take to import and call the function once.
PROBE_TIMEOUT_S = 30.0

_DIGITS = re.compile(r"[0-9]+")


def whole_number(text: str, most: int = MAX_COUNT) -> int:
    """A whole number >= 1 written in ASCII digits, at most ``most``."""
    if not _DIGITS.fullmatch(text):
        if re.fullmatch(r"-[0-9]+", text):
            raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
        if re.fullmatch(r"\s*[-+]?\d+\s*", text):  # a sign, spaces or non-ASCII digits
            raise argparse.ArgumentTypeError(
                f"must be a whole number >= 1 in digits 0-9, got {text!r}")
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    if value > most:
        raise argparse.ArgumentTypeError(f"must be <= {most:,}, got {text}")
    return value


def bounded_int(most: int, least: int = 1):
    """An argparse type: a whole number from ``least`` to ``most``."""
    def check(text: str) -> int:
        value = whole_number(text, most)
        if value < least:
            raise argparse.ArgumentTypeError(f"must be {least} to {most:,}, got {text}")
        return value

    check.__name__ = "whole number"
    return check


def bounded_float(most: float, least: float = 0.0):
    """An argparse type: a finite number above ``least`` (exclusive) and at most ``most``
    (so `inf`, `nan` and `1e300` are refused, not waited for)."""
    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or not value > least:
            raise argparse.ArgumentTypeError(f"must be a finite number > {least:g}, got {text}")
        if value > most:
            raise argparse.ArgumentTypeError(f"must be <= {most:g}, got {text}")
        return value

    check.__name__ = "number"
    return check


def worker_list(text: str) -> tuple:
    """'1,2,4' -> (1, 2, 4): whole numbers >= 1, comma-separated without spaces."""
    parts = text.split(",")
    if any(not part or part != part.strip() for part in parts):
        raise argparse.ArgumentTypeError(
            f"give worker counts as digits separated by commas, like 1,2,4: got {text!r}")
    return tuple(sorted({whole_number(part) for part in parts}))


def task_seconds(text: str) -> float:
    """Seconds one task takes: a finite number from MIN_TASK_S to MAX_TARGET_S."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 and finite, got {text}")
    if value < MIN_TASK_S:
        raise argparse.ArgumentTypeError(
            f"{text} s is too short to time (floor {MIN_TASK_S} s: below it, start-up "
            "and clock ticks are as large as the task); use a larger value")
    if value > MAX_TARGET_S:
        raise argparse.ArgumentTypeError(f"must be <= {MAX_TARGET_S:g} s, got {text}")
    return value


def nonempty(text: str) -> str:
    """A path, address or name that is not empty (an empty one would be ignored)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


# --- --target ------------------------------------------------------------------------


class TargetProbe:
    """What one call of the user's function in a throwaway process showed.

    ``unsafe_in_process`` is the reason the function must not run inside gillab's own
    process (it ended its process, or never returned), or None.
    """

    def __init__(self, unsafe_in_process: str | None = None, error: str | None = None):
        self.unsafe_in_process = unsafe_in_process
        self.error = error


def probe_target(spec: str, timeout_s: float = PROBE_TIMEOUT_S) -> TargetProbe:
    """Import MODULE:FUNC and call it once in a child; UsageError (exit 2) if it cannot
    be had at all, else what the call showed."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise UsageError(f"--target must look like MODULE:FUNC, got {spec!r}")
    from gillab.core import procutil

    env = dict(os.environ)
    # The child must find the user's module as this process would: from the current
    # directory first (python -m puts it on sys.path), then the same path.
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), *sys.path[1:]])
    with procutil.forking():  # preexec_fn: at-fork hooks run here (see gillab.core.procutil)
        proc = subprocess.Popen(
            [sys.executable, "-m", "gillab.cli.target_probe", spec], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            preexec_fn=procutil.child_preexec)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        code = None
    finally:
        if proc.poll() is None:  # Ctrl-C meanwhile: do not leave it behind
            proc.kill()
            proc.wait()
    lines = out.decode("utf-8", "replace").splitlines()
    stages = {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "stage" in record:
            stages[record["stage"]] = record
    if "refused" in stages:
        raise UsageError(stages["refused"]["error"])
    if "loaded" not in stages:
        if code is None:
            raise UsageError(f"--target {spec}: importing {module_name!r} did not finish "
                             f"within {timeout_s:g} s; fix the module so importing it "
                             "returns")
        raise UsageError(f"--target {spec}: importing {module_name!r} ended its process "
                         f"({_exit_text(code)}); fix the module so importing it returns")
    if "called" in stages:
        return TargetProbe(error=stages["called"].get("error"))
    if code is None:
        return TargetProbe(unsafe_in_process=(
            f"{spec} did not return within {timeout_s:g} s when called once in a "
            "throwaway process: not run in gillab's own process (a thread cannot be "
            "killed)"))
    return TargetProbe(unsafe_in_process=(
        f"{spec} ended its process ({_exit_text(code)}) when called once in a throwaway "
        "process: not run in gillab's own process"))


def _exit_text(code: int) -> str:
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def shadowing_problem() -> str | None:
    """A gillab/ folder in the current directory without a compiled extension of its own,
    which ``python -m gillab`` imports instead of the installed package (and which may
    then borrow the installed package's extension: a mix of two versions); None if not
    so."""
    import importlib.util

    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # gillab/
    if os.path.realpath(os.path.dirname(package_dir)) != os.path.realpath(os.getcwd()):
        return None
    try:
        spec = importlib.util.find_spec("gillab._kernels")
    except (ImportError, ValueError):
        spec = None
    origin = getattr(spec, "origin", None)
    if origin and os.path.realpath(os.path.dirname(origin)) == os.path.realpath(package_dir):
        return None  # a built checkout, run from its own root: nothing is mixed
    borrowed = f" (it would borrow {origin})" if origin else ""
    return (f"the gillab/ folder in the current directory ({package_dir}) shadows the "
            f"installed gillab and has no compiled extension of its own{borrowed}: run "
            "from another directory, or build this copy with `pip install -e .`")
