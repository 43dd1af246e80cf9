"""The rebuilt timeline as a record: per-thread intervals and summary figures, its
JSON (schema ``gillab/timeline/1``) and its Chrome trace-event file. Never measures."""
from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field

from gillab.core import stats
from gillab.timeline.gilmap import (CPU, FUTEX, FUTEX_WAITV_NR, GIL_WAIT, IO, LOCK_WAIT,
                                    QUEUED, SHORT, poll_syscalls)
from gillab.timeline.phases import add_wake_phases, blocks_in_poll, wake_to_run
from gillab.timeline.rebuild import Interval, rebuild

SCHEMA = "gillab/timeline/1"
#: The five shares the issue names, plus the blocks no sample saw.
SHARE_KEYS = (CPU, GIL_WAIT, LOCK_WAIT, QUEUED, IO, SHORT, FUTEX)


@dataclass
class ThreadLine:
    tid: int
    name: str
    intervals: list            # [Interval], clipped to the run's window
    shares: dict = field(default_factory=dict)
    median_run_ms: float | None = None
    median_hold_ms: float | None = None
    longest_hold_ms: float | None = None
    median_gil_wait_ms: float | None = None
    median_wake_to_run_ms: float | None = None
    runs: int = 0
    gil_waits: int = 0
    handoffs: int = 0
    wakeups: int = 0
    phases: list = field(default_factory=list)   # [WakePhase], by first wake
    event_loop: bool = False   # most of its blocking is in epoll_wait/select/poll


@dataclass
class Timeline:
    threads: list              # [ThreadLine]
    t0_ns: int                 # the window of the run: from go to the last sample
    t1_ns: int
    period_ns: int
    together_on_cpu: float
    switch_interval: float | None
    gil_note: str              # where the GIL was found, or why there is none
    free_threaded: bool
    scenario: dict             # kernel/executor/workers/convoy, or the program's argv
    truth: dict                # the lab child's own figures ({} for a program)
    sampler: dict              # rounds, achieved period, sampler CPU share
    env: dict = field(default_factory=dict)
    wchan: bool = False        # attached without the syscall file: GIL and locks look alike
    attached_note: str = ""    # what an attached (not child) run cannot tell apart

    @property
    def wall_ms(self) -> float:
        return (self.t1_ns - self.t0_ns) / 1e6

    def to_dict(self) -> dict:
        t0 = self.t0_ns
        return {
            "schema": SCHEMA,
            "env": self.env,
            "scenario": self.scenario,
            "wall_ms": round(self.wall_ms, 3),
            "period_ms": self.period_ns / 1e6,
            "switch_interval": self.switch_interval,
            "together_on_cpu": round(self.together_on_cpu, 4),
            "gil": self.gil_note,
            "free_threaded": self.free_threaded,
            "wchan_only": self.wchan,
            "sampler": self.sampler,
            "truth": self.truth,
            "threads": [{
                "tid": th.tid, "name": th.name,
                "shares": {k: round(v, 4) for k, v in th.shares.items()},
                "median_run_ms": _r(th.median_run_ms),
                "median_hold_ms": _r(th.median_hold_ms),
                "longest_hold_ms": _r(th.longest_hold_ms),
                "median_gil_wait_ms": _r(th.median_gil_wait_ms),
                "median_wake_to_run_ms": _r(th.median_wake_to_run_ms),
                "runs": th.runs, "gil_waits": th.gil_waits, "handoffs": th.handoffs,
                "wakeups": th.wakeups, "event_loop": th.event_loop,
                "phases": [{"beside_tid": p.beside_tid, "beside": p.beside,
                            "wakeups": p.wakeups,
                            "median_wake_to_run_ms": _r(p.median_wake_to_run_ms),
                            "first_wake_ms": _r(p.first_wake_ms),
                            "last_wake_ms": _r(p.last_wake_ms)} for p in th.phases],
                # [start_ms, end_ms, state], from the start of the window
                "intervals": [[round((iv.start_ns - t0) / 1e6, 4),
                               round((iv.end_ns - t0) / 1e6, 4), iv.state]
                              for iv in th.intervals],
            } for th in self.threads],
        }

    def to_trace(self) -> dict:
        """Chrome trace-event JSON (Perfetto, chrome://tracing): one track per thread."""
        events = [{"name": "process_name", "ph": "M", "pid": 1, "tid": 0,
                   "args": {"name": "gillab timeline: " + _scenario_label(self.scenario)}}]
        for order, th in enumerate(self.threads):
            events.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": th.tid,
                           "args": {"name": f"{th.name} ({th.tid})"}})
            events.append({"name": "thread_sort_index", "ph": "M", "pid": 1, "tid": th.tid,
                           "args": {"sort_index": order}})
            for iv in th.intervals:
                events.append({"name": TRACE_NAMES[iv.state], "cat": iv.state, "ph": "X",
                               "pid": 1, "tid": th.tid,
                               "ts": round((iv.start_ns - self.t0_ns) / 1e3, 3),
                               "dur": round((iv.end_ns - iv.start_ns) / 1e3, 3)})
        return {"traceEvents": events, "displayTimeUnit": "ms",
                "otherData": {"schema": SCHEMA, "gil": self.gil_note}}


