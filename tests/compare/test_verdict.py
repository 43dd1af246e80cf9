"""Verdicts from hand-made numbers: no clocks, no kernels."""
from __future__ import annotations

import pytest

from gillab.compare.verdict import VERDICTS, ideal_speedup, judge, os_share


def verdict(**overrides):
    args = dict(executor="threads", workers=2, speedup=1.0, cores_used=1.0, correct=True,
                io_bound=False, cpu_count=2, noise=0.0)
    args.update(overrides)
    return judge(**args)


class TestCpuWork:
    """CPU kernels: parallel near the ideal, GIL-bound threads on one core."""

    def test_threads_on_one_core_are_gil_bound(self):
        j = verdict(speedup=1.01, cores_used=1.00, gil_wait=0.49)
        assert j.verdict == "GIL-bound"
        assert "speedup 1.01x on 2 threads, 1.00 cores used" in j.reason
        assert "49%" in j.reason

    def test_threads_near_ideal_are_parallel(self):
        j = verdict(speedup=1.97, cores_used=1.98)
        assert j.verdict == "parallel"
        assert j.reason == "speedup 1.97x on 2 threads, 1.98 cores used (ideal 2)"

    def test_processes_never_gil_bound(self):
        # Slow processes are not the GIL's fault: another word, with the numbers.
        j = verdict(executor="processes", speedup=1.1, cores_used=1.05)
        assert j.verdict == "overhead-bound"

    def test_ideal_caps_at_cpu_count(self):
        assert verdict(executor="processes", workers=4, speedup=1.9,
                       cores_used=1.95).verdict == "parallel"
        assert ideal_speedup(4, 2, io_bound=False) == 2
        assert ideal_speedup(4, 2, io_bound=True) == 4

    def test_greenlets_doing_cpu_work_are_serialized_not_gil_bound(self):
        j = verdict(executor="gevent", speedup=1.0, cores_used=1.0)
        assert j.verdict == "serialized"
        assert "GIL is not the cause" in j.reason

    def test_thread_pool_counts_as_threads(self):
        assert verdict(executor="thread_pool", speedup=1.0).verdict == "GIL-bound"

    def test_an_unbacked_speedup_is_flagged_in_the_record(self):
        j = verdict(executor="processes", speedup=2.4, cores_used=1.9)
        assert j.unbacked
        assert not verdict(executor="processes", speedup=1.9, cores_used=1.9).unbacked

    def test_an_unknown_executor_is_an_error_not_judged_as_processes(self):
        with pytest.raises(ValueError, match="unknown executor 'forks'"):
            verdict(executor="forks")


class TestOneWorker:
    """One worker runs nothing at once: its word is the cost of the worker, never a
    word about parallelism."""

    def test_a_slow_worker_is_overhead_with_its_cost_in_percent(self):
        j = verdict(executor="processes", workers=1, speedup=0.5, cores_used=1.0)
        assert j.verdict == "overhead"
        assert "running the task in a process cost 100%" in j.reason

    def test_a_thread_that_cost_little_is_still_overhead_not_parallel(self):
        j = verdict(executor="threads", workers=1, speedup=0.92, cores_used=1.0)
        assert j.verdict == "overhead"
        assert "running the task in a thread cost 9%" in j.reason

    def test_a_sleep_in_a_pool_thread_is_overhead_not_io_overlapped(self):
        j = verdict(executor="thread_pool", workers=1, speedup=0.99, cores_used=0.0,
                    io_bound=True)
        assert j.verdict == "overhead"
        assert "in a pool thread cost 1%" in j.reason

    def test_serial_is_the_baseline(self):
        j = verdict(executor="serial", workers=1, speedup=1.0, serial_s=0.3)
        assert j.verdict == "baseline"
        assert "every speedup divides this" in j.reason and "0.300 s" in j.reason


class TestIoWork:
    """Waits overlap on every executor that has more than one worker."""

    @pytest.mark.parametrize("executor", ["threads", "gevent", "processes", "thread_pool"])
    def test_overlapped(self, executor):
        j = verdict(executor=executor, speedup=1.98, cores_used=0.02, io_bound=True)
        assert j.verdict == "IO-overlapped"

    def test_waits_in_a_row_are_serialized(self):
        j = verdict(speedup=1.0, cores_used=0.01, io_bound=True)
        assert j.verdict == "serialized"

    def test_io_ideal_is_worker_count(self):
        # 4 sleeping threads on 2 CPUs can reach 4x: 2.5x is short of it.
        j = verdict(workers=4, speedup=2.5, cores_used=0.05, io_bound=True)
        assert j.verdict == "overhead-bound"


