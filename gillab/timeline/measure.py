"""The timeline's measuring layer: start the child, sample its threads, collect.

The only module of the timeline that reads clocks and counters. It never prints and
draws no conclusion: it hands back raw per-thread sample streams (``Recording``), which
``gillab.timeline.rebuild`` turns into intervals.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from typing import NamedTuple

from gillab.core.errors import UserError
from gillab.timeline.child import kill_child, read_json_line, start_child
from gillab.timeline.gilmap import GilMap, find_gil, gil_of_process

class Sample(NamedTuple):
    """One sample of one thread (a tuple: gillab.timeline.rebuild reads it by position,
    in loops over every sample)."""

    t_ns: int          # CLOCK_MONOTONIC when it was read
    cpu_ns: int        # the thread's CPU time so far (schedstat)
    queue_ns: int      # its time runnable but queued for a CPU so far
    switch_ins: int    # times it was switched in so far
    state: int         # the syscall number it waits in, STATE_RUNNING or STATE_GONE
    arg0: int          # that syscall's first argument (a futex's address)

STATE_RUNNING = -100
STATE_GONE = -200
#: Chunks of native sampling between which Python runs: Ctrl-C lands here, and new
#: threads of a program that is not the lab's are picked up.
CHUNK_NS = 50_000_000
#: Sampling before the lab child is told to go: every thread parked, counters exact.
LEAD_IN_NS = 20_000_000
#: A watched program's memory map is read every chunk for its first chunks (10 ms
#: each), then every MAPS_LATE_EVERY chunks; the GIL is looked up in it after the run.
MAPS_EARLY_CHUNKS = 50
MAPS_LATE_EVERY = 50
#: While every thread stays put (runs on, or waits on), the sampler steps this many
#: periods instead of one (ext/_sampler.pyx: FAST_HOLD after any change, it is back).
STEADY_PERIODS = 2


def steady_ns(period_ns: int, fixed: bool = False) -> int:
    """The sampler's step while nothing changes: 0 (never slower) with ``fixed``."""
    return 0 if fixed else STEADY_PERIODS * period_ns


def _sampler():
    try:
        from gillab import _sampler
    except ImportError:
        if not sys.platform.startswith("linux"):  # setup.py builds it on Linux only
            raise UserError(f"the timeline reads /proc and works on Linux only (this is "
                            f"{sys.platform})") from None
        raise UserError("gillab._sampler is not built: run pip install -e . in the "
                        "project (it compiles ext/_sampler.pyx)") from None
    return _sampler


def clock_ns() -> int:
    return _sampler().clock_ns()


@dataclass
class ThreadStream:
    """Every sample of one thread, oldest first."""

    tid: int
    name: str
    samples: list = field(default_factory=list)


@dataclass
class Recording:
    """What the sampler saw: one stream per thread, and the child's own report."""

    pid: int
    period_ns: int
    threads: dict            # tid -> ThreadStream
    gil: GilMap
    t_start_ns: int          # first sample
    t_go_ns: int             # the lab child started its work (or the first sample)
    t_end_ns: int            # last sample
    child: dict              # the lab child's ready + truth report ({} for a program)
    exit_code: int | None
    sampler_cpu_s: float     # CPU time this process spent sampling
    rounds: int
    wchan: bool = False      # read wchan, not syscall: futex waits are not told apart
    attached_note: str = ""  # what attaching to a process that is not a child loses
    steady_ns: int = 0       # the step while no thread changed state (0: none)


class _Files:
    """Kept-open schedstat and syscall files of the threads being watched."""

    def __init__(self, pid: int, wchan: bool = False, steady_ns: int = 0):
        self.pid = pid
        self.wchan = wchan
        self.steady_ns = steady_ns
        self.fast_until = 0
        self.order: list[int] = []
        self.fds: dict[int, tuple[int, int]] = {}
        self.tails: dict[int, bytes] = {}
        self.names: dict[int, str] = {}

    def add(self, tid: int) -> bool:
        if tid in self.fds:
            return True
        base = f"/proc/{self.pid}/task/{tid}"
        try:
            stat = os.open(f"{base}/schedstat", os.O_RDONLY)
        except OSError:
            return False  # the thread ended before it was seen
        try:
            call = os.open(f"{base}/{'wchan' if self.wchan else 'syscall'}", os.O_RDONLY)
        except PermissionError:
            os.close(stat)
            raise UserError(f"cannot read /proc/{self.pid}/task/{tid}/syscall: not "
                            "permitted (the ptrace access rules); run the program "
                            "through gillab timeline -- so that it is gillab's child") from None
        except OSError:
            os.close(stat)
            return False
        try:
            with open(f"{base}/comm") as f:
                self.names[tid] = f.read().strip()
        except OSError:
            self.names[tid] = str(tid)
        self.fds[tid] = (stat, call)
        self.order.append(tid)
        return True

    def close(self) -> None:
        for stat, call in self.fds.values():
            os.close(stat)
            os.close(call)
        self.fds.clear()


