"""The free-threaded build's lesson, measured: without a GIL, py's threads scale while
py_shared's, storing into one dict, keep both cores busy and run no faster (contended).
Runs compare under a real free-threaded Python; skipped where there is none."""
from __future__ import annotations

import json

import pytest

from tests.conftest import retry_once, run_gillab
from tests.pythons.test_interpreters import free_threaded_python

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(free_threaded_python() is None,
                       reason="no free-threaded Python (scripts/build-free-threaded-python.sh "
                              "or $GILLAB_TEST_FT_PYTHON)"),
]


def test_shared_dict_threads_are_contended_where_py_threads_are_parallel(tmp_path):
    out = tmp_path / "r.json"

    def check():
        result = run_gillab("compare", "--python", free_threaded_python(), "--gil", "off",
                            "-k", "py", "py_shared", "-e", "serial", "threads", "-w", "2",
                            "--target-s", "0.3", "--json", str(out), timeout=900)
        assert result.returncode == 0, result.stderr
        data = json.loads(out.read_text())
        off = [label for label, env in data["envs"].items() if env["gil_enabled"] is False]
        assert len(off) == 1, data["envs"]
        threads = {c["kernel"]: c for c in data["cells"] if c["interpreter"] == off[0]
                   and c["executor"] == "threads" and c["workers"] == 2}
        assert threads["py"]["verdict"] == "parallel", threads["py"]["reason"]
        assert threads["py_shared"]["verdict"] == "contended", threads["py_shared"]["reason"]
        # The host ran with its GIL: the GIL-off rule never reaches its cells.
        assert all(c["verdict"] != "contended" for c in data["cells"]
                   if c["interpreter"] != off[0])

    retry_once(check)
