"""The dask executor: the lab's question asked through dask.distributed, on clusters
the tests start on loopback, and left with nothing running."""
from __future__ import annotations

import importlib.util
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time

import psutil
import pytest

from gillab import kernels
from gillab.measure.dask_cells import (CONFIGS, DEFAULT_CONFIG, cell_figures, dask_reason, parse_shape,
                               parse_shapes, plan_shapes, shape_of)
from gillab.measure.dask_cluster import cpu_delta
from gillab.core.errors import UserError
from gillab.measure.clocks import TaskClock, boot_id
from gillab.measure.cell import CellMeasurement, ExtraCpu, RepeatResult, measure_cell
from gillab.measure.calibrate import calibrate_n

from tests.conftest import NoisyCells, retry_once, run_gillab

HAVE_DISTRIBUTED = importlib.util.find_spec("distributed") is not None
needs_dask = pytest.mark.skipif(not HAVE_DISTRIBUTED,
                                reason="dask.distributed is not installed (gillab[dask])")
P = kernels.DEFAULT_P


# --- helpers -----------------------------------------------------------------------------


def _ours(pids) -> list[int]:
    """Of these pids, the ones still running (zombies count as gone)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def _new_children(before: set[int]) -> list[str]:
    """Child processes started since ``before``, apart from multiprocessing's resource
    tracker (it serves this whole pytest process and ends with it)."""
    left = []
    for child in psutil.Process().children(recursive=True):
        if child.pid in before:
            continue
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "resource_tracker" not in cmdline:
            left.append(f"{child.pid}: {cmdline[:80]}")
    return left


@pytest.fixture
def nothing_left_running():
    """Every test that starts a cluster ends with none of its processes alive."""
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    yield
    assert _new_children(before) == []


def _task(kernel: str, seconds: float) -> kernels.Task:
    n = calibrate_n(kernels.get(kernel), seconds, P)
    return kernels.Task(kernel, (n, P))


def _figures(task: kernels.Task, measured) -> dict:
    """cores used, gil_wait and the answers' check, as gillab.compare.engine computes them."""
    assert not isinstance(measured, str), measured
    tasks = [t for r in measured.repeats for t in r.tasks]
    cpu = statistics.median(r.cpu_s for r in measured.repeats)
    queued = statistics.fmean(t.os_queue or 0.0 for t in tasks)
    return {"cores": cpu / measured.wall_s,
            "gil_wait": max(0.0, statistics.fmean(t.off_cpu for t in tasks) - queued),
            "correct": all(t.error is None and t.value == kernels.reference(*task.args)
                           for t in tasks),
            "processes": len({t.pid for t in tasks})}


def _assert_quiet(*cells, limit: float = 0.10) -> None:
    """NoisyCells when other processes took more than ``limit`` of the machine during a
    cell even after the noise guard's tries: its cores prove nothing (retry_once tries
    again, then skips saying why)."""
    noise = max((m.noise or 0.0) for m in cells)
    if noise > limit:
        raise NoisyCells(f"too busy to tell: other processes took {noise:.0%} of the machine")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- shapes: plain data, no cluster ---------------------------------------------------------


class TestShapes:
    """Which cells run: every P x T = k by default, the named shapes when asked."""

    def test_every_shape_of_each_worker_count_most_processes_first(self):
        assert plan_shapes([1, 2, 4]) == [(1, "1x1"), (2, "2x1"), (2, "1x2"),
                                          (4, "4x1"), (4, "2x2"), (4, "1x4")]

    def test_named_shapes_run_at_their_own_size_whatever_the_worker_list(self):
        assert plan_shapes([1, 2], ("1x2", "2x1", "3x1")) == [(2, "1x2"), (2, "2x1"),
                                                               (3, "3x1")]

    def test_parse_and_describe(self):
        assert parse_shape("2X1") == (2, 1)
        for bad in ("2", "0x1", "x2", "2x-1", "axb"):
            with pytest.raises(ValueError, match="PxT"):
                parse_shape(bad)
        assert shape_of([1, 1]) == "2x1"
        assert shape_of([2, 1, 1]) == "1x2+2x1"

    def test_the_command_line_list_is_read_by_the_same_parser(self):
        assert parse_shapes(" 2x1, 1X2,2x1,") == ("2x1", "1x2")
        for bad in ("", ",", "2x1,2x0", "2x1,2"):
            with pytest.raises(ValueError, match="2x1"):
                parse_shapes(bad)