TRACE_NAMES = {CPU: "on CPU", GIL_WAIT: "GIL wait", LOCK_WAIT: "lock wait",
               QUEUED: "queued by the OS", IO: "IO / sleep", SHORT: "short block",
               FUTEX: "futex wait (GIL or lock)"}


def _r(value):
    return None if value is None else round(value, 3)


def _scenario_label(scenario: dict) -> str:
    if "argv" in scenario:
        return " ".join(scenario["argv"])
    if scenario.get("executor") == "convoy":
        return f"convoy beside {scenario.get('kernel')}"
    return f"{scenario.get('kernel')} x {scenario.get('workers')} on {scenario.get('executor')}"


def clip(intervals, t0: int, t1: int) -> list[Interval]:
    out = []
    for iv in intervals:
        start, end = max(iv.start_ns, t0), min(iv.end_ns, t1)
        if end > start:
            out.append(Interval(start, end, iv.state))
    return out


#: A runnable span between two GIL waits with less CPU than this is the waiter checking
#: (its timed wait ran out, it asked for the GIL and waits again), not a hold: it
#: belongs to the wait. A real hold at a 1 ms switch interval has ~10x more.
CHECK_NS = 100_000
#: In a VM a check can take a few hundred microseconds of CPU (the wake-up alone costs
#: tens). Up to this much it is still a check when another thread stayed runnable, and
#: never waited for the GIL, from before it to after it: that thread kept the GIL.
CHECK_KEPT_NS = 1_000_000


def kept_by_another(others):
    """kept(start, end): did one of ``others`` (interval lists) stay runnable (on CPU,
    queued, short blocks) from ``start`` to ``end``, never waiting or blocked?"""
    import bisect

    lists = [(list(ivs), [iv.start_ns for iv in ivs]) for ivs in others if ivs]

    def kept(start: int, end: int) -> bool:
        for ivs, starts in lists:
            k = bisect.bisect_right(starts, start) - 1
            if k < 0:
                continue
            t = start
            while k < len(ivs) and ivs[k].start_ns <= t < end:
                if ivs[k].state not in (CPU, QUEUED, SHORT) or ivs[k].end_ns <= t:
                    break
                t = ivs[k].end_ns
                k += 1
            if t >= end:
                return True
        return False
    return kept


def _spans(intervals, kept=None) -> list[tuple[str, list]]:
    """Group intervals: ('run', [...]) for runnable stretches (on CPU, queued, short
    blocks), and one ('gil'|'lock'|'io', [iv]) per blocked interval; a waiter's
    check between two GIL waits is folded into one ('gil', [...]). ``kept(start,
    end)`` says whether another thread kept the GIL throughout (kept_by_another)."""
    groups: list = []
    for iv in intervals:
        kind = "run" if iv.state in (CPU, QUEUED, SHORT) else iv.state
        if groups and groups[-1][0] == kind == "run":
            groups[-1][1].append(iv)
        else:
            groups.append((kind, [iv]))
    out: list = []
    for i, (kind, ivs) in enumerate(groups):
        check = False
        if (kind == "run" and 0 < i < len(groups) - 1 and groups[i - 1][0] == GIL_WAIT
                and groups[i + 1][0] == GIL_WAIT):
            cpu = sum(v.end_ns - v.start_ns for v in ivs if v.state == CPU)
            check = cpu < CHECK_NS or (cpu < CHECK_KEPT_NS and kept is not None
                                       and kept(ivs[0].start_ns, ivs[-1].end_ns))
        if (check or kind == GIL_WAIT) and out and out[-1][0] == GIL_WAIT:
            out[-1][1].extend(ivs)
        else:
            out.append((GIL_WAIT if check else kind, list(ivs)))
    return out


