"""The noise rule: how much of the machine other processes took while a run was timed.

Arithmetic only (the counters are read by gillab.measure.clocks.machine_busy), so
verdicts and reports may import NOISE_LIMIT from here without importing anything
that measures.
"""
from __future__ import annotations

import os

__all__ = ["NOISE_LIMIT", "CLOCK_TICK", "noise_share"]

#: A run during which other processes used more than this share of the machine is
#: noisy: measured again (compare), a round retried (check), a row starred (convoy).
NOISE_LIMIT = 0.10

#: /proc/stat counts in clock ticks of this many per second.
CLOCK_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def noise_share(busy0: tuple[float, int] | None, busy1: tuple[float, int] | None,
                own_cpu_s: float, wall_s: float) -> float | None:
    """Share of the machine (0..1) that others used between two machine_busy() readings.

    ``own_cpu_s`` is the CPU the run itself used on this machine, taken out. /proc/stat
    counts whole ticks per CPU: one tick per CPU of reading error is taken out too, so
    a short run is not called noisy by rounding alone. None without /proc or a wall.
    """
    if busy0 is None or busy1 is None or wall_s <= 0:
        return None
    n_cpus = busy1[1]
    others = (busy1[0] - busy0[0]) - own_cpu_s - n_cpus / CLOCK_TICK
    return min(1.0, max(0.0, others) / (wall_s * n_cpus))