# --- the cell's figures, from hand-made records ------------------------------------------------


def _repeat(wall, cpu, task_cpus, observed=None) -> RepeatResult:
    tasks = tuple(TaskClock(0, None, wall, c) for c in task_cpus)
    return RepeatResult(wall, cpu, 0.0, tasks, None, observed)


class TestCellFigures:
    """What a dask cell adds: Dask's own figures over its runs, and its own CPU."""

    def test_loop_stall_is_the_longest_and_contention_the_mean(self):
        measured = CellMeasurement((
            _repeat(1.0, 2.2, [1.0, 1.0], {"loop_stall_s": 0.05, "dask_gil_contention": 0.6}),
            _repeat(1.0, 2.0, [1.0, 1.0], {"loop_stall_s": 0.30, "dask_gil_contention": 0.8}),
            _repeat(1.0, 2.1, [1.0, 1.0], {"loop_stall_s": 0.02, "dask_gil_contention": None}),
        ), tries=1)
        figures = cell_figures(measured)
        assert figures["loop_stall_s"] == 0.30
        assert figures["dask_gil_contention"] == pytest.approx(0.7)
        # CPU beyond the tasks' own threads, per wall second: median of 0.2, 0.0, 0.1
        assert figures["dask_own_cores"] == pytest.approx(0.1)

    def test_no_observations_give_none_not_zero(self):
        figures = cell_figures(CellMeasurement((_repeat(1.0, 1.0, [1.0]),), tries=1))
        assert figures["loop_stall_s"] is None and figures["dask_gil_contention"] is None


class TestRemoteCpu:
    """A cluster that is not this process's children: its CPU counted once, its local
    part told apart."""

    def test_a_restarted_or_new_process_is_not_counted(self):
        def info(pid, cpu):
            # Another machine: a boot id that is not this one's.
            return {"pid": pid, "create_time": 0.0, "boot_id": "elsewhere", "cpu_s": cpu}

        before = {"a": info(10, 1.0), "b": info(11, 1.0)}
        after = {"a": info(10, 3.5), "b": info(99, 9.0), "c": info(12, 4.0)}
        assert cpu_delta(before, after) == (2.5, 0.0)

    def test_this_process_is_never_counted_twice(self):
        from gillab.measure.clocks import process_cpu

        me = process_cpu()
        assert me["boot_id"] == boot_id()
        later = dict(me, cpu_s=me["cpu_s"] + 5.0)
        assert cpu_delta({"scheduler": me}, {"scheduler": later}) == (0.0, 0.0)


class TestCpuSource:
    """measure_cell's hook for CPU used outside this process tree."""

    def test_extra_cpu_is_added_and_what_it_saw_is_kept_per_run(self):
        calls = []

        def source():
            calls.append("before")
            return lambda: calls.append("after") or ExtraCpu(5.0, 0.0, {"run": len(calls)})

        measured = measure_cell(lambda: [], repeat=2, noise_limit=1.0, cpu_source=source)
        assert calls == ["before", "after"] * 2
        assert all(r.cpu_s >= 5.0 for r in measured.repeats)
        assert [r.observed for r in measured.repeats] == [{"run": 2}, {"run": 4}]


