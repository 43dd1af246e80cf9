"""compare --python: choosing interpreters, their venvs, merging their runs, the
side-by-side table, stopping a child cleanly; and one real run under another Python."""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gillab import interpreters as across
from gillab.__main__ import create_parser
from gillab.errors import UsageError
from gillab.results import Cell, CompareRun, load_run

from .conftest import run_gillab

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def interp(version="3.11.7", free_threaded=False, path=None, host=False, build=None):
    return across.Interpreter(path or f"/opt/python{version}/bin/python", version,
                              build or f"{version} (main, Jan 1 2025)", "CPython",
                              free_threaded, host)


def env(python="3.11.7", free_threaded=False, gil_enabled=True):
    return {"gillab": "0.1.0", "python": python, "implementation": "CPython",
            "gil_enabled": gil_enabled, "free_threaded_build": free_threaded,
            "cpu_count": 2, "switch_interval": 0.005, "start_method": "fork"}


def cell(kernel, executor, workers, speedup, cores, verdict, reason="", **extra):
    fields = dict(kernel=kernel, executor=executor, workers=workers, n=1_000_000,
                  wall_s=0.1 * workers / speedup, speedup=speedup, cores_used=cores,
                  correct=verdict != "wrong", verdict=verdict,
                  reason=reason or f"speedup {speedup:.2f}x on {workers} threads",
                  serial_s=0.1)
    fields.update(extra)
    return Cell(**fields)


def run_311():
    cells = (cell("py", "serial", 1, 1.0, 1.0, "serialized"),
             cell("py", "threads", 2, 1.0, 1.0, "GIL-bound"),
             cell("py", "gevent", 2, 0.99, 1.0, "serialized"))
    return CompareRun(env(), cells, {"kernels": ["py"], "repeat": 1},
                      skipped=({"executor": "interpreters",
                                "reason": "subinterpreters need Python 3.13+ (this is 3.11)"},))


def run_313t(gil_enabled=False):
    cells = (cell("py", "serial", 1, 1.0, 1.0, "serialized", serial_s=0.12),
             cell("py", "threads", 2, 1.93, 1.97, "parallel"))
    return CompareRun(env("3.13.5", True, gil_enabled), cells, {"kernels": ["py"]},
                      skipped=({"executor": "gevent",
                                "reason": "gevent does not support free-threaded builds"},))


class TestChoosingInterpreters:
    """The host runs first, each other Python once, each under a short unique label."""

    def test_labels_are_minor_versions_with_t_for_free_threaded(self):
        labels = [i.label for i in across.make_labels([interp("3.11.7"),
                                                       interp("3.13.5", True)])]
        assert labels == ["3.11", "3.13t"]

    def test_labels_fall_back_to_full_versions_then_numbers(self):
        chosen = across.make_labels([interp("3.13.0"), interp("3.13.5"),
                                     interp("3.13.5", path="/other/python")])
        assert [i.label for i in chosen] == ["3.13.0", "3.13.5", "3.13.5#2"]

    def test_the_host_and_repeats_run_once(self, tmp_path):
        real = tmp_path / "python3.13"
        real.write_text("")
        alias = tmp_path / "python3"
        alias.symlink_to(real)
        host = interp("3.11.7", path=sys.executable, host=True)
        probed = []

        def fake_probe(path):
            probed.append(path)
            return interp("3.13.5", path=path)

        chosen = across.select_interpreters([str(real), sys.executable, str(alias)],
                                            host=host, probe_func=fake_probe)
        assert [i.label for i in chosen] == ["3.11", "3.13"]
        assert chosen[0].host and not chosen[1].host
        assert probed == [str(real)]

    def test_a_path_that_is_not_python_is_a_usage_error(self, tmp_path):
        with pytest.raises(UsageError, match="no such file"):
            across.probe(str(tmp_path / "missing"))
        not_python = tmp_path / "false"
        not_python.write_text("#!/bin/sh\nexit 3\n")
        not_python.chmod(0o755)
        with pytest.raises(UsageError, match="does not run as a Python"):
            across.probe(str(not_python))

    def test_probe_reads_this_interpreter(self):
        found = across.probe(sys.executable)
        assert found.version == ".".join(map(str, sys.version_info[:3]))
        assert found.free_threaded is False or found.free_threaded is True


