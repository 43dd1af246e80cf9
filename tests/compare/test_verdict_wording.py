"""A reason counts its workers in the singular for one and the plural for more."""
from __future__ import annotations

import pytest

from gillab.compare.verdict import Losses, judge
from gillab.core.registry import SPECS


def reason(executor, workers, **kw):
    args = dict(executor=executor, workers=workers, speedup=0.96, cores_used=1.0,
                correct=True, io_bound=False, cpu_count=2, noise=0.0)
    args.update(kw)
    return judge(**args).reason


@pytest.mark.parametrize("executor, one, many", [
    ("threads", "on 1 thread,", "on 2 threads,"),
    ("thread_pool", "on 1 pool thread,", "on 2 pool threads,"),
    ("processes", "on 1 process,", "on 2 processes,"),
    ("process_pool", "on 1 pool process,", "on 2 pool processes,"),
    ("gevent", "on 1 greenlet,", "on 2 greenlets,"),
])
def test_one_worker_is_named_in_the_singular(executor, one, many):
    assert one in reason(executor, 1)
    assert many in reason(executor, 2)


def test_the_one_workers_lost_time_is_its_own():
    text = reason("threads", 1, speedup=0.5, gil_wait=0.3,
                  losses=Losses(slower_tasks=0.0, waiting=0.5, executor=0.0))
    assert "the thread spent 30% waiting for the GIL" in text


def test_every_executor_has_a_singular_noun_for_one_worker():
    for spec in SPECS.values():
        one = spec.workers_noun(1)
        assert one and one != spec.noun, spec.name
        assert not one.startswith(("a ", "an ")), spec.name
