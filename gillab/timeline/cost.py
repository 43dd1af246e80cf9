"""What the sampler costs the program it watches: the same lab child watched and not,
interleaved (scripts/timeline_cost.py prints it; docs/timeline.md quotes it).
A measuring module: it reads the child's own clocks; it never prints."""
from __future__ import annotations

import subprocess

from gillab import stats
from gillab.timeline.measure import _kill, _read_json_line, _start, lab_child_argv, watch_lab_child

__all__ = ["run_unwatched", "sampler_cost"]


def run_unwatched(argv: list[str]) -> dict:
    """The same lab child with nobody sampling it: the baseline of the sampler's cost."""
    proc = _start(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = _read_json_line(proc, "ready")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        truth = _read_json_line(proc, "truth")
        proc.wait(timeout=10)
    finally:
        _kill(proc)
    return {**ready, **truth}


def sampler_cost(kernel: str, workers: int, seconds: float, pairs: int, period_ns: int,
                 n: int | None = None, steady: int = 0) -> dict:
    """Wall time of the child's work (go to done), watched and not, interleaved
    ``pairs`` times (the order alternates); medians and the relative slowdown."""
    argv = lab_child_argv(kernel, "threads", workers, seconds, None, False)
    if n is None:
        n = run_unwatched(argv)["n"]
    argv += ["--n", str(n)]
    walls = {"watched": [], "unwatched": []}
    shares = []
    for i in range(pairs):
        for mode in (("watched", "unwatched") if i % 2 == 0 else ("unwatched", "watched")):
            if mode == "watched":
                rec = watch_lab_child(argv, period_ns, steady=steady)
                child = rec.child
                span = (rec.t_end_ns - rec.t_start_ns) / 1e9
                shares.append(rec.sampler_cpu_s / span)
            else:
                child = run_unwatched(argv)
            walls[mode].append((child["t_done_ns"] - child["t_go_ns"]) / 1e6)
    watched, unwatched = stats.median(walls["watched"]), stats.median(walls["unwatched"])
    return {"kernel": kernel, "workers": workers, "n": n, "pairs": pairs,
            "watched_ms": watched, "unwatched_ms": unwatched,
            "slowdown": watched / unwatched - 1, "sampler_core_share": stats.median(shares),
            "watched_all_ms": walls["watched"], "unwatched_all_ms": walls["unwatched"]}