class TestConfigAndReason:
    """The configuration a local cell runs with, and the clause a verdict appends."""

    def test_the_default_configuration_is_named_and_dask_s_own_is_kept(self):
        assert DEFAULT_CONFIG in CONFIGS and CONFIGS["dask"] == {}

    def test_slow_tasks_dask_s_threads_and_its_gil_are_named_with_their_figures(self):
        clause = dask_reason("2x1", 0.05, 0.12, "dask", task_slowdown=1.3)
        assert "1.3x its serial CPU" in clause and "0.12 cores" in clause
        assert "profiler" in clause and "waited 5%" in clause

    def test_gil_wait_is_dask_s_only_in_single_threaded_workers(self):
        assert dask_reason("1x2", 0.45, 0.01, DEFAULT_CONFIG) is None  # the tasks' own turns
        assert "waited" in dask_reason("2x1+1x1", 0.05, 0.01, DEFAULT_CONFIG)

    def test_nothing_to_name_gives_no_clause(self):
        assert dask_reason("2x1", 0.01, 0.01, DEFAULT_CONFIG, task_slowdown=1.02) is None
        assert dask_reason(None, None, None, "dask") is None


# --- without the extra -----------------------------------------------------------------------


def test_without_the_extra_compare_exits_2_naming_the_pip_command():
    """`-e dask` with distributed missing (hidden from this child): one line, exit 2."""
    hide = ("import sys\n"
            "sys.modules['distributed'] = sys.modules['dask'] = None  # as if not installed\n"
            "from gillab.__main__ import main\n"
            "sys.exit(main(['compare', '-e', 'dask', '-k', 'py', '-q']))\n")
    result = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, result.stderr
    assert "pip install 'gillab[dask]'" in errors[0]
    assert result.stdout == ""


class TestDaskConfigOption:
    """--dask-config: checked before anything is measured, one line, exit 2."""

    @pytest.mark.parametrize("args, says", [
        (["--dask-config", "dask"], "need -e dask"),
        (["-e", "dask", "--dask-config", "dask", "--dask-scheduler", "tcp://127.0.0.1:1"],
         "cannot reconfigure"),
        (["-e", "dask", "--dask-config", "loud"], "invalid choice"),
    ])
    def test_misuse_is_one_line_and_exit_2(self, args, says):
        result = run_gillab("compare", "-k", "py", "-q", *args, timeout=60)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and says in result.stderr
        assert result.stdout == ""


# --- a scheduler that cannot be reached ---------------------------------------------------------


@needs_dask
@pytest.mark.usefixtures("nothing_left_running")
class TestExistingScheduler:
    """--dask-scheduler: one line when it cannot be reached, and soon."""

    def test_unreachable_scheduler_is_one_line_within_10_s(self):
        from gillab.measure.dask_cells import measure_dask

        address = f"tcp://127.0.0.1:{_closed_port()}"
        started = time.monotonic()
        with pytest.raises(UserError) as info:
            next(measure_dask(_task("py", 0.01), [2], scheduler=address))
        assert time.monotonic() - started < 10
        message = str(info.value)
        assert "\n" not in message and address in message

    def test_a_shape_cannot_be_imposed_on_it(self):
        from gillab.measure.dask_cells import measure_dask

        with pytest.raises(UserError, match="--dask-shape"):
            next(measure_dask(_task("py", 0.01), [2], shapes=("2x1",),
                              scheduler="tcp://127.0.0.1:1"))


# --- local clusters ------------------------------------------------------------------------------