def _sample_chunk(files: _Files, live: list[int], period_ns: int, until_ns: int,
                  deadline: int, chunks: list) -> tuple[int, bool, int]:
    """Native sampling of ``live`` threads until ``until_ns``. The raw bytes are kept
    in ``chunks`` and decoded after the run, so the watched program pays for the reads
    only, not for Python unpacking them."""
    sampler = _sampler()
    previous = b"".join(files.tails.get(tid, struct.pack("5q", -1, -1, -1, STATE_RUNNING, 0))
                        for tid in live)
    data, deadline, all_gone, tail, files.fast_until = sampler.sample(
        [files.fds[t][0] for t in live], [files.fds[t][1] for t in live],
        period_ns, until_ns, deadline, previous, files.wchan, files.steady_ns,
        files.fast_until)
    for i, tid in enumerate(live):
        files.tails[tid] = tail[i * 40:(i + 1) * 40]
    chunks.append((tuple(live), data))
    return deadline, all_gone, len(data) // 8 // (1 + 5 * len(live))


def _decode(chunks: list, streams: dict) -> None:
    """Raw rounds -> per-thread Samples (t, cpu, queue, switch-ins, state, arg0)."""
    make = tuple.__new__  # Sample(*fields) unpacked: the fastest way to build one
    for live, data in chunks:
        width = 1 + 5 * len(live)
        values = struct.unpack(f"{len(data) // 8}q", data)
        for i, tid in enumerate(live):
            samples = streams[tid].samples
            for row in range(0, len(values), width):
                k = row + 1 + 5 * i
                samples.append(make(Sample, (values[row],) + values[k:k + 5]))


def _cpu_self() -> float:
    """CPU seconds of the sampling thread (user + kernel, ns resolution; os.times()
    counts in 10 ms ticks, too coarse for a share of a few percent)."""
    import time

    return time.thread_time()


