"""Real runs for check's free-threaded verdicts: SETUP once per thread through the core,
a call with threads of its own (host), and check --python on a free-threaded 3.13t
(slow; skipped with the reason when there is none)."""
from __future__ import annotations

import json
import os
import subprocess
import sysconfig
import threading

import pytest

from tests.conftest import retry_once, run_gillab
from tests.pythons.test_interpreters import free_threaded_python

NO_FT = pytest.mark.skipif(free_threaded_python() is None,
                           reason="no free-threaded Python (scripts/build-free-threaded-"
                                  "python.sh or $GILLAB_TEST_FT_PYTHON)")


class TestOwnSetup:
    def test_each_thread_makes_its_own_objects_before_the_signal(self):
        from gillab.measure import bounded, loops

        made = []

        def own(i):
            obj = object()
            made.append((threading.get_ident(), obj))
            return lambda calls: (threading.get_ident(), id(obj))

        run = loops.run_threads(None, 1, 3, bounded.deadline_in(30), own=own)
        answers = [t.value for t in run.tasks]
        assert len({a[1] for a in answers}) == 3           # three objects
        assert {a[0] for a in answers} == {m[0] for m in made}  # made in the thread itself

    def test_a_setup_that_raises_is_that_threads_error(self):
        from gillab.measure import bounded, loops

        def own(i):
            raise ValueError("boom")

        run = loops.run_threads(None, 1, 2, bounded.deadline_in(30), own=own)
        assert all("boom" in t.error for t in run.tasks)


def own_threads_call(n=2_000_000):
    """A call that runs two threads of its own, each in cy_nogil (GIL released), for
    ~10 ms: long enough that starting and joining them is not most of the call (at
    20,000 iterations a quiet machine measured 1.50-1.56 cores, at the test's margin)."""
    from gillab import _kernels

    threads = [threading.Thread(target=_kernels.fact_mod_nogil, args=(n, 2**61 - 1))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.mark.slow
def test_a_call_that_fills_the_cores_by_itself_is_not_sent_to_processes():
    import gillab
    from gillab.core.environment import cpu_count

    if cpu_count() != 2:
        pytest.skip("the claim is made for 2 CPUs (the call runs 2 threads)")

    def check():
        r = gillab.check(own_threads_call)
        assert r.cores_alone >= 1.5, r.reason
        assert r.verdict_word == "parallel by itself"
        assert r.practical == "already parallel" and "use processes" not in r.practical

    retry_once(check)


@pytest.fixture(scope="session")
def gil_needing_extension(tmp_path_factory):
    """A C module with single-phase init and no Py_mod_gil: 3.13t turns its GIL on for it."""
    python = free_threaded_python()
    if python is None:
        pytest.skip("no free-threaded Python")
    where = tmp_path_factory.mktemp("gilneeded")
    (where / "gilneeded.c").write_text(
        "#include <Python.h>\n"
        "static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, \"gilneeded\", NULL, -1};\n"
        "PyMODINIT_FUNC PyInit_gilneeded(void) { return PyModule_Create(&def); }\n")
    info = json.loads(subprocess.run(
        [python, "-c", "import json, sysconfig; print(json.dumps([sysconfig.get_paths()"
                       "['include'], sysconfig.get_config_var('EXT_SUFFIX')]))"],
        capture_output=True, text=True, check=True).stdout)
    cc = sysconfig.get_config_var("CC") or "cc"
    done = subprocess.run([*cc.split()[:1], "-shared", "-fPIC", f"-I{info[0]}", "-o",
                           str(where / f"gilneeded{info[1]}"), str(where / "gilneeded.c")],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"no C compiler for the test extension: {done.stderr.strip()[:200]}")
    return str(where)


def check_ft(tmp_path, *args, gil=()):
    out = tmp_path / "r.json"
    result = run_gillab("check", "--python", free_threaded_python(), *gil, *args,
                        "--json", str(out), timeout=900)
    assert result.returncode == 0, result.stderr
    return result, json.loads(out.read_text())["runs"]


@pytest.mark.slow
@NO_FT
class TestOnFreeThreaded:
    def test_a_private_loop_scales(self, tmp_path):
        def check():
            result, runs = check_ft(tmp_path, "for i in range(100000): x = i & 1023")
            r = runs[0]["result"]
            assert r["env"]["gil_enabled"] is False
            assert "releases the GIL" not in result.stdout
            assert r["verdict"] == "scales", r["reason"]

        retry_once(check)

    def test_a_shared_dict_contends_and_its_private_copy_scales(self, tmp_path):
        def check():
            _, runs = check_ft(tmp_path, "-s", "d = {}",
                               "for i in range(100000): d[i & 1023] = i")
            r = runs[0]["result"]
            assert r["contends"] is True, r["reason"]
            assert r["private_speedup"] >= 1.5, r["reason"]
            assert "contends on objects SETUP made" in r["reason"]

        retry_once(check)

    def test_the_extension_that_turned_the_gil_on_is_named(self, tmp_path,
                                                           gil_needing_extension):
        result, runs = check_ft(tmp_path, "-s", f"import sys; sys.path.append("
                                f"{gil_needing_extension!r}); import gilneeded",
                                "sum(range(1000))")
        r = runs[0]["result"]
        assert r["env"]["gil_enabled"] is True
        assert r["env"]["gil_enabled_by"] == ["gilneeded"]
        assert r["gil_states"] == {"start": False, "setup": True, "end": True}
        assert "PYTHON_GIL=0" in r["reason"]

    def test_gil_both_is_two_runs_of_one_binary(self, tmp_path):
        result, runs = check_ft(tmp_path, "sum(range(1000))", gil=("--gil", "both"))
        assert [(r["label"], r["gil"]) for r in runs] == [("3.13t", "off"), ("3.13t+GIL", "on")]
        assert [r["result"]["env"]["gil_enabled"] for r in runs] == [False, True]
        assert "3.13t+GIL (GIL on)" in result.stdout

    def test_compare_reports_the_target_module_that_turned_the_gil_on(
            self, tmp_path, gil_needing_extension):
        """compare, run by the free-threaded venv itself: its --target imports the module."""
        from gillab.pythons import venvs
        from gillab.pythons.found import make_labels, probe

        python = venvs.ensure_venv(make_labels([probe(free_threaded_python())])[0])
        (tmp_path / "needs_gil.py").write_text(
            f"import sys\nsys.path.append({gil_needing_extension!r})\nimport gilneeded\n"
            "def work():\n    return sum(range(1000))\n")
        out = tmp_path / "c.json"
        boot = ("import sys; sys.path.append(sys.argv.pop(1)); "
                "from gillab.__main__ import main; sys.exit(main(sys.argv[1:]))")
        done = subprocess.run([python, "-I", "-c", boot, str(tmp_path), "compare", "--target",
                               "needs_gil:work", "-e", "serial", "--repeat", "1", "--json",
                               str(out)], capture_output=True, text=True, timeout=600,
                              cwd=str(tmp_path), env={k: v for k, v in os.environ.items()
                                                      if k != "PYTHON_GIL"})
        assert done.returncode == 0, done.stderr
        env = json.loads(out.read_text())["env"]
        assert env["gil_enabled_by"] == ["gilneeded"] and env["gil_enabled"] is True