@needs_dask
@pytest.mark.slow
@pytest.mark.usefixtures("nothing_left_running")
class TestLocalCluster:
    """A LocalCluster per shape, on loopback: the verdict's figures through CPU time."""

    def test_py_on_processes_runs_in_parallel_on_threads_takes_turns(self):
        from gillab.measure.dask_cells import measure_dask

        task = _task("py", 0.2)

        def check():
            cells = {extra["shape"]: (k, measured, extra) for k, measured, extra
                     in measure_dask(task, [2], shapes=("2x1", "1x2"), repeat=3,
                                     max_tries=2)}
            assert list(cells) == ["2x1", "1x2"]
            _assert_quiet(*(measured for _, measured, _ in cells.values()))
            procs, threads = (_figures(task, cells[s][1]) for s in ("2x1", "1x2"))
            assert procs["correct"] and threads["correct"]
            assert (procs["processes"], threads["processes"]) == (2, 1)  # shaped as named
            # Two processes: two cores, no waiting; two threads of one process: one
            # core between them, each waiting about half its time for the GIL.
            assert procs["cores"] >= 1.6 and procs["gil_wait"] <= 0.2, procs
            assert threads["cores"] <= 1.3 and threads["gil_wait"] >= 0.3, threads
            print(f"2x1: {procs}, noise {cells['2x1'][1].noise:.2f}; "
                  f"1x2: {threads}, noise {cells['1x2'][1].noise:.2f}")
            for _, _, extra in cells.values():
                assert extra["start_method"] == "spawn"
                assert extra["loop_stall_s"] > 0

        retry_once(check)

    def test_py_on_2x1_uses_two_cores_with_gillab_s_configuration(self):
        """2x1 on `py` lost its speedup to distributed's own threads; with the
        configuration gillab measures by default, two processes use two cores."""
        from gillab.measure.dask_cells import DEFAULT_CONFIG, measure_dask

        task = _task("py", 0.3)

        def check():
            [(_, measured, extra)] = measure_dask(task, [2], shapes=("2x1",), repeat=3,
                                                  max_tries=3)
            _assert_quiet(measured)
            figures = _figures(task, measured)
            assert extra["dask_config"] == DEFAULT_CONFIG
            assert figures["correct"] and figures["processes"] == 2
            assert figures["cores"] >= 1.6, (figures, extra)

        retry_once(check)

    def test_a_gil_holding_c_call_freezes_the_worker_event_loop(self):
        """Dask's own tick: held for the whole cy_gil call, barely touched by cy_nogil."""
        from gillab.measure.dask_cells import measure_dask

        def stall(kernel):
            task = _task(kernel, 0.5)
            # One try: the claim is a ratio within one run, whatever else runs.
            [(_, measured, extra)] = measure_dask(task, [1], repeat=1, max_tries=1)
            task_wall = statistics.fmean(t.wall_s for t in measured.repeats[0].tasks)
            return extra["loop_stall_s"] / task_wall

        def check():
            held, released = stall("cy_gil"), stall("cy_nogil")
            assert held >= 0.8, held
            assert released <= 0.4, released

        retry_once(check)

    def test_a_target_function_is_imported_by_the_spawned_workers(self):
        from gillab.measure.dask_cells import measure_dask

        task = kernels.Task(target="tests.targets:busy")
        [(k, measured, extra)] = measure_dask(task, [1], repeat=1, max_tries=1)
        assert (k, extra["shape"]) == (1, "1x1")
        values = [t.value for r in measured.repeats for t in r.tasks]
        assert values == [kernels.load_target("tests.targets:busy")()]

    def test_a_dying_worker_is_the_cell_s_one_line_error(self):
        from gillab.measure.dask_cells import measure_dask

        task = kernels.Task(target="tests.targets:die_in_child")
        [(_, measured, extra)] = measure_dask(task, [1], repeat=1, max_tries=1, timeout_s=60)
        assert isinstance(measured, str) and "\n" not in measured
        assert "died" in measured
        assert extra["shape"] == "1x1" and extra["loop_stall_s"] is None

    def test_dispatch_cost_per_task(self):
        from gillab.measure.dask_cells import dispatch_us_dask

        with pytest.raises(ValueError):
            dispatch_us_dask(n_tasks=0)
        us = dispatch_us_dask(n_tasks=50, repeat=1)
        assert 0 < us < float("inf")


# --- a running cluster, not this process's children -----------------------------------------------


