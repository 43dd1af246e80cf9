"""Groups ``cpu-scaling-<kernel>``: k identical CPU tasks on k workers, per executor.

Shows where the GIL binds: threads running py, cy_gil or bigint stay near one core
used whatever k is (to_thread's calls too: threads of the event loop's default
executor), cy_nogil threads and every process executor use both cores, and greenlets
and asyncio's coroutines (one OS thread) serialize everything.
"""
from __future__ import annotations

import pytest

from gillab import kernels
from gillab.core.environment import free_threaded_build
from gillab.measure.executors import open_executor

from .cells import record_cell, run_gevent_cell, run_rounds

ROUNDS = 5
WORKERS = (1, 2, 4)
EXECUTORS = ("threads", "thread_pool", "processes", "mp_pool", "process_pool", "gevent",
             "asyncio", "to_thread")
CELLS = [("serial", 1)] + [(executor, w) for executor in EXECUTORS for w in WORKERS]

# The compare command's default rows: py_shared only on a free-threaded build, where its
# threads contend; with a GIL its group would repeat py's for 19 more cells.
KERNELS = [pytest.param(name, marks=pytest.mark.benchmark(group=f"cpu-scaling-{name}"),
                        id=name)
           for name in kernels.default_names(free_threaded_build())
           if name in kernels.CPU_KERNELS]


@pytest.mark.parametrize(("executor", "workers"), CELLS,
                         ids=[f"{executor}-{w}" for executor, w in CELLS])
@pytest.mark.parametrize("kernel", KERNELS)
def test_cpu_scaling(benchmark, cpu_subject, kernel, executor, workers):
    subject = cpu_subject(kernel)
    task = subject.task
    if executor == "gevent":
        timed = run_gevent_cell(benchmark, task, workers, expected=subject.expected,
                                serial_s=subject.serial_s, io_bound=False, repeat=ROUNDS)
    else:
        # The pool starts (and warms) here, before the timed rounds.
        with open_executor(executor, workers) as ex:
            timed = run_rounds(benchmark, lambda: ex.run(task, workers), ROUNDS)
    correct = record_cell(benchmark, timed, executor=executor, workers=workers,
                          serial_s=subject.serial_s, expected=subject.expected,
                          io_bound=False, kernel=kernel, n=subject.n)
    assert correct, f"{kernel} on {executor} x{workers}: {benchmark.extra_info.get('error')}"
