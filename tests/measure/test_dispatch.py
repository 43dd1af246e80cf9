"""gillab.measure.dispatch: per-task dispatch cost through each pool, and its guards."""
from __future__ import annotations

import math
import subprocess
import sys

import pytest

from gillab.measure import dispatch
from gillab.measure.dispatch import DISPATCH_EXECUTORS, Dispatcher, dispatch_us


class TestDispatchUs:
    """dispatch_us returns a sane per-task cost for every executor it knows."""

    @pytest.mark.parametrize("executor", DISPATCH_EXECUTORS)
    def test_positive_finite(self, executor):
        us = dispatch_us(executor, n_tasks=200, repeat=2)
        assert math.isfinite(us) and us > 0
        assert us < 1e6  # sanity only: a trivial task never takes a whole second

    def test_large_chunksize(self):
        us = dispatch_us("mp_pool", n_tasks=1000, chunksize=500, repeat=2)
        assert math.isfinite(us) and us > 0

    def test_one_worker(self):
        assert dispatch_us("thread_pool", n_tasks=50, n_workers=1, repeat=1) > 0


class TestDispatcher:
    """A Dispatcher sends batches through one warm executor and returns every answer."""

    @pytest.mark.parametrize("executor", DISPATCH_EXECUTORS)
    def test_answers_in_order(self, executor):
        with Dispatcher(executor) as dispatcher:
            assert dispatcher.send(300) == list(range(300))
            assert dispatcher.send(7) == list(range(7))  # reusable batch after batch

    def test_mp_pool_chunks(self):
        with Dispatcher("mp_pool", chunksize=64) as dispatcher:
            assert dispatcher.send(1000) == list(range(1000))

    def test_close_twice_then_send(self):
        dispatcher = Dispatcher("thread_pool", n_workers=1)
        dispatcher.close()
        dispatcher.close()
        with pytest.raises(RuntimeError, match="closed"):
            dispatcher.send(1)


class TestRejects:
    """Bad requests fail with a one-line ValueError before any worker starts."""

    @pytest.mark.parametrize("executor", ["threads", "processes", "dask", "nope"])
    def test_unknown_executor(self, executor):
        with pytest.raises(ValueError, match="no per-task dispatch") as info:
            dispatch_us(executor)
        assert "\n" not in str(info.value)

    @pytest.mark.parametrize("kwargs", [{"n_tasks": 0}, {"n_tasks": True}, {"n_tasks": 2.5},
                                        {"repeat": 0}, {"n_workers": 0}, {"chunksize": 0}])
    def test_bad_sizes(self, kwargs):
        with pytest.raises(ValueError, match="must be an int >= 1"):
            dispatch_us("serial", **kwargs)

    @pytest.mark.parametrize("executor", ["thread_pool", "process_pool", "gevent"])
    def test_chunksize_is_for_mp_pool(self, executor):
        with pytest.raises(ValueError, match="mp_pool only"):
            Dispatcher(executor, chunksize=10)


def test_trivial_is_identity():
    """The trivial task returns its argument, so every answer is checkable."""
    assert [dispatch.trivial(i) for i in range(5)] == [0, 1, 2, 3, 4]


def test_gevent_dispatch_never_patches():
    """Spawning greenlets for dispatch leaves the process unpatched (DESIGN: gevent
    patches only a process of its own); checked in a fresh interpreter."""
    code = ("import threading, socket, time\n"
            "from gillab.measure.dispatch import dispatch_us\n"
            "assert dispatch_us('gevent', n_tasks=100, repeat=1) > 0\n"
            "from gevent import monkey\n"
            "assert not monkey.is_anything_patched()\n"
            "assert threading.Thread.__module__ == 'threading'\n"
            "print('unpatched')\n")
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "unpatched"
