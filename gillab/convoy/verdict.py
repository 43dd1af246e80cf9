"""The words of ``convoy``: each row judged against the baseline with no background thread.

baseline, no convoy, tail convoy, convoy, blocked, and a reason in numbers for each;
the loop probe's rows: baseline, responsive, starved, blocked, self-blocked.
The verdict is read from the rows' figures; what each background kernel does with
the GIL comes in as a trait (``releases_gil``) from the caller, never looked up by
name here. Pure functions over gillab.convoy.records rows: no clocks, no printing.
"""
from __future__ import annotations

import dataclasses
import math

from gillab.convoy.records import LOOP_PROBE, Row, interval_text, ms_text
# Above this share of the machine taken by other processes, a row is marked noisy.
from gillab.measure.noise import NOISE_LIMIT

__all__ = ["VERDICTS", "NOISE_LIMIT", "HOLDS_WHOLE_CALL", "judge", "judge_loop", "judge_rows"]

#: The verdict words of convoy rows and what each means (the report's legend).
VERDICTS = {
    "baseline": "no background thread: the reference the other rows are held against",
    "no convoy": "p50 and p99 stay near the baseline: the IO thread did not wait for the "
                 "busy thread",
    "tail convoy": "p50 stays near the baseline but p99 does not: most operations got "
                   "the GIL back at once, the few that lost it waited a whole turn",
    "convoy": "the typical operation (p50) waits for the GIL, and a smaller switch "
              "interval shortens the wait",
    "blocked": "the typical operation (p50) waits for the GIL, and a smaller switch "
               "interval does not help: only the end of the busy thread's call frees it",
    # The loop probe's own words (its other rows are baseline or blocked).
    "responsive": "the loop's 1 ms timer fires about as late as with nothing beside it: the "
                  "work released the GIL or ran in another process",
    "starved": "the loop's timer waits for the GIL, which a thread running Python keeps "
               "until the switch interval forces it to let go: its lag is about one "
               "interval, and a smaller interval shortens it",
    "self-blocked": "the work runs inside the loop itself: every timer waits for the "
                    "callback to return (its lag is about one call), whatever the interval",
}

# Margins for a busy 2-core machine. A row is slow when its p50 exceeds 1.5x the
# baseline's + 0.5 ms (the tests' "no convoy" bound); its tail is long when p99
# exceeds 2x the baseline's + 1 ms.
P50_FACTOR, P50_SLACK_MS = 1.5, 0.5
P99_FACTOR, P99_SLACK_MS = 2.0, 1.0
# A smaller interval "helps" when it cuts the excess over the baseline at least in half.
HELPS = 0.5


def _slow(row: Row, base: Row) -> bool:
    return row.p50_ms > P50_FACTOR * base.p50_ms + P50_SLACK_MS


def _long_tail(row: Row, base: Row) -> bool:
    return row.p99_ms > P99_FACTOR * base.p99_ms + P99_SLACK_MS


def _helps(rows_by_interval: dict, bases: dict, field: str) -> bool | None:
    """Did the smallest switch interval cut the excess over the baseline in half?"""
    if len(rows_by_interval) < 2:
        return None
    lo, hi = min(rows_by_interval), max(rows_by_interval)
    excess = {iv: getattr(rows_by_interval[iv], field) - getattr(bases[iv], field)
              for iv in (lo, hi)}
    return excess[lo] < HELPS * excess[hi]


