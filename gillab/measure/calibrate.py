"""Calibration: how large a task must be to take a given time, and single timed calls.

A measuring module (it reads clocks); it never prints. gillab.measure.clocks re-exports
these names, so callers keep one import.
"""
from __future__ import annotations

import math
import time

from gillab import kernels

__all__ = ["time_call", "autorange", "autorange_calls", "calibrate_n", "ns_per_iter", "calibrate_kernels"]


def autorange(loop, min_s: float, max_calls: int | None = None) -> tuple[int, float, object]:
    """timeit's autorange, the one in gillab: ``loop(n)`` makes n calls and returns the
    last answer; n goes 1, 2, 5, 10, 20, 50, ... until one loop takes at least ``min_s``
    (or n reaches ``max_calls``). Returns (n, seconds of that loop, its answer)."""
    calls = 1
    while True:
        for factor in (1, 2, 5):
            n = calls * factor
            t0 = time.perf_counter()
            value = loop(n)
            elapsed = time.perf_counter() - t0
            if elapsed >= min_s or (max_calls is not None and n >= max_calls):
                return n, elapsed, value
        calls *= 10


def autorange_calls(func, target_s: float, max_calls: int = 10_000_000) -> int:
    """How many calls of ``func()`` make a task of about ``target_s``: autorange up to
    a fifth of the target, then scaled."""

    def loop(n):
        for _ in range(n):
            func()

    calls, elapsed, _ = autorange(loop, target_s / 5, max_calls)
    return max(1, min(max_calls, round(calls * target_s / max(elapsed, 1e-9))))


def time_call(func, *args) -> tuple[float, object]:
    """Wall seconds of one call, and what it returned."""
    t0 = time.perf_counter()
    result = func(*args)
    return time.perf_counter() - t0, result


def calibrate_n(kernel, target_s: float, p: int = kernels.DEFAULT_P,
                n_start: int = 1000, max_rounds: int = 12) -> int:
    """Choose n so that one serial call of ``kernel`` takes about ``target_s``.

    Like pyperf's calibration: grow n until a call is long enough to time well,
    then rescale by the measured ratio. The cost's growth with n is estimated
    from the last two calls, since ``bigint`` is far from linear.
    """
    n, previous = n_start, None
    for _ in range(max_rounds):
        elapsed, _ = time_call(kernel, n, p)
        if elapsed < target_s / 20:
            previous, n = (n, elapsed), n * 10
            continue
        ratio = target_s / elapsed
        if 0.9 <= ratio <= 1.1:
            break
        exponent = 1.0
        if previous is not None and previous[0] != n and previous[1] > 0:
            exponent = math.log(elapsed / previous[1]) / math.log(n / previous[0])
            exponent = min(max(exponent, 1.0), 2.5)
        previous, n = (n, elapsed), max(1, int(n * ratio ** (1 / exponent)))
    return n


def ns_per_iter(kernel, n: int, p: int = kernels.DEFAULT_P, repeat: int = 3) -> float:
    """Best-of-``repeat`` nanoseconds per loop iteration at size n."""
    best = min(time_call(kernel, n, p)[0] for _ in range(repeat))
    return best / max(n, 1) * 1e9


def calibrate_kernels(target_s: float = 0.2, p: int = kernels.DEFAULT_P) -> dict[str, dict]:
    """ns per iteration for each CPU kernel and the plain C loop, at a size that takes ~target_s.

    Returns {name: {"n": n, "ns_per_iter": ns, "vs_c": ratio}}; "c_reference" is the C loop.
    """
    c_ns = None
    out = {}
    for name in ("c_reference", *kernels.CPU_KERNELS):
        func = kernels.reference if name == "c_reference" else kernels.get(name)
        n = calibrate_n(func, target_s, p)
        ns = ns_per_iter(func, n, p)
        c_ns = c_ns or ns
        out[name] = {"n": n, "ns_per_iter": ns, "vs_c": ns / c_ns}
    return out


