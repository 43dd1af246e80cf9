"""A thread's wake-ups, grouped by what else could hold the GIL when it woke (phases),
and whether it is an event loop (its blocking mostly in epoll/select/poll): facts the
record holds and the reading words. Never measures."""
from __future__ import annotations

from dataclasses import dataclass

from gillab.core import stats
from gillab.timeline.gilmap import CPU, GIL_WAIT, IO, LOCK_WAIT, QUEUED, SHORT

__all__ = ["WakePhase", "wake_to_run", "add_wake_phases", "blocks_in_poll"]


@dataclass(frozen=True)
class WakePhase:
    """A sleeper's wake-ups during one phase of the run: those at which another
    thread (``beside``) held or wanted a CPU, or those at which none did (``beside``
    None). The wake-to-run of a 1 ms ticker is the switch interval beside a CPU-bound
    thread and next to nothing once it has finished: one median over both says neither."""

    beside_tid: int | None
    beside: str | None         # that thread's name
    wakeups: int
    median_wake_to_run_ms: float
    first_wake_ms: float       # from the start of the window
    last_wake_ms: float


def wake_to_run(intervals) -> list[tuple[int, float]]:
    """(woke_ns, ms) after each IO/sleep ends: the time until the thread runs with the
    GIL (the end of the GIL wait that follows it, or its first CPU time if it did not
    wait)."""
    out = []
    for i, iv in enumerate(intervals):
        if iv.state != IO or i + 1 >= len(intervals):
            continue
        woke, ran, gil_end = iv.end_ns, None, None
        for nxt in intervals[i + 1:]:
            if nxt.state in (IO, LOCK_WAIT):
                break
            if nxt.state == GIL_WAIT:
                gil_end = nxt.end_ns
            elif nxt.state == CPU and ran is None:
                ran = nxt.start_ns
        if gil_end is not None:
            out.append((woke, (gil_end - woke) / 1e6))
        elif ran is not None:
            out.append((woke, (ran - woke) / 1e6))
    return out


#: A thread in these states holds a CPU or wants one: on it, queued for it, or in a
#: block shorter than a sample. A GIL waiter or a sleeper holds nothing against anyone.
RUNNABLE = (CPU, QUEUED, SHORT)


def _runnable_at(lines):
    """at(t_ns, tid): the thread other than ``tid`` that was runnable at t_ns (one on
    a CPU first, then one queued), or None."""
    import bisect

    index = [(th, [iv.start_ns for iv in th.intervals]) for th in lines]

    def at(t: int, tid: int):
        found = None
        for th, starts in index:
            k = bisect.bisect_right(starts, t) - 1
            if th.tid == tid or k < 0:
                continue
            iv = th.intervals[k]
            if iv.end_ns > t and iv.state in RUNNABLE:
                if iv.state == CPU:
                    return th
                found = found or th
        return found
    return at


def add_wake_phases(lines, t0_ns: int) -> None:
    """Split each thread's wake-ups by the thread that was runnable when it woke (the
    one that could hold the GIL against it), or none: ThreadLine.phases."""
    at = _runnable_at(lines)
    for th in lines:
        groups: dict = {}
        for woke, ms in wake_to_run(th.intervals):
            other = at(woke, th.tid)
            groups.setdefault(None if other is None else (other.tid, other.name),
                              []).append((woke, ms))
        th.phases = sorted((WakePhase(
            key[0] if key else None, key[1] if key else None, len(wakes),
            stats.median([ms for _, ms in wakes]), (wakes[0][0] - t0_ns) / 1e6,
            (wakes[-1][0] - t0_ns) / 1e6) for key, wakes in groups.items()),
            key=lambda p: p.first_wake_ms)


#: An event loop's thread spends at least this share of its blocked time (apart from
#: futex waits: those are waits for other threads, the GIL's among them) in
#: epoll_wait/select/poll, and at least MIN_POLL_SHARE of the run there.
EVENT_LOOP_SHARE = 0.5
MIN_POLL_SHARE = 0.05


def blocks_in_poll(samples, poll_nrs: frozenset, futex_nrs: frozenset) -> bool:
    """Is a thread (its raw samples) an event loop's? Its blocking, futexes aside, is
    mostly in the syscalls an event loop waits in (gilmap.POLL_NRS)."""
    polled = other = 0
    for s0, s1 in zip(samples, samples[1:]):
        if s0[4] < 0 or s0[4] in futex_nrs:  # running, gone, outside a syscall, a futex
            continue
        if s0[4] in poll_nrs:
            polled += s1[0] - s0[0]
        else:
            other += s1[0] - s0[0]
    span = samples[-1][0] - samples[0][0] if samples else 0
    return (span > 0 and polled >= MIN_POLL_SHARE * span
            and polled >= EVENT_LOOP_SHARE * (polled + other))
