"""Group ``dispatch``: microseconds to send one trivial task through each executor.

Shows the floor under every pooled task: ~10-20 us through a thread pool or a
greenlet, ~100 us per submit to a process pool, and how Pool.map's chunksize
spreads the cost until it nearly vanishes. A task shorter than its dispatch cost
only gets slower in a pool.
"""
from __future__ import annotations

import math

import pytest

from gillab.measure.dispatch import Dispatcher
from gillab.measure.calibrate import time_call

from .cells import record, run_rounds

MIN_ROUNDS = 5
MAX_ROUNDS = 2000
#: Timed seconds a row should add up to: CPU counters of child processes and the
#: machine's load tick every 10 ms, so a sub-millisecond batch needs many rounds.
TIMED_S = 0.25
N_WORKERS = 2
ROWS = [("serial", 1), ("thread_pool", 1), ("process_pool", 1), ("mp_pool", 1),
        ("mp_pool", 500), ("gevent", 1)]


@pytest.mark.benchmark(group="dispatch")
@pytest.mark.parametrize(("executor", "chunksize"), ROWS,
                         ids=[f"{e}-chunksize{c}" if e == "mp_pool" else e for e, c in ROWS])
def test_dispatch(benchmark, budget, trivial_task_s, executor, chunksize):
    n_tasks = budget.dispatch_tasks
    with Dispatcher(executor, N_WORKERS, chunksize) as dispatcher:
        warm_s, _ = time_call(dispatcher.send, n_tasks)  # untimed: pays the lazy costs
        rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, math.ceil(TIMED_S / max(warm_s, 1e-9))))
        timed = run_rounds(benchmark, lambda: dispatcher.send(n_tasks), rounds)
    correct = all(answers == list(range(n_tasks)) for answers in timed.rounds)
    # A row runs n_tasks tasks: speedup = T(n_tasks plain calls) / T(the batch), far below 1.
    workers = N_WORKERS if executor in ("thread_pool", "process_pool", "mp_pool") else 1
    record(benchmark, timed, workers=workers, n_tasks=n_tasks, serial_s=trivial_task_s,
           correct=correct, executor=executor, chunksize=chunksize)
    if timed.wall_s:
        benchmark.extra_info["us_per_task"] = timed.wall_s / n_tasks * 1e6
    assert correct, f"{executor} returned wrong answers for trivial tasks"
