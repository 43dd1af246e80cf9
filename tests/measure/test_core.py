"""The one measuring core: task records, the noise rule, bounded calls, start-signal runs."""
from __future__ import annotations

import os
import pickle
import threading
import time

import pytest

from gillab.core.errors import one_line
from gillab.measure import bounded, latency, noise
from gillab.measure.calibrate import autorange
from gillab.measure.clocks import TaskClock, timed
from gillab.measure.cell import run_counted
from gillab.measure.runs import ForkedRun, ThreadRun


class TestTaskClock:
    """One record for every command's tasks, derived figures included."""

    def test_it_crosses_processes_with_its_derived_figures(self):
        clock = TaskClock(value=[1, 2], error=None, wall_s=2.0, cpu_s=0.5, run_delay_s=0.5,
                          pid=7, calls=3, late_s=0.1)
        back = pickle.loads(pickle.dumps(clock))
        assert back == clock
        assert back.off_cpu == pytest.approx(0.75)
        assert back.os_queue == pytest.approx(0.25)
        assert back.waited == pytest.approx(0.5)  # off CPU, minus the OS queue

    def test_without_schedstat_all_off_cpu_time_counts_as_waited(self):
        clock = TaskClock(None, None, wall_s=1.0, cpu_s=0.25)
        assert clock.os_queue is None
        assert clock.waited == pytest.approx(0.75)

    def test_an_error_becomes_one_line_and_the_wall_counts_from_the_signal(self):
        def fail():
            raise ValueError("first\nsecond")

        signal = time.perf_counter() - 1.0  # released a second ago
        clock = timed(fail, start_at=signal)
        assert clock.error == "ValueError: first" and clock.value is None
        assert clock.wall_s >= 1.0 and clock.late_s >= 1.0
        assert clock.pid == os.getpid()

    def test_keyboard_interrupt_is_not_a_task_error(self):
        def interrupted():
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            timed(interrupted)


class TestNoise:
    """Share of the machine others took, from two /proc/stat readings."""

    def test_the_run_s_own_cpu_and_one_tick_per_cpu_are_taken_out(self):
        tick = 1 / noise.CLOCK_TICK
        # 2 CPUs, 1 s: the machine was busy 1.0 s + 2 ticks, 0.4 s of it the run's own.
        share = noise.noise_share((10.0, 2), (11.0 + 2 * tick, 2), own_cpu_s=0.4, wall_s=1.0)
        assert share == pytest.approx(0.3)

    def test_it_stays_between_0_and_1_and_is_none_without_readings(self):
        assert noise.noise_share((0.0, 2), (0.0, 2), own_cpu_s=5.0, wall_s=1.0) == 0.0
        assert noise.noise_share((0.0, 1), (50.0, 1), own_cpu_s=0.0, wall_s=1.0) == 1.0
        assert noise.noise_share(None, (1.0, 2), 0.0, 1.0) is None
        assert noise.noise_share((0.0, 2), (1.0, 2), 0.0, 0.0) is None


class TestOneLine:
    @pytest.mark.parametrize("exc,with_type,expected", [
        (ValueError("bad\nmore"), True, "ValueError: bad"),
        (ValueError(""), True, "ValueError"),
        (ValueError("\n  \nlater"), True, "ValueError: later"),  # first non-blank line
        (OSError("no such file"), False, "no such file"),
        (KeyError(), False, "KeyError"),
    ])
    def test_first_line_with_or_without_the_type(self, exc, with_type, expected):
        assert one_line(exc, with_type=with_type) == expected


class TestBounded:
    """A call that never returns is left in a daemon thread, and the caller told."""

    def test_the_value_or_the_callee_s_own_error(self):
        assert bounded.call_bounded(lambda: 42, bounded.deadline_in(5), "it") == 42
        with pytest.raises(SystemExit):
            bounded.call_bounded(lambda: exit(3), bounded.deadline_in(5), "it")

    def test_past_the_deadline_the_running_thread_comes_with_the_timeout(self):
        release = threading.Event()
        try:
            with pytest.raises(bounded.CallTimeout, match="the statement did not return") as got:
                bounded.call_bounded(release.wait, bounded.deadline_in(0.05), "the statement",
                                     name="gillab-test-hang")
            (thread,) = got.value.threads
            assert thread.is_alive() and thread.daemon and thread.name == "gillab-test-hang"
        finally:
            release.set()


class TestAutorange:
    def test_calls_grow_1_2_5_10_and_stop_at_max_calls(self):
        seen = []

        def loop(n):
            seen.append(n)
            return n * 10

        calls, elapsed, answer = autorange(loop, min_s=1e9, max_calls=20)
        assert seen == [1, 2, 5, 10, 20]
        assert (calls, answer) == (20, 200) and elapsed >= 0


class TestStartSignalRuns:
    """k workers park until go(); each learns the one start signal."""

    def test_threads_wait_for_the_signal_and_share_it(self):
        ran = []
        run = ThreadRun(lambda i, at: (ran.append(i), (i, at))[1], 3, name="gillab-test").start()
        time.sleep(0.05)
        assert ran == []  # parked at the start line, not running
        at = run.go()
        results = run.finish(bounded.deadline_in(10))
        assert results == [(0, at), (1, at), (2, at)]

    def test_a_worker_past_the_deadline_is_named_in_the_timeout(self):
        release = threading.Event()
        run = ThreadRun(lambda i, at: release.wait() if i == 1 else i, 2).start()
        run.go()
        try:
            with pytest.raises(bounded.CallTimeout) as got:
                run.finish(bounded.deadline_in(0.05), "a task")
            assert got.value.threads == (run.threads[1],)
        finally:
            release.set()

    def test_forked_workers_answer_through_pipes_and_a_dead_one_is_none(self):
        def work(i, at):
            if i == 1:
                os._exit(1)  # dies without answering
            return (i, os.getpid(), at)

        with ForkedRun(work, 3) as run:
            run.start()
            at = run.go()
            results = run.finish(bounded.deadline_in(20))
        assert results[1] is None
        for i in (0, 2):
            index, pid, their_at = results[i]
            assert index == i and pid != os.getpid() and their_at == at


class TestLatency:
    """convoy's samples: warm-up dropped, a typed record with the noise beside."""

    class Probe:
        gap_s = 0.0

        def __init__(self):
            self.calls = 0

        def once(self):
            self.calls += 1

    def test_warmup_operations_are_run_but_not_kept(self):
        probe = self.Probe()
        got = latency.sample(probe, 5, warmup=3)
        assert probe.calls == 8 and len(got) == 5 and all(s >= 0 for s in got)

    def test_measured_latencies_are_their_own_record(self):
        got = latency.measure_latencies(self.Probe(), 4, warmup=0)
        assert isinstance(got, latency.LatencySamples)
        assert len(got.latencies) == 4 and got.wall_s >= sum(got.latencies)


def test_a_counted_run_returns_what_it_ran_and_no_task_records():
    output, counted = run_counted(lambda: "done")
    assert output == "done" and counted.tasks == () and counted.wall_s >= 0


@pytest.mark.parametrize("executor", ["ProcessPool", "MpPool"])
def test_a_closed_pool_leaves_no_thread_behind(executor):
    """close() returns only once the pool's own threads are gone (ProcessPoolExecutor's
    manager thread outlived shutdown(wait=False) in 13 of 20 tries before it was joined)."""
    from gillab.measure import executors

    before = set(threading.enumerate())
    for _ in range(5):
        getattr(executors, executor)(1, timeout_s=10).close()
        assert set(threading.enumerate()) - before == set()