def judge(row: Row, base: Row, twins: dict, bases: dict, cpu_count: int | None = None,
          releases_gil: bool = False) -> tuple[str, str]:
    """(verdict, reason) for one row.

    ``base`` is the `none` row of the same probe and interval; ``twins`` maps each
    switch interval to this background's row for the same probe, ``bases`` each
    interval to its baseline row. The verdict is read from the numbers alone; the
    reason adds what the kernel does with the GIL (``releases_gil``: it computes
    without holding it).
    """
    if row.background == "none":
        return "baseline", (f"no background thread: p50 {ms_text(row.p50_ms)} ms, p99 "
                            f"{ms_text(row.p99_ms)} ms, the reference for this probe")
    interval = interval_text(row.switch_interval)
    others = [r for iv, r in sorted(twins.items(), reverse=True) if iv != row.switch_interval]
    call = f"{row.call_ms:.1f} ms" if row.call_ms is not None else "whole"
    ratio = row.p50_ms / base.p50_ms if base.p50_ms > 0 else float("inf")
    p50 = f"p50 {ms_text(row.p50_ms)} ms = {ratio:.1f}x the {ms_text(base.p50_ms)} ms baseline"
    p50_twins = "".join(
        f"; {ms_text(t.p50_ms)} ms at a {interval_text(t.switch_interval)} interval"
        for t in others)
    p99_twins = "".join(f"; {ms_text(t.p99_ms)} ms at {interval_text(t.switch_interval)}"
                        for t in others)
    not_gil = (f"{row.background} releases the GIL while it computes, so this wait is not "
               f"for the GIL: the OS shares {cpu_count or 'the'} CPUs with a thread that "
               "never rests" + (f" and other processes took {row.noise:.0%} of the machine"
                                if row.noise is not None and row.noise > NOISE_LIMIT else ""))
    if _slow(row, base):
        blocked = not _helps(twins, bases, "p50_ms") if len(twins) > 1 else (
            row.call_ms is not None and row.p50_ms - base.p50_ms
            > max(0.5 * row.call_ms, 3 * row.switch_interval * 1000))
        if blocked:
            why = not_gil if releases_gil else (
                f"each {call} call of {row.background} holds the GIL from start to end, "
                "and no switch interval can cut it short")
            return "blocked", f"{p50}{p50_twins}: {why}"
        why = not_gil if releases_gil else (
            "after each wait the IO thread gets the GIL back only when the switch interval "
            f"({interval}) forces the CPU thread to drop it")
        return "convoy", f"{p50}{p50_twins}: {why}"
    tail = (f"p50 {ms_text(row.p50_ms)} ms as alone ({ms_text(base.p50_ms)} ms), but p99 "
            f"{ms_text(row.p99_ms)} ms against {ms_text(base.p99_ms)} ms{p99_twins}")
    if _long_tail(row, base):
        why = not_gil if releases_gil else _tail_why(row, base, twins, bases, call)
        return "tail convoy", f"{tail}: {why}"
    if releases_gil:
        why = f"{row.background} releases the GIL while it computes: nothing to wait for"
    else:
        why = (f"a {interval} switch interval brings the GIL back before the wait shows"
               if row.switch_interval < 0.001 else
               "the busy thread seldom won the GIL from this thread's short system calls")
    return "no convoy", f"{p50}, p99 {ms_text(row.p99_ms)} ms: {why}"


#: Backgrounds whose every call holds the GIL from start to end (C code that never
#: checks the eval breaker); bytecode (py) drops it at each switch interval.
HOLDS_WHOLE_CALL = frozenset({"cy_gil"})


def _tail_why(row: Row, base: Row, twins: dict, bases: dict, call: str) -> str:
    """Why p99 is long beside a thread that holds the GIL: its call, or the interval.

    Told apart by the numbers: if the smallest interval did not shorten the tail, the
    wait is for the end of a call. A wait longer than a few of those (an echo request
    may wait up to three times) means the GIL's holder was itself off a CPU.
    """
    excess = row.p99_ms - base.p99_ms
    if _helps(twins, bases, "p99_ms") is False and row.background not in HOLDS_WHOLE_CALL:
        # Bytecode drops the GIL at every switch interval: a tail that a smaller
        # interval does not shorten was a wait for a CPU, not for the GIL.
        why = ("most operations got the GIL back at once; a smaller switch interval did "
               "not shorten the tail, so the few slow ones waited for a CPU, not the GIL" +
               (f" (other processes took {row.noise:.0%} of the machine)"
                if row.noise is not None and row.noise > NOISE_LIMIT else ""))
        return why
    if _helps(twins, bases, "p99_ms") is False:
        why = (f"most operations got the GIL back at once; the few that lost it waited for "
               f"the rest of a {call} call that holds it, whatever the interval")
        bound = 3 * row.call_ms if row.call_ms is not None else math.inf
    else:
        why = ("most operations got the GIL back at once; the few that lost it waited for "
               f"the switch interval ({interval_text(row.switch_interval)}) to bring it back")
        bound = 3 * row.switch_interval * 1000 + P99_SLACK_MS
    if excess > bound:
        why += (f"; a wait as long as {ms_text(row.p99_ms)} ms means the thread holding the "
                "GIL was itself kept off a CPU" +
                (f" (other processes took {row.noise:.0%} of the machine)"
                 if row.noise is not None and row.noise > NOISE_LIMIT else ""))
    return why


def _noise_text(row: Row) -> str:
    return (f" and other processes took {row.noise:.0%} of the machine"
            if row.noise is not None and row.noise > NOISE_LIMIT else "")