class TestEventLoop:
    """asyncio's coroutines share one OS thread: CPU work on them is serialized, never
    GIL-bound; to_thread's calls are threads under one GIL; both by trait, like gevent."""

    def test_cpu_coroutines_are_serialized_and_the_gil_is_not_blamed(self):
        j = verdict(executor="asyncio", speedup=1.0, cores_used=1.0, gil_wait=0.5)
        assert j.verdict == "serialized"
        assert "coroutines share one OS thread" in j.reason
        assert "GIL is not the cause" in j.reason

    def test_awaited_sleeps_on_one_loop_overlap(self):
        j = verdict(executor="asyncio", speedup=1.97, cores_used=0.01, io_bound=True)
        assert j.verdict == "IO-overlapped"
        assert "on 2 coroutines" in j.reason

    def test_sleeps_that_block_the_loop_are_serialized(self):
        # An IO wait with no awaitable form blocks the loop's thread: waits in a row.
        j = verdict(executor="asyncio", speedup=1.0, cores_used=0.0, io_bound=True)
        assert j.verdict == "serialized"

    def test_to_thread_on_python_bytecode_is_gil_bound(self):
        j = verdict(executor="to_thread", speedup=1.0, cores_used=1.02, gil_wait=0.48)
        assert j.verdict == "GIL-bound"
        assert "48% of its time for the GIL" in j.reason

    def test_to_thread_on_a_kernel_that_releases_the_gil_is_parallel(self):
        j = verdict(executor="to_thread", speedup=1.9, cores_used=1.95)
        assert j.verdict == "parallel"
        assert "on 2 to_thread threads" in j.reason

    def test_coroutines_are_not_queued_by_the_os_beyond_one_thread(self):
        # k coroutines are one OS thread: the OS queue never explains their waits.
        assert os_share(4, 2, io_bound=False, executor="asyncio") == 0.0
        assert os_share(4, 2, io_bound=False, executor="to_thread") == 0.5

    @pytest.mark.parametrize("executor,noun", [("asyncio", "a coroutine"),
                                               ("to_thread", "an asyncio.to_thread call")])
    def test_one_worker_is_the_cost_of_running_there(self, executor, noun):
        j = verdict(executor=executor, workers=1, speedup=0.9, cores_used=1.0)
        assert j.verdict == "overhead"
        assert f"running the task in {noun} cost 11%" in j.reason


class TestFailures:
    """Wrong answers and noise override everything else."""

    def test_wrong_answer(self):
        j = verdict(speedup=1.97, cores_used=1.98, correct=False)
        assert j.verdict == "wrong"
        assert "differed" in j.reason

    def test_error_is_the_reason(self):
        j = verdict(correct=False, error="ZeroDivisionError: division by zero")
        assert j.verdict == "wrong"
        assert j.reason == "ZeroDivisionError: division by zero"

    def test_noise_beats_a_confident_verdict(self):
        j = verdict(speedup=1.05, cores_used=1.0, noise=0.35, tries=3)
        assert j.verdict == "noisy"
        assert "35%" in j.reason and "3 tries" in j.reason

    def test_noise_under_limit_is_ignored(self):
        assert verdict(speedup=1.97, cores_used=1.98, noise=0.05).verdict == "parallel"


def test_every_word_is_reachable():
    seen = {
        verdict(speedup=1.0).verdict,
        verdict(speedup=2.0, cores_used=2.0).verdict,
        verdict(speedup=2.0, cores_used=0.0, io_bound=True).verdict,
        verdict(executor="gevent").verdict,
        verdict(executor="processes", speedup=1.2, cores_used=1.9).verdict,
        verdict(noise=0.5).verdict,
        verdict(correct=False).verdict,
        verdict(executor="serial", workers=1).verdict,
        verdict(workers=1).verdict,
        verdict(speedup=0.56, cores_used=1.87, gil_enabled=False).verdict,
    }
    assert seen == set(VERDICTS)


class TestOsShare:
    """Oversubscription is the OS's queue, not GIL wait."""

    def test_no_share_when_cpus_suffice(self):
        assert os_share(2, 2, io_bound=False, executor="threads") == 0.0

    def test_share_when_workers_outnumber_cpus(self):
        assert os_share(4, 2, io_bound=False, executor="processes") == pytest.approx(0.5)

    def test_no_share_for_waits_or_greenlets(self):
        assert os_share(4, 2, io_bound=True, executor="threads") == 0.0
        assert os_share(4, 2, io_bound=False, executor="gevent") == 0.0


