"""Group ``io``: k sleeping tasks on k workers, including the lesson's 100 at once.

Shows that waiting is not computing: sleep releases the GIL, so threads, a thread
pool, processes, greenlets, coroutines awaiting asyncio.sleep and to_thread calls
all overlap the waits, and 100 sleeps of 0.5 s
take about 0.5 s, far beyond the 2x that two cores allow CPU work.
"""
from __future__ import annotations

import pytest

from gillab import kernels
from gillab.measure.executors import open_executor

from .cells import record_cell, run_gevent_cell, run_rounds

ROUNDS = 3
WORKERS = (4, 100)  # 4 already outnumbers the 2 cores; 100 is the lesson's case
EXECUTORS = ("threads", "thread_pool", "processes", "gevent", "asyncio", "to_thread")
CELLS = [("serial", 1)] + [(executor, w) for executor in EXECUTORS for w in WORKERS]


@pytest.mark.benchmark(group="io")
@pytest.mark.parametrize(("executor", "workers"), CELLS,
                         ids=[f"{executor}-{w}" for executor, w in CELLS])
def test_io(benchmark, budget, sleep_serial_s, executor, workers):
    seconds = budget.sleep_s
    task = kernels.Task("sleep", (seconds,))
    if executor == "gevent":
        timed = run_gevent_cell(benchmark, task, workers, expected=seconds,
                                serial_s=sleep_serial_s, io_bound=True, repeat=ROUNDS)
    else:
        with open_executor(executor, workers) as ex:
            timed = run_rounds(benchmark, lambda: ex.run(task, workers), ROUNDS)
    correct = record_cell(benchmark, timed, executor=executor, workers=workers,
                          serial_s=sleep_serial_s, expected=seconds, io_bound=True,
                          kernel="sleep", seconds=seconds)
    assert correct, f"sleep on {executor} x{workers}: {benchmark.extra_info.get('error')}"
