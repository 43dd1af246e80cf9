"""The only module that reads clocks and CPU counters. It returns plain data; it never prints."""
from __future__ import annotations

import math
import time

from gillab import kernels

__all__ = ["time_call", "calibrate_n", "ns_per_iter"]


def time_call(func, *args) -> tuple[float, object]:
    """Wall seconds of one call, and what it returned."""
    t0 = time.perf_counter()
    result = func(*args)
    return time.perf_counter() - t0, result


def calibrate_n(kernel: kernels.Kernel, target_s: float, p: int = kernels.DEFAULT_P,
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


def ns_per_iter(kernel: kernels.Kernel, n: int, p: int = kernels.DEFAULT_P,
                repeat: int = 3) -> float:
    """Best-of-``repeat`` nanoseconds per loop iteration at size n."""
    best = min(time_call(kernel, n, p)[0] for _ in range(repeat))
    return best / max(n, 1) * 1e9


def calibrate_kernels(target_s: float = 0.2, p: int = kernels.DEFAULT_P) -> dict[str, dict]:
    """ns per iteration for each CPU kernel and the plain C loop, at a size that takes ~target_s.

    Returns {name: {"n": n, "ns_per_iter": ns, "vs_c": ratio}}; "c_reference" is the C loop.
    """
    from gillab import _kernels

    c_loop = kernels.Kernel("c_reference", _kernels.c_reference, True, "plain C loop")
    n_c = calibrate_n(c_loop, target_s, p)
    c_ns = ns_per_iter(c_loop, n_c, p)
    out = {"c_reference": {"n": n_c, "ns_per_iter": c_ns, "vs_c": 1.0}}
    for name in kernels.CPU_KERNELS:
        kernel = kernels.get(name)
        n = calibrate_n(kernel, target_s, p)
        ns = ns_per_iter(kernel, n, p)
        out[name] = {"n": n, "ns_per_iter": ns, "vs_c": ns / c_ns}
    return out
