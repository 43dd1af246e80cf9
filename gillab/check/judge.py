"""The verdict of `gillab check`: a pure function of a CheckResult's figures. No clocks.

Two kinds of evidence, and they must agree (issue 12: the CPU evidence leads):

- the GIL probe beside one thread running the call alone: the share of the call's
  time the GIL was free (``released_share``);
- the threads' own clocks and the CPU: cores used by k threads, each task's GIL wait
  (blocked off-CPU from the start signal, beyond what the call blocks alone, with
  the OS queue taken out), and speedup, which is believed only as far as the cores
  account for it.

The thresholds and the measurements behind them are in docs/check.md.
"""
from __future__ import annotations

import dataclasses

from gillab.check.record import CheckResult
# Other processes took more than this share of the machine: cores used cannot be trusted.
from gillab.measure.noise import NOISE_LIMIT

__all__ = ["judge", "find_threshold", "RELEASES_AT", "HOLDS_AT", "WAITS_BELOW",
           "NOISE_LIMIT", "VERDICTS", "PRACTICAL"]

#: GIL free for at least this share of the call: "releases the GIL". Measured: calls
#: that release read 0.95-1.00, calls that hold read 0.00-0.10 (docs/check.md).
RELEASES_AT = 0.75
#: GIL free for at most this share: "holds the GIL". Between the two: part of the call.
HOLDS_AT = 0.25
#: The lone thread on a CPU less than this share of the call (OS queue taken out): "waits".
WAITS_BELOW = 0.5
#: Threads help when the gain the cores can account for, min(speedup, cores used),
#: reaches this share of the way from 1 to the ideal (1.5 on 2 CPUs).
SCALES_SHARE = 0.5
#: At most this share of the way from 1 to the ideal (1.25 on 2 CPUs): "about one core".
FLAT_SHARE = 0.25
#: GIL wait of k threads that take turns is 1 - 1/k; at half of that they clearly did.
TURNS_SHARE = 0.5
#: GIL wait at most this: the threads did not wait for each other.
FREE_WAIT = 0.15
#: On a busy machine a thread woken to take the GIL then queues for a CPU, and that
#: time is the OS's, so turns read lower: holders measured 0.14-0.31 there, calls that
#: release 0.00-0.01 (docs/check.md). Above this, the threads clearly blocked.
NOISY_TURNS = 0.08

VERDICTS = ("releases the GIL", "holds the GIL", "releases it for part of the call",
            "waits", "waits, holding the GIL", "failed")
PRACTICAL = ("threads help", "use processes", "threads help only for waits")


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%"


def _ideal(workers: int, cpus: int | None) -> int:
    return max(1, min(workers, cpus or workers))


