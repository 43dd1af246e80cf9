"""Shared helpers: running the CLI, retrying parallelism claims once."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest


def run_gillab(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m gillab ARGS`` as a user would; capture stdout and stderr."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "gillab", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, **kwargs)


def cores_used_by_threads(func, args, n_threads: int = 2) -> float:
    """CPU seconds of this process / wall seconds while n threads each call func(*args)."""
    threads = [threading.Thread(target=func, args=args) for _ in range(n_threads)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def retry_once(check):
    """Run check(); if its assertion fails, run it once more (a busy machine can lie once)."""
    try:
        return check()
    except AssertionError:
        return check()


@pytest.fixture
def gillab_cli():
    return run_gillab
