"""Hostile input and hard stops: every bad invocation gets one line and the
right exit status, user code cannot end or corrupt the run, and nothing outlives gillab.

The table-driven test runs each bad invocation as a user would (`python -m gillab`, from
a directory holding the hostile modules) and needs no measuring: it is in the default
run. Runs that measure, Ctrl-C trials and SIGKILL of the parent are marked slow.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

import gillab
from gillab.cli import arguments as checks
from gillab.core import schema
from gillab.measure.executors import unavailable_reason
from gillab.cli.target_probe import required_parameters
from tests.conftest import assert_prompt, others_share

# --- hostile material --------------------------------------------------------------------

MODULES = {
    "raises_on_import.py": "raise RuntimeError('boom at import')\n",
    "syntax_error.py": "def f(:\n    pass\n",
    "exits_on_import.py": "import sys\nsys.exit(3)\n",
    "os_exits_on_import.py": "import os\nos._exit(4)\n",
    "hostile.py": '''\
import os
import sys
import threading

NOT_CALLABLE = 42


def takes_args(n, p):
    return n


def keyword_only(*, n):
    return n


def fine(n=3):
    return sum(i * i for i in range(20_000 * n))


def sys_exit():
    sys.exit(3)


def system_exit_msg():
    raise SystemExit("msg")


def os_exit():
    os._exit(1)


def unpicklable_lambda():
    return lambda: 1


def unpicklable_lock():
    return threading.Lock()


def chatty():
    for i in range(2000):
        print("chatter", i)
    return fine()


def tiny():
    return 1


_calls = [0]


def hangs_the_second_time():
    """Returns once (the probe's call, or the first in a process), then never again."""
    _calls[0] += 1
    if _calls[0] > 1:
        threading.Event().wait()
    return 5
''',
}

#: A compare/1 record as gillab writes it, small: the base of the broken ones.
GOOD_RUN = {
    "schema": "gillab/compare/1",
    "env": {"gillab": "0.1.0", "python": "3.11.7", "implementation": "CPython",
            "gil_enabled": True, "free_threaded_build": False, "cpu_count": 2,
            "switch_interval": 0.005, "start_method": "fork", "platform": "Linux"},
    "settings": {"kernels": ["sleep"], "executors": ["serial"], "workers": [1], "repeat": 1},
    "skipped": [],
    "cells": [{"kernel": "sleep", "executor": "serial", "workers": 1, "n": None,
               "wall_s": 0.1, "wall_s_all": [0.1], "cpu_s": 0.0, "cores_used": 0.0,
               "speedup": 1.0, "correct": True, "gil_wait": 1.0, "gil_held": 0.0,
               "noise": 0.0, "verdict": "serialized", "reason": "the baseline",
               "seconds": 0.1, "serial_s": 0.1, "tries": 1}],
}


def _broken(**changes) -> str:
    data = json.loads(json.dumps(GOOD_RUN))
    for key, value in changes.items():
        if key.startswith("cell_"):
            data["cells"][0][key[5:]] = value
        else:
            data[key] = value
    return json.dumps(data)


SHOW_FILES = {
    "cell_int.json": _broken(cells=[5]),
    "cells_dict.json": _broken(cells={"a": 1}),
    "env_str.json": _broken(env="linux"),
    "workers_str.json": _broken(cell_workers="two"),
    "verdict_bad.json": _broken(cell_verdict="fast"),
    "no_kernel.json": json.dumps({**GOOD_RUN, "cells": [{"executor": "serial"}]}),
    "deep.json": "[" * 100_000 + "]" * 100_000,
    "deep_settings.json": ('{"schema": "gillab/compare/1", "env": {}, "cells": [], '
                           '"settings": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}"),
    "not_json.json": "this is not JSON",
    "empty.json": "",
    "convoy.json": json.dumps({"schema": "gillab/convoy/1", "env": {}, "rows": []}),
    "list.json": "[1, 2, 3]",
}


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory):
    """A directory holding the hostile modules and broken result files; runs start here."""
    where = tmp_path_factory.mktemp("hostile")
    for name, text in {**MODULES, **SHOW_FILES}.items():
        (where / name).write_text(text)
    (where / "binary.json").write_bytes(bytes(range(256)))
    (where / "a_directory").mkdir()
    return where


def run_here(where, *args, timeout=120, env=None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    full_env.pop("PYTHONPATH", None)  # the hostile modules come from the directory alone
    return subprocess.run([sys.executable, "-m", "gillab", *args], cwd=where,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


def assert_one_line(result, status: int, fragment: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]
    assert result.stdout == ""


# --- the table --------------------------------------------------------------------------

USAGE = 2
FAILED = 1

BAD_INVOCATIONS = [
    # check and timeline share the same bounded argument types.
    (["check", "--timeout", "inf", "pass"], USAGE, "finite number"),
    (["check", "--max-threads", "1", "pass"], USAGE, "must be 2 to 64"),
    (["timeline", "--seconds", "1e300"], USAGE, "must be <= 60"),
    (["timeline", "--period-ms", "0.001"], USAGE, "finite number > 0.05"),
    (["timeline", "--switch-interval", "nan"], USAGE, "finite number"),
    (["timeline", "-w", "٣"], USAGE, "digits 0-9"),
    # worker counts
    (["compare", "-w", "1,2,"], USAGE, "like 1,2,4"),
    (["compare", "-w", "1, 2"], USAGE, "like 1,2,4"),
    (["compare", "-w", "1,,2"], USAGE, "like 1,2,4"),
    (["compare", "-w", ""], USAGE, "like 1,2,4"),
    (["compare", "-w", "\u0663"], USAGE, "digits 0-9"),
    (["compare", "-w", "0"], USAGE, "must be >= 1"),
    (["compare", "-w", "-2"], USAGE, "must be >= 1"),
    (["compare", "-w", "2.5"], USAGE, "not a whole number"),
    (["compare", "-w", "300", "-e", "processes"], USAGE, "over the limit"),
    (["compare", "--max-processes", "0"], USAGE, "must be >= 1"),
    (["compare", "--max-threads", "9" * 30], USAGE, "must be <="),
    # bounds
    (["compare", "--repeat", "0"], USAGE, "must be >= 1"),
    (["compare", "--repeat", "1000000"], USAGE, f"must be <= {checks.MAX_REPEAT}"),
    (["compare", "--repeat", "\u0663"], USAGE, "digits 0-9"),
    (["compare", "--target-s", "1e-12"], USAGE, f"floor {checks.MIN_TASK_S} s"),
    (["compare", "--target-s", "0.001"], USAGE, "too short to time"),
    (["compare", "--target-s", "inf"], USAGE, "finite"),
    (["compare", "--target-s", "nan"], USAGE, "finite"),
    (["compare", "--target-s", "1e300"], USAGE, "must be <= 60 s"),
    (["compare", "--target-s", "-1"], USAGE, "must be > 0"),
    (["compare", "--target-s", "fast"], USAGE, "not a number"),
    (["kernels", "--calibrate", "--target-s", "1e-12"], USAGE, "too short to time"),
    (["kernels", "--calibrate", "--target-s", "inf"], USAGE, "finite"),
    (["convoy", "--samples", "99999999999999999999"], USAGE, "must be <= 10,000"),
    (["convoy", "--samples", "\u0663"], USAGE, "digits 0-9"),
    (["convoy", "--samples", "0"], USAGE, "must be >= 1"),
    # empty or impossible places
    (["compare", "--json", ""], USAGE, "must not be empty"),
    (["compare", "--plot", ""], USAGE, "must not be empty"),
    (["compare", "--target", ""], USAGE, "must not be empty"),
    (["compare", "--dask-scheduler", ""], USAGE, "must not be empty"),
    (["compare", "--json", "/proc/gillab.json"], USAGE, "pseudo-filesystem"),
    (["compare", "--json", "/sys/gillab.json"], USAGE, "pseudo-filesystem"),
    (["compare", "--json", "/dev/null"], USAGE, "pseudo-filesystem"),
    (["compare", "--plot", "/proc/self/x.png"], USAGE, "pseudo-filesystem"),
    (["compare", "--json", "a_directory"], USAGE, "is a directory"),
    (["compare", "--json", "/nonexistent/dir/r.json"], USAGE, "does not exist"),
    (["convoy", "--json", ""], USAGE, "must not be empty"),
    (["convoy", "--json", "/proc/gillab.json"], USAGE, "pseudo-filesystem"),
    (["convoy", "--json", "a_directory"], USAGE, "is a directory"),
    # names
    (["compare", "-k", "nope"], USAGE, "invalid choice"),
    (["compare", "-e", "fibers"], USAGE, "invalid choice"),
    (["compare", "--start-method", "teleport"], USAGE, "invalid start method"),
    (["compare", "--dask-shape", "0x1", "-e", "dask"], USAGE, "P, T >= 1"),
    (["compare", "--dask-shape", "2x1"], USAGE, "need -e dask"),
    (["convoy", "-b", "nope"], USAGE, "invalid choice"),
    (["demo", "nope"], USAGE, "unknown demo 'nope'"),
    (["demo", "--lang", "xx"], USAGE, "invalid choice"),
    (["frobnicate"], USAGE, "invalid choice"),
    ([], USAGE, "required"),
    # --target
    (["compare", "--target", "raises_on_import:f"], USAGE, "RuntimeError: boom at import"),
    (["compare", "--target", "syntax_error:f"], USAGE, "SyntaxError"),
    (["compare", "--target", "exits_on_import:f"], USAGE, "SystemExit: 3"),
    (["compare", "--target", "os_exits_on_import:f"], USAGE, "ended its process (exit code 4)"),
    (["compare", "--target", "hostile:takes_args"], USAGE, "takes arguments (n, p)"),
    (["compare", "--target", "hostile:keyword_only"], USAGE, "takes arguments (n)"),
    (["compare", "--target", "hostile:missing"], USAGE, "has no attribute 'missing'"),
    (["compare", "--target", "hostile:NOT_CALLABLE"], USAGE, "is not callable"),
    (["compare", "--target", "no_such_module_xyz:f"], USAGE, "cannot import"),
    (["compare", "--target", "hostile"], USAGE, "must look like MODULE:FUNC"),
    (["compare", "--target", ":fine"], USAGE, "must look like MODULE:FUNC"),
    # show: what it loads is checked, one line, exit 1
    (["show", "missing.json"], FAILED, "no such file"),
    (["show", "a_directory"], FAILED, "is a directory"),
    (["show", "binary.json"], FAILED, "not JSON"),
    (["show", "not_json.json"], FAILED, "not JSON"),
    (["show", "empty.json"], FAILED, "not JSON"),
    (["show", "list.json"], FAILED, "not a gillab compare result"),
    (["show", "convoy.json"], FAILED, "not a gillab compare result"),
    (["show", "cell_int.json"], FAILED, "at cells[0]: 5 is not of type 'object'"),
    (["show", "cells_dict.json"], FAILED, "at cells: {'a': 1} is not of type 'array'"),
    (["show", "env_str.json"], FAILED, "at env: 'linux' is not of type 'object'"),
    (["show", "workers_str.json"], FAILED, "at cells[0].workers"),
    (["show", "verdict_bad.json"], FAILED, "at cells[0].verdict"),
    (["show", "no_kernel.json"], FAILED, "'kernel' is a required property"),
    (["show", "deep.json"], FAILED, "nested too deeply"),
    (["show", "deep_settings.json"], FAILED, "nested too deeply"),
]
if unavailable_reason("interpreters"):
    BAD_INVOCATIONS.append((["compare", "-e", "interpreters"], USAGE, "-e interpreters: "))


@pytest.fixture(scope="module")
def table_results(hostile_dir) -> dict:
    """{args: the finished run} for every bad invocation, run a few at a time: none
    measures anything (each is refused before it could), so they may share the CPUs,
    and the table's ~80 interpreter start-ups take a fraction of the time one by one."""
    from concurrent.futures import ThreadPoolExecutor

    calls = [tuple(args) for args, _, _ in BAD_INVOCATIONS]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
        done = pool.map(lambda args: run_here(hostile_dir, *args, timeout=120), calls)
        return dict(zip(calls, done))


class TestBadInvocations:
    """Each bad invocation: one line on stderr, exit 2 (usage) or 1, no traceback,
    nothing on stdout, nothing measured."""

    def test_the_table_is_at_least_forty_long(self):
        assert len(BAD_INVOCATIONS) >= 40

    @pytest.mark.parametrize("args,status,fragment", BAD_INVOCATIONS,
                             ids=[" ".join(a) or "(none)" for a, _, _ in BAD_INVOCATIONS])
    def test_one_line_and_the_status(self, table_results, args, status, fragment):
        assert_one_line(table_results[tuple(args)], status, fragment)

    def test_no_temporary_file_is_left_by_a_refused_output_path(self, hostile_dir):
        before = set(os.listdir(hostile_dir))
        run_here(hostile_dir, "compare", "--json", "a_directory")
        assert set(os.listdir(hostile_dir)) == before


class TestArgumentTypes:
    """The argparse types on their own: what they accept and what they refuse."""

    def test_worker_list(self):
        assert checks.worker_list("4,1,2,2") == (1, 2, 4)
        for bad in ("1,2,", "1, 2", " 1", "", ",", "\u0663", "1;2"):
            with pytest.raises(Exception, match="1,2,4|digits|whole"):
                checks.worker_list(bad)

    def test_task_seconds_has_a_floor_and_a_ceiling(self):
        assert checks.task_seconds("0.05") == 0.05
        for bad in ("1e-12", "0", "-1", "inf", "nan", "61", "1e300", "x"):
            with pytest.raises(argparse.ArgumentTypeError):
                checks.task_seconds(bad)

    def test_required_parameters(self):
        def none(a=1, *args, **kw): ...
        def two(a, b=1, *, c): ...
        assert required_parameters(none) == []
        assert required_parameters(two) == ["a", "c"]
        assert required_parameters(len) == ["obj"]


# --- the JSON contract -------------------------------------------------------------------


class TestSchema:
    """The JSON Schemas ship with the package and say what docs/contract.md says."""

    def test_a_good_record_validates(self):
        schema.validate(GOOD_RUN, "gillab/compare/1")

    def test_the_verdict_words_are_the_verdict_modules(self):
        from gillab.compare.verdict import VERDICTS

        words = schema.load_schema("gillab/compare/1")["$defs"]["cell"]["properties"]
        assert tuple(words["verdict"]["enum"]) == tuple(VERDICTS)

    def test_convoy_words_are_convoys(self):
        from gillab.convoy.verdict import VERDICTS

        row = schema.load_schema("gillab/convoy/1")["$defs"]["row"]["properties"]
        assert set(row["verdict"]["enum"]) == set(VERDICTS)

    def test_every_cell_field_is_in_the_schema(self):
        import dataclasses

        from gillab.compare.records import Cell

        properties = schema.load_schema("gillab/compare/1")["$defs"]["cell"]["properties"]
        assert {f.name for f in dataclasses.fields(Cell)} <= set(properties)

    def test_fields_may_be_added(self):
        data = json.loads(_broken(cell_something_new=1, something_else={"x": 1}))
        schema.validate(data, "gillab/compare/1")

    def test_a_wrong_type_is_one_line_naming_the_field(self):
        with pytest.raises(ValueError, match=r"at cells\[0\]\.cores_used") as info:
            schema.validate(json.loads(_broken(cell_cores_used="many")), "gillab/compare/1",
                            "r.json")
        assert "\n" not in str(info.value)


class TestShowNeedsNoExtension:
    """`show` reads a saved run without gillab's compiled extension."""

    def test_show_with_the_extension_hidden(self, hostile_dir):
        good = hostile_dir / "good.json"
        good.write_text(json.dumps(GOOD_RUN))
        code = ("import sys\n"
                "sys.modules['gillab._kernels'] = None  # as if it was never built\n"
                "from gillab.__main__ import main\n"
                f"sys.exit(main(['show', {str(good)!r}]))\n")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=60, cwd=hostile_dir)
        assert result.returncode == 0, result.stderr
        assert "serialized" in result.stdout and result.stderr == ""


class TestShadowing:
    """A gillab/ folder in the working directory without the extension is named."""

    def test_a_shadowing_checkout_is_named_in_one_line(self, tmp_path):
        source = os.path.dirname(gillab.__file__)
        shutil.copytree(source, tmp_path / "gillab",
                        ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
        result = run_here(tmp_path, "compare", "-k", "py", "-e", "serial", "-q")
        assert_one_line(result, FAILED, "shadows the installed gillab")
        assert str(tmp_path / "gillab") in result.stderr


# --- runs that measure (slow) ------------------------------------------------------------


def _cells(path) -> dict:
    with open(path) as f:
        data = json.load(f)
    return {(c["executor"], c["workers"]): c for c in data["cells"]}


@pytest.mark.slow
class TestUserCodeThatEndsTheRun:
    """A target that exits, kills its process or returns what cannot be pickled is a
    `wrong` cell with the reason; the run goes on, writes its JSON and exits 3.
    (--target-s 0.05: how long a task lasts is no part of these claims.)"""

    @pytest.mark.parametrize("target,reason", [
        ("hostile:sys_exit", "SystemExit: 3"),
        ("hostile:system_exit_msg", "SystemExit: msg"),
    ])
    def test_system_exit_is_a_wrong_cell_everywhere(self, hostile_dir, tmp_path, target,
                                                    reason):
        path = tmp_path / "r.json"
        result = run_here(hostile_dir, "compare", "--target", target, "-e", "serial",
                          "threads", "processes", "mp_pool", "process_pool", "-w", "1",
                          "--repeat", "1", "--target-s", "0.05", "-q", "--json", str(path))
        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stderr
        cells = _cells(path)
        assert len(cells) == 5
        assert all(c["verdict"] == "wrong" and c["error"] == reason for c in cells.values())

    def test_os_exit_is_kept_out_of_gillabs_own_process(self, hostile_dir, tmp_path):
        path = tmp_path / "r.json"
        result = run_here(hostile_dir, "compare", "--target", "hostile:os_exit", "-e",
                          "serial", "threads", "thread_pool", "processes", "mp_pool",
                          "process_pool", "-w", "1", "--repeat", "1", "--target-s", "0.05",
                          "-q", "--json", str(path))
        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stderr
        cells = _cells(path)
        for executor in ("serial", "threads", "thread_pool"):
            assert "ended its process (exit code 1)" in cells[executor, 1]["error"]
        for executor in ("processes", "mp_pool", "process_pool"):
            assert cells[executor, 1]["verdict"] == "wrong"
            assert "died" in cells[executor, 1]["error"]

    @pytest.mark.parametrize("target", ["hostile:unpicklable_lambda", "hostile:unpicklable_lock"])
    def test_an_unpicklable_result_is_a_wrong_cell(self, hostile_dir, tmp_path, target):
        path = tmp_path / "r.json"
        result = run_here(hostile_dir, "compare", "--target", target, "-e", "serial",
                          "processes", "mp_pool", "process_pool", "-w", "1", "--repeat", "1",
                          "--target-s", "0.05", "-q", "--json", str(path))
        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stderr
        cells = _cells(path)
        for executor in ("processes", "mp_pool", "process_pool"):
            assert "cannot be sent back" in cells[executor, 1]["error"], cells[executor, 1]

    def test_a_thread_that_never_returns_is_left_behind(self, hostile_dir, tmp_path):
        # $GILLAB_HANG_TIMEOUT_S: the hang is called after 2 s instead of the default 30.
        path = tmp_path / "r.json"
        t0 = time.monotonic()
        result = run_here(hostile_dir, "compare", "--target", "hostile:hangs_the_second_time",
                          "-e", "serial", "threads", "-w", "1", "--repeat", "2", "-q",
                          "--json", str(path), timeout=180,
                          env={"GILLAB_HANG_TIMEOUT_S": "2"})
        took = time.monotonic() - t0
        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stderr
        assert "never returned; exiting without waiting" in result.stderr
        cells = _cells(path)
        assert "no answer within 2 s" in cells["serial", 1]["error"]
        assert "a thread cannot be killed" in cells["serial", 1]["error"]
        threads = cells["threads", 1]["error"]
        assert "hung earlier in this run" in threads or "cannot be killed" in threads
        assert took < 60, took  # the 30 s default would not fit with a busy machine's start-up


@pytest.mark.parametrize("value,seconds", [
    (None, 30.0), ("2", 2.0), ("0", 0.5), ("nan", 30.0), ("inf", 30.0), ("soon", 30.0)])
def test_the_hang_timeout_follows_the_environment(monkeypatch, value, seconds):
    """$GILLAB_HANG_TIMEOUT_S sets how long a call may not answer before it is hung: a
    floor of 0.5 s, and what is not a finite number leaves the 30 s default."""
    from gillab.measure.bounded import hang_timeout_s

    if value is None:
        monkeypatch.delenv("GILLAB_HANG_TIMEOUT_S", raising=False)
    else:
        monkeypatch.setenv("GILLAB_HANG_TIMEOUT_S", value)
    assert hang_timeout_s() == seconds


@pytest.mark.slow
class TestOutput:
    """The table is the only thing on stdout, and it survives an ASCII-only terminal.
    (Short tasks: their length is no part of these claims.)"""

    def test_a_chatty_target_goes_to_stderr(self, hostile_dir, tmp_path):
        result = run_here(hostile_dir, "compare", "--target", "hostile:chatty", "-e",
                          "serial", "threads", "processes", "-w", "1", "--repeat", "1",
                          "--target-s", "0.05", "-q")
        assert result.returncode in (0, 3), result.stderr
        assert "chatter" not in result.stdout
        assert result.stdout.startswith("gillab compare")
        assert result.stderr.count("chatter 1999") >= 3  # serial, threads, processes

    def test_a_target_too_short_to_time_is_looped(self, hostile_dir, tmp_path):
        path = tmp_path / "r.json"
        result = run_here(hostile_dir, "compare", "--target", "hostile:tiny", "-e", "serial",
                          "threads", "-w", "1,2", "--repeat", "1", "--target-s", "0.05",
                          "-q", "--json", str(path))
        assert result.returncode == 0, result.stderr
        cells = _cells(path)
        assert all(c["calls_per_task"] > 100 for c in cells.values())
        assert "WARNING: one call" not in result.stdout  # looped: long enough to time

    def test_ascii_terminal(self, hostile_dir):
        result = run_here(hostile_dir, "compare", "-k", "sleep", "-e", "serial", "threads",
                          "-w", "1,2", "--repeat", "1", "--target-s", "0.02", "-q",
                          env={"PYTHONIOENCODING": "ascii"})
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("gillab compare - CPython")
        assert result.stdout.isascii()


@pytest.mark.slow
def test_a_real_quick_run_follows_the_schema(tmp_path):
    """The JSON a real `compare --quick` writes validates against compare-1.schema.json,
    and a run whose every cell answered right exits 0 (noisy cells are not failures)."""
    import jsonschema

    path = tmp_path / "r.json"
    result = run_here(tmp_path, "compare", "--quick", "-k", "py", "sleep", "-e", "serial",
                      "threads", "--json", str(path), "-q")
    assert result.returncode == 0, result.stderr
    with open(path) as f:
        data = json.load(f)
    jsonschema.validate(data, schema.load_schema("gillab/compare/1"))
    assert {c["kernel"] for c in data["cells"]} == {"py", "sleep"}


# --- hard stops (slow) -------------------------------------------------------------------


def _group_alive(sid: int) -> list:
    """Live processes of session ``sid``: an orphan keeps its session when re-parented."""
    alive = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return alive


def ctrl_c_trial(args: list, delay_s: float, cwd=None) -> dict:
    """Start gillab in a process group of its own; once it has printed a line, wait
    ``delay_s`` and send SIGINT to the whole group, as a terminal does. The trial's
    "share" is what other processes used of the machine meanwhile (for assert_prompt)."""
    trial, share = others_share(lambda: _ctrl_c_trial(args, delay_s, cwd))
    return {**trial, "share": share}


def _ctrl_c_trial(args: list, delay_s: float, cwd=None) -> dict:
    proc = subprocess.Popen([sys.executable, "-m", "gillab", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        proc.stdout.readline() if args[0] == "demo" else proc.stderr.readline()
        time.sleep(delay_s)
        if proc.poll() is not None:
            out, err = proc.communicate()
            return {"finished": True, "status": proc.returncode, "stderr": err}
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        took = time.monotonic() - sent
        out, err = proc.communicate(timeout=10) if proc.poll() is not None else ("", "")
        time.sleep(0.3)
        return {"finished": False, "status": proc.returncode, "took": took, "stderr": err,
                "left": _group_alive(proc.pid)}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in _group_alive(proc.pid):
            os.kill(pid, signal.SIGKILL)


def _assert_clean_interrupt(trial: dict) -> None:
    if trial["finished"]:  # it ended before the signal: then in one of its own ways
        assert trial["status"] in (0, 1), trial["stderr"]  # 1: a demo's claim did not hold
        assert "Traceback" not in trial["stderr"], trial["stderr"]
        return
    # 0: the signal landed as the process was already ending, having done its work.
    assert trial["status"] in (130, 0), trial
    assert "Traceback" not in trial["stderr"], trial["stderr"]
    assert trial["left"] == [], trial
    # Goal 1 s (the watchdog ends a hung clean-up at 0.5 s); margin for a busy machine,
    # and a skip naming the load where other processes took the CPUs meanwhile.
    assert_prompt(trial["took"], 1.5, trial["share"], "exiting on Ctrl-C")


DEMOS = list(__import__("gillab.demos", fromlist=["DEMOS"]).DEMOS)


DEMO_MOMENTS = (0.0, 0.15, 0.4, 0.8)


@pytest.mark.slow
@pytest.mark.parametrize("name,delay", [
    (name, DEMO_MOMENTS[i % len(DEMO_MOMENTS)]) for i, name in enumerate(DEMOS)])
def test_ctrl_c_of_a_demo(name, delay):
    """Ctrl-C in every demo, each at one moment, the moments taken in turn so that the
    set covers each of them (not the product: 4x the time for the same claims): exit
    130 within a second, no worker tracebacks, nothing left in the process group."""
    _assert_clean_interrupt(ctrl_c_trial(["demo", name, "--fast"], delay))


def test_every_demo_moment_is_sampled():
    """The sampling above reaches every moment (it would not with fewer demos)."""
    assert len(DEMOS) >= len(DEMO_MOMENTS)


@pytest.mark.slow
@pytest.mark.parametrize("args", [
    ["compare", "-k", "py", "-e", "serial", "threads", "processes", "mp_pool",
     "process_pool", "gevent", "-w", "2", "--repeat", "2", "--target-s", "0.1"],
    ["convoy", "--samples", "50"],
], ids=["compare", "convoy"])
def test_ctrl_c_of_compare_and_convoy(args):
    for delay in (0.0, 0.5, 1.5, 3.0, 5.0):
        _assert_clean_interrupt(ctrl_c_trial(args, delay))


STRESS_ARGS = ["compare", "--quick", "-k", "py", "cy_gil", "-e", "threads", "processes",
               "mp_pool", "process_pool", "gevent", "--json"]


@pytest.mark.slow
def test_ctrl_c_at_many_moments_of_a_real_run(tmp_path):
    """Ctrl-C at six moments spread over a --quick run (threads busy with the GIL, worker
    processes and pools starting and stopping, the gevent child): each time exit 130,
    one line, no traceback, nothing left in the session, no half-written --json."""
    out = tmp_path / "run.json"
    for delay in (0.3, 1.1, 2.0, 3.2, 4.5, 6.0):
        trial = ctrl_c_trial([*STRESS_ARGS, str(out)], delay)
        _assert_clean_interrupt(trial)
        if not trial["finished"]:
            assert trial["stderr"].strip().splitlines()[-1] == "gillab: interrupted", trial
            assert trial["stderr"].count("interrupted") == 1, trial
        if out.exists():  # only whole: written atomically, after the run
            json.loads(out.read_text())
            out.unlink()


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _python_children(parent: psutil.Process) -> list:
    """The workers: every Python below ``parent``, not the short-lived `uname -p` that
    collecting the environment runs (waiting for that one would test nothing)."""
    found = []
    for child in parent.children(recursive=True):
        try:
            if "python" in os.path.basename(child.cmdline()[0]):
                found.append(child)
        except (psutil.Error, IndexError):
            continue
    return found


#: id -> (executors, worker processes to wait for) for the SIGKILL trials.
SIGKILL_CASES = {
    "process_pool": (["process_pool"], 2), "mp_pool": (["mp_pool"], 2),
    "processes": (["processes"], 2), "gevent": (["gevent"], 1),
    "spawn": (["process_pool", "mp_pool", "--start-method", "spawn"], 2),
}
#: How long after the SIGKILL every worker must be gone.
ORPHAN_GRACE_S = 2.0


def sigkill_trial(executors: list, n_children: int) -> dict:
    """SIGKILL gillab once its workers are alive; which of them are left ORPHAN_GRACE_S
    later. The cells sleep (1 s tasks): the workers live long enough to be seen."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gillab", "compare", "-k", "sleep", "-e", *executors, "-w",
         "2", "--target-s", "1", "--repeat", "1", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    parent = psutil.Process(proc.pid)
    children = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(children) < n_children:
            children = _python_children(parent)
            time.sleep(0.05)
        # Every worker seen by now, also one that ended meanwhile (it cannot be orphaned).
        children = list({c.pid: c for c in children + _python_children(parent)}.values())
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + ORPHAN_GRACE_S
    orphans = children
    while orphans and time.monotonic() < deadline:  # gone early: no need to wait it out
        time.sleep(0.1)
        orphans = [c for c in children if _running(c)]
    left = [c.pid for c in children if _running(c)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # ours: started by this trial
    return {"children": len(children), "orphans": left}


@pytest.fixture(scope="module")
def sigkill_trials() -> dict:
    """Every SIGKILL trial, at once: they measure nothing (the workers sleep) and each
    watches only its own process tree, so they may share the machine."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(SIGKILL_CASES)) as pool:
        futures = {name: pool.submit(sigkill_trial, *case)
                   for name, case in SIGKILL_CASES.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SIGKILL_CASES))
def test_sigkill_of_the_parent_leaves_no_orphan(sigkill_trials, name):
    """SIGKILL of gillab while its workers are alive: none is left 2 s later."""
    trial = sigkill_trials[name]
    assert trial["children"] >= SIGKILL_CASES[name][1], "the workers never started"
    assert trial["orphans"] == []


def test_after_ctrl_c_a_half_built_object_prints_nothing():
    """Ctrl-C can stop multiprocessing's Finalize between its weakref and its key; when the
    object is collected, its callback fails. After Ctrl-C that report is silenced."""
    script = (
        "import gc, os, signal, sys, weakref\n"
        "from gillab.core import procutil\n"
        "procutil.install_sigint_watchdog()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    signal.pause()\n"
        "except KeyboardInterrupt:\n"
        "    procutil._watchdog.cancel()\n"
        "class Thing: pass\n"
        "def callback(ref): raise AttributeError(\"'Finalize' object has no attribute '_key'\")\n"
        "thing = Thing(); ref = weakref.ref(thing, callback); del thing; gc.collect()\n"
        "print('done')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and result.stdout == "done\n", result
    assert result.stderr == "", result.stderr


def test_ctrl_c_while_worker_processes_start_leaves_nothing_to_join():
    """A clean-clone CI run caught Ctrl-C landing between two Process.start() calls:
    the cleanup joined the process never started ("can only join a started
    process": an internal error, exit 1 instead of 130)."""
    from gillab.measure.executors.processes import Processes

    executor = Processes(2)
    started = executor.context.Process(target=time.sleep, args=(0,), daemon=True)
    never = executor.context.Process(target=time.sleep, args=(0,), daemon=True)
    executor._live = [started, never]
    started.start()
    executor.close()  # raised AssertionError before the fix
    assert executor._live == [] and started.exitcode is not None


def test_importing_gillab_changes_no_process_state():
    """Nothing at import: as ``python -m gillab`` imports it (argv[0] "-m"), the package
    and the CLI module leave SIGINT's handler and os.fork as they were."""
    script = (
        "import os, signal, sys\n"
        "sys.argv[0] = '-m'\n"
        "handler, fork = signal.getsignal(signal.SIGINT), os.fork\n"
        "import gillab, gillab.__main__, gillab.core.procutil\n"
        "assert signal.getsignal(signal.SIGINT) is handler, signal.getsignal(signal.SIGINT)\n"
        "assert os.fork is fork\n"
        "print('unchanged')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=30)
    assert result.stdout == "unchanged\n", result.stderr


def test_a_command_puts_back_the_handler_and_fork_it_installed():
    """The CLI's guards (SIGINT watchdog, fork hooks) last as long as the command."""
    from gillab.core import procutil

    handler, fork = signal.getsignal(signal.SIGINT), os.fork
    with procutil.command_guards():
        assert signal.getsignal(signal.SIGINT) is not handler
        assert os.fork is not fork
    assert signal.getsignal(signal.SIGINT) is handler and os.fork is fork


def test_a_worker_whose_parent_died_before_its_hook_ran_exits():
    """A worker forked in the instant its parent exits is orphaned before its fork hook
    runs: it must exit, not watch its new parent (init) for good."""
    script = (
        "import os, time\n"
        "from gillab.core import procutil\n"
        "procutil._forked_from_main, procutil._fork_parent = False, os.getppid() + 1\n"
        "procutil.worker_setup()\n"
        "time.sleep(5)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1, result
