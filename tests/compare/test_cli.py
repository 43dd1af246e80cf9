"""`python -m gillab compare` and `show`, run as a user runs them."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from gillab.compare import cli
from gillab import kernels
from gillab.measure.executors import EXECUTORS

from tests.conftest import assert_not_noisy, assert_prompt, retry_once, run_gillab, with_load

pytestmark = pytest.mark.slow


def cells_of(path) -> dict:
    with open(path) as f:
        data = json.load(f)
    return {(c["kernel"], c["executor"], c["workers"]): c for c in data["cells"]}


def test_parser_names_match_the_registries():
    assert cli.KERNEL_NAMES == kernels.names()
    assert tuple(cli.EXECUTOR_NAMES) == EXECUTORS


def test_unavailable_executor_asked_for_by_name_is_a_usage_error(tmp_path):
    """-e NAME that cannot run here is refused up front (exit 2), like -e dask; only the
    default matrix skips an executor and says why."""
    from gillab.measure.executors import unavailable_reason

    reason = unavailable_reason("interpreters")
    if reason is None:
        pytest.skip("subinterpreters run on this Python")
    path = tmp_path / "r.json"
    result = run_gillab("compare", "-k", "cy_nogil", "-e", "threads", "interpreters", "-w",
                        "1", "--repeat", "1", "--target-s", "0.05", "--json", str(path), "-q")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"gillab compare: error: -e interpreters: {reason}"
    assert not path.exists() and result.stdout == ""


def gil_matrix(path):
    """py, cy_gil and cy_nogil on threads and processes at 2 workers: the run both
    claims of TestVerdictsThroughTheCli read. (the finished run, its cells by key);
    the cells are None when the run failed, for the check to say so."""
    result = run_gillab("compare", "-k", "py", "cy_gil", "cy_nogil", "-e", "threads",
                        "processes", "-w", "2", "--repeat", "2", "--target-s", "0.15",
                        "--json", str(path))
    return result, (cells_of(path) if result.returncode == 0 else None)


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """One run of gil_matrix for the first try of both claims of TestVerdictsThroughTheCli
    (a retry runs its own): one matrix of three kernels instead of two of two."""
    return gil_matrix(tmp_path_factory.mktemp("matrix") / "r.json")


class TestVerdictsThroughTheCli:
    """The lab's claim end to end: nogil threads run in parallel, GIL threads do not."""

    @staticmethod
    def tries(shared_run, path):
        """The shared run first, a fresh one for the retry."""
        runs = iter([shared_run])
        return lambda: next(runs, None) or gil_matrix(path)

    def test_threads_gil_vs_nogil(self, tmp_path, shared_run):
        next_run = self.tries(shared_run, tmp_path / "r.json")

        def check():
            result, cells = next_run()
            assert result.returncode == 0, result.stderr
            assert all(c["correct"] for c in cells.values())
            nogil, gil = cells["cy_nogil", "threads", 2], cells["cy_gil", "threads", 2]
            # Cores used by a cell that shared the CPUs prove nothing: tried again,
            # then skipped with the noise guard's reason (retry_once).
            assert_not_noisy((nogil, gil))
            # Through CPU time, with margins for a busy 2-core machine.
            assert nogil["cores_used"] >= 1.6, nogil
            assert gil["cores_used"] <= 1.25, gil
            # The verdict follows the numbers, unless the noise guard saw the machine
            # busy: then `noisy` is the honest answer (verdicts are unit-tested apart).
            assert gil["verdict"] in ("GIL-bound", "noisy"), gil
            assert nogil["verdict"] in ("parallel", "noisy"), nogil
            assert cells["cy_gil", "processes", 2]["cores_used"] >= 1.6
            return result

        result = retry_once(check)
        assert "cy_nogil (n=" in result.stdout and "GIL-bound" in result.stdout
        assert "[" in result.stderr  # progress went to stderr, not into the table

    def test_gil_wait_and_gil_held_tell_different_stories(self, tmp_path, shared_run):
        """GIL wait (inside each task) and GIL held (a probe) are kept apart on purpose."""
        next_run = self.tries(shared_run, tmp_path / "r.json")

        def check():
            result, cells = next_run()
            assert result.returncode == 0, result.stderr
            py_threads, py_procs = cells["py", "threads", 2], cells["py", "processes", 2]
            py_serial, nogil = cells["py", "serial", 1], cells["cy_nogil", "threads", 2]
            # Two Python threads wait for each other about half the time ...
            assert py_threads["gil_wait"] >= 0.35, py_threads
            assert py_threads["gil_held"] >= 0.6, py_threads
            # ... one per process waits for no one; nor does one thread alone,
            # although it holds the GIL nearly all the time.
            assert py_procs["gil_wait"] <= 0.1, py_procs
            assert py_procs["gil_held"] is None  # no probe outside this process
            assert py_serial["gil_wait"] <= 0.1, py_serial
            assert py_serial["gil_held"] >= 0.6, py_serial
            # Released GIL: neither.
            assert nogil["gil_wait"] <= 0.1 and nogil["gil_held"] <= 0.1, nogil
        retry_once(check)

    def test_gevent_cpu_work_is_serialized_and_sleep_overlaps(self, tmp_path):
        path = tmp_path / "r.json"

        def check():
            result = run_gillab("compare", "-k", "py", "sleep", "-e", "gevent", "-w", "2",
                                "--repeat", "1", "--target-s", "0.1", "--json", str(path))
            assert result.returncode == 0, result.stderr
            cells = cells_of(path)
            cpu, io = cells["py", "gevent", 2], cells["sleep", "gevent", 2]
            assert cpu["correct"] is True and io["correct"] is True
            # Greenlets share one OS thread: CPU work never uses more than one core ...
            assert cpu["cores_used"] <= 1.3, cpu
            assert cpu["verdict"] in ("serialized", "noisy"), cpu
            # ... while their sleeps overlap.
            assert io["speedup"] >= 1.5, io
            assert io["verdict"] in ("IO-overlapped", "noisy"), io
        retry_once(check)

    def test_coroutines_serialize_cpu_work_and_overlap_awaited_sleeps(self, tmp_path):
        """asyncio: py coroutines take turns on one thread (about one core, serialized,
        not GIL-bound); awaited sleeps overlap. to_thread: py threads under one GIL."""
        path = tmp_path / "r.json"

        def check():
            result = run_gillab("compare", "-k", "py", "sleep", "-e", "asyncio", "to_thread",
                                "-w", "1,2", "--quick", "--json", str(path))
            assert result.returncode == 0, result.stderr
            cells = cells_of(path)
            assert all(c["correct"] for c in cells.values())
            cpu, io = cells["py", "asyncio", 2], cells["sleep", "asyncio", 2]
            assert cpu["cores_used"] <= 1.3, cpu
            assert cpu["verdict"] in ("serialized", "noisy"), cpu
            assert io["speedup"] >= 1.6, io
            assert io["verdict"] in ("IO-overlapped", "noisy"), io
            threads = cells["py", "to_thread", 2]
            assert threads["cores_used"] <= 1.3, threads
            assert threads["verdict"] in ("GIL-bound", "noisy"), threads
            assert cells["sleep", "to_thread", 2]["verdict"] in ("IO-overlapped", "noisy")
            for executor in ("asyncio", "to_thread"):
                assert cells["py", executor, 1]["verdict"] in ("overhead", "noisy")
            with open(path) as f:
                assert json.load(f)["env"]["event_loop"] == "asyncio"
        retry_once(check)

    def test_to_thread_runs_a_kernel_that_releases_the_gil_in_parallel(self, tmp_path):
        path = tmp_path / "r.json"

        def check():
            result = run_gillab("compare", "-k", "cy_nogil", "-e", "to_thread", "-w", "2",
                                "--repeat", "2", "--target-s", "0.15", "--json", str(path))
            assert result.returncode == 0, result.stderr
            cell = cells_of(path)["cy_nogil", "to_thread", 2]
            assert cell["cores_used"] > 1.5, cell
            assert cell["verdict"] in ("parallel", "noisy"), cell
        retry_once(check)

    def test_loop_uvloop_runs_on_it_and_the_env_says_so(self, tmp_path):
        # A stand-in uvloop on the path: what matters is that the run uses the loop
        # --loop names and records it.
        fake = tmp_path / "fake"
        fake.mkdir()
        (fake / "uvloop.py").write_text(
            "import asyncio\n"
            "class Loop(asyncio.SelectorEventLoop):\n    pass\n"
            "def new_event_loop():\n    return Loop()\n")
        path = tmp_path / "r.json"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(fake), os.getcwd(), os.environ.get("PYTHONPATH", "")]))
        result = subprocess.run(
            [sys.executable, "-m", "gillab", "compare", "-k", "sleep", "-e", "asyncio", "-w",
             "2", "--quick", "--loop", "uvloop", "--json", str(path), "-q"],
            capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode == 0, result.stderr
        with open(path) as f:
            data = json.load(f)
        assert data["env"]["event_loop"] == "uvloop"
        assert data["settings"]["event_loop"] == "uvloop"
        assert cells_of(path)["sleep", "asyncio", 2]["correct"] is True

    def test_show_rerenders_without_measuring(self, tmp_path):
        path = tmp_path / "r.json"
        result = run_gillab("compare", "-k", "cy_nogil", "-e", "threads", "-w", "1",
                            "--repeat", "1", "--target-s", "0.05", "--json", str(path), "-q")
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        shown = run_gillab("show", str(path))
        assert shown.returncode == 0
        assert shown.stdout == result.stdout


def test_plot_writes_a_png(tmp_path):
    path = tmp_path / "speedup.png"
    result = run_gillab("compare", "-k", "cy_nogil", "sleep", "-e", "threads", "-w", "1,2",
                        "--repeat", "1", "--target-s", "0.05", "--plot", str(path), "-q")
    assert result.returncode == 0, result.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speedup.png"]  # no temp file left


class TestTarget:
    """--target runs the user's own function; its errors stay in its cell."""

    def test_user_function_is_judged(self, tmp_path):
        path = tmp_path / "r.json"
        result = run_gillab("compare", "--target", "tests.targets:busy", "-w", "2",
                            "--repeat", "1", "--json", str(path))
        assert result.returncode == 0, result.stderr
        cells = cells_of(path)
        assert set(e for _, e, _ in cells) == {"serial", "threads", "processes"}
        assert all(c["correct"] for c in cells.values())
        assert cells["tests.targets:busy", "threads", 2]["cores_used"] <= 1.3

    def test_exception_in_user_code_is_one_line_in_its_cell(self, tmp_path):
        path = tmp_path / "r.json"
        result = run_gillab("compare", "--target", "tests.targets:boom", "-e", "threads",
                            "-w", "2", "--repeat", "1", "--json", str(path))
        assert result.returncode == 3, result.stderr  # a wrong cell: table and JSON written
        assert "Traceback" not in result.stderr + result.stdout
        cell = cells_of(path)["tests.targets:boom", "threads", 2]
        assert cell["verdict"] == "wrong"
        assert cell["error"] == "ZeroDivisionError: division by zero in user code"

    @pytest.mark.parametrize("executor", ["processes", "process_pool", "mp_pool"])
    def test_a_dying_worker_is_reported_and_the_run_goes_on(self, tmp_path, executor):
        path = tmp_path / "r.json"
        result = run_gillab("compare", "--target", "tests.targets:die_in_child", "-e",
                            executor, "threads", "-w", "1", "--repeat", "1", "--json",
                            str(path), timeout=120)
        assert result.returncode == 3, result.stderr  # a wrong cell: table and JSON written
        cells = cells_of(path)
        dead = cells["tests.targets:die_in_child", executor, 1]
        assert dead["verdict"] == "wrong"
        assert "died" in dead["error"]
        assert cells["tests.targets:die_in_child", "threads", 1]["correct"] is True


class TestBadInput:
    """Usage errors exit 2 with the valid names; nothing is measured."""

    @pytest.mark.parametrize("args,expected", [
        (["-k", "nope"], "choose from 'py', 'py_shared', 'cy_gil', 'cy_nogil', 'bigint', 'sleep'"),
        (["-e", "fibers"], "choose from 'serial', 'threads'"),
        (["-w", "0"], "must be >= 1"),
        (["-w", "abc"], "not a whole number"),
        (["-w", "-2"], "must be >= 1"),
        (["--repeat", "0"], "must be >= 1"),
        (["--target-s", "-1"], "must be > 0"),
        (["--json", "/nonexistent/dir/r.json"], "does not exist"),
        (["--target", "nomodule_xyz:f"], "cannot import 'nomodule_xyz'"),
        (["--target", "tests.targets:missing"], "has no attribute 'missing'"),
        (["--target", "tests.targets:NOT_CALLABLE"], "is not callable"),
        (["--target", "justaname"], "must look like MODULE:FUNC"),
    ])
    def test_exit_2(self, args, expected):
        result = run_gillab("compare", *args)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""

    def test_loop_without_an_executor_on_one_or_without_uvloop(self):
        result = run_gillab("compare", "-k", "sleep", "-e", "threads", "--loop", "asyncio")
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == ("gillab compare: error: --loop applies to asyncio "
                                         "and to_thread; none is asked for")
        from gillab.measure.executors.aio import loop_unavailable

        if loop_unavailable("uvloop") is None:
            return  # uvloop is installed here: nothing to refuse
        result = run_gillab("compare", "-k", "sleep", "-e", "asyncio", "--loop", "uvloop")
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == ("gillab compare: error: --loop uvloop: uvloop is "
                                         "not installed: pip install uvloop")
        assert result.stdout == ""

    def test_show_missing_file(self, tmp_path):
        result = run_gillab("show", str(tmp_path / "none.json"))
        assert result.returncode == 1
        assert result.stderr.strip() == f"gillab: error: no such file: {tmp_path / 'none.json'}"

    def test_show_not_a_result(self, tmp_path):
        path = tmp_path / "x.json"
        path.write_text('{"a": 1}')
        result = run_gillab("show", str(path))
        assert result.returncode == 1
        assert "not a gillab compare result" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def _group_processes(pgid: int) -> list:
    alive = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return alive


@pytest.mark.parametrize("executor", ["mp_pool", "processes", "gevent", "threads", "asyncio",
                                      "to_thread"])
def test_ctrl_c_exits_130_with_no_orphans_and_no_json(tmp_path, executor):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) mid-cell."""
    path = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gillab", "compare", "-k", "py", "-e", executor, "-w", "2",
         "--repeat", "10", "--target-s", "0.1", "--json", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)

    def interrupt():
        # Wait until the cell under test is running (progress lines on stderr).
        marker = f"py on {executor}"
        deadline = time.monotonic() + 60
        seen = ""
        while marker not in seen and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
        assert marker in seen, seen
        time.sleep(0.5)
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        return err, time.monotonic() - sent

    try:
        (err, took), share = with_load(interrupt)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "gillab: interrupted"
    print(f"{executor}: stopped {took:.2f} s after Ctrl-C")
    assert not path.exists()
    assert not list(tmp_path.iterdir())
    time.sleep(0.2)
    assert _group_processes(proc.pid) == []
    # Goal 1 s; margin for a busy machine, and a skip naming the load beyond it.
    assert_prompt(took, 3.0, share, f"compare on {executor}'s stop after Ctrl-C")