def judge(result: CheckResult) -> CheckResult:
    """The same record with ``verdict``, ``practical``, ``reason`` and ``releases_gil`` set."""
    if result.error is not None:
        return dataclasses.replace(result, verdict="failed", practical="", releases_gil=None,
                                   reason=result.error)
    share, on_cpu, w = result.released_share, result.on_cpu, result.largest_threads()
    if share is None or on_cpu is None or w is None:
        return dataclasses.replace(
            result, verdict="unknown", practical="", releases_gil=None,
            reason="no GIL probe reading or no thread run: nothing to judge")
    k = w.workers
    ideal = _ideal(k, result.cpus)
    cores = w.cores_used or 0.0
    speedup = w.speedup or 0.0
    gil_wait = w.gil_wait if w.gil_wait is not None else 0.0
    gain = min(speedup, cores)
    scales = ideal > 1 and gain >= 1 + SCALES_SHARE * (ideal - 1)
    flat = cores <= 1 + FLAT_SHARE * (ideal - 1)
    took_turns = gil_wait >= (NOISY_TURNS if result.noisy else TURNS_SHARE * (1 - 1 / k))
    no_wait = gil_wait <= FREE_WAIT
    figures = (f"GIL free {_pct(share)} of the call; {k} threads: {speedup:.2f}x, "
               f"{cores:.2f} cores used, GIL wait {gil_wait:.2f}")
    notes = []
    if speedup > cores * 1.15 + 0.1 and on_cpu >= WAITS_BELOW and not result.noisy:
        notes.append(f"a {speedup:.2f}x speedup on {cores:.2f} cores is a slow baseline, "
                     "not parallelism: the cores lead")
    if result.noisy:
        notes.append(f"machine busy (other processes took {_pct(result.noise or 0)} of the "
                     "CPUs): cores used is not conclusive, the GIL wait is")
    if result.answers == "differ":
        notes.append(f"answers differed between threads ({result.answers_detail}): "
                     "not thread-safe")

    if on_cpu < WAITS_BELOW:
        waits_free = share >= 0.5
        verdict = "waits" if waits_free else "waits, holding the GIL"
        practical = "threads help only for waits" if waits_free else "use processes"
        reason = (f"on a CPU {_pct(on_cpu)} of the call alone (IO or sleep); GIL free "
                  f"{_pct(share)}; {k} threads: {speedup:.2f}x on {cores:.2f} cores")
        releases = waits_free
        if waits_free and speedup < 0.6 * k and not result.noisy:
            notes.append(f"yet {k} threads overlapped only {speedup:.2f}x: the waits "
                         "themselves are shared (one device, one lock)")
        return _done(result, verdict, practical, releases, reason, notes)

    if share >= RELEASES_AT:
        verdict = "releases the GIL"
        if result.noisy:
            releases = True if no_wait else None
        else:
            releases = True
        if scales:
            practical, lead = "threads help", figures
        elif result.noisy and no_wait:
            practical = "threads help"
            lead = figures + " (blocked for nothing: the CPUs were taken by others)"
        else:
            practical = "use processes"
            lead = (figures + f": the GIL is free, yet {k} threads used {cores:.2f} cores: "
                    "something other than the GIL serializes the call (a lock, "
                    "memory bandwidth)") if not result.noisy else figures
            if result.noisy:
                releases = None
    elif share <= HOLDS_AT:
        verdict = "holds the GIL"
        practical = "use processes"
        lead = figures
        if scales:
            releases = None  # the probe and the cores disagree: say so, decide nothing
            lead += (f": the probe found the GIL held, yet {k} threads used {cores:.2f} "
                     "cores: the evidence disagrees")
            practical = "threads help"
        elif result.noisy:
            releases = False if took_turns else None
        else:
            releases = False if (flat or took_turns) else None
            if releases is None:
                lead += ": the probe found the GIL held, but the threads did not take turns"
    else:
        verdict = f"releases it for part of the call ({_pct(share)})"
        most = 1 / max(1e-9, 1 - share)
        lead = figures + f"; with {_pct(1 - share)} under the GIL, at most {most:.1f} cores"
        practical = "threads help" if scales else "use processes"
        releases = (share >= 0.5) if not result.noisy else None
    return _done(result, verdict, practical, releases, lead, notes)


def _done(result, verdict, practical, releases, reason, notes) -> CheckResult:
    if result.noisy and releases is None:
        notes = notes + ["too busy to tell"]
    text = "; ".join([reason, *notes])
    return dataclasses.replace(result, verdict=verdict, practical=practical,
                               releases_gil=releases, reason=text)


def _word(row: CheckResult) -> str:
    # "releases it for part of the call (40%)" and "(60%)" are one verdict for a sweep.
    return row.verdict.split(" (")[0]


def find_threshold(name: str, rows) -> str:
    """Where a sweep's verdict changes: "between n=1024 (holds ...) and n=4096 (...)"."""
    changes = []
    for before, after in zip(rows, rows[1:]):
        if _word(before) != _word(after):
            changes.append(f"between {name}={before.params[name]!r} ({before.verdict}) and "
                           f"{name}={after.params[name]!r} ({after.verdict})")
    if not changes:
        return f"the verdict does not change over these values of {name}"
    return "the verdict changes " + "; and ".join(changes)