#: Gaps in a run shorter than this (half the default sampling period, below what the
#: samples can place) do not break it: on a busy core the sampler itself preempts the
#: thread for tens of microseconds at each sample, and in a VM the counters leave out
#: the time the hypervisor stole from the virtual CPU.
RUN_GAP_NS = 250_000


def _runs(cpu_pieces) -> list[float]:
    """Uninterrupted on-CPU runs (ms) of one runnable stretch."""
    out, start, end = [], None, None
    for v in cpu_pieces:
        if start is not None and v.start_ns - end < RUN_GAP_NS:
            end = v.end_ns
            continue
        if start is not None:
            out.append((end - start) / 1e6)
        start, end = v.start_ns, v.end_ns
    if start is not None:
        out.append((end - start) / 1e6)
    return out


def summarize_thread(tid: int, name: str, intervals, kept=None) -> ThreadLine:
    """Shares, runs, holds, GIL waits, hand-offs and wake-to-run of one thread.
    ``kept``: kept_by_another(the other threads' intervals), to tell checks apart."""
    line = ThreadLine(tid, name, list(intervals))
    total = sum(iv.end_ns - iv.start_ns for iv in intervals)
    line.shares = {k: (sum(iv.end_ns - iv.start_ns for iv in intervals if iv.state == k) / total
                       if total else 0.0) for k in SHARE_KEYS}
    spans = _spans(list(intervals), kept)
    runs, holds, waits = [], [], []
    for i, (kind, ivs) in enumerate(spans):
        if kind == GIL_WAIT:
            waits.append((ivs[-1].end_ns - ivs[0].start_ns) / 1e6)
        elif kind == "run":
            cpu = [v for v in ivs if v.state == CPU]
            runs += _runs(cpu)
            if cpu:
                holds.append((cpu[-1].end_ns - cpu[0].start_ns) / 1e6)
                line.handoffs += i > 0 and spans[i - 1][0] == GIL_WAIT
    line.runs, line.gil_waits = len(runs), len(waits)
    if runs:
        line.median_run_ms = stats.median(runs)
    if holds:
        line.median_hold_ms = stats.median(holds)
        line.longest_hold_ms = max(holds)
    if waits:
        line.median_gil_wait_ms = stats.median(waits)
    wakes = wake_to_run(intervals)
    line.wakeups = len(wakes)
    if wakes:
        line.median_wake_to_run_ms = stats.median([ms for _, ms in wakes])
    return line


#: The states in which a thread has work for a CPU: on one, queued for one, or waiting
#: for the GIL to run (and a wchan futex, which may be the GIL). Not IO or sleep, and
#: not another lock: a main thread in join() has nothing to run.
WORKING = (CPU, QUEUED, SHORT, GIL_WAIT, FUTEX)


def together(lines, t0: int, t1: int) -> float:
    """Of the time two or more threads had work (WORKING), the share during which two
    or more were on a CPU at once. Time when only one thread is left (the other
    finished first, sleeps, or waits in join()) says nothing about the GIL and does
    not count; a GIL wait does."""
    events = []
    for th in lines:
        for iv in th.intervals:
            start, end = max(iv.start_ns, t0), min(iv.end_ns, t1)
            if end <= start or iv.state not in WORKING:
                continue
            on = iv.state == CPU
            events += [(start, 1, on), (end, -1, on)]
    events.sort(key=lambda e: (e[0], e[1]))
    both = busy = 0
    depth = on_cpu = 0
    last = None
    for t, step, on in events:
        if last is not None and depth >= 2:
            busy += t - last
            if on_cpu >= 2:
                both += t - last
        depth += step
        on_cpu += step if on else 0
        last = t
    return both / busy if busy else 0.0


