"""The event-loop runner and the asyncio and to_thread executors: start signal, which
kernels are awaited, bounds, the default executor's size, the loop chosen."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from gillab import kernels
from gillab.core.errors import UsageError
from gillab.measure import bounded
from gillab.measure.executors import WorkerFailed, open_executor, unavailable_reason
from gillab.measure.executors.aio import loop_unavailable
from gillab.measure.runs import LoopRun
from tests.conftest import retry_once


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


class TestLoopRun:
    """k coroutines park on the loop until go(); each learns the one start signal."""

    def test_coroutines_wait_for_the_signal_and_share_it(self, loop):
        ran = []

        async def work(i, at):
            ran.append(i)
            return i, at

        run = LoopRun(work, 3, loop).start(bounded.deadline_in(10))
        time.sleep(0.05)
        assert ran == []  # parked at the line, not running
        at = run.go()
        assert run.finish(bounded.deadline_in(10)) == [(0, at), (1, at), (2, at)]

    def test_a_coroutine_past_the_deadline_is_a_timeout(self, loop):
        async def work(i, at):
            await asyncio.sleep(30 if i == 1 else 0)
            return i

        run = LoopRun(work, 2, loop).start(bounded.deadline_in(10))
        run.go()
        with pytest.raises(bounded.CallTimeout, match="a coroutine did not return"):
            run.finish(bounded.deadline_in(0.05))


def cpu_task(seconds=0.05):
    p = kernels.DEFAULT_P
    from gillab.measure.calibrate import calibrate_n

    return kernels.Task("cy_gil", (calibrate_n(kernels.get("cy_gil"), seconds, p), p))


class TestAsyncio:
    """Coroutines on one loop: CPU work inline and in turn, sleeps awaited together."""

    def test_cpu_coroutines_run_one_after_another(self):
        with open_executor("asyncio", 2) as ex:
            first, second = ex.run(cpu_task(), 2)
        # The second starts only when the first gives the thread back: its start lag
        # is a whole task, which its clocks count as off-CPU time.
        assert second.late_s >= 0.5 * first.cpu_s, (first, second)
        assert second.off_cpu >= 0.3, second

    def test_sleep_is_awaited_so_no_coroutine_waits_for_another(self):
        def check():
            with open_executor("asyncio", 3) as ex:
                clocks = ex.run(kernels.Task("sleep", (0.2,)), 3)
            assert [c.value for c in clocks] == [0.2] * 3
            # Each awaits asyncio.sleep at once: none starts a sleep's length late.
            assert max(c.late_s for c in clocks) < 0.1, clocks

        retry_once(check)

    def test_a_kernel_error_is_the_tasks_own(self):
        with open_executor("asyncio", 1) as ex:
            (clock,) = ex.run(kernels.Task("sleep", (-1.0,)), 1)
        assert clock.error == "ValueError: seconds must be >= 0, got -1.0"

    def test_a_coroutine_that_never_returns_fails_the_cell_not_the_run(self):
        # A blocking call inline holds the loop's thread as CPU work would (without
        # burning a core for the rest of the session once abandoned).
        task = kernels.Task(target="time:sleep", args=(3600,))
        with open_executor("asyncio", 1, timeout_s=0.5) as ex:
            with pytest.raises(WorkerFailed, match="event loop's thread is stuck"):
                ex.run(task, 1)
            # The loop's thread is gone for good: the executor says so at once.
            with pytest.raises(WorkerFailed, match="hung earlier"):
                ex.run(task, 1)


class TestToThread:
    """to_thread calls on the loop's default executor, sized to k and started before."""

    def test_a_call_past_the_timeout_fails_the_cell_not_the_run(self):
        # Ends after the timeout: the pool's thread is abandoned, and the test session
        # (whose exit joins pool threads) is not held for it.
        task = kernels.Task(target="time:sleep", args=(2.0,))
        with open_executor("to_thread", 1, timeout_s=0.5) as ex:
            with pytest.raises(WorkerFailed, match="a thread cannot be killed"):
                ex.run(task, 1)
            with pytest.raises(WorkerFailed, match="hung earlier"):
                ex.run(task, 1)

    def test_the_default_executor_has_k_threads_started(self):
        def check():
            with open_executor("to_thread", 6) as ex:
                assert ex.loop._default_executor is ex.pool
                assert len(ex.pool._threads) == 6
                clocks = ex.run(kernels.Task("sleep", (0.2,)), 6)
            # Six sleeps at once on six threads: none waits for a thread to be free.
            assert max(c.late_s for c in clocks) < 0.1, clocks

        retry_once(check)


class TestEventLoopChoice:
    """--loop uvloop where it is installed; one line where it is not."""

    def test_uvloop_is_used_when_asked(self, tmp_path, monkeypatch):
        # A stand-in uvloop: its loop is asyncio's under another class name.
        (tmp_path / "uvloop.py").write_text(
            "import asyncio\n"
            "class Loop(asyncio.SelectorEventLoop):\n    pass\n"
            "def new_event_loop():\n    return Loop()\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        assert loop_unavailable("uvloop") is None
        with open_executor("asyncio", 2, event_loop="uvloop") as ex:
            assert type(ex.loop).__module__ == "uvloop"
            assert [c.value for c in ex.run(kernels.Task("sleep", (0.01,)), 2)] == [0.01] * 2

    def test_uvloop_missing_is_one_line(self, monkeypatch):
        import importlib.util

        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name == "uvloop" else real(name, *a))
        assert loop_unavailable("uvloop") == "uvloop is not installed: pip install uvloop"


def test_a_python_without_to_thread_refuses_it_by_name(monkeypatch):
    """A Python whose asyncio lacks to_thread: -e to_thread is one line (exit 2 through
    the CLI), and compare --python's child skips it with the reason."""
    from gillab.compare.cli import _check_available

    monkeypatch.delattr(asyncio, "to_thread")
    assert unavailable_reason("to_thread") == "this Python has no asyncio.to_thread (Python 3.9+)"
    assert unavailable_reason("asyncio") is None
    with pytest.raises(UsageError, match="^-e to_thread: this Python has no asyncio.to_thread"):
        _check_available(["asyncio", "to_thread"])
