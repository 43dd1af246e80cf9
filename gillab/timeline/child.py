"""The timeline's child process: its command line, starting it in a session of its own,
reading its JSON report lines, and stopping it with everything it started. Used by the
sampler's driver (measure.py) and the cost runs (cost.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from gillab.core.errors import UserError

__all__ = ["lab_child_argv", "start_child", "kill_child", "read_json_line"]


def lab_child_argv(kernel: str, executor: str, workers: int, seconds: float,
                   switch_interval: float | None, convoy: str | None,
                   truth: bool = False) -> list[str]:
    """The lab child's command line; ``truth``: the progress-stamped loop instead of
    the kernel (gillab.timeline.workload --truth), for accuracy against its stamps."""
    argv = [sys.executable, "-m", "gillab.timeline.workload", "--kernel", kernel,
            "--executor", executor, "--workers", str(workers), "--seconds", str(seconds)]
    if truth:
        argv += ["--truth"]
    if switch_interval:
        argv += ["--switch-interval", repr(switch_interval)]
    if convoy:
        argv += ["--convoy"]
    return argv


def kill_child(proc: subprocess.Popen) -> None:
    """Stop the child and anything it left in its process group; close its pipes."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:  # a broken pipe to a child that died: nothing left to flush
                pass


def start_child(argv: list[str], **kw) -> subprocess.Popen:
    try:
        # Its own process group, so Ctrl-C reaches gillab only and gillab stops the
        # whole child, whatever it started.
        return subprocess.Popen(argv, start_new_session=True, **kw)
    except OSError as exc:
        raise UserError(f"cannot start {argv[0]}: {exc.strerror}") from None


def read_json_line(proc: subprocess.Popen, what: str) -> dict:
    line = proc.stdout.readline()
    if not line:
        code = proc.wait()
        raise UserError(f"the child workload ended (exit code {code}) before its {what} report")
    try:
        return json.loads(line)
    except ValueError:
        raise UserError(f"the child workload's {what} report was not JSON: {line[:80]!r}") from None
