"""What the sampler costs the program it watches: the same lab child unwatched, watched
at the default (a steady step while no thread changes state) and watched at a fixed
period, interleaved (scripts/timeline_cost.py prints it; docs/timeline.md quotes it).
A measuring module: it reads the child's own clocks; it never prints."""
from __future__ import annotations

import subprocess

from gillab.core import stats
from gillab.timeline.child import kill_child, lab_child_argv, read_json_line, start_child
from gillab.timeline.measure import steady_ns, watch_lab_child

__all__ = ["run_unwatched", "sampler_cost", "MODES"]

#: The three ways one round runs the child; the order rotates from round to round.
MODES = ("unwatched", "default", "fixed")


def run_unwatched(argv: list[str]) -> dict:
    """The same lab child with nobody sampling it: the baseline of the sampler's cost."""
    proc = start_child(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = read_json_line(proc, "ready")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        truth = read_json_line(proc, "truth")
        proc.wait(timeout=10)
    finally:
        kill_child(proc)
    return {**ready, **truth}


def sampler_cost(kernel: str, workers: int, seconds: float, rounds: int, period_ns: int,
                 n: int | None = None) -> dict:
    """Wall time of the child's work (go to done) in each of MODES, ``rounds`` times,
    the order rotating; per mode the median, its slowdown against unwatched, and the
    sampler's share of one core."""
    argv = lab_child_argv(kernel, "threads", workers, seconds, None, False)
    if n is None:
        n = run_unwatched(argv)["n"]
    argv += ["--n", str(n)]
    walls: dict = {mode: [] for mode in MODES}
    shares: dict = {mode: [] for mode in MODES[1:]}
    for r in range(rounds):
        for mode in MODES[r % 3:] + MODES[:r % 3]:
            if mode == "unwatched":
                child = run_unwatched(argv)
            else:
                rec = watch_lab_child(argv, period_ns,
                                      steady=steady_ns(period_ns, fixed=mode == "fixed"))
                child = rec.child
                shares[mode].append(rec.sampler_cpu_s / ((rec.t_end_ns - rec.t_start_ns) / 1e9))
            walls[mode].append((child["t_done_ns"] - child["t_go_ns"]) / 1e6)
    base = stats.median(walls["unwatched"])
    out = {"kernel": kernel, "workers": workers, "n": n, "rounds": rounds,
           "unwatched_ms": base, "walls_ms": walls}
    for mode in MODES[1:]:
        out[mode] = {"ms": stats.median(walls[mode]),
                     "slowdown": stats.median(walls[mode]) / base - 1,
                     "sampler_core_share": stats.median(shares[mode])}
    return out