def watch_lab_child(argv: list[str], period_ns: int, max_s: float = 60.0,
                    steady: int = 0) -> Recording:
    """Run the lab's child workload (gillab.timeline.workload): it parks its threads,
    reports their TIDs, waits for 'go' on stdin, works, and reports its own truth."""
    proc = start_child(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    files = _Files(proc.pid, steady_ns=steady)
    try:
        ready = read_json_line(proc, "ready")
        for tid in ready["tids"]:
            if not files.add(tid):
                raise UserError(f"thread {tid} of the child ended before it was watched")
        gil = gil_of_process(proc.pid)
        live = list(files.order)
        streams = {t: ThreadStream(t, ready.get("names", {}).get(str(t), files.names[t]))
                   for t in live}
        chunks: list = []
        cpu0 = _cpu_self()
        t_start = clock_ns()
        deadline = t_start + period_ns
        deadline, _, rounds = _sample_chunk(files, live, period_ns, t_start + LEAD_IN_NS,
                                            deadline, chunks)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        stop_at = clock_ns() + int(max_s * 1e9)
        while True:
            until = min(deadline + CHUNK_NS, stop_at)
            deadline, all_gone, n = _sample_chunk(files, live, period_ns, until, deadline,
                                                  chunks)
            rounds += n
            # A thread of a process that exited stays readable until it is reaped (a
            # zombie): the serial cell's main thread is never "gone" by itself.
            if all_gone or proc.poll() is not None:
                break
            if clock_ns() >= stop_at:
                raise UserError(f"the child still ran after {max_s:.0f} s; stopped it")
        sampler_cpu = _cpu_self() - cpu0
        _decode(chunks, streams)
        truth = read_json_line(proc, "truth")
        code = proc.wait(timeout=10)
        if code != 0:
            raise UserError(f"the child workload exited with code {code}")
    finally:
        files.close()
        kill_child(proc)
    ends = [s.samples[-1][0] for s in streams.values() if s.samples]
    # The work ends when the child says so; its exit afterwards is not part of it.
    t_end = min(max(ends), truth.get("t_done_ns", max(ends)))
    return Recording(proc.pid, period_ns, streams, gil, t_start, truth.get("t_go_ns", t_start),
                     t_end, {**ready, **truth}, code, sampler_cpu, rounds, steady_ns=steady)


def syscall_readable(pid: int) -> bool:
    """May this process read PID's syscall file (the ptrace ATTACH rules, Yama)?"""
    try:
        with open(f"/proc/{pid}/syscall", "rb") as f:
            f.read()
        return True
    except PermissionError:
        return False


def watch_pid(pid: int, period_ns: int, max_s: float, force_wchan: bool = False,
              steady: int = 0) -> Recording:
    """Watch a process gillab did not start, for ``max_s`` or until it exits. Without
    permission for its syscall files, fall back to wchan (futex or not, no address)."""
    if not os.path.isdir(f"/proc/{pid}/task"):
        raise UserError(f"no process {pid}")
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
            f.read()
    except PermissionError:
        raise UserError(f"cannot read /proc/{pid}/schedstat: not permitted") from None
    wchan = force_wchan or not syscall_readable(pid)
    note = ("attached to a process gillab did not start, without its syscall files "
            "(ptrace rules): a futex wait 'f' may be the GIL or another lock; on CPU, "
            "queued and IO/sleep are still told apart" if wchan else
            "attached to a process gillab did not start (its syscall files are readable "
            "here: same user, no Yama restriction)")
    rec = _watch_tasks(pid, None, period_ns, max_s, wchan, steady=steady)
    rec.attached_note = note
    return rec


def watch_program(argv: list[str], period_ns: int, max_s: float | None = None,
                  steady: int = 0) -> Recording:
    """Start any program as gillab's child and watch every thread it has until it exits."""
    proc = start_child(argv, stdin=subprocess.DEVNULL)
    return _watch_tasks(proc.pid, proc, period_ns, max_s, False, argv[0], steady)


class _Gone:
    """Stands in for a Popen when the watched process is not gillab's child."""

    def __init__(self, pid: int):
        self.pid = pid

    def poll(self):
        return None if os.path.isdir(f"/proc/{self.pid}/task") else 0


def _add_new_threads(proc, files: _Files, streams: dict) -> bool:
    """Watch every thread of the process not yet watched; False once it is gone."""
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{proc.pid}/task"))
    except OSError:
        return False
    for tid in tids:
        if tid not in streams and files.add(tid):
            name = "main" if tid == proc.pid else files.names[tid]
            streams[tid] = ThreadStream(tid, name)
    return True


def _read_maps(pid: int, chunk: int, maps_text: str | None) -> str | None:
    """The process's memory map text, read often while libpython is being mapped and
    rarely after (a dlopen). Only the text now: finding _PyRuntime in its files' symbol
    tables takes 0.1-1 s, which would leave the program unwatched (a 1 s program gone)."""
    if chunk <= MAPS_EARLY_CHUNKS or chunk % MAPS_LATE_EVERY == 0:
        try:
            with open(f"/proc/{pid}/maps") as f:
                return f.read() or maps_text
        except OSError:
            pass
    return maps_text


def _follow(proc, files: _Files, streams: dict, chunks: list, period_ns: int,
            max_s: float | None) -> tuple[int, str | None, int | None]:
    """Sample chunk after chunk until the process exits, every thread is gone or max_s
    is up. Returns (rounds, memory map text, stop time or None)."""
    rounds, maps_text, chunk = 0, None, 0
    deadline = clock_ns() + period_ns
    stop_at = None  # counted from the first sample: the set-up can take a while
    while proc.poll() is None:
        chunk += 1
        if not _add_new_threads(proc, files, streams):
            break
        maps_text = _read_maps(proc.pid, chunk, maps_text)
        live = [t for t in files.order if files.tails.get(t, b"")[24:32] !=
                struct.pack("q", STATE_GONE)]
        if not live:
            break
        # Never sample late deadlines (the set-up above may have taken a while).
        deadline = max(deadline, clock_ns() + period_ns)
        if max_s and stop_at is None:
            stop_at = deadline + int(max_s * 1e9)
        until = deadline + CHUNK_NS // 5  # short chunks: new threads are seen soon
        if stop_at:
            until = min(until, stop_at)
        deadline, _, n = _sample_chunk(files, live, period_ns, until, deadline, chunks)
        rounds += n
        if stop_at and clock_ns() >= stop_at:
            break
    return rounds, maps_text, stop_at


def _watch_tasks(pid: int, proc, period_ns: int, max_s: float | None, wchan: bool,
                 label: str = "", steady: int = 0) -> Recording:
    """Follow every thread of PID (new ones each chunk) until it exits or max_s."""
    child = proc is not None
    proc = proc or _Gone(pid)
    files = _Files(proc.pid, wchan, steady)
    streams: dict = {}
    chunks: list = []
    try:
        cpu0 = _cpu_self()
        rounds, maps_text, stop_at = _follow(proc, files, streams, chunks, period_ns, max_s)
        sampler_cpu = _cpu_self() - cpu0
        _decode(chunks, streams)
        if child:
            code = proc.wait() if stop_at is None else proc.poll()
        else:
            code = None
    finally:
        files.close()
        if child:
            kill_child(proc)
    if maps_text is None:
        gil = GilMap(None, None, "the program ended before its memory map could be read")
    else:
        gil = find_gil(maps_text)
    starts = [s.samples[0][0] for s in streams.values() if s.samples]
    ends = [s.samples[-1][0] for s in streams.values() if s.samples]
    if not starts:
        raise UserError(f"{label or pid} exited at once (code {code}), before any sample "
                        "was taken")
    return Recording(proc.pid, period_ns, streams, gil, min(starts), min(starts), max(ends),
                     {}, code, sampler_cpu, rounds, wchan, steady_ns=steady)
