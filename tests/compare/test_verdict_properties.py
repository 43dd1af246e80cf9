"""Verdicts that cannot be confidently wrong: the CPU evidence leads, and a
missing speedup is explained by measured parts. Hand-made numbers, no clocks."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gillab.core import registry
from gillab.compare.verdict import MANY_WORKER_WORDS, Losses, where_the_time_went

from tests.compare.test_verdict import verdict


CPU_EXECUTORS = [e for e in registry.ALL_EXECUTORS if not registry.spec(e).baseline]


class TestCoresLead:
    """A wall-clock speedup the cores cannot account for is a slow baseline."""

    def test_json_loads_case_is_not_parallel(self):
        # Measured on json.loads: threads x2, 1.64x, 1.02 cores used, GIL held 95%.
        j = verdict(speedup=1.64, cores_used=1.02, baseline_spread=0.28)
        assert j.verdict == "GIL-bound"
        assert "not backed by CPU (1.02 cores)" in j.reason
        assert "serial baseline was slow, whose runs spread 28%" in j.reason

    @given(executor=st.sampled_from(CPU_EXECUTORS), workers=st.integers(2, 64),
           speedup=st.floats(0.0, 100.0), cores=st.floats(0.0, 1.25))
    def test_about_one_core_of_cpu_work_is_never_parallel(self, executor, workers, speedup,
                                                         cores):
        shape = "2x1" if executor == "dask" else None
        j = verdict(executor=executor, workers=workers, speedup=speedup, cores_used=cores,
                    shape=shape)
        assert j.verdict != "parallel"

    @given(executor=st.sampled_from(CPU_EXECUTORS), speedup=st.floats(0.0, 100.0),
           cores=st.floats(0.0, 4.0), io_bound=st.booleans())
    def test_one_worker_never_earns_a_word_about_parallelism(self, executor, speedup, cores,
                                                            io_bound):
        j = verdict(executor=executor, workers=1, speedup=speedup, cores_used=cores,
                    io_bound=io_bound, shape="1x1" if executor == "dask" else None)
        assert j.verdict == "overhead" and j.verdict not in MANY_WORKER_WORDS

    @given(executor=st.sampled_from(["threads", "thread_pool", "to_thread"]),
           speedup=st.floats(0, 4), cores=st.floats(1.3, 2.0))
    def test_threads_that_used_several_cores_are_not_gil_bound(self, executor, speedup,
                                                               cores):
        assert verdict(executor=executor, speedup=speedup,
                       cores_used=cores).verdict != "GIL-bound"

    @given(executor=st.sampled_from(sorted(registry.names_where(one_os_thread=True))),
           workers=st.integers(2, 64), speedup=st.floats(0, 1.2), cores=st.floats(0, 1.29))
    def test_workers_on_one_os_thread_are_never_blamed_on_the_gil(self, executor, workers,
                                                                   speedup, cores):
        j = verdict(executor=executor, workers=workers, speedup=speedup, cores_used=cores)
        assert j.verdict == "serialized"

    def test_a_speedup_above_the_ideal_is_a_slow_baseline(self):
        # Seen here: bigint on processes x2 read 2.31x on 2 CPUs, with 1.86 cores.
        j = verdict(executor="processes", speedup=2.31, cores_used=1.86)
        assert j.verdict == "parallel"   # the cores say so
        assert "2.31x wall-clock speedup, above the ideal 2, is not backed by CPU" in j.reason

    def test_parallel_needs_cores_near_the_ideal(self):
        assert verdict(executor="processes", speedup=1.95, cores_used=1.96).verdict == "parallel"
        assert verdict(executor="processes", speedup=1.95, cores_used=1.5).verdict != "parallel"

    def test_no_baseline_never_makes_a_speedup(self):
        j = verdict(speedup=None, cores_used=1.0)
        assert j.verdict == "GIL-bound"
        assert "no speedup (no baseline)" in j.reason


#: Executors whose workers are threads of the measuring process (trait shares_gil).
THREAD_EXECUTORS = [e for e in CPU_EXECUTORS if registry.spec(e).shares_gil]


class TestWithoutGil:
    """Without a GIL, cores and speedup must agree before a cell is parallel."""

    @given(executor=st.sampled_from(THREAD_EXECUTORS), cpus=st.integers(2, 64),
           workers=st.integers(2, 64), busy=st.floats(0.8, 1.05),
           speedup=st.floats(0.0, 1.1))
    def test_busy_cores_and_no_speedup_are_never_parallel(self, executor, cpus, workers,
                                                          busy, speedup):
        ideal = min(workers, cpus)
        j = verdict(executor=executor, workers=workers, cpu_count=cpus, speedup=speedup,
                    cores_used=busy * ideal, gil_enabled=False)
        assert j.verdict == "contended"

    @given(executor=st.sampled_from(CPU_EXECUTORS), workers=st.integers(2, 8),
           speedup=st.none() | st.floats(0.0, 100.0), cores=st.floats(0.0, 8.0),
           gil_enabled=st.booleans())
    def test_parallel_without_a_gil_has_the_speedup_to_show_for_it(
            self, executor, workers, speedup, cores, gil_enabled):
        shape = "1x2" if executor == "dask" else None
        j = verdict(executor=executor, workers=workers, speedup=speedup, cores_used=cores,
                    shape=shape, gil_enabled=gil_enabled)
        if j.verdict == "parallel" and not gil_enabled and registry.spec(executor).shares_gil:
            assert speedup is not None and speedup > 1.1

    @given(executor=st.sampled_from(CPU_EXECUTORS), workers=st.integers(1, 8),
           speedup=st.floats(0.0, 100.0), cores=st.floats(0.0, 8.0),
           io_bound=st.booleans())
    def test_contended_needs_the_gil_off_and_threads(self, executor, workers, speedup,
                                                      cores, io_bound):
        shape = f"1x{workers}" if executor == "dask" else None
        with_gil = verdict(executor=executor, workers=workers, speedup=speedup,
                           cores_used=cores, io_bound=io_bound, shape=shape)
        assert with_gil.verdict != "contended"
        without = verdict(executor=executor, workers=workers, speedup=speedup,
                          cores_used=cores, io_bound=io_bound, shape=shape, gil_enabled=False)
        if registry.spec(executor).processes and executor != "dask":
            assert without.verdict == with_gil.verdict  # processes share nothing

    @given(executor=st.sampled_from(CPU_EXECUTORS), workers=st.integers(2, 8),
           speedup=st.floats(0.0, 100.0), cores=st.floats(0.0, 8.0))
    def test_no_gil_is_never_blamed_when_it_is_off(self, executor, workers, speedup, cores):
        shape = "1x2" if executor == "dask" else None
        j = verdict(executor=executor, workers=workers, speedup=speedup, cores_used=cores,
                    shape=shape, gil_enabled=False)
        assert j.verdict != "GIL-bound"


class TestWhereTheTimeWent:
    """The gap to the ideal splits into slower tasks, waits and the executor."""

    def test_slow_tasks_are_named_not_dispatch(self):
        # Measured here: bigint on processes x2, 1.11x with 1.99 cores: tasks ran slower.
        losses = where_the_time_went(workers=2, cpu_count=2, cell_wall_s=0.54,
                                     last_task_wall_s=0.53, task_cpu_s=0.53,
                                     serial_cpu_s=0.30, serial_wall_s=0.30)
        assert losses.main == "slower_tasks"
        j = verdict(executor="processes", speedup=1.11, cores_used=1.99, losses=losses,
                    task_slowdown=0.53 / 0.30)
        assert j.verdict == "overhead-bound"
        assert "each task used 1.77x the CPU it needs serially" in j.reason
        assert "not start-up or dispatch" in j.reason

    def test_executor_cost_is_named_when_it_is_the_largest(self):
        losses = where_the_time_went(workers=2, cpu_count=2, cell_wall_s=0.20,
                                     last_task_wall_s=0.10, task_cpu_s=0.10,
                                     serial_cpu_s=0.10, serial_wall_s=0.10)
        assert losses.main == "executor"
        assert losses.executor == pytest.approx(0.5)
        j = verdict(executor="processes", speedup=1.0, cores_used=1.0, losses=losses,
                    task_slowdown=1.0)
        assert j.verdict == "overhead-bound"
        assert "50% of the cell's wall time was outside the tasks" in j.reason

    def test_gil_bound_threads_lose_their_time_waiting(self):
        # py on 2 threads: each task's wall from the start signal is twice its CPU.
        losses = where_the_time_went(workers=2, cpu_count=2, cell_wall_s=0.2,
                                     last_task_wall_s=0.2, task_cpu_s=0.1,
                                     serial_cpu_s=0.1, serial_wall_s=0.1)
        assert losses == Losses(0.0, pytest.approx(0.5), 0.0)

    def test_one_long_call_after_another_is_waiting_too(self):
        # cy_gil on 2 threads: the second waits the first's whole call, from the signal.
        losses = where_the_time_went(workers=2, cpu_count=2, cell_wall_s=0.2,
                                     last_task_wall_s=0.2, task_cpu_s=0.1,
                                     serial_cpu_s=0.1, serial_wall_s=0.1)
        assert losses.main == "waiting"

    def test_oversubscription_is_not_a_loss(self):
        # 4 processes on 2 CPUs: each is queued half the time, as it must be.
        losses = where_the_time_went(workers=4, cpu_count=2, cell_wall_s=0.2,
                                     last_task_wall_s=0.2, task_cpu_s=0.1,
                                     serial_cpu_s=0.1, serial_wall_s=0.1)
        assert abs(losses.waiting) < 1e-9 and abs(losses.slower_tasks) < 1e-9

    def test_processes_that_waited_on_each_other_are_serialized(self):
        losses = Losses(slower_tasks=0.0, waiting=0.5, executor=0.0)
        j = verdict(executor="processes", speedup=1.0, cores_used=1.0, losses=losses)
        assert j.verdict == "serialized"
        assert "not on a GIL" in j.reason


class TestStartSignal:
    """A task's wait counts from the moment it could have run."""

    def test_wait_before_the_first_call_is_off_cpu(self):
        from gillab import kernels
        from gillab.measure.clocks import now, run_task

        start = now() - 0.05   # the signal came 50 ms before this thread got to run
        result = run_task(kernels.Task("sleep", (0.0,)), start)
        assert result.late_s >= 0.05
        assert result.wall_s >= 0.05
        assert result.off_cpu > 0.5

    def test_without_a_signal_the_clock_starts_at_the_call(self):
        from gillab import kernels
        from gillab.measure.clocks import run_task

        result = run_task(kernels.Task("sleep", (0.0,)))
        assert result.late_s == 0.0