class TestVenvs:
    """One venv per interpreter, gillab reinstalled only when the sources change."""

    @pytest.fixture
    def checkout(self, tmp_path):
        root = tmp_path / "checkout"
        for rel, text in {"setup.py": "", "pyproject.toml": "", "ext/_kernels.pyx": "x",
                          "ext/_kernels.c": "generated", "gillab/__init__.py": "",
                          "gillab/_kernels.cpython-311-x86_64-linux-gnu.so": "binary",
                          "gillab/__pycache__/x.cpython-311.pyc": "",
                          "gillab/demos/a.py": "a = 1", "README.md": "not built"}.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root

    def test_only_sources_count(self, checkout):
        assert across.source_files(str(checkout)) == [
            "ext/_kernels.pyx", "gillab/__init__.py", "gillab/demos/a.py",
            "pyproject.toml", "setup.py"]

    def test_fingerprint_follows_contents_not_times(self, checkout):
        before = across.source_fingerprint(str(checkout))
        os.utime(checkout / "setup.py", (0, 0))
        (checkout / "README.md").write_text("edited")
        (checkout / "ext/_kernels.c").write_text("regenerated")
        assert across.source_fingerprint(str(checkout)) == before
        (checkout / "gillab/demos/a.py").write_text("a = 2")
        assert across.source_fingerprint(str(checkout)) != before

    def test_a_new_file_changes_the_fingerprint(self, checkout):
        before = across.source_fingerprint(str(checkout))
        (checkout / "gillab/new.py").write_text("")
        assert across.source_fingerprint(str(checkout)) != before

    def test_venv_key_names_the_interpreter_and_its_build(self):
        a = across.make_labels([interp("3.13.5", True)])[0]
        assert across.venv_key(a) == across.venv_key(a)
        assert across.venv_key(a).startswith("3.13t-")
        rebuilt = dataclasses.replace(a, build="3.13.5 (main, Feb 2 2025)")
        moved = dataclasses.replace(a, path="/elsewhere/python3")
        assert len({across.venv_key(a), across.venv_key(rebuilt),
                    across.venv_key(moved)}) == 3

    def test_cache_root_follows_the_environment(self, monkeypatch, tmp_path):
        monkeypatch.delenv("GILLAB_CACHE_DIR", raising=False)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        assert across.cache_root() == str(tmp_path / "gillab" / "venvs")
        monkeypatch.setenv("GILLAB_CACHE_DIR", str(tmp_path / "c"))
        assert across.cache_root() == str(tmp_path / "c" / "venvs")

    def test_free_threaded_builds_go_without_gevent(self):
        requires = ["gevent>=24.2", "rich>=13.7", "psutil>=5.9",
                    'pytest>=8; extra == "test"']
        assert across.dependencies_for(requires, False) == requires[:3]
        assert across.dependencies_for(requires, True) == ["rich>=13.7", "psutil>=5.9"]

    def test_the_checkout_is_found(self):
        assert across.find_checkout() == REPO


class TestForwarding:
    """The child runs the user's matrix; the parent keeps --python, --json and --plot."""

    def test_options_round_trip(self):
        parser = create_parser()
        argv = ["--debug", "compare", "-k", "py", "cy_gil", "-e", "threads", "interpreters",
                "-w", "1,2", "--repeat", "2", "--quick", "--target-s", "0.05",
                "--start-method", "spawn", "--python", "/x/python", "--json", "/tmp/a.json",
                "--plot", "/tmp/a.png", "-q"]
        args = parser.parse_args(argv)
        words = across.forwarded_args(args)
        assert "--python" not in words and "--json" not in words and "--plot" not in words
        again = parser.parse_args(words)
        for key, value in vars(args).items():
            if key in ("python", "json", "plot"):
                assert getattr(again, key) is None
            else:
                assert getattr(again, key) == value, key

    def test_defaults_forward_nothing_extra(self):
        args = create_parser().parse_args(["compare", "--python", "/x"])
        again = create_parser().parse_args(across.forwarded_args(args))
        assert again.kernel is None and again.quick is False and again.repeat is None

    def test_target_puts_the_users_directory_last(self):
        cmd = across._child_command("/v/bin/python", ["compare"], "/home/me/project")
        assert cmd[:3] == ["/v/bin/python", "-I", "-c"]
        assert "sys.path.append" in cmd[3] and cmd[4] == "/home/me/project"
        assert across._child_command("/v/bin/python", ["compare"], None) == [
            "/v/bin/python", "-I", "-m", "gillab", "compare"]