@pytest.fixture
def detached_cluster(tmp_path):
    """`dask scheduler` and `dask worker` (2 processes x 1 thread) on loopback, started
    through a shell that exits, so that they are not this process's children: the cell
    must read their CPU from the cluster. Stopped by pid afterwards."""
    scheduler_file = tmp_path / "scheduler.json"
    dask, quiet = f"{shlex.quote(sys.executable)} -m dask", ">/dev/null 2>&1 </dev/null &"
    where = shlex.quote(str(scheduler_file))
    script = (f"{dask} scheduler --host 127.0.0.1 --port 0 --dashboard-address 127.0.0.1:0 "
              f"--no-dashboard --scheduler-file {where} {quiet} echo $!; "
              f"{dask} worker --scheduler-file {where} --nworkers 2 --nthreads 1 "
              f"--host 127.0.0.1 --no-dashboard --death-timeout 60 {quiet} echo $!")
    shell = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    launched = [int(pid) for pid in shell.stdout.split()]
    pids = list(launched)
    try:
        deadline = time.monotonic() + 30
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        from distributed import Client

        client = Client(address, timeout=30, set_as_default=False)
        try:
            client.wait_for_workers(2, timeout=30)
            pids += client.run(os.getpid).values()
            yield address
        finally:
            client.shutdown()  # dask's own way to stop a cluster: scheduler and workers
    finally:
        for sig, grace in ((None, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            for pid in _ours(pids) if sig else ():
                os.kill(pid, sig)  # stopped by its id: this test started it
            deadline = time.monotonic() + grace
            while _ours(pids) and time.monotonic() < deadline:
                time.sleep(0.1)
        assert _ours(pids) == [], "a cluster process outlived the test"


@needs_dask
@pytest.mark.slow
def test_a_running_cluster_is_measured_as_it_is_shaped(detached_cluster):
    """Its shape comes from the scheduler; its workers' CPU comes from the workers."""
    from gillab.measure.dask_cells import check_scheduler, measure_dask

    assert check_scheduler(detached_cluster) == "2x1"
    task = _task("cy_nogil", 0.15)

    def check():
        [(k, measured, extra)] = measure_dask(task, [1, 2, 4], repeat=2, max_tries=2,
                                              scheduler=detached_cluster)
        assert (k, extra["shape"], extra["dask_config"]) == (2, "2x1", "as running")
        figures = _figures(task, measured)
        assert figures["correct"] and figures["processes"] == 2
        # The workers are not children of this process: their CPU is counted only if
        # read from the cluster itself. It must cover what the tasks measured inside.
        for run in measured.repeats:
            assert run.cpu_s >= 0.9 * sum(t.cpu_s for t in run.tasks), run
        assert extra["loop_stall_s"] > 0
        print(f"running cluster: {figures}, noise {measured.noise:.2f}, "
              f"{measured.tries} tries")

    retry_once(check)


# --- Ctrl-C ------------------------------------------------------------------------------------------


_INTERRUPTED = """
import sys
from gillab import kernels
from gillab.measure.dask_cells import measure_dask

task = kernels.Task("cy_gil", (10**9, kernels.DEFAULT_P))
try:
    for cell in measure_dask(task, [2], shapes=("1x2",), repeat=10):
        pass
except KeyboardInterrupt:
    print("interrupted")
    sys.exit(130)
"""


def _cmdline(proc: psutil.Process) -> str:
    """A child's command line; "" for one that ended meanwhile (a zombie has none)."""
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def _user_cpu(proc: psutil.Process) -> float:
    try:
        return proc.cpu_times().user
    except psutil.Error:
        return 0.0


@needs_dask
@pytest.mark.slow
@pytest.mark.parametrize("when", ["starting", "running"])
def test_ctrl_c_closes_the_local_cluster(when):
    """SIGINT to the whole process group, as a terminal sends it: while the cluster
    starts, and while a GIL-holding task has its worker's event loop frozen."""
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTED], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = psutil.Process(proc.pid).children(recursive=True)
            workers = [c for c in children if "--multiprocessing-fork" in _cmdline(c)]
            seen.update(c.pid for c in children)
            if workers and (when == "starting" or all(_user_cpu(w) > 1.5 for w in workers)):
                break
            time.sleep(0.05)
        assert seen, "no worker process started"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()  # a pipe left to the garbage collector is a ResourceWarning
        proc.stderr.close()  # (an error) in whichever test runs next
    assert proc.returncode == 130, err
    assert out.strip() == "interrupted"
    assert "Traceback" not in err, err  # the workers never saw the SIGINT
    deadline = time.monotonic() + 5
    while _ours(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _ours(seen) == []
