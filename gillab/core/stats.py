"""The one statistics helper: median, minimum, spread and percentiles of plain numbers.

Every figure gillab reports that summarises several measurements goes through
here, so one column always means one statistic. Pure functions, no clocks.
"""
from __future__ import annotations

import math
import statistics

__all__ = ["median", "minimum", "mean", "percentile", "spread", "summary"]


def _values(values) -> list[float]:
    out = [float(v) for v in values if v is not None]
    if not out:
        raise ValueError("no values to summarise")
    return out


def median(values) -> float:
    """The middle value (mean of the two middle ones for an even count); Nones skipped."""
    return statistics.median(_values(values))


def minimum(values) -> float:
    """The smallest value; Nones skipped. For costs, where noise only ever adds."""
    return min(_values(values))


def mean(values) -> float:
    return statistics.fmean(_values(values))


def percentile(values, q: float, method: str = "linear") -> float:
    """The q-th quantile (0 <= q <= 1) of the values.

    ``linear`` interpolates between the two sorted values around it; ``nearest`` takes
    the nearest rank, a value that was measured (a latency tail no operation had would
    be invented otherwise).
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be between 0 and 1, got {q}")
    if method not in ("linear", "nearest"):
        raise ValueError(f"method must be 'linear' or 'nearest', got {method!r}")
    ordered = sorted(_values(values))
    if method == "nearest":
        # round(): q * n = 99.00000000000001 must still mean rank 99, not 100.
        return ordered[max(0, math.ceil(round(q * len(ordered), 9)) - 1)]
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def spread(values) -> float:
    """Relative spread: (max - min) / median, 0 for one value. 0.10 means the runs
    differ by 10% of their typical value: a verdict within that of a boundary is unsure."""
    vals = _values(values)
    mid = statistics.median(vals)
    if len(vals) < 2 or mid == 0:
        return 0.0
    return (max(vals) - min(vals)) / abs(mid)


def summary(values) -> dict:
    """{"median", "min", "max", "spread", "n"} of the values."""
    vals = _values(values)
    return {"median": median(vals), "min": min(vals), "max": max(vals),
            "spread": spread(vals), "n": len(vals)}
