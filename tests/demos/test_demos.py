"""The lesson's demos: each one's claim asserted in numbers, a few run as a user runs them.

Every demo runs with --fast. Timing enters only where the claim is about overlap, with
generous bounds; claims a busy 2-core machine could upset once are retried once.
After every test nothing may be left running: no child process, no thread, no socket.
"""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from gillab import demos
from gillab.demos import (cpu_vs_io, deadlock, event, gevent_spawn, gil_counter, hybrid,
                          pool_lock, process_pool, race, semaphore, tcp_gevent, tcp_processes,
                          tcp_threads, thread_api, thread_create, thread_pool)
from gillab.core.errors import UsageError, UserError

from tests.conftest import retry_once, run_gillab

CJK = re.compile(r"[\u4e00-\u9fff]")


# --- nothing left behind -------------------------------------------------------------

def _is_resource_tracker(proc: psutil.Process) -> bool:
    # multiprocessing's own helper, started once per process by spawn-context locks and
    # kept until this process exits by design: not something a demo left behind.
    try:
        return any("resource_tracker" in part for part in proc.cmdline())
    except psutil.NoSuchProcess:
        return True


def _leftovers(threads_before: set) -> dict:
    me = psutil.Process()
    children = [p for p in me.children(recursive=True) if not _is_resource_tracker(p)]
    connections = getattr(me, "net_connections", me.connections)
    return {"children": children,
            "threads": [t for t in threading.enumerate() if t not in threads_before],
            "inet sockets": connections(kind="inet")}


