"""What a convoy run is made of, and what it yields: plain records and JSON (gillab/convoy/1).

The run's fixed plan (backgrounds, probes, the probe's sleep, the pacing gap),
the raw ``Reading`` the measuring module returns, the ``Row`` it is summarised
into, and the JSON document. Plain data and arithmetic: no clocks, no printing.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from gillab.core import stats

__all__ = ["SCHEMA", "BACKGROUNDS", "PROBES", "WHERES", "LOOP_PROBE", "SMALL_SWITCH_INTERVAL",
           "CALL_S", "SLEEP_S", "TICK_S", "GAP_S", "WARMUP", "Reading", "Row", "summarize", "to_document", "ms_text",
           "interval_text"]

SCHEMA = "gillab/convoy/1"

BACKGROUNDS = ("none", "py", "cy_gil", "cy_nogil", "bigint")
PROBES = ("sleep", "socketpair", "echo", "loop")
#: The probe whose rows time an asyncio event loop's timer, not a thread's IO.
LOOP_PROBE = "loop"
#: Where the background work runs. The thread probes always use a plain thread; the
#: loop probe tries each: asyncio.to_thread (the loop's default executor), inline in
#: the loop itself, and loop.run_in_executor(ProcessPoolExecutor).
WHERES = ("thread", "loop", "process")

#: The interval the lesson sets with sys.setswitchinterval, beside the default one.
SMALL_SWITCH_INTERVAL = 0.0001
#: How long one call of the background kernel takes: the background thread checks
#: its stop flag between calls, so this is also how fast it stops.
CALL_S = 0.02
#: The sleep probe's sleep.
SLEEP_S = 0.001
#: The loop probe's timer: ``await asyncio.sleep(TICK_S)``; its lag is what it overran.
TICK_S = 0.001
#: Untimed pause before each socketpair or echo operation. Without it the main thread
#: would keep the GIL through whole batches of back-to-back operations and the figures
#: would depend on where in a switch interval a batch fell; paced, each operation starts
#: as a real IO thread's does, just woken up.
GAP_S = 0.001
#: Untimed operations before each row, so the row starts in the steady state.
WARMUP = 3


@dataclass(frozen=True)
class Reading:
    """One row's raw figures: every timed operation, in seconds, in the order taken."""

    background: str
    probe: str
    switch_interval: float
    latencies_s: tuple
    noise: float | None          # share of the machine other processes used meanwhile
    call_s: float | None = None  # median length of one background call (None: no thread)
    where: str | None = None     # thread, loop or process (None: no background work)
    rate: float | None = None    # the background's kernel iterations per second meanwhile
    solo_rate: float | None = None  # the same kernel's iterations per second alone


@dataclass(frozen=True)
class Row:
    """One (background, where, probe, switch interval) row. The DESIGN.md fields come
    first. For the loop probe p50/p99/max are the timer's lag, not an operation's time."""

    background: str
    probe: str
    switch_interval: float
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    verdict: str = ""
    reason: str = ""
    # Added fields.
    baseline_p50_ms: float | None = None  # the `none` row of the same probe and interval
    baseline_p99_ms: float | None = None
    ratio: float | None = None            # p50 / baseline p50
    call_ms: float | None = None          # median length of one background call
    noise: float | None = None            # share of the machine other processes took
    where: str | None = None              # where the background work ran (WHERES)
    throughput: float | None = None       # the background's kernel iterations per second
    throughput_share: float | None = None  # throughput / the kernel's rate alone

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def summarize(reading: Reading) -> Row:
    """p50, p99 and max of a reading, in ms. p99 is a nearest-rank percentile: a
    latency that was measured, never an interpolation between two."""
    ms = sorted(x * 1000 for x in reading.latencies_s)
    return Row(reading.background, reading.probe, reading.switch_interval, len(ms),
               round(stats.median(ms), 4), round(stats.percentile(ms, 0.99, "nearest"), 4),
               round(ms[-1], 4),
               call_ms=None if reading.call_s is None else round(reading.call_s * 1000, 2),
               noise=None if reading.noise is None else round(min(1.0, reading.noise), 3),
               where=reading.where,
               throughput=None if reading.rate is None else round(reading.rate, 1),
               throughput_share=(round(reading.rate / reading.solo_rate, 3)
                                 if reading.rate is not None and reading.solo_rate else None))


def to_document(rows, env: dict, settings: dict) -> dict:
    """The JSON document ``convoy --json`` writes (schema gillab/convoy/1)."""
    return {"schema": SCHEMA, "env": env, "settings": settings,
            "rows": [r.to_dict() for r in rows]}


# How the rows' figures are spelled, in reasons and tables alike.


def ms_text(value: float) -> str:
    if value < 1:
        return f"{value:.3f}"
    return f"{value:.2f}" if value < 100 else f"{value:.1f}"


def interval_text(seconds: float) -> str:
    return f"{seconds * 1000:g} ms"
