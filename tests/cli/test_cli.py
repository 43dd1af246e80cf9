"""The command line, run as a user runs it: `python -m gillab ...`."""
from __future__ import annotations

import pytest

from tests.conftest import run_gillab


class TestEnvAndKernels:
    """`env` and `kernels` describe the interpreter and the kernels."""

    def test_env(self):
        result = run_gillab("env")
        assert result.returncode == 0, result.stderr
        out = result.stdout
        for label in ("Python", "GIL enabled now", "free-threaded build", "CPUs",
                      "Cython (built with)", "gevent", "switch interval",
                      "multiprocessing start method"):
            assert label in out
        assert "GIL enabled now               yes" in out

    def test_kernels_lists_every_kernel(self):
        result = run_gillab("kernels")
        assert result.returncode == 0, result.stderr
        names = [line.split()[0] for line in result.stdout.splitlines()]
        assert names == ["py", "py_shared", "cy_gil", "cy_nogil", "bigint", "sleep"]

    def test_kernels_calibrate_measures_against_c(self):
        result = run_gillab("kernels", "--calibrate", "--target-s", "0.05")
        assert result.returncode == 0, result.stderr
        rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()
                if line and line.split()[0] in ("c_reference", "py", "cy_nogil")}
        # The "vs C" column is each kernel's ns/iter over the C loop's, as printed.
        c_ns = float(rows["c_reference"][1])
        for name in ("py", "cy_nogil"):
            ratio = float(rows[name][2].rstrip("x"))
            assert ratio == pytest.approx(float(rows[name][1]) / c_ns, rel=0.02, abs=0.01)
        # Pure Python is slower than C by a wide margin on any machine.
        assert float(rows["py"][1]) > 3 * float(rows["cy_nogil"][1])


class TestUsageErrors:
    """Usage errors exit 2 with argparse's message and no traceback."""

    def test_no_command(self):
        result = run_gillab()
        assert result.returncode == 2
        assert "Traceback" not in result.stderr

    def test_unknown_command(self):
        result = run_gillab("frobnicate")
        assert result.returncode == 2
        assert "invalid choice" in result.stderr