@pytest.fixture(autouse=True)
def nothing_left_behind():
    threads_before = set(threading.enumerate())
    yield
    # A joined worker can take a moment to be reaped by the OS; a leak stays.
    deadline = time.monotonic() + 3
    while any((left := _leftovers(threads_before)).values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == {"children": [], "threads": [], "inet sockets": []}


def _process_is_unpatched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return (monkey is None or not monkey.is_anything_patched()) \
        and socket.socket.__module__ == "socket"


# --- the registry ----------------------------------------------------------------------

class TestRegistry:
    """The list of demos, their two languages, and unknown names."""

    def test_the_lessons_sixteen_demos_in_its_order_then_asyncio(self):
        assert demos.names() == [
            "tcp-processes", "tcp-threads", "tcp-gevent", "pool-lock", "thread-create",
            "thread-api", "gil-counter", "race", "cpu-vs-io", "deadlock", "semaphore",
            "event", "process-pool", "thread-pool", "gevent-spawn", "hybrid", "asyncio"]

    @pytest.mark.parametrize("name", demos.names())
    def test_each_demo_speaks_both_languages_alike(self, name):
        module = demos.load(name)
        en, zh = module.TEXT["en"], module.TEXT["zh"]
        assert en.keys() == zh.keys()
        for key, value in en.items():
            if isinstance(value, dict):
                assert value.keys() == zh[key].keys()
            # The same placeholders, so both narrations carry the same numbers.
            if isinstance(value, str):
                assert set(re.findall(r"{(\w+)", value)) == set(re.findall(r"{(\w+)", zh[key]))
        assert CJK.search(zh["title"]) and not CJK.search(en["title"])
        for func in ("measure", "narrate", "failures"):
            assert callable(getattr(module, func))

    def test_list_lines_one_per_demo(self):
        for lang in ("en", "zh"):
            lines = demos.list_lines(lang)
            assert [line.split()[0] for line in lines] == demos.names()

    def test_unknown_demo_is_a_usage_error_naming_every_demo(self):
        with pytest.raises(UsageError) as info:
            demos.run("nope")
        assert all(name in str(info.value) for name in demos.names())

    def test_importing_and_listing_stays_light(self):
        code = ("import sys, gillab.demos as d; d.list_lines('en'); "
                "print(sorted(m for m in sys.modules if m.split('.')[0] == 'gevent' "
                "or m in ('multiprocessing.managers', 'multiprocessing.pool')))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
        assert out.strip() == "[]"


@pytest.mark.slow
class TestRun:
    """demos.run prints the intro, the numbers, and turns a failed claim into UserError."""

    def test_run_prints_then_returns_the_record(self, capsys):
        result = demos.run("semaphore", lang="en", fast=True)
        out = capsys.readouterr().out
        assert out.startswith("== demo semaphore:")
        assert f"at most {result.max_inside} inside at once" in out
        assert out.rstrip().endswith("Claim held.")

    def test_a_claim_that_fails_raises_user_error(self, monkeypatch):
        monkeypatch.setattr(race, "failures", lambda result, lang: ["forced for the test"])
        with pytest.raises(UserError, match="demo race: forced for the test"):
            demos.run("race", fast=True)


# --- each demo's claim, in numbers --------------------------------------------------

@pytest.mark.slow
class TestEcho:
    """tcp-*: every reply correct, one worker per connection, all served at once, b'' ends them."""

    def assert_echo(self, result, model):
        assert result.model == model
        assert result.client_errors == ()
        assert result.replies_correct == result.replies_expected == 2 * result.connections
        assert result.handlers == result.distinct_workers == result.connections
        assert result.max_concurrent_handlers == result.connections
        assert result.ended_on_eof == result.handlers
        # The lesson's loop without `if not data: break` spins on b'' instead of waiting.
        assert result.lesson_spins > 100 and result.lesson_all_empty

    def test_processes(self):
        result = tcp_processes.measure(fast=True)
        self.assert_echo(result, "processes")
        assert all(worker.startswith("pid ") for worker, _ in result.sample)

    def test_processes_under_spawn(self):
        self.assert_echo(tcp_processes.measure(fast=True, start_method="spawn"), "processes")

    def test_threads(self):
        self.assert_echo(tcp_threads.measure(fast=True), "threads")

    def test_gevent_in_its_own_patched_process(self):
        result = tcp_gevent.measure(fast=True)
        self.assert_echo(result, "greenlets")
        # All connections at once on fewer OS threads than connections: not thread-per-connection.
        assert result.os_threads < result.connections
        assert _process_is_unpatched()


@pytest.mark.slow
class TestLocksAndPools:
    """pool-lock, process-pool, thread-pool, semaphore, event, race, deadlock."""

    def test_pool_lock_one_task_inside_at_a_time(self):
        result = pool_lock.measure(fast=True)
        assert result.manager_lock.max_inside == 1
        assert result.mp_lock.max_inside == 1
        # Without the lock the same tasks do overlap, so the 1 above is the lock's doing.
        assert result.no_lock.max_inside == pool_lock.N_WORKERS
        for variant in (result.no_lock, result.manager_lock, result.mp_lock):
            assert variant.tasks_done == variant.tasks == 21
            assert variant.workers_seen <= 3
        assert "inheritance" in result.mp_lock_arg_error

    def test_pool_lock_under_spawn(self):
        result = pool_lock.measure(fast=True, start_method="spawn")
        assert result.manager_lock.max_inside == result.mp_lock.max_inside == 1

    def test_process_pool_collects_every_result(self):
        result = process_pool.measure(fast=True)
        assert result.collected == result.correct == 21
        assert 1 <= result.workers_seen <= 3
        assert result.sample[:3] == ((0, 0), (1, 1), (2, 4))
        # The with-block's terminate() kills work in flight: results are lost that way.
        assert result.finished_before_terminate < 21

    def test_thread_pool_submit_done_result_and_the_tuple(self):
        result = thread_pool.measure(fast=True)
        assert result.right == tuple(2 * i for i in range(10))
        assert result.wrong == ((0, 0), (1, 1), (2, 2))  # (i,) * 2: a tuple, silently
        assert result.done_early < 10 and result.done_late == 10
        assert result.max_running == 4

    def test_semaphore_exactly_five_inside(self):
        result = retry_once(lambda: _assert_semaphore(semaphore.measure(fast=True)))
        assert result.max_inside == 5

    def test_event_no_car_before_the_light(self):
        result = event.measure(fast=True)
        assert result.waiting == 20  # every car was at the red light...
        assert result.early == 0     # ...none moved before set()
        assert result.moved == 20    # ...and all moved after it
        assert all(moved_at >= result.green_at and green for moved_at, green in result.moves)

    def test_race_loses_updates_and_the_lock_ends_at_zero(self):
        result = retry_once(lambda: _assert_race(race.measure(fast=True)))
        assert result.locked_final == 0

    def test_deadlock_detected_undone_and_fixed(self):
        result = deadlock.measure(fast=True)
        assert result.detected_after_s is not None and result.detected_after_s < result.watch_s
        assert sorted(result.cycle) == [("Thread-A", "lock_1", "lock_2"),
                                         ("Thread-B", "lock_2", "lock_1")]
        assert result.stuck_after == 0
        assert result.rounds_done == result.rounds and result.fix_cycles == 0


def _assert_semaphore(result):
    assert result.max_inside == 5
    return result


def _assert_race(result):
    # The sleep between read and write guarantees interleaving: most updates are lost.
    assert result.unlocked_final > 0
    assert result.distinct_reads < result.n
    assert result.locked_final == 0
    return result


@pytest.mark.slow
class TestThreads:
    """thread-create, thread-api, gil-counter."""

    def test_thread_create_both_ways_and_processes_cost_more_memory(self):
        result = thread_create.measure(fast=True)
        assert "made by target" in result.by_target and "made by subclass" in result.by_subclass
        assert result.threads.n == result.processes.n == 100
        assert result.processes.memory_bytes > result.threads.memory_bytes

    def test_thread_api_observed_values(self):
        result = thread_api.measure(fast=True)
        observed = dict(result.observed)
        assert observed["alive_before"] == "False"
        assert observed["alive_started"] == "True"
        assert observed["alive_timed_join"] == "True"  # join(timeout) returned, thread still alive
        assert observed["alive_joined"] == "False"
        assert observed["inside_name"] == "'worker-1'"
        assert int(observed["active_running"]) == int(observed["active_joined"]) + 1
        # A daemon thread is stopped when the main thread ends; a normal one is waited for.
        assert result.child_printed == ("non-daemon finished",)
        assert result.child_exit_s < result.daemon_s
        assert len(result.deprecation_warnings) == 6
        assert thread_api.failures(result, "en") == []

    def test_gil_counter(self):
        result = retry_once(lambda: _assert_gil_counter(gil_counter.measure(fast=True)))
        assert result.ops[0].startswith("LOAD") and result.ops[-1].startswith("STORE")
        # The lesson's `for i in t_list: t.join()` waits for the last thread only.
        assert result.alive_after_lesson_join > 50
        assert result.value_after_lesson_join > 0
        assert result.value_after_full_join == 0


def _assert_gil_counter(result):
    assert result.one_each_final == 0
    assert result.call_lost > 0  # a call between read and write lets a switch lose updates
    return result


@pytest.mark.slow
class TestMeasuredModels:
    """cpu-vs-io, gevent-spawn, hybrid: claims about overlap and parallelism."""

    def test_cpu_vs_io(self):
        result = cpu_vs_io.measure(fast=True)
        if not _cpu_parallel(result):
            result = cpu_vs_io.measure(fast=True)  # a busy 2-core machine can lie once
        if not _cpu_parallel(result):
            noise = result.cpu_processes.others_cores
            if noise >= 0.5:  # the noise guard: say so rather than blame the lab
                pytest.skip(f"other processes kept {noise:.2f} cores busy during the run")
        # CPU time over wall time: GIL-bound threads use ~1 core, processes clearly more.
        assert _cpu_parallel(result), (result.cpu_threads, result.cpu_processes)
        assert result.cpu_threads.correct and result.cpu_processes.correct
        for case in (result.io_threads, result.io_processes):
            assert case.wall_s >= result.io_s  # joined: the sleep is in the figure
        # The lesson's unjoined timing saw only the start-up, not the sleep.
        assert result.io_threads.lesson_s < result.io_s

    def test_gevent_two_sleeps_take_the_longest_not_the_sum(self):
        result = retry_once(lambda: _assert_gevent(gevent_spawn.measure(fast=True)))
        assert result.patched.time_patched and not result.unpatched.time_patched
        assert _process_is_unpatched()

    def test_hybrid(self):
        result = retry_once(lambda: _assert_hybrid(hybrid.measure(fast=True)))
        shapes = {m.model: m for m in result.models}
        assert set(shapes) == {"threads", "processes", "greenlets", "hybrid"}
        assert shapes["hybrid"].os_processes < shapes["processes"].os_processes
        assert _process_is_unpatched()


def _cpu_parallel(result) -> bool:
    return result.cpus < 2 or \
        result.cpu_processes.cores_used > result.cpu_threads.cores_used + 0.3


def _assert_gevent(result):
    longest, total = max(result.sleeps), sum(result.sleeps)
    assert longest <= result.patched.elapsed_s < 0.8 * total
    assert result.unpatched.elapsed_s >= 0.95 * total
    return result


def _assert_hybrid(result):
    for model in result.models:
        assert model.correct == model.tasks == result.tasks
        assert model.span_s < 0.8 * result.serial_s  # every model overlaps the waits
    return result


# --- the command line ----------------------------------------------------------------

@pytest.mark.slow
class TestCommandLine:
    """`python -m gillab demo ...` as a user runs it."""

    def test_no_name_lists_every_demo(self):
        result = run_gillab("demo")
        assert result.returncode == 0, result.stderr
        assert [line.split()[0] for line in result.stdout.splitlines()] == demos.names()

    def test_unknown_name_exits_2_listing_the_names(self):
        result = run_gillab("demo", "nope")
        assert result.returncode == 2
        assert "unknown demo 'nope'" in result.stderr
        assert all(name in result.stderr for name in demos.names())
        assert "Traceback" not in result.stderr

    def test_race_in_english(self):
        result = run_gillab("demo", "race", "--fast")
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert out.startswith("== demo race:")
        lost = int(re.search(r"(\d+) updates lost", out).group(1))
        assert lost > 0
        assert "With a Lock:   num from 100 ended at 0;" in out
        assert not CJK.search(out)

    def test_event_in_chinese(self):
        result = run_gillab("demo", "event", "--fast", "--lang", "zh")
        assert result.returncode == 0, result.stderr
        assert "set() 之前出发的车：0 辆" in result.stdout
        assert result.stdout.rstrip().endswith("结论成立。")

    def test_deadlock_in_chinese(self):
        result = run_gillab("demo", "deadlock", "--fast", "--lang", "zh")
        assert result.returncode == 0, result.stderr
        assert "Thread-A 持有 lock_1，等待 lock_2" in result.stdout
        assert "Thread-B 持有 lock_2，等待 lock_1" in result.stdout

    def test_tcp_gevent_from_the_cli(self):
        # The CLI's own process must stay unpatched: gevent runs in a child it starts.
        result = run_gillab("demo", "tcp-gevent", "--fast")
        assert result.returncode == 0, result.stderr
        assert "20/20 replies correct" in result.stdout
        assert "served by 10 distinct greenlets" in result.stdout