class TestDaskShapes:
    """A dask worker's threads share its GIL; its processes do not."""

    def test_threads_of_one_worker_are_gil_bound(self):
        j = verdict(executor="dask", shape="1x2", speedup=0.95, cores_used=1.02, gil_wait=0.47)
        assert j.verdict == "GIL-bound"
        assert "dask 1x2 (processes x threads)" in j.reason
        assert "take turns holding its GIL" in j.reason

    def test_one_thread_per_process_is_parallel(self):
        assert verdict(executor="dask", shape="2x1", speedup=1.9,
                       cores_used=1.95).verdict == "parallel"

    def test_slow_processes_are_not_blamed_on_the_gil(self):
        assert verdict(executor="dask", shape="2x1", speedup=1.2,
                       cores_used=1.2).verdict == "overhead-bound"

    def test_two_processes_of_two_threads_on_two_cpus(self):
        # Each process is GIL-bound, but two of them fill both CPUs: parallel.
        assert verdict(executor="dask", shape="2x2", workers=4, speedup=1.9,
                       cores_used=1.95).verdict == "parallel"

    def test_a_frozen_event_loop_is_named(self):
        j = verdict(executor="dask", shape="1x2", speedup=1.0, cores_used=1.0,
                    loop_stall_s=4.07)
        assert j.reason.endswith("froze its worker's event loop for 4.07 s (no heartbeats)")


class TestWithoutGil:
    """With the GIL off, threads of one process run at once and share every object: busy
    cores no longer prove scaling, so speedup and cores must agree (3.13t's figures)."""

    def test_threads_that_fill_the_cores_yet_run_slower_are_contended(self):
        # One dict shared by two threads on 3.13t, GIL off: 0.56x on 1.87 cores.
        j = verdict(speedup=0.56, cores_used=1.87, gil_enabled=False, task_slowdown=3.3)
        assert j.verdict == "contended"
        assert "1.87 cores busy yet 0.56x" in j.reason
        assert "each task using 3.30x the CPU it needs serially" in j.reason
        assert "fought over objects they share" in j.reason
        assert "not a GIL" in j.reason

    def test_no_scaling_at_all_is_contended(self):
        # A module-level counter on 3.13t, GIL off: 1.01x on 1.91 cores.
        assert verdict(speedup=1.01, cores_used=1.91, gil_enabled=False).verdict == "contended"

    def test_the_same_figures_with_a_gil_are_not_contended(self):
        # With a GIL, threads that fill two cores are not fighting over objects: the
        # word needs the measured fact that the GIL was off.
        assert verdict(speedup=0.56, cores_used=1.87).verdict == "overhead-bound"

    def test_processes_share_nothing_so_they_never_contend(self):
        j = verdict(executor="processes", speedup=0.56, cores_used=1.87, gil_enabled=False)
        assert j.verdict == "overhead-bound"

    def test_threads_that_scale_are_parallel(self):
        # Locals only on 3.13t, GIL off: 1.98x on 1.96 cores.
        assert verdict(speedup=1.98, cores_used=1.96, gil_enabled=False).verdict == "parallel"

    def test_a_partial_speedup_names_shared_objects_as_the_likely_loss(self):
        # An attribute of one shared object on 3.13t: 1.46x, the tasks ran slower.
        from gillab.compare.verdict import Losses

        j = verdict(speedup=1.46, cores_used=1.9, gil_enabled=False, task_slowdown=1.3,
                    losses=Losses(slower_tasks=0.2, waiting=0.02, executor=0.01))
        assert j.verdict == "overhead-bound"
        assert "threads that touch one object slow each other down" in j.reason
        with_gil = verdict(speedup=1.46, cores_used=1.9, task_slowdown=1.3,
                           losses=Losses(slower_tasks=0.2, waiting=0.02, executor=0.01))
        assert "shared caches, memory, the allocator" in with_gil.reason

    def test_threads_on_one_core_without_a_gil_are_serialized_not_gil_bound(self):
        j = verdict(speedup=1.0, cores_used=1.0, gil_wait=0.5, gil_enabled=False)
        assert j.verdict == "serialized"
        assert "the GIL is off" in j.reason

    def test_busy_cores_without_a_baseline_are_not_parallel(self):
        j = verdict(speedup=None, cores_used=1.95, gil_enabled=False)
        assert j.verdict == "overhead-bound"
        assert "busy cores alone do not show the work scaled" in j.reason

    def test_half_the_cores_wasted_is_contended_on_more_cpus(self):
        # 4 threads on 4 CPUs: 1.6x on 3.7 cores leaves over half the CPU burned idle.
        assert verdict(workers=4, cpu_count=4, speedup=1.6, cores_used=3.7,
                       gil_enabled=False).verdict == "contended"
        assert verdict(workers=4, cpu_count=4, speedup=2.2, cores_used=3.7,
                       gil_enabled=False).verdict == "overhead-bound"

    def test_one_cpu_cannot_tell_fighting_from_taking_turns(self):
        assert verdict(cpu_count=1, speedup=1.0, cores_used=1.0,
                       gil_enabled=False).verdict == "parallel"

    def test_dask_threads_of_one_process_contend_its_processes_do_not(self):
        assert verdict(executor="dask", shape="1x2", speedup=0.6, cores_used=1.9,
                       gil_enabled=False).verdict == "contended"
        assert verdict(executor="dask", shape="2x1", speedup=0.6, cores_used=1.9,
                       gil_enabled=False).verdict == "overhead-bound"