def test_a_failed_child_is_told_by_its_own_error_line():
    tail = ["  3.13: [0/2] py: calibrating", "gillab: error: no such kernel", "Traceback?"]
    assert across._child_failure(1, tail) == "exited with code 1: gillab: error: no such kernel"
    assert across._child_failure(-9, []) == "exited with code -9: no output"


class TestMerging:
    """Several runs become one JSON: an env per interpreter, every cell tagged."""

    def merged(self):
        return across.merge_runs([("3.11", run_311()), ("3.13t", run_313t())])

    def test_cells_and_skips_carry_their_interpreter(self):
        run, envs = self.merged()
        assert list(envs) == ["3.11", "3.13t"]
        assert run.env == envs["3.11"]
        assert [(c.interpreter, c.executor) for c in run.cells] == [
            ("3.11", "serial"), ("3.11", "threads"), ("3.11", "gevent"),
            ("3.13t", "serial"), ("3.13t", "threads")]
        assert {(s["interpreter"], s["executor"]) for s in run.skipped} == {
            ("3.11", "interpreters"), ("3.13t", "gevent")}
        assert [i["label"] for i in run.settings["interpreters"]] == ["3.11", "3.13t"]

    def test_json_round_trip_and_load_run_still_reads_it(self, tmp_path):
        from gillab.results import write_json_atomic

        run, envs = self.merged()
        data = across.to_json(run, envs)
        assert list(data)[:3] == ["schema", "env", "envs"]
        assert data["schema"] == "gillab/compare/1"
        path = tmp_path / "r.json"
        write_json_atomic(str(path), data)
        plain = load_run(str(path))
        assert len(plain.cells) == 5 and plain.cells[-1].interpreter == "3.13t"
        again, again_envs = across.load_across(str(path))
        assert again_envs == envs and again.cells == run.cells

    def test_a_plain_run_loads_with_one_env(self, tmp_path):
        from gillab.results import write_json_atomic

        path = tmp_path / "r.json"
        write_json_atomic(str(path), run_311().to_dict())
        _, envs = across.load_across(str(path))
        assert list(envs.values()) == [env()]


class TestSideBySide:
    """One table per kernel, a column group per interpreter, 80 columns for two."""

    def lines(self, gil_enabled=False):
        run, envs = across.merge_runs([("3.11", run_311()),
                                       ("3.13t", run_313t(gil_enabled))])
        return across.format_side_by_side(run, envs, {"py": "pure Python loop"})

    def test_fits_80_columns(self):
        assert max(len(line) for line in self.lines()) <= 80

    def test_rows_hold_both_interpreters(self):
        lines = self.lines()
        threads = next(line for line in lines if line.lstrip().startswith("threads"))
        assert "GIL-bound" in threads and "parallel" in threads
        assert threads.index("GIL-bound") < threads.index("parallel")
        gevent = next(line for line in lines if line.lstrip().startswith("gevent"))
        assert gevent.rstrip().endswith("skipped")
        assert any("-- 3.11 " in line and "-- 3.13t " in line for line in lines)

    def test_both_envs_on_top_and_ns_per_iter_in_the_title(self):
        text = "\n".join(self.lines())
        assert "3.11   CPython 3.11.7, GIL enabled" in text
        assert "3.13t  CPython 3.13.5, GIL disabled (free-threaded build)" in text
        assert "py (ns/iter: 3.11 100.0, 3.13t 120.0)" in text

    def test_a_changed_verdict_is_explained_with_both_reasons(self):
        text = " ".join(" ".join(self.lines()).split())
        assert "threads x2: 3.11 GIL-bound (speedup 1.00x" in text
        assert "3.13t parallel (speedup 1.93x" in text

    def test_skips_are_listed_per_interpreter(self):
        text = " ".join(" ".join(self.lines()).split())
        assert "skipped on 3.13t: gevent: gevent does not support free-threaded" in text
        assert "skipped on 3.11: interpreters: subinterpreters need Python 3.13+" in text

    def test_says_what_free_threading_means(self):
        text = " ".join(" ".join(self.lines()).split())
        assert "kernels (py, cy_gil, bigint) hold nothing" in text
        assert "WARNING" not in text

    def test_warns_when_a_free_threaded_build_ran_with_the_gil(self):
        text = " ".join(" ".join(self.lines(gil_enabled=True)).split())
        assert "WARNING: 3.13t is a free-threaded build, but its GIL was on" in text
        assert "hold nothing" not in text

    def test_no_free_threading_note_without_a_free_threaded_build(self):
        run, envs = across.merge_runs([("3.11", run_311()), ("3.12", dataclasses.replace(
            run_311(), env=env("3.12.1")))])
        text = " ".join(across.format_side_by_side(run, envs))
        assert "free-threaded" not in text and "-- 3.12 " in text


