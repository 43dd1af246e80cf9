"""The timeline lab child's own clocks: what gillab.timeline.workload stamps its truth with.

Kept apart from the sampler's driver (gillab.timeline.measure) and light to import:
the child loads it without the parent's machinery.
"""
from __future__ import annotations

import time


def task_clocks() -> tuple[int, int]:
    """(CLOCK_MONOTONIC ns, this thread's CPU ns): what the lab child stamps its own
    truth with, on the sampler's clock (time.monotonic_ns reads CLOCK_MONOTONIC)."""
    return time.monotonic_ns(), time.thread_time_ns()


#: In the progress-stamped loop, a gap longer than this is time the thread did not run
#: (off a CPU, or waiting for the GIL); one step of the loop takes ~0.2 us.
STAMP_GAP_NS = 150_000


def stamped_loop(steps: int) -> list:
    """A pure-Python loop that stamps its own progress, for the lab child's --truth:
    the gaps longer than STAMP_GAP_NS are when it did not run (the prototype's truth
    harness). Returns [(start_ns, end_ns)] on CLOCK_MONOTONIC, the sampler's clock."""
    clock = time.monotonic_ns
    gaps = []
    x = 1
    last = clock()
    for _ in range(steps):
        t = clock()
        if t - last > STAMP_GAP_NS:
            gaps.append((last, t))
        last = t
        x = (x * 7 + 1) % 1000003
    return gaps


def stamped_steps(seconds: float) -> int:
    """Steps of stamped_loop that take ``seconds`` on one thread alone."""
    steps = 20_000
    while True:
        t0 = time.perf_counter()
        stamped_loop(steps)
        took = time.perf_counter() - t0
        if took > 0.02:
            return max(1, int(steps * seconds / took))
        steps *= 4
