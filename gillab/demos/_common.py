"""What the demos share: --fast durations, overlap counting, and fresh child interpreters."""
from __future__ import annotations

import json
import os
import re
import resource
import select
import subprocess
import sys
import time
import unicodedata

from gillab.core.errors import UserError

#: Child interpreters that host gevent run this first, before anything else is imported,
#: so the patch sees every module fresh. It never runs in the process that runs the CLI.
PATCH_FIRST = "from gevent import monkey; monkey.patch_all()\n"

_CHILD_MAIN = "from gillab.demos._gevent_child import main; main()"


def pick(fast: bool, normal, quick):
    """The lesson-sized value, or the scaled-down one under --fast."""
    return quick if fast else normal


def pad(text: str, width: int) -> str:
    """Left-justify to ``width`` terminal columns: a Chinese character takes two."""
    return text + " " * max(0, width - columns(text))


def columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


# A wide (CJK) character, a run of other non-space characters, or a run of spaces: a line
# may break before any of them, so Chinese wraps between characters and English between words.
_TOKENS = re.compile(r"[\u2e80-\uffff]|[^\s\u2e80-\uffff]+|\s+")


def wrap(line: str, width: int = 80) -> list[str]:
    """Fold a paragraph to ``width`` terminal columns; indented lines are table rows: kept whole."""
    if columns(line) <= width or line.startswith(" "):
        return [line]
    pieces, current = [], ""
    for token in _TOKENS.findall(line):
        if current and columns(current + token.rstrip()) > width:
            pieces.append(current.rstrip())
            current = ""
        if not current and token.isspace():
            continue
        current += token
    if current.strip():
        pieces.append(current.rstrip())
    return pieces


def available_cpus() -> int:
    """CPUs this process may run on (affinity), which can be fewer than the machine has."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def own_cpu_seconds() -> float:
    """CPU time of this process plus its children that have been waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used, summed over CPUs."""
    import psutil

    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


class CpuMeter:
    """Cores this demo kept busy, and cores other processes took meanwhile (noise)."""

    def __enter__(self):
        self._busy0, self._own0 = machine_busy_seconds(), own_cpu_seconds()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall_s = time.perf_counter() - self._t0
        self.own_s = own_cpu_seconds() - self._own0
        others_s = max(0.0, machine_busy_seconds() - self._busy0 - self.own_s)
        self.cores_used = self.own_s / self.wall_s if self.wall_s > 0 else 0.0
        self.others_cores = others_s / self.wall_s if self.wall_s > 0 else 0.0
        return False


def max_overlap(intervals) -> int:
    """The largest number of (start, end) intervals open at one instant.

    At equal timestamps an end counts before a start: a worker that records its end
    before releasing a lock and the next one that records its start after taking it
    were never inside together. time.monotonic() is one system-wide clock on Linux, so
    intervals taken in different processes compare.
    """
    events = sorted([(end, 0) for _, end in intervals] + [(start, 1) for start, _ in intervals])
    inside = peak = 0
    for _, is_start in events:
        inside += 1 if is_start else -1
        peak = max(peak, inside)
    return peak


def child_command(entry: str, *args, patched: bool) -> list[str]:
    """argv for a fresh ``sys.executable`` that runs ``_gevent_child.main`` for ``entry``."""
    code = (PATCH_FIRST if patched else "") + _CHILD_MAIN
    return [sys.executable, "-c", code, entry, *(str(a) for a in args)]


def child_env() -> dict:
    """The environment for child interpreters: they import this very gillab."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = [package_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path), PYTHONUNBUFFERED="1")


def start_child(entry: str, *args, patched: bool, stdin_pipe: bool = False) -> subprocess.Popen:
    """Start a child interpreter; with ``stdin_pipe`` the demo can tell it when to begin."""
    from gillab.core.procutil import child_preexec, forking

    # preexec: the child ignores Ctrl-C (the demo stops it) and dies with the demo.
    with forking():  # preexec_fn runs at-fork hooks here: see gillab.core.procutil
        return subprocess.Popen(child_command(entry, *args, patched=patched), env=child_env(),
                                stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=child_preexec)


def read_line(child: subprocess.Popen, timeout: float) -> dict:
    """The next JSON line the child prints; UserError if none comes within ``timeout``."""
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    line = child.stdout.readline() if ready else ""
    if not line:
        finish_child(child, timeout=1.0)  # kills it and reports its stderr
        raise UserError(f"child {child.args[3]!r} printed nothing within {timeout:g} s")
    return json.loads(line)


def finish_child(child: subprocess.Popen, timeout: float) -> dict | None:
    """Wait for the child to end (kill it past ``timeout``) and return its last JSON line."""
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise UserError(f"child {child.args[3]!r} did not end within {timeout:g} s; killed it") \
            from None
    if child.returncode != 0:
        last = (err.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"child {child.args[3]!r} exited {child.returncode}: {last}")
    lines = out.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def run_child(entry: str, *args, patched: bool, timeout: float) -> dict:
    """Run a child to the end and return the JSON record it printed last."""
    return finish_child(start_child(entry, *args, patched=patched), timeout)
