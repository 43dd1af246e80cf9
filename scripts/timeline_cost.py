"""What the timeline's sampler costs the program it watches (issue 14's goal: <= 5 %).

    python scripts/timeline_cost.py [--pairs 5] [--seconds 0.15] [--workers 2,4,8]
                                    [--period-ms 0.5] [--fixed-period]

For each kernel and thread count: the child's work (go to done) timed watched and
unwatched, interleaved; medians, the slowdown, and the sampler's share of one core.
Quote `cat /proc/loadavg` with the figures: on a busy machine the noise is larger than
the cost.
"""
from __future__ import annotations

import argparse
import sys

from gillab.timeline.cost import sampler_cost
from gillab.timeline.measure import steady_ns


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.15)
    parser.add_argument("--workers", default="2,4,8")
    parser.add_argument("--kernels", default="py,cy_nogil")
    parser.add_argument("--period-ms", type=float, default=0.5)
    parser.add_argument("--fixed-period", action="store_true",
                        help="as gillab timeline --fixed-period: no steady step")
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        print(f"loadavg before: {f.read().strip()}")
    print(f"{'kernel':9} {'threads':>7} {'unwatched':>10} {'watched':>10} {'slowdown':>9} "
          f"{'sampler':>8}")
    for kernel in args.kernels.split(","):
        n = None
        for workers in (int(w) for w in args.workers.split(",")):
            period_ns = int(args.period_ms * 1e6)
            row = sampler_cost(kernel, workers, args.seconds, args.pairs, period_ns, n,
                               steady_ns(period_ns, args.fixed_period))
            n = row["n"]  # the same task size at every thread count
            print(f"{kernel:9} {workers:>7} {row['unwatched_ms']:>8.0f}ms "
                  f"{row['watched_ms']:>8.0f}ms "
                  f"{row['slowdown']:>+9.1%} {row['sampler_core_share']:>8.1%}", flush=True)
    with open("/proc/loadavg") as f:
        print(f"loadavg after: {f.read().strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
