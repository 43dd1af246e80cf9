"""What the GIL probe (compare's `held` column) costs the workload it watches.

Runs one kernel call of ~0.3 s alone and beside the probe, interleaved, and prints
the change in wall time: `python scripts/probe_cost.py [KERNEL ...] [--runs N]`.
"""
import argparse
import statistics
import time

from gillab import kernels
from gillab.measure.cell import GilProbe
from gillab.measure.calibrate import calibrate_n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kernel", nargs="*",
                        help=f"kernels to run (default all: {', '.join(kernels.CPU_KERNELS)})")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    unknown = [k for k in args.kernel if k not in kernels.CPU_KERNELS]
    if unknown:
        parser.error(f"unknown kernel {unknown[0]!r}; choose from {', '.join(kernels.CPU_KERNELS)}")
    unknown = [k for k in args.kernel if k not in kernels.CPU_KERNELS]
    if unknown:
        parser.error(f"unknown kernel {unknown[0]!r}; choose from {', '.join(kernels.CPU_KERNELS)}")
    p = kernels.DEFAULT_P
    for name in args.kernel or kernels.CPU_KERNELS:
        kernel = kernels.get(name)
        n = calibrate_n(kernel, 0.3, p)
        alone, probed = [], []
        for _ in range(args.runs):  # interleaved, so drift on a shared machine hits both
            t0 = time.perf_counter()
            kernel(n, p)
            alone.append(time.perf_counter() - t0)
            with GilProbe():
                t0 = time.perf_counter()
                kernel(n, p)
                probed.append(time.perf_counter() - t0)
        a, b = statistics.median(alone), statistics.median(probed)
        print(f"{name:<9} alone {a:.4f} s  with probe {b:.4f} s  cost {100 * (b / a - 1):+.1f}%"
              f"  (median of {args.runs})")


if __name__ == "__main__":
    main()