class TestSubinterpreters:
    """The interpreters executor says why it cannot run, where it cannot."""

    @pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.13+ has subinterpreters")
    def test_before_313_the_reason_names_the_version(self):
        from gillab.executors import unavailable_reason

        v = sys.version_info
        assert unavailable_reason("interpreters") == (
            f"subinterpreters need Python 3.13+ (this is {v.major}.{v.minor})")

    def test_what_a_subinterpreter_imports_leaves_psutil_out(self):
        """psutil cannot load in a subinterpreter with its own GIL: run_task's imports
        must not pull it in."""
        code = ("import sys, gillab.kernels, gillab.measure, gillab.interpreters; "
                "print('psutil' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
        assert out.strip() == "False"


# A child that starts a grandchild, says its pid, then waits: stopping the child
# must stop the grandchild too (its process group), as pool workers would be.
_FAMILY = """\
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(f"grandchild {grandchild.pid}", file=sys.stderr, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_ctrl_c_stops_the_child_and_its_workers():
    """Ctrl-C while a child runs: the whole process group goes, nothing is orphaned."""
    pids = []

    def on_line(line):
        pids.append(int(line.split()[1]))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        across.run_child([sys.executable, "-c", _FAMILY], cwd="/", on_line=on_line,
                         grace_s=0.5)
    assert pids
    for _ in range(50):  # the kernel reaps the grandchild (re-parented to init) promptly
        if not _alive(pids[0]):
            break
        time.sleep(0.1)
    assert not _alive(pids[0])


def other_python() -> str | None:
    """A pyenv 3.13 or 3.12 (or $GILLAB_TEST_PYTHON) to run the matrix under."""
    chosen = os.environ.get("GILLAB_TEST_PYTHON")
    if chosen:
        return chosen
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for minor in ("3.13", "3.12"):
        found = sorted(glob.glob(os.path.join(root, "versions", f"{minor}.*", "bin",
                                              "python")))
        found = [p for p in found if os.access(p, os.X_OK)
                 and not p.split(os.sep)[-3].endswith("t")]  # not a 3.13t
        if found:
            return found[-1]
    return None


@pytest.mark.slow
@pytest.mark.skipif(other_python() is None, reason="no pyenv 3.13 or 3.12 here")
class TestAcrossForReal:
    """compare --python under a real second interpreter (a venv built the first time)."""

    def test_side_by_side_run_and_json(self, tmp_path):
        python = other_python()
        path = tmp_path / "r.json"
        result = run_gillab("compare", "--python", python, "-k", "cy_nogil", "-e", "threads",
                            "-w", "2", "--repeat", "1", "--target-s", "0.05",
                            "--json", str(path), timeout=600)
        assert result.returncode == 0, result.stderr
        with open(path) as f:
            data = json.load(f)
        labels = list(data["envs"])
        assert len(labels) == 2 and data["env"] == data["envs"][labels[0]]
        assert data["envs"][labels[1]]["executable"].startswith(across.cache_root())
        cells = {(c["interpreter"], c["executor"]) for c in data["cells"]}
        assert cells == {(lab, ex) for lab in labels for ex in ("serial", "threads")}
        assert all(c["correct"] for c in data["cells"])
        assert "side by side" in result.stdout and f"-- {labels[1]} " in result.stdout
        assert f"{labels[1]}: [" in result.stderr  # the child's progress, streamed

    def test_ctrl_c_exits_130_without_json_or_orphans(self, tmp_path):
        import psutil

        python = other_python()
        path = tmp_path / "r.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "gillab", "compare", "--python", python, "-k", "py",
             "-e", "processes", "-w", "2", "--repeat", "3", "--target-s", "1",
             "--json", str(path)],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
        family: set = set()
        try:
            for line in proc.stderr:  # wait for the child's own progress lines
                if ": [" in line and "py on" in line and line.startswith("  "):
                    family = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
                    break
            assert family, "the child never started"
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stderr.close()
        assert not path.exists()
        time.sleep(0.5)
        assert not [pid for pid in family if _alive(pid)]
