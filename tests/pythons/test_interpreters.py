"""compare --python (gillab.pythons, gillab.compare.report_across): choosing interpreters,
their venvs, merging their runs, the side-by-side table and its reading, bad input,
stopping a child cleanly; and real runs under another Python, from a wheel install,
and on a free-threaded build with its GIL off and on."""
from __future__ import annotations

import dataclasses
import glob
import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from gillab.compare import report_across
from gillab.__main__ import create_parser
from gillab.core.errors import UsageError, UserError
from gillab.compare import merge
from gillab.pythons import child, found, venvs
from gillab.compare.records import Cell, CompareRun, load_run

from tests.conftest import assert_not_noisy, retry_once, run_gillab


def compare_parser():
    return create_parser()._subparsers._group_actions[0].choices["compare"]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def interp(version="3.11.7", free_threaded=False, path=None, host=False, build=None):
    return found.Interpreter(path or f"/opt/python{version}/bin/python", version,
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
        labels = [i.label for i in found.make_labels([interp("3.11.7"),
                                                       interp("3.13.5", True)])]
        assert labels == ["3.11", "3.13t"]

    def test_labels_fall_back_to_full_versions_then_numbers(self):
        chosen = found.make_labels([interp("3.13.0"), interp("3.13.5"),
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

        chosen = found.select_interpreters([str(real), sys.executable, str(alias)],
                                            host=host, probe_func=fake_probe)
        assert [i.label for i in chosen] == ["3.11", "3.13"]
        assert chosen[0].host and not chosen[1].host
        assert probed == [str(real)]

    def test_a_path_that_is_not_python_is_a_usage_error(self, tmp_path):
        with pytest.raises(UsageError, match="no such file"):
            found.probe(str(tmp_path / "missing"))
        not_python = tmp_path / "false"
        not_python.write_text("#!/bin/sh\nexit 3\n")
        not_python.chmod(0o755)
        with pytest.raises(UsageError, match="does not run as a Python"):
            found.probe(str(not_python))

    def test_probe_reads_this_interpreter(self):
        this = found.probe(sys.executable)
        assert this.version == ".".join(map(str, sys.version_info[:3]))
        assert this.free_threaded is bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


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

    def sources(self, checkout):
        return venvs.build_sources(str(checkout / "gillab"))

    def test_only_sources_count(self, checkout):
        assert list(self.sources(checkout)) == [
            "ext/_kernels.pyx", "gillab/__init__.py", "gillab/demos/a.py",
            "pyproject.toml", "setup.py"]

    def test_an_installed_copy_uses_the_build_files_it_ships(self, tmp_path):
        """A wheel install has no checkout around it: setup.py put the build files in
        gillab/_build/, and they map back to the tree's top."""
        site = tmp_path / "site-packages"
        for rel in ("gillab/__init__.py", "gillab/_build/setup.py",
                    "gillab/_build/pyproject.toml", "gillab/_build/ext/_kernels.pyx"):
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_text(rel)
        sources = venvs.build_sources(str(site / "gillab"))
        assert list(sources) == ["ext/_kernels.pyx", "gillab/__init__.py",
                                 "pyproject.toml", "setup.py"]
        assert sources["setup.py"] == str(site / "gillab/_build/setup.py")

    def test_no_build_files_is_one_line(self, tmp_path):
        (tmp_path / "gillab").mkdir()
        with pytest.raises(UserError, match="holds its build files"):
            venvs.build_sources(str(tmp_path / "gillab"))

    def test_fingerprint_follows_contents_not_times(self, checkout):
        before = venvs.source_fingerprint(self.sources(checkout))
        os.utime(checkout / "setup.py", (0, 0))
        (checkout / "README.md").write_text("edited")
        (checkout / "ext/_kernels.c").write_text("regenerated")
        assert venvs.source_fingerprint(self.sources(checkout)) == before
        (checkout / "gillab/demos/a.py").write_text("a = 2")
        assert venvs.source_fingerprint(self.sources(checkout)) != before

    def test_a_new_file_changes_the_fingerprint(self, checkout):
        before = venvs.source_fingerprint(self.sources(checkout))
        (checkout / "gillab/new.py").write_text("")
        assert venvs.source_fingerprint(self.sources(checkout)) != before

    def test_venv_key_names_the_interpreter_and_its_build(self):
        a = found.make_labels([interp("3.13.5", True)])[0]
        assert venvs.venv_key(a) == venvs.venv_key(a)
        assert venvs.venv_key(a).startswith("3.13.5t-")
        gil_on = dataclasses.replace(a, gil="on", label="3.13t+GIL")
        assert venvs.venv_key(gil_on) == venvs.venv_key(a)  # one binary, one venv
        rebuilt = dataclasses.replace(a, build="3.13.5 (main, Feb 2 2025)")
        moved = dataclasses.replace(a, path="/elsewhere/python3")
        assert len({venvs.venv_key(a), venvs.venv_key(rebuilt),
                    venvs.venv_key(moved)}) == 3

    def test_cache_root_follows_the_environment(self, monkeypatch, tmp_path):
        monkeypatch.delenv("GILLAB_CACHE_DIR", raising=False)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        assert venvs.cache_root() == str(tmp_path / "gillab" / "venvs")
        monkeypatch.setenv("GILLAB_CACHE_DIR", str(tmp_path / "c"))
        assert venvs.cache_root() == str(tmp_path / "c" / "venvs")

    def test_free_threaded_builds_go_without_gevent(self):
        requires = ["gevent>=24.2", "rich>=13.7", "psutil>=5.9",
                    'pytest>=8; extra == "test"']
        assert venvs.dependencies_for(requires, False) == requires[:3]
        assert venvs.dependencies_for(requires, True) == ["rich>=13.7", "psutil>=5.9"]
        assert venvs.dependencies_for(["GEvent [recommended] >= 24; python_version >= '3.8'"],
                                      True) == []

    def test_free_threaded_builds_go_without_jsonschema(self):
        # rpds-py (jsonschema's) has no free-threaded wheel here; only `show` needs it.
        assert venvs.dependencies_for(["jsonschema>=4.18", "rich>=13.7"], True) == ["rich>=13.7"]
        assert venvs.dependencies_for(["jsonschema>=4.18"], False) == ["jsonschema>=4.18"]

    def test_the_checkout_is_found(self):
        assert venvs.build_sources()["setup.py"] == os.path.join(REPO, "setup.py")


class TestForwarding:
    """The child runs the user's matrix; the parent keeps --python, --json and --plot."""

    def test_options_round_trip(self):
        parser = create_parser()
        argv = ["--debug", "compare", "-k", "py", "cy_gil", "-e", "threads", "interpreters",
                "-w", "1,2", "--repeat", "2", "--quick", "--target-s", "0.05",
                "--start-method", "spawn", "--python", "/x/python", "--json", "/tmp/a.json",
                "--plot", "/tmp/a.png", "--gil", "both", "-q"]
        args = parser.parse_args(argv)
        words = child.forwarded_args(args, compare_parser())
        assert "--python" not in words and "--json" not in words and "--plot" not in words
        assert "--gil" not in words
        again = parser.parse_args(words)
        for key, value in vars(args).items():
            if key in ("python", "json", "plot", "gil"):
                assert getattr(again, key) is None
            else:
                assert getattr(again, key) == value, key

    def test_defaults_forward_nothing_extra(self):
        args = create_parser().parse_args(["compare", "--python", "/x"])
        again = create_parser().parse_args(child.forwarded_args(args, compare_parser()))
        assert again.kernel is None and again.quick is False and again.repeat is None

    def test_target_puts_the_users_directory_last(self):
        cmd = child.child_command("/v/bin/python", ["compare"], "/home/me/project")
        assert cmd[:3] == ["/v/bin/python", "-I", "-c"]
        assert "sys.path.append" in cmd[3] and cmd[4] == "/home/me/project"
        assert child.child_command("/v/bin/python", ["compare"], None) == [
            "/v/bin/python", "-I", "-m", "gillab", "compare"]


def test_a_failed_child_is_told_by_its_own_error_line():
    tail = ["  3.13: [0/2] py: calibrating", "gillab: error: no such kernel", "Traceback?"]
    assert child.child_failure(1, tail) == "exited with code 1: gillab: error: no such kernel"
    assert child.child_failure(-9, []) == "exited with code -9: no output"


class TestMerging:
    """Several runs become one JSON: an env per interpreter, every cell tagged."""

    def merged(self):
        return merge.merge_runs([("3.11", run_311()), ("3.13t", run_313t())])

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
        from gillab.compare.records import write_json_atomic

        run, envs = self.merged()
        data = merge.to_json(run, envs)
        assert list(data)[:3] == ["schema", "env", "envs"]
        assert data["schema"] == "gillab/compare/1"
        path = tmp_path / "r.json"
        write_json_atomic(str(path), data)
        plain = load_run(str(path))
        assert len(plain.cells) == 5 and plain.cells[-1].interpreter == "3.13t"
        again, again_envs = merge.load_across(str(path))
        assert again_envs == envs and again.cells == run.cells

    def test_a_plain_run_loads_with_one_env(self, tmp_path):
        from gillab.compare.records import write_json_atomic

        path = tmp_path / "r.json"
        write_json_atomic(str(path), run_311().to_dict())
        _, envs = merge.load_across(str(path))
        assert list(envs.values()) == [env()]


class TestSideBySide:
    """One table per kernel, a column group per interpreter, 80 columns for two."""

    def lines(self, gil_enabled=False):
        run, envs = merge.merge_runs([("3.11", run_311()),
                                       ("3.13t", run_313t(gil_enabled))])
        return report_across.format_side_by_side(run, envs, {"py": "pure Python loop"})

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
        run, envs = merge.merge_runs([("3.11", run_311()), ("3.12", dataclasses.replace(
            run_311(), env=env("3.12.1")))])
        text = " ".join(report_across.format_side_by_side(run, envs))
        assert "free-threaded" not in text and "-- 3.12 " in text


class TestSubinterpreters:
    """The interpreters executor says why it cannot run, where it cannot."""

    @pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.13+ has subinterpreters")
    def test_before_313_the_reason_names_the_version(self):
        from gillab.measure.executors import unavailable_reason

        v = sys.version_info
        assert unavailable_reason("interpreters").startswith(
            f"subinterpreters need Python 3.13+ (this is {v.major}.{v.minor}")

    def test_the_public_api_is_chosen_by_feature(self, monkeypatch):
        """Where concurrent.interpreters and InterpreterPoolExecutor exist (3.14+), they
        are used, whatever the version number says; a failing bootstrap there is an
        error with its cause, never a reason to skip."""
        from gillab.measure import subinterpreters as sub

        made = []

        class FakeInterpreter:
            def prepare_main(self, **names):
                made.append(sorted(names))

            def exec(self, code):
                made.append("gillab.measure.subinterpreters" in code)
                raise RuntimeError("ImportError: no module named gillab._kernels")

            def close(self):
                made.append("closed")

        class FakeModule:
            @staticmethod
            def create():
                return FakeInterpreter()

        monkeypatch.setattr(sub, "public_module", lambda: FakeModule)
        monkeypatch.setattr(sub, "pool_executor_class", lambda: object)
        assert sub.api_name() == "concurrent.interpreters"
        with pytest.raises(sub.SubinterpreterBootstrapFailed,
                           match="no module named gillab._kernels") as caught:
            sub.subinterpreter_problem()
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert made == [["path"], True, "closed"]

    def test_without_either_api_the_reason_says_so(self, monkeypatch):
        from gillab.measure import subinterpreters as sub

        monkeypatch.setattr(sub, "public_module", lambda: None)
        monkeypatch.setattr(sub, "low_level_module", lambda: None)
        assert sub.api_name() is None
        assert "neither concurrent.interpreters nor _interpreters" in (
            sub.subinterpreter_problem())

    def test_what_a_subinterpreter_imports_leaves_psutil_out(self):
        """psutil cannot load in a subinterpreter with its own GIL: run_task's imports
        must not pull it in."""
        code = ("import sys, gillab.kernels, gillab.measure.clocks, gillab.measure.subinterpreters; "
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
        child.run_child([sys.executable, "-c", _FAMILY], cwd="/", on_line=on_line,
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

    @pytest.fixture(autouse=True)
    def shared_venvs(self, monkeypatch, venv_cache):
        monkeypatch.setenv("GILLAB_CACHE_DIR", venv_cache)  # one build of the venv per session

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
        assert data["envs"][labels[1]]["executable"].startswith(venvs.cache_root())
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
            # Short tasks: the host's run comes first and only delays the child's; 3 x
            # 0.3 s cells still leave the child running when its first line arrives.
            [sys.executable, "-m", "gillab", "compare", "--python", python, "-k", "py",
             "-e", "processes", "-w", "2", "--repeat", "3", "--target-s", "0.3",
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


class TestGilSettings:
    """--gil: a free-threaded --python runs once per setting, labelled by it."""

    def choose(self, gil, free_threaded=True):
        host = interp("3.11.7", path=sys.executable, host=True)
        return found.select_interpreters(
            ["/opt/py313t/bin/python3"], gil=gil, host=host,
            probe_func=lambda path: interp("3.13.5", free_threaded, path=path))

    def test_both_is_two_runs_of_one_binary(self):
        chosen = self.choose("both")
        assert [(i.label, i.gil) for i in chosen] == [
            ("3.11", None), ("3.13t", "off"), ("3.13t+GIL", "on")]
        assert venvs.venv_key(chosen[1]) == venvs.venv_key(chosen[2])

    def test_default_is_off(self):
        assert [(i.label, i.gil) for i in self.choose(None)] == [
            ("3.11", None), ("3.13t", "off")]

    def test_a_build_with_a_gil_refuses_it(self):
        with pytest.raises(UsageError, match="is a build with a GIL"):
            self.choose("on", free_threaded=False)
        assert [i.gil for i in self.choose(None, free_threaded=False)] == [None, None]

    def test_the_child_gets_x_gil_on_its_command_line(self):
        """-I ignores PYTHON_GIL: the setting must be an -X option."""
        on = dataclasses.replace(interp("3.13.5", True), gil="on")
        words = child.child_command("/v/bin/python", ["compare"], None, child.gil_flags(on))
        assert words[:4] == ["/v/bin/python", "-I", "-X", "gil=1"]
        assert child.gil_flags(dataclasses.replace(on, gil="off")) == ["-X", "gil=0"]
        assert child.gil_flags(interp("3.13.0")) == []

    def test_the_child_gets_python_gil(self):
        on, off = interp("3.13.5", True), interp("3.13.5", False)
        base = {"PATH": "/bin", "PYTHON_GIL": "1"}
        assert child.child_env(dataclasses.replace(on, gil="on"), base)["PYTHON_GIL"] == "1"
        assert child.child_env(dataclasses.replace(on, gil="off"), base)["PYTHON_GIL"] == "0"
        assert "PYTHON_GIL" not in child.child_env(off, base)


def four_runs():
    """3.11 (host), 3.13.0 with a GIL, 3.13.5t with its GIL off and on: hand-made."""
    ft = "/cache/venvs/3.13.5t-abc/bin/python"

    def make(label, version, free_threaded, gil_enabled, serial_s, speedups, exe):
        e = dict(env(version, free_threaded, gil_enabled), executable=exe,
                 build={"compiler": "GCC 14.2.0", "cc": "gcc", "cflags": "-O3",
                        "config_args": ("'--prefix=/opt/py313t' '--disable-gil'" if free_threaded
                                        else "'--enable-shared' 'LDFLAGS=-L/x'")})
        cells = []
        for kernel, per in (("py", 1.0), ("bigint", 2.0)):
            cells.append(cell(kernel, "serial", 1, 1.0, 1.0, "serialized",
                              serial_s=serial_s * per))
            cells.append(cell(kernel, "threads", 2, speedups, speedups,
                              "parallel" if speedups > 1.5 else "GIL-bound"))
        return label, CompareRun(e, tuple(cells), {"kernels": ["py", "bigint"]})

    runs = [make("3.11", "3.11.7", False, True, 0.10, 1.0, "/usr/bin/python3.11"),
            make("3.13", "3.13.0", False, True, 0.09, 1.0, "/cache/venvs/3.13.0-x/bin/python"),
            make("3.13t", "3.13.5", True, False, 0.117, 1.88, ft),
            make("3.13t+GIL", "3.13.5", True, True, 0.118, 1.0, ft)]
    chosen = [dataclasses.replace(interp("3.13.5", True), label="3.13t", gil="off"),
              dataclasses.replace(interp("3.13.5", True), label="3.13t+GIL", gil="on")]
    return merge.merge_runs(runs, chosen)


class TestReading:
    """The side-by-side reading says which pair of columns isolates what."""

    def text(self):
        run, envs = four_runs()
        return " ".join(" ".join(report_across.format_side_by_side(run, envs)).split())

    def test_pairs_by_what_they_isolate(self):
        _, envs = four_runs()
        found_pairs = report_across.pairs(envs)
        assert found_pairs["gil"] == [("3.13t", "3.13t+GIL")]
        assert found_pairs["build"] == [("3.13", "3.13t")]
        assert ("3.11", "3.13") in found_pairs["other"]
        assert ("3.13t", "3.13t+GIL") not in found_pairs["other"]

    def test_same_binary_is_the_gils_own_effect(self):
        text = self.text()
        assert ("3.13t vs 3.13t+GIL: the same binary with its GIL off and forced on" in text)
        assert "the GIL's own effect" in text
        assert ("3.13t py threads x2 1.88x on 1.88 cores (parallel); 3.13t+GIL py threads x2 "
                "1.00x on 1.00 cores (GIL-bound)") in text

    def test_a_noisy_kernel_gives_way_to_a_clean_one(self):
        run, envs = four_runs()
        cells = tuple(dataclasses.replace(c, verdict="noisy") if c.kernel == "py" else c
                      for c in run.cells)
        text = " ".join(" ".join(report_across.reading_lines(
            dataclasses.replace(run, cells=cells), envs)).split())
        assert "3.13t bigint threads x2 1.88x" in text and "py threads" not in text

    def test_same_version_is_the_builds_single_thread_cost(self):
        text = self.text()
        assert "3.13 vs 3.13t: the same version line (3.13.0, 3.13.5)" in text
        assert "py 90.0 -> 117.0 ns/iter (+30%)" in text
        assert "bigint 180.0 -> 234.0 ns/iter (+30%)" in text

    def test_a_noisy_serial_cell_is_said_beside_the_cost(self):
        run, envs = four_runs()
        cells = tuple(dataclasses.replace(c, verdict="noisy")
                      if (c.kernel, c.executor, c.interpreter) == ("py", "serial", "3.13t")
                      else c for c in run.cells)
        text = " ".join(" ".join(report_across.reading_lines(
            dataclasses.replace(run, cells=cells), envs)).split())
        assert "(py: a serial cell ran noisy" in text
        assert "noisy" not in " ".join(report_across.reading_lines(run, envs))

    def test_other_versions_change_everything(self):
        assert "3.11 vs 3.13, 3.11 vs 3.13t" in self.text()
        assert "everything changes at once" in self.text()

    def test_each_build_is_named_once_and_the_forced_gil_is_no_warning(self):
        text = self.text()
        assert text.count("built with GCC 14.2.0") == 3  # the +GIL run shares 3.13t's
        assert text.count("configure --disable-gil") == 1 and "--prefix" not in text
        assert "configure --enable-shared" in text and "LDFLAGS" not in text
        assert "WARNING" not in text
        assert "3.13t+GIL: the free-threaded build with its GIL forced on" in text

    def test_the_json_tags_every_cell_and_records_the_gil_asked_for(self):
        run, envs = four_runs()
        data = merge.to_json(run, envs)
        assert {c["interpreter"] for c in data["cells"]} == set(envs)
        assert [e["gil_enabled"] for e in data["envs"].values()] == [True, True, False, True]
        asked = {i["label"]: i.get("gil") for i in data["settings"]["interpreters"]}
        assert asked["3.13t"] == "off" and asked["3.13t+GIL"] == "on"

    def test_a_gil_asked_on_but_measured_off_is_a_warning(self):
        run, envs = four_runs()
        envs["3.13t+GIL"] = dict(envs["3.13t+GIL"], gil_enabled=False)
        text = " ".join(" ".join(report_across.format_side_by_side(run, envs)).split())
        assert "WARNING: 3.13t+GIL: the GIL was asked to be on" in text
        assert report_across.pairs(envs)["build"] == [("3.13", "3.13t")]

    def test_no_reading_for_one_run(self):
        run, envs = merge.merge_runs([("3.11", run_311())])
        assert report_across.reading_lines(run, envs) == []


def _fake_python(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


class TestBadInput:
    """--python that is no usable Python, or --gil it cannot take: one line, exit 2,
    nothing left in the venv cache."""

    def run_bad(self, tmp_path, *args, **env):
        cache = tmp_path / "cache"
        result = subprocess.run(
            [sys.executable, "-m", "gillab", "compare", "-k", "py", "-e", "serial", *args],
            capture_output=True, text=True, timeout=120, cwd=str(tmp_path),
            env=dict(os.environ, GILLAB_CACHE_DIR=str(cache), **env))
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert not cache.exists() or not any(cache.rglob("*"))
        return result.stderr

    def test_not_a_python(self, tmp_path):
        not_python = _fake_python(tmp_path, "python3", "echo hello\n")
        assert "does not run as a Python" in self.run_bad(tmp_path, "--python", not_python)
        assert "no such file" in self.run_bad(tmp_path, "--python", str(tmp_path / "nope"))
        assert "not an executable" in self.run_bad(tmp_path, "--python", str(tmp_path))

    def test_older_than_310(self, tmp_path):
        old = _fake_python(tmp_path, "python3.9", (
            "echo '{\"version\": \"3.9.18\", \"version_info\": [3, 9], \"build\": \"3.9\", "
            "\"implementation\": \"CPython\", \"free_threaded\": false}'\n"))
        assert "gillab needs Python 3.10+, this is 3.9.18" in self.run_bad(
            tmp_path, "--python", old)

    def test_real_old_pythons_are_told_by_version(self, tmp_path):
        root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
        old = [p for p in sorted(glob.glob(os.path.join(root, "versions", "[23].*", "bin",
                                                        "python")))
               if tuple(map(int, p.split(os.sep)[-3].split(".")[:2])) < (3, 10)][:2]
        if not old:
            pytest.skip("no pyenv Python older than 3.10 here")
        for python in old:
            assert "gillab needs Python 3.10+, this is" in self.run_bad(
                tmp_path, "--python", python)

    def test_a_python_that_hangs_times_out(self, tmp_path):
        hangs = _fake_python(tmp_path, "python3", "sleep 60\n")
        started = time.monotonic()
        message = self.run_bad(tmp_path, "--python", hangs, GILLAB_PROBE_TIMEOUT_S="1")
        assert "did not answer within 1 s" in message
        assert time.monotonic() - started < 30

    def test_gil_on_a_build_with_a_gil(self, tmp_path):
        message = self.run_bad(tmp_path, "--python", sys.executable, "--python",
                               _gil_build_python(tmp_path), "--gil", "on")
        assert "is a build with a GIL" in message

    def test_gil_without_python(self, tmp_path):
        assert "--gil applies to a free-threaded" in self.run_bad(tmp_path, "--gil", "both")


def _gil_build_python(tmp_path):
    return _fake_python(tmp_path, "python3.12", (
        "echo '{\"version\": \"3.12.1\", \"version_info\": [3, 12], \"build\": \"3.12\", "
        "\"implementation\": \"CPython\", \"free_threaded\": false}'\n"))


class TestVenvLife:
    """A venv is made beside its place and swapped in whole: a failure or Ctrl-C
    leaves neither a half-made venv nor a held lock."""

    @pytest.fixture
    def setting(self, tmp_path, monkeypatch):
        monkeypatch.setenv("GILLAB_CACHE_DIR", str(tmp_path / "cache"))
        sources = {"setup.py": __file__}
        chosen = found.make_labels([interp("3.13.5", True, path=sys.executable)])[0]
        venv = os.path.join(venvs.cache_root(), venvs.venv_key(chosen))
        return chosen, sources, venv

    def fake_pip(self, monkeypatch, fail_at=None, calls=None):
        calls = [] if calls is None else calls

        def step(cmd, log, failure):
            calls.append(cmd)
            if len(calls) == fail_at:
                raise fail_at_error
            if cmd[1:3] == ["-m", "venv"]:  # make what a venv would hold
                os.makedirs(os.path.join(cmd[3], "bin"))
                with open(os.path.join(cmd[3], "bin", "python"), "w"):
                    pass

        fail_at_error = KeyboardInterrupt()
        monkeypatch.setattr(venvs, "_pip_step", step)
        # Only venvs' own reading of the installed requirements: never subprocess.run
        # itself, which every other module (and pytest) shares.
        monkeypatch.setattr(venvs, "_installed_requires", lambda python, cwd: [])
        return calls

    def leftovers(self, venv):
        return glob.glob(venv + ".partial-*")

    def lock_is_free(self, venv):
        import filelock

        lock = filelock.FileLock(venv + ".lock", timeout=0)
        lock.acquire()
        lock.release()
        return True

    @pytest.mark.parametrize("fail_at", [1, 2])
    def test_ctrl_c_leaves_nothing_half_made(self, setting, monkeypatch, fail_at):
        chosen, sources, venv = setting
        self.fake_pip(monkeypatch, fail_at=fail_at)
        with pytest.raises(KeyboardInterrupt):
            venvs.ensure_venv(chosen, sources, "f1")
        assert not os.path.exists(venv) and not self.leftovers(venv)
        assert self.lock_is_free(venv)

    def test_made_once_then_reused_then_swapped_whole(self, setting, monkeypatch):
        chosen, sources, venv = setting
        calls = self.fake_pip(monkeypatch)
        python = venvs.ensure_venv(chosen, sources, "f1")
        assert python == venvs.venv_python(venv) and os.path.exists(python)
        made = len(calls)
        assert venvs.ensure_venv(chosen, sources, "f1") == python and len(calls) == made
        with open(os.path.join(venv, "marker"), "w"):
            pass
        venvs.ensure_venv(chosen, sources, "f2")  # sources changed: a new venv, whole
        assert len(calls) == 2 * made
        assert not os.path.exists(os.path.join(venv, "marker"))
        with open(os.path.join(venv, venvs.STAMP)) as f:
            assert f.read().strip() == "f2"
        assert not self.leftovers(venv) and self.lock_is_free(venv)

    def test_two_runs_at_once_make_it_once(self, setting, monkeypatch):
        """The second waits on the lock, then finds the first's venv complete."""
        import threading

        chosen, sources, venv = setting
        calls: list = []
        self.fake_pip(monkeypatch, calls=calls)
        step = venvs._pip_step
        inside, release = threading.Event(), threading.Event()

        def slow_step(cmd, log, failure):
            inside.set()
            release.wait(30)
            step(cmd, log, failure)

        monkeypatch.setattr(venvs, "_pip_step", slow_step)
        answers = []
        first = threading.Thread(target=lambda: answers.append(
            venvs.ensure_venv(chosen, sources, "f1")))
        first.start()
        assert inside.wait(30)
        second = threading.Thread(target=lambda: answers.append(
            venvs.ensure_venv(chosen, sources, "f1")))
        second.start()
        second.join(0.5)  # time to reach the lock; without one it would build again
        release.set()
        first.join(30)
        second.join(30)
        assert answers == [venvs.venv_python(venv)] * 2
        assert len(calls) == 2  # one venv, one gillab install: made once

    def test_a_killed_runs_partial_is_cleared_by_the_next(self, setting, monkeypatch):
        chosen, sources, venv = setting
        os.makedirs(venv + ".partial-abandoned/bin")
        self.fake_pip(monkeypatch)
        venvs.ensure_venv(chosen, sources, "f1")
        assert not self.leftovers(venv)


def free_threaded_python() -> str | None:
    """/opt/py313t (scripts/build-free-threaded-python.sh) or $GILLAB_TEST_FT_PYTHON."""
    path = os.environ.get("GILLAB_TEST_FT_PYTHON") or "/opt/py313t/bin/python3"
    if not os.access(path, os.X_OK):
        return None
    done = subprocess.run([path, "-c", "import sysconfig; print(bool(sysconfig."
                                       "get_config_var('Py_GIL_DISABLED')))"],
                          capture_output=True, text=True)
    return path if done.stdout.strip() == "True" else None


@pytest.mark.slow
@pytest.mark.skipif(other_python() is None, reason="no second interpreter (pyenv 3.13 or "
                                                   "3.12, or $GILLAB_TEST_PYTHON) here")
class TestFromAWheel:
    """compare --python from a plain (non-editable) install of a wheel, run outside
    the checkout: the other interpreter's venv gets the same gillab built for it."""

    def test_wheel_install_runs_another_python(self, tmp_path, installed_artifact,
                                               venv_cache):
        # The session's wheel (built from the sdist) in its fresh venv, shared with
        # tests/test_release.py: one build and one install per session. The venvs for
        # other interpreters are the session's too: one made from the checkout's sources
        # is reused only if the wheel ships exactly those (the same fingerprint).
        python = str(installed_artifact("wheel"))
        venv, cache = os.path.dirname(os.path.dirname(python)), Path(venv_cache)
        where = subprocess.run([python, "-I", "-c", "import gillab; print(gillab.__file__)"],
                               capture_output=True, text=True, check=True, cwd=str(tmp_path))
        assert where.stdout.startswith(venv)  # the installed copy, not the checkout
        shipped = subprocess.run(
            [python, "-I", "-c", "from gillab.pythons import venvs; "
             "print(venvs.source_fingerprint(venvs.build_sources()))"],
            capture_output=True, text=True, check=True, cwd=str(tmp_path)).stdout.strip()
        out = tmp_path / "r.json"
        result = subprocess.run(
            [python, "-I", "-m", "gillab", "compare", "--python", other_python(), "-k",
             "cy_nogil", "-e", "threads", "-w", "2", "--repeat", "1", "--target-s", "0.05",
             "--json", str(out)], capture_output=True, text=True, timeout=900,
            cwd=str(tmp_path), env=dict(os.environ, GILLAB_CACHE_DIR=str(cache)))
        assert result.returncode == 0, result.stderr
        data = json.loads(out.read_text())
        labels = list(data["envs"])
        assert len(labels) == 2
        executable = data["envs"][labels[1]]["executable"]
        assert executable.startswith(str(cache))
        # The venv that ran holds the gillab the wheel ships, built for that interpreter.
        stamp = Path(executable).parent.parent / venvs.STAMP
        assert stamp.read_text().strip() == shipped
        assert {(c["interpreter"], c["executor"]) for c in data["cells"]} == {
            (lab, ex) for lab in labels for ex in ("serial", "threads")}
        assert all(c["correct"] for c in data["cells"])
        assert not list(cache.rglob("*.partial-*"))


@pytest.mark.slow
@pytest.mark.skipif(free_threaded_python() is None,
                    reason="no free-threaded Python (scripts/build-free-threaded-python.sh "
                           "or $GILLAB_TEST_FT_PYTHON)")
class TestGilBoth:
    """--gil both on a free-threaded build: one binary, two columns; with the GIL off
    two py threads use two cores, with it forced on one (CPU time, not speedup)."""

    @pytest.fixture(autouse=True)
    def shared_venvs(self, monkeypatch, venv_cache):
        monkeypatch.setenv("GILLAB_CACHE_DIR", venv_cache)  # one build of the venv per session

    def run_both(self, tmp_path):
        out = tmp_path / "r.json"
        result = run_gillab("compare", "--python", free_threaded_python(), "--gil", "both",
                            "-k", "py", "-e", "threads", "-w", "2", "--repeat", "1",
                            "--target-s", "0.2", "--json", str(out), timeout=900)
        assert result.returncode == 0, result.stderr
        return result, json.loads(out.read_text())

    def test_two_columns_gil_measured_inside_each(self, tmp_path):
        def check():
            result, data = self.run_both(tmp_path)
            labels = list(data["envs"])
            assert labels[1:] == ["3.13t", "3.13t+GIL"]
            assert data["envs"]["3.13t"]["gil_enabled"] is False
            assert data["envs"]["3.13t+GIL"]["gil_enabled"] is True
            assert data["envs"]["3.13t"]["free_threaded_build"] is True
            threads = {c["interpreter"]: c for c in data["cells"]
                       if c["executor"] == "threads" and c["workers"] == 2}
            assert set(threads) == set(labels)
            # A noisy cell shared the CPUs: its cores used prove nothing (retry_once
            # runs it again, then skips with the noise guard's reason).
            assert_not_noisy(threads.values())
            assert threads["3.13t"]["cores_used"] > 1.5, threads["3.13t"]
            assert threads["3.13t+GIL"]["cores_used"] < 1.35, threads["3.13t+GIL"]
            # Two cores busy is the claim; on a shared machine the speedup can
            # trail the cores used (overhead-bound), but never reads GIL-bound.
            assert threads["3.13t"]["verdict"] in ("parallel", "overhead-bound")
            assert threads["3.13t+GIL"]["verdict"] == "GIL-bound"
            assert "the GIL's own effect" in " ".join(result.stdout.split())

        retry_once(check)
