"""On a free-threaded build (3.13t), gillab keeps the GIL off and its "GIL-holding"
kernels run on every core: the lab's claims turned around, tested through CPU time.

Skipped unless this Python was built with --disable-gil. .ci/free-threaded runs this
file under /opt/py313t, from a venv with gillab installed (not the source tree).
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import threading
import time

import pytest

pytestmark = pytest.mark.skipif(not sysconfig.get_config_var("Py_GIL_DISABLED"),
                                reason="needs a free-threaded build (--disable-gil)")

P = 2**61 - 1

# These helpers repeat tests/conftest.py's on purpose: this file runs alone, under
# the free-threaded venv with --import-mode=importlib (.ci/free-threaded), where the
# tests package is not importable.


def cores_used(func, n_threads: int = 2) -> float:
    """CPU seconds of this process / wall seconds while n threads each call func()."""
    threads = [threading.Thread(target=func) for _ in range(n_threads)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


#: As tests/conftest.py's BUSY_SHARE: other processes' share of the machine above which
#: a claim that failed twice is skipped, naming the load, rather than failed.
BUSY_SHARE = 0.25


def _busy_s() -> float | None:
    """CPU seconds every process on the machine has used (/proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except OSError:
        return None
    return (sum(fields[:3]) + sum(fields[5:8])) / os.sysconf("SC_CLK_TCK")


def _others_share(check):
    """(check()'s result or its AssertionError, others' share of the machine meanwhile)."""
    busy0, own0, wall0 = _busy_s(), sum(os.times()[:4]), time.perf_counter()
    try:
        outcome = check()
    except AssertionError as exc:
        outcome = exc
    busy1, wall = _busy_s(), time.perf_counter() - wall0
    if busy0 is None or busy1 is None or wall <= 0:
        return outcome, 0.0
    others = (busy1 - busy0) - (sum(os.times()[:4]) - own0)
    return outcome, max(0.0, others) / (wall * (os.cpu_count() or 1))


def retry_once(check):
    """Twice at most; a second failure while others took over BUSY_SHARE is a skip."""
    shares = []
    for _ in range(2):
        outcome, share = _others_share(check)
        if not isinstance(outcome, AssertionError):
            return outcome
        shares.append(share)
    if max(shares) > BUSY_SHARE:
        pytest.skip(f"failed twice while other processes used {max(shares):.0%} of the "
                    f"machine: too busy to test this claim; last failure: {outcome}")
    raise outcome


def sized(kernel, target_s: float = 0.3) -> int:
    from gillab.measure.calibrate import calibrate_n

    return calibrate_n(kernel, target_s, P)


def test_importing_gillab_keeps_the_gil_off():
    """The extension declares free-threading support, so importing it does not turn
    the GIL back on (CPython would, with a warning, for one that does not)."""
    import gillab._kernels  # noqa: F401
    from gillab import kernels# noqa: F401
    from gillab.core.environment import collect_env

    env = collect_env()
    assert env["free_threaded_build"] is True
    assert env["gil_enabled"] is False
    assert sys._is_gil_enabled() is False


def test_env_command_reports_it():
    result = subprocess.run([sys.executable, "-I", "-m", "gillab", "env"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = {line.split("  ")[0]: line.split()[-1] for line in result.stdout.splitlines()}
    assert lines["GIL enabled now"] == "no"
    assert lines["free-threaded build"] == "yes"


def test_gevent_is_skipped_with_its_reason():
    from gillab.measure.executors import unavailable_reason

    assert unavailable_reason("gevent") == "gevent does not support free-threaded builds"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cy_gil", "py"])
def test_gil_holding_kernels_use_two_cores_on_two_threads(name):
    """With no GIL, the kernel that holds it holds nothing: 2 threads, ~2 cores."""
    from gillab import kernels

    kernel = kernels.get(name)
    n = sized(kernel)
    expected = kernels.reference(n, P)
    answers = []

    def task():
        answers.append(kernel(n, P))

    def check():
        answers.clear()
        used = cores_used(task)
        assert answers == [expected, expected]
        assert used >= 1.6, f"{name} on 2 threads used {used:.2f} cores"

    retry_once(check)


@pytest.mark.slow
def test_compare_calls_them_parallel():
    """Through the engine: the cy_gil threads cell on 2 workers uses ~2 cores."""
    from gillab.compare.engine import Plan, run_compare

    def check():
        run = run_compare(Plan(kernels=("cy_gil",), executors=("threads",), workers=(2,),
                               repeat=2, target_s=0.2))
        cell = next(c for c in run.cells if c.executor == "threads")
        assert cell.correct
        assert run.env["gil_enabled"] is False
        assert cell.cores_used >= 1.6, cell

    retry_once(check)
