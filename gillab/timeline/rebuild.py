"""Rebuild one thread's samples into intervals of on-CPU / GIL wait / lock wait /
queued / IO-sleep time. Pure functions over sample streams: no clock, no /proc.

Why not simply take differences between samples (each rule was checked on this kind
of machine; see docs/timeline.md):

* A running thread's CPU counter moves only at a context switch or a scheduler tick,
  in lumps of a tick (4 ms at HZ=250), so per-sample deltas draw 4 ms blocks.
* A blocked thread's counter is exact (flushed when it switched out): every blocked
  sample is an exact point, and the CPU time between two exact points is known.
* ``running`` in the syscall file means runnable: on a CPU *or* queued by the OS.
* Run-queue time is credited only at the switch-in that ends it, so it is placed
  just before that switch-in, reaching backwards.
* An interval runnable at both ends with no switch-in was wholly on a CPU or queued.

A sample is ``(t_ns, cpu_ns, queue_ns, switch_ins, state, arg0)``; state is the
syscall number the thread is blocked in, -1 (blocked outside a syscall),
``RUNNING`` or ``GONE``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from gillab.timeline.gilmap import CPU, IO, QUEUED, SHORT

RUNNING = -100
GONE = -200


class Interval(NamedTuple):
    start_ns: int
    end_ns: int
    state: str


def _blocked(sample) -> bool:
    return sample[4] != RUNNING


def place_queue(samples) -> list[int]:
    """Run-queue ns per interval: each increase placed just before the switch-in that
    reported it, spilling back over earlier runnable intervals (never past a sample
    that saw the thread blocked: it was not queued before it woke)."""
    n = len(samples) - 1
    queue = [0] * n
    for k in range(n):
        need = max(0, samples[k + 1][2] - samples[k][2])
        j = k
        while need > 0 and j >= 0:
            room = samples[j + 1][0] - samples[j][0] - queue[j]
            take = min(room, need)
            queue[j] += take
            need -= take
            if _blocked(samples[j]):
                break
            j -= 1
    return queue


def place_cpu(samples, queue: list[int]) -> list[int]:
    """On-CPU ns per interval, from the counters' exact points.

    Between two blocked samples the CPU time is exact. Intervals runnable at both ends
    with no switch-in are credited in full (minus queue); what the exact total leaves
    over goes to the others (wake-up, block, hidden block) in proportion to their room.
    Before the first or after the last blocked sample the counter is only a lower bound.
    """
    n = len(samples) - 1
    cpu = [0] * n
    exact = [i for i, s in enumerate(samples) if _blocked(s)]
    bounds = sorted(set([0] + exact + [n]))
    for a, b in zip(bounds, bounds[1:]):
        counted = max(0, samples[b][1] - samples[a][1])
        solid, other = [], []
        for k in range(a, b):
            room = max(0, samples[k + 1][0] - samples[k][0] - queue[k])
            is_solid = (not _blocked(samples[k]) and not _blocked(samples[k + 1])
                        and samples[k + 1][3] == samples[k][3])
            (solid if is_solid else other).append((k, room))
        full = sum(room for _, room in solid)
        closed = _blocked(samples[a]) and _blocked(samples[b])
        total = counted if closed else max(counted, full)
        if full >= total:
            scale = total / full if full else 0.0
            for k, room in solid:
                cpu[k] = int(room * scale)
            continue
        for k, room in solid:
            cpu[k] = room
        rest = total - full
        space = sum(room for _, room in other)
        for k, room in other:
            cpu[k] = min(room, int(rest * room / space)) if space else 0
    return cpu


def rebuild(samples, classify: Callable[[int, int], str], period_ns: int) -> list[Interval]:
    """Intervals of one thread, in time order, adjacent states merged.

    ``classify(state, arg0)`` names a blocked state (GIL wait, lock wait, IO).
    A wake-up shorter than a quarter of the period that goes straight back to the same
    wait (a GIL waiter's timed-out check) is drawn as that wait; a sleeper's or an IO
    thread's wake-up is always drawn (queued, then on CPU).
    """
    samples = [s for s in samples if s[4] != GONE]
    if len(samples) < 2:
        return []
    queue = place_queue(samples)
    cpu = place_cpu(samples, queue)
    pieces: list[tuple[int, str]] = []
    for k in range(len(samples) - 1):
        s0, s1 = samples[k], samples[k + 1]
        length = s1[0] - s0[0]
        q = min(queue[k], length)
        c = min(cpu[k], length - q)
        idle = length - q - c
        switched = s1[3] != s0[3]
        b0, b1 = _blocked(s0), _blocked(s1)
        if b0 and b1:
            before, after = classify(s0[4], s0[5]), classify(s1[4], s1[5])
            # A waiter's check is part of its wait; a sleeper's wake-up is not: each
            # one is what the convoy measures (wake -> run), however short.
            if before == after and before != IO and (c + q) * 4 < period_ns:
                pieces.append((length, before))
            else:
                pieces += [(idle // 2, before), (q, QUEUED), (c, CPU), (idle - idle // 2, after)]
        elif b0:
            pieces += [(idle, classify(s0[4], s0[5])), (q, QUEUED), (c, CPU)]
        elif b1:
            if q:
                pieces += [(c // 2, CPU), (q, QUEUED), (c - c // 2, CPU)]
            else:
                pieces.append((c, CPU))
            pieces.append((idle, classify(s1[4], s1[5])))
        elif switched:
            pieces += [(c // 2, CPU), (idle, SHORT), (q, QUEUED), (c - c // 2, CPU)]
        else:
            pieces += [(c, CPU), (idle, SHORT), (q, QUEUED)]
    out: list[Interval] = []
    t = samples[0][0]
    for length, state in pieces:
        if length <= 0:
            continue
        if out and out[-1].state == state and out[-1].end_ns == t:
            out[-1] = Interval(out[-1].start_ns, t + length, state)
        else:
            out.append(Interval(t, t + length, state))
        t += length
    return out