def judge_loop(row: Row, base: Row, twins: dict, bases: dict, cpu_count: int | None = None,
               releases_gil: bool = False) -> tuple[str, str]:
    """(verdict, reason) for one row of the loop probe: its p50 is the timer's lag.

    The same bound as the other probes decides whether the lag is long (``_slow``).
    A long lag is then named by where the work ran (``row.where``) and by the numbers:
    inline work blocks the loop for a call; beside a thread, a lag still far longer
    than the smallest switch interval measured is a wait for the end of a call that
    holds the GIL (``_waits_for_call``), else it is the switch interval itself. Work
    that ran in another process, or released the GIL, leaves only the CPUs to wait for.
    """
    alone = f"p99 {ms_text(row.p99_ms)} ms; {ms_text(base.p50_ms)} ms alone"
    if row.background == "none":
        return "baseline", (f"nothing beside the loop: lag p50 {ms_text(row.p50_ms)} ms, "
                            f"p99 {ms_text(row.p99_ms)} ms, the reference")
    work, interval = row.background, interval_text(row.switch_interval)
    lag = f"lag p50 {ms_text(row.p50_ms)} ms"
    if not _slow(row, base):
        why = (f"{work} ran in another process, with a GIL of its own"
               if row.where == "process" else
               f"{work} releases the GIL while it computes" if releases_gil else
               f"the {interval} switch interval hands the GIL back before the lag shows")
        share = row.throughput_share
        if row.where == "thread" and not releases_gil and share is not None and share < 0.5:
            why += (f"; but {work} ran at {share:.0%} of its speed alone: it seldom held "
                    "the GIL when the timer fired")
        return "responsive", f"{lag} ({alone}): {why}"
    call_ms = row.call_ms if row.call_ms is not None else math.nan
    if row.where == "loop":
        return "self-blocked", (
            f"{lag} = {row.p50_ms / call_ms:.1f}x the {call_ms:.1f} ms callback that runs "
            f"{work} inline ({alone}): the loop fires no timer until its own callback "
            "returns")
    if row.where == "process" or releases_gil:
        place = "ran in another process" if row.where == "process" else "releases the GIL"
        return "starved", (f"{lag} ({alone}), not for the GIL ({work} {place}): the OS "
                           f"shares {cpu_count or 'the'} CPUs with work that never rests"
                           f"{_noise_text(row)}")
    excess = row.p50_ms - base.p50_ms
    if _waits_for_call(twins, bases):
        return "blocked", (
            f"{lag} = {excess / call_ms:.1f}x the {call_ms:.1f} ms call ({alone}): {work} "
            "on a thread holds the GIL from the start of each call to its end, and no "
            "switch interval cuts it short")
    return "starved", (
        f"{lag} = {excess / (row.switch_interval * 1000):.1f}x the {interval} switch "
        f"interval ({alone}): {work} on a thread (asyncio.to_thread) keeps the GIL until "
        "the interval forces it to let go")


#: Beside a GIL-holding thread, the loop's lag at the smallest switch interval measured
#: is a wait for the end of a call when it exceeds this many intervals (+ P50_SLACK_MS)
#: and this share of a call: the interval did not bring the GIL back.
INTERVALS_BEFORE_BLOCKED, CALL_SHARE_BLOCKED = 3, 0.3


def _waits_for_call(twins: dict, bases: dict) -> bool:
    """Did the row at the smallest switch interval still wait far longer than it?"""
    smallest = min(twins)
    row, base = twins[smallest], bases[smallest]
    if row.call_ms is None:
        return False
    excess = row.p50_ms - base.p50_ms
    return excess > max(INTERVALS_BEFORE_BLOCKED * smallest * 1000 + P50_SLACK_MS,
                        CALL_SHARE_BLOCKED * row.call_ms)


def judge_rows(rows, cpu_count: int | None = None, *, releases_gil: dict) -> list[Row]:
    """Give every row its verdict, reason, baseline figures and ratio.

    ``releases_gil`` maps each background kernel to whether it computes without the
    GIL (the caller reads it from gillab.kernels: this layer imports nothing that
    runs code). Needs the `none` row of each (probe, interval); ValueError if one is
    missing, or if a background's trait is.
    """
    bases = {(r.probe, r.switch_interval): r for r in rows if r.background == "none"}
    pairs: dict = {}
    for r in rows:
        pairs.setdefault((r.background, r.where, r.probe), {})[r.switch_interval] = r
    judged = []
    for r in rows:
        base = bases.get((r.probe, r.switch_interval))
        if base is None:
            raise ValueError(f"no baseline row for {r.probe} at "
                             f"{interval_text(r.switch_interval)}")
        twins = pairs[(r.background, r.where, r.probe)]
        probe_bases = {iv: bases[(r.probe, iv)] for iv in twins}
        if r.background != "none" and r.background not in releases_gil:
            raise ValueError(f"releases_gil does not say whether {r.background} releases "
                             "the GIL")
        judge_row = judge_loop if r.probe == LOOP_PROBE else judge
        verdict, reason = judge_row(r, base, twins, probe_bases, cpu_count,
                                    releases_gil.get(r.background, False))
        ratio = round(r.p50_ms / base.p50_ms, 2) if base.p50_ms > 0 else None
        judged.append(dataclasses.replace(
            r, verdict=verdict, reason=reason, baseline_p50_ms=base.p50_ms,
            baseline_p99_ms=base.p99_ms, ratio=ratio))
    return judged
