"""What the timeline's sampler costs the program it watches (issue 14's goal: <= 5 %).

    python scripts/timeline_cost.py [--rounds 15] [--seconds 0.15] [--workers 2,4,8]

For each kernel and thread count, the child's work (go to done) is timed unwatched,
watched at the default (0.5 ms, stepping 1 ms while no thread changes state) and
watched at a fixed 0.5 ms (--fixed-period), in rotating order; medians, the slowdown
against unwatched, and the sampler's share of one core. Quote `cat /proc/loadavg` with
the figures: on a busy machine the noise is larger than the cost.
"""
from __future__ import annotations

import argparse
import sys

from gillab.timeline.cost import sampler_cost


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=0.15)
    parser.add_argument("--workers", default="2,4,8")
    parser.add_argument("--kernels", default="cy_nogil,py")
    parser.add_argument("--period-ms", type=float, default=0.5)
    args = parser.parse_args()
    with open("/proc/loadavg") as f:
        print(f"loadavg before: {f.read().strip()}")
    print(f"{'kernel':9} {'threads':>7} {'unwatched':>10} | {'default':>8} {'sampler':>8} | "
          f"{'fixed':>8} {'sampler':>8}")
    for kernel in args.kernels.split(","):
        n = None
        for workers in (int(w) for w in args.workers.split(",")):
            row = sampler_cost(kernel, workers, args.seconds, args.rounds,
                               int(args.period_ms * 1e6), n)
            n = row["n"]  # the same task size at every thread count
            d, f = row["default"], row["fixed"]
            print(f"{kernel:9} {workers:>7} {row['unwatched_ms']:>8.0f}ms | "
                  f"{d['slowdown']:>+8.1%} {d['sampler_core_share']:>8.1%} | "
                  f"{f['slowdown']:>+8.1%} {f['sampler_core_share']:>8.1%}", flush=True)
    with open("/proc/loadavg") as f:
        print(f"loadavg after: {f.read().strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
