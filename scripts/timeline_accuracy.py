"""How well the timeline's cells match what the watched threads say themselves.

    python scripts/timeline_accuracy.py [--runs 3] [--period-ms 0.5] [--fixed-period]

The lab child runs a pure-Python loop that stamps its own progress (workload --truth):
a gap longer than 0.15 ms is time the thread did not run. For each switch interval:
the share of 1 ms (and 0.5 ms) cells in which the timeline and the stamps agree whether
the thread was on a CPU, and the median on-CPU run against the stamps' own.
"""
from __future__ import annotations

import argparse
import sys

from gillab.core import stats
from gillab.timeline import child, measure, record


def stamped_runs_ms(task: dict) -> list[float]:
    """The stamps' own on-CPU runs (ms): between gaps, longer than 0.5 ms."""
    runs, start = [], task["t0_ns"]
    for a, b in task["gaps_ns"]:
        runs.append((a - start) / 1e6)
        start = b
    runs.append((task["t1_ns"] - start) / 1e6)
    return [r for r in runs if r > 0.5]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--period-ms", type=float, default=0.5)
    parser.add_argument("--fixed-period", action="store_true")
    parser.add_argument("--seconds", type=float, default=0.4)
    args = parser.parse_args()
    period = int(args.period_ms * 1e6)
    with open("/proc/loadavg") as f:
        print(f"loadavg before: {f.read().strip()}")
    print(f"{'switch':>7} {'1 ms cells':>10} {'0.5 ms cells':>12} {'median run':>11} "
          f"{'stamps':>7} {'queued':>7}")
    for si in (0.005, 0.001):
        for _ in range(args.runs):
            argv = child.lab_child_argv("py", "threads", 2, args.seconds, si, False,
                                          truth=True)
            rec = measure.watch_lab_child(argv, period,
                                          steady=measure.steady_ns(period, args.fixed_period))
            tl = record.build(rec, {"kernel": "truth", "executor": "threads", "workers": 2})
            run = stats.median([th.median_run_ms for th in tl.threads])
            truth = stats.median([stats.median(stamped_runs_ms(t)) for t in tl.truth["tasks"]])
            queued = stats.median([th.shares["queued"] for th in tl.threads])
            print(f"{si * 1e3:>5g}ms {record.cpu_agreement(tl):>10.1%} "
                  f"{record.cpu_agreement(tl, 500_000):>12.1%} {run:>9.2f}ms "
                  f"{truth:>5.2f}ms {queued:>7.1%}", flush=True)
    with open("/proc/loadavg") as f:
        print(f"loadavg after: {f.read().strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
