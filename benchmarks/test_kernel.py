"""Group ``kernel``: one task, single-threaded, per kernel and for the plain C loop.

Shows what each loop costs per iteration before any concurrency: the C loop is
the speed limit, Cython runs within a few percent of it, pure Python ~15-20x
slower, and the lesson's big-integer loop far slower still.
"""
from __future__ import annotations

import pytest

from gillab import kernels

from .cells import record, run_rounds

ROUNDS = 5
ROWS = ("c_reference", *kernels.CPU_KERNELS)


@pytest.mark.benchmark(group="kernel")
@pytest.mark.parametrize("name", ROWS)
def test_kernel(benchmark, cpu_subject, name):
    subject = cpu_subject(name)
    timed = run_rounds(benchmark, lambda: subject.func(subject.n, subject.p), ROUNDS)
    correct = all(value == subject.expected for value in timed.rounds)
    record(benchmark, timed, workers=1, serial_s=subject.serial_s, correct=correct,
           kernel=name, n=subject.n, p=subject.p)
    if timed.wall_s:
        # The best round per iteration, as `gillab kernels --calibrate` reports it.
        ns = timed.wall_s / subject.n * 1e9
        benchmark.extra_info.update(ns_per_iter=ns,
                                    vs_c=ns / cpu_subject("c_reference").ns_per_iter)
    assert correct, f"{name}({subject.n}) did not return n! mod p"
