"""Where the GIL binds, shown through CPU time: cores used by two threads."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from gillab import kernels
from gillab.measure.calibrate import calibrate_n

from tests.conftest import assert_prompt, cores_used_by_threads, retry_once, with_load

pytestmark = pytest.mark.slow
P = kernels.DEFAULT_P


@pytest.fixture(scope="module")
def sizes():
    """n per kernel for ~0.4 s calls: long enough that thread start-up is noise."""
    return {name: calibrate_n(kernels.get(name), 0.4) for name in ("py", "cy_gil", "cy_nogil")}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_two_nogil_threads_use_two_cores(sizes):
    def check():
        used = cores_used_by_threads(kernels.get("cy_nogil"), (sizes["cy_nogil"], P))
        assert used >= 1.6, f"cy_nogil on 2 threads used {used:.2f} cores"
    retry_once(check)


@pytest.mark.parametrize("name", ["cy_gil", "py"])
def test_two_gil_threads_use_one_core(sizes, name):
    def check():
        used = cores_used_by_threads(kernels.get(name), (sizes[name], P))
        assert used <= 1.25, f"{name} on 2 threads used {used:.2f} cores"
    retry_once(check)


CHILD = textwrap.dedent("""
    import sys
    from gillab import _kernels
    func = getattr(_kernels, sys.argv[1])
    print("running", flush=True)
    try:
        func(2**62, 2**61 - 1)   # minutes of work
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(42)
""")


@pytest.mark.parametrize("func", ["fact_mod_gil", "fact_mod_nogil", "c_reference"])
def test_ctrl_c_stops_a_long_kernel_call(func):
    """SIGINT in the middle of a minutes-long call raises KeyboardInterrupt promptly."""
    # The with-block closes the pipes even when a step fails: a pipe left to the garbage
    # collector is a ResourceWarning (an error here) in whichever test runs next.
    def trial():
        with subprocess.Popen([sys.executable, "-c", CHILD, func], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) as proc:
            try:
                assert proc.stdout.readline().strip() == "running"
                time.sleep(0.3)  # well inside the call
                sent = time.perf_counter()
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=10)
                return proc.returncode, out, err, time.perf_counter() - sent
            finally:
                proc.kill()

    (status, out, err, took), share = with_load(trial)
    assert status == 42, err
    assert "interrupted" in out
    # A liveness bound, generous for a busy machine; the 0.2 s goal is checked by hand.
    assert_prompt(took, 2.0, share, f"{func}'s stop after Ctrl-C")