def build(recording, scenario: dict) -> Timeline:
    """Rebuild every thread of a Recording and summarize the run."""
    classify = recording.gil.classify
    t0, t1 = recording.t_go_ns, recording.t_end_ns
    rebuilt = {tid: clip(rebuild(stream.samples, classify, recording.period_ns), t0, t1)
               for tid, stream in recording.threads.items()}
    lines = []
    poll_nrs = poll_syscalls()
    futex_nrs = frozenset({recording.gil.futex_nr, FUTEX_WAITV_NR})
    for tid, stream in recording.threads.items():
        others = kept_by_another(ivs for other, ivs in rebuilt.items() if other != tid)
        line = summarize_thread(tid, stream.name, rebuilt[tid], others)
        # wchan mode has no syscall numbers: no thread can be told an event loop's.
        line.event_loop = (not recording.wchan
                           and blocks_in_poll(stream.samples, poll_nrs, futex_nrs))
        lines.append(line)
    add_wake_phases(lines, t0)
    child = recording.child
    span = max(1, recording.t_end_ns - recording.t_start_ns)
    sampler = {"rounds": recording.rounds,
               "achieved_period_ms": round(span / max(1, recording.rounds - 1) / 1e6, 4),
               "cpu_s": round(recording.sampler_cpu_s, 4),
               "cpu_share_of_a_core": round(recording.sampler_cpu_s / (span / 1e9), 4),
               "steady_period_ms": recording.steady_ns / 1e6 if recording.steady_ns else None}
    return Timeline(
        threads=lines, t0_ns=t0, t1_ns=t1, period_ns=recording.period_ns,
        together_on_cpu=together(lines, t0, t1),
        switch_interval=child.get("switch_interval"),
        gil_note=recording.gil.source if recording.gil.start is None
        else f"_PyRuntime in {recording.gil.source}",
        free_threaded=recording.gil.free_threaded or child.get("gil_enabled") is False,
        scenario=scenario, truth=truth_summary(child), sampler=sampler,
        env={"python": child.get("python") or platform.python_version(),
             "platform": sys.platform, "machine": platform.machine()},
        wchan=recording.wchan, attached_note=recording.attached_note)


def truth_summary(child: dict) -> dict:
    """The lab child's own figures, in the units of the timeline."""
    tasks = child.get("tasks") or []
    if not tasks:
        return {}
    out = {"tasks": []}
    for task in tasks:
        item = {"tid": task["tid"], "role": task.get("role", "task"),
                "wall_ms": round((task["t1_ns"] - task["t0_ns"]) / 1e6, 3)}
        if "cpu_ns" in task:
            item["cpu_ms"] = round(task["cpu_ns"] / 1e6, 3)
        if "gaps_ns" in task:
            # The progress-stamped loop: when it did not run, on the sampler's clock.
            item["t0_ns"], item["t1_ns"] = task["t0_ns"], task["t1_ns"]
            item["gaps_ns"] = task["gaps_ns"]
        if "late_ms" in task:
            item["sleeps"] = task["sleeps"]
            item["median_late_ms"] = (round(stats.median(task["late_ms"]), 3)
                                      if task["late_ms"] else None)
        out["tasks"].append(item)
    return out


def cpu_agreement(tl: Timeline, bucket_ns: int = 1_000_000) -> float | None:
    """Against the progress-stamped loop's own truth (workload --truth): the share of
    ``bucket_ns`` cells, over every stamped thread, in which the timeline and the
    stamps agree whether the thread was on a CPU for most of the cell. None without
    stamps."""
    by_tid = {th.tid: th for th in tl.threads}
    agree = total = 0
    for task in tl.truth.get("tasks", []):
        th = by_tid.get(task["tid"])
        if th is None or "gaps_ns" not in task:
            continue
        start, end = max(task["t0_ns"], tl.t0_ns), min(task["t1_ns"], tl.t1_ns)
        cpu = [(iv.start_ns, iv.end_ns) for iv in th.intervals if iv.state == CPU]
        gaps = [tuple(g) for g in task["gaps_ns"]]
        for b0 in range(start, end - bucket_ns + 1, bucket_ns):
            b1 = b0 + bucket_ns
            seen = _overlap(cpu, b0, b1) * 2 > bucket_ns
            ran = (bucket_ns - _overlap(gaps, b0, b1)) * 2 > bucket_ns
            agree += seen == ran
            total += 1
    return agree / total if total else None


def _overlap(spans, b0: int, b1: int) -> int:
    return sum(max(0, min(e, b1) - max(s, b0)) for s, e in spans)
