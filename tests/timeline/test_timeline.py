"""gillab timeline: the rebuild on hand-made sample streams, the GIL's address, the
record, the trace file, bad input, and real runs against the timeline's accuracy bars (slow)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gillab.timeline.gilmap import (CPU, FUTEX, GIL_WAIT, IO, LOCK_WAIT, QUEUED, SHORT,
                                    WCHAN_FUTEX, WCHAN_OTHER, GilMap, find_gil, parse_maps)
from gillab.timeline.rebuild import RUNNING, Interval, place_queue, rebuild
from gillab.timeline.phases import add_wake_phases, blocks_in_poll
from gillab.timeline.record import (Timeline, clip,
                                    cpu_agreement, kept_by_another, summarize_thread, together,
                                    truth_summary)
from gillab.timeline import report
from gillab.timeline.report import Window, bucket_states, choose_window, format_timeline
from tests.conftest import retry_once, run_gillab
from tests.timeline.consistency import check_reading

MS = 1_000_000
PERIOD = MS // 2
FUTEX_NR = 202
NANOSLEEP = 230
RUNTIME = 0x7F00_0000_1000
GIL_ADDR = RUNTIME + 0x1B0
LOCK_ADDR = 0x5555_0000_2000
GIL = GilMap(RUNTIME, RUNTIME + 0x28000, "test", futex_nr=FUTEX_NR)


def stream(states, cpu_at=None, queue_at=None, switches_at=None, period=PERIOD):
    """Samples every period: states[i] is RUNNING, ('gil',), ('lock',) or ('sleep',);
    cpu_at/queue_at/switches_at give the counters' values at sample i (callables)."""
    out = []
    for i, state in enumerate(states):
        if state == RUNNING:
            nr, arg = RUNNING, 0
        else:
            nr, arg = {"gil": (FUTEX_NR, GIL_ADDR), "lock": (FUTEX_NR, LOCK_ADDR),
                       "sleep": (NANOSLEEP, 0)}[state]
        out.append((i * period, cpu_at(i), queue_at(i) if queue_at else 0,
                    switches_at(i) if switches_at else 0, nr, arg))
    return out


def total(intervals, state) -> float:
    return sum(iv.end_ns - iv.start_ns for iv in intervals if iv.state == state) / MS


def runs(intervals, state=CPU) -> list[float]:
    return [(iv.end_ns - iv.start_ns) / MS for iv in intervals if iv.state == state]


class TestRebuild:
    """The reconstruction rules, each on a hand-made stream with a known answer."""

    def test_tick_lumps_are_spread_back_into_one_run(self):
        # GIL wait 0-2 ms, then on CPU 2-12 ms, then GIL wait again. While it runs the
        # counter moves only in 4 ms tick lumps; at the blocked sample it is exact.
        states = ["gil"] * 5 + [RUNNING] * 20 + ["gil"] * 5

        def cpu(i):
            t = i * 0.5
            if t <= 2:
                return 0
            if t < 12.5:
                return int((t - 2) // 4 * 4 * MS)   # stale: whole ticks only
            return 10 * MS                          # exact once blocked
        ivs = rebuild(stream(states, cpu, switches_at=lambda i: 1 if i >= 5 else 0),
                      GIL.classify, PERIOD)
        cpu_runs = runs(ivs)
        assert len(cpu_runs) == 1, ivs
        assert 9.5 <= cpu_runs[0] <= 10.5
        assert total(ivs, GIL_WAIT) == pytest.approx(14.5 - 10, abs=0.6)
        assert total(ivs, SHORT) == 0

    def test_a_queued_thread_is_queued_before_its_switch_in(self):
        # Running 0-4, preempted and queued 4-7 (the counters say so only at the
        # switch-in, seen at 7.5 ms), running 7-10, then blocked on a lock.
        states = [RUNNING] * 20 + ["lock"] * 4
        ivs = rebuild(stream(states, cpu_at=lambda i: 0 if i < 20 else 7 * MS,
                             queue_at=lambda i: 3 * MS if i >= 15 else 0,
                             switches_at=lambda i: 1 if i >= 15 else 0),
                      GIL.classify, PERIOD)
        queued = [iv for iv in ivs if iv.state == QUEUED]
        assert total(ivs, QUEUED) == pytest.approx(3.0, abs=0.01)
        assert len(queued) == 1 and 4 * MS <= queued[0].start_ns <= 5 * MS
        assert queued[0].end_ns <= 7.5 * MS
        assert total(ivs, CPU) == pytest.approx(7.0, abs=0.01)
        assert ivs[-1].state == LOCK_WAIT

    def test_queue_never_spills_back_past_a_blocked_sample(self):
        s = stream(["sleep", "sleep", RUNNING, RUNNING], cpu_at=lambda i: 0,
                   queue_at=lambda i: 5 * MS if i >= 2 else 0,
                   switches_at=lambda i: 1 if i >= 2 else 0)
        assert place_queue(s) == [0, PERIOD, 0]

    def test_a_short_block_between_samples_is_drawn_as_one(self):
        # Runnable at every sample, but one switch-in (a hidden block) and CPU missing
        # from the exact total at the end: the block is drawn where the switch-in was,
        # never as CPU, and the CPU total stays exact.
        states = [RUNNING] * 10 + ["gil"] * 2
        ivs = rebuild(stream(states, cpu_at=lambda i: 0 if i < 10 else int(4.2 * MS),
                             switches_at=lambda i: 1 if i >= 5 else 0), GIL.classify, PERIOD)
        assert total(ivs, CPU) == pytest.approx(4.2, abs=0.01)
        assert 0.1 <= total(ivs, SHORT) <= 0.5
        shorts = [iv for iv in ivs if iv.state == SHORT]
        assert len(shorts) == 1 and 2 * MS <= shorts[0].start_ns < 2.5 * MS

    def test_a_waiter_checking_the_gil_stays_one_wait(self):
        # A GIL waiter's timed wait expires every 5 ms: a few us on CPU, back to the wait.
        states = ["gil"] * 30
        ivs = rebuild(stream(states, cpu_at=lambda i: i // 10 * 20_000,
                             switches_at=lambda i: i // 10), GIL.classify, PERIOD)
        assert ivs == [Interval(0, 29 * PERIOD, GIL_WAIT)]

    def test_a_sleepers_short_wake_up_is_drawn_not_folded(self):
        # 1 ms sleeps, each wake-up 30 us on CPU and straight back to sleep, between
        # two samples: unlike a GIL waiter's check, every wake-up is counted.
        states = ["sleep"] * 21
        ivs = rebuild(stream(states, cpu_at=lambda i: (i + 1) // 2 * 30_000,
                             switches_at=lambda i: (i + 1) // 2), GIL.classify, PERIOD)
        line = summarize_thread(1, "io", ivs)
        assert line.wakeups == 10 and line.median_wake_to_run_ms == 0
        assert total(ivs, CPU) == pytest.approx(0.3, abs=0.01)

    def test_convoy_sleeper_wakes_then_waits_for_the_gil(self):
        # 1 ms sleep, 5 ms GIL wait, a blink on CPU, again: the IO thread of the convoy.
        cycle = ["sleep"] * 2 + ["gil"] * 10
        states = cycle * 4 + ["sleep"]
        ivs = rebuild(stream(states, cpu_at=lambda i: (i + 10) // 12 * 20_000,
                             switches_at=lambda i: (i // 12) * 2 + (i % 12 >= 2)),
                      GIL.classify, PERIOD)
        line = summarize_thread(1, "io", ivs)
        assert line.wakeups == 4
        assert 4.5 <= line.median_wake_to_run_ms <= 5.5
        assert line.shares[IO] == pytest.approx(1 / 6, abs=0.05)

    def test_a_thread_seen_once_or_gone_has_no_intervals(self):
        assert rebuild([(0, 0, 0, 0, RUNNING, 0)], GIL.classify, PERIOD) == []
        gone = [(0, 0, 0, 0, -200, 0), (PERIOD, 0, 0, 0, -200, 0)]
        assert rebuild(gone, GIL.classify, PERIOD) == []


MAPS = """\
55d0c4a00000-55d0c4a01000 r--p 00000000 fd:01 1234 /usr/bin/python3.11
55d0c4a01000-55d0c4a02000 r-xp 00001000 fd:01 1234 /usr/bin/python3.11
55d0c5000000-55d0c5100000 rw-p 00000000 00:00 0 [heap]
7f2cfe000000-7f2cfe080000 r--p 00000000 fd:01 5678 /opt/py/lib/libpython3.11.so.1.0
7f2cfe080000-7f2cfe300000 r-xp 00080000 fd:01 5678 /opt/py/lib/libpython3.11.so.1.0
7f2cfe34a000-7f2cfe380000 rw-p 0034a000 fd:01 5678 /opt/py/lib/libpython3.11.so.1.0
7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]
"""


class TestGilMap:
    """The GIL's range from a recorded maps/symbol layout, and what a futex means."""

    def symbols(self, table):
        return lambda path: table.get(path)

    def test_runtime_in_libpython_is_found_from_its_load_address(self):
        # As recorded here: _PyRuntime at 0x34e540 in libpython, 166688 bytes.
        lib = "/opt/py/lib/libpython3.11.so.1.0"
        gil = find_gil(MAPS, self.symbols({lib: (0x34E540, 166688, 0)}), machine="x86_64")
        assert gil.start == 0x7F2CFE000000 + 0x34E540
        assert gil.end - gil.start == 166688
        assert gil.classify(202, gil.start + 0x1B0) == GIL_WAIT
        assert gil.classify(202, 0x55D0C5000100) == LOCK_WAIT  # a threading.Lock, in the heap
        assert gil.classify(230, 0) == IO
        assert gil.classify(-1, 0) == IO

    def test_a_static_non_pie_binary_is_not_rebased(self):
        maps = "00400000-00401000 r--p 00000000 fd:01 1 /usr/bin/python3.12\n"
        gil = find_gil(maps, self.symbols({"/usr/bin/python3.12": (0x900000, 0x1000, 0x400000)}),
                       machine="x86_64")
        assert gil.start == 0x900000

    def test_free_threaded_build_has_no_gil(self):
        maps = MAPS.replace("python3.11", "python3.13t")
        gil = find_gil(maps, self.symbols({}), machine="x86_64")
        assert gil.free_threaded and gil.start is None
        assert "no GIL" in gil.source
        assert gil.classify(202, GIL_ADDR) == LOCK_WAIT

    def test_a_free_threaded_build_is_told_by_its_symbols_and_keeps_the_gils_range(self):
        # /opt/py313t's binary is called python3.13: its exported symbols say what it is.
        # If its GIL is turned on (PYTHON_GIL=1), waits on it are still found.
        lib = "/opt/py/lib/libpython3.11.so.1.0"
        gil = find_gil(MAPS, self.symbols({lib: (0x34E540, 166688, 0)}), machine="x86_64",
                       free_threaded_of=lambda path: path == lib)
        assert gil.free_threaded and gil.classify(202, gil.start + 0x1B0) == GIL_WAIT
        plain = find_gil(MAPS, self.symbols({lib: (0x34E540, 166688, 0)}), machine="x86_64",
                         free_threaded_of=lambda path: False)
        assert not plain.free_threaded

    def test_missing_symbol_says_where_it_looked(self):
        gil = find_gil(MAPS, self.symbols({}), machine="x86_64")
        assert gil.start is None and "libpython3.11" in gil.source

    def test_aarch64_futex_number(self):
        gil = find_gil(MAPS, self.symbols({"/opt/py/lib/libpython3.11.so.1.0": (0x34E540, 8, 0)}),
                       machine="aarch64")
        assert gil.classify(98, gil.start) == GIL_WAIT and gil.classify(202, gil.start) == IO

    def test_wchan_fallback_cannot_tell_the_gil_from_a_lock(self):
        assert GIL.classify(WCHAN_FUTEX, 0) == FUTEX
        assert GIL.classify(WCHAN_OTHER, 0) == IO

    def test_parse_maps_keeps_file_backed_lines(self):
        paths = {m.path for m in parse_maps(MAPS)}
        assert paths == {"/usr/bin/python3.11", "/opt/py/lib/libpython3.11.so.1.0"}

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
    def test_this_interpreter_agrees_with_ctypes(self):
        import ctypes

        from gillab.timeline.gilmap import gil_of_process

        gil = gil_of_process(os.getpid())
        assert gil.start == ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))


def iv(a, b, state):
    return Interval(int(a * MS), int(b * MS), state)


def turn_taking(hold=5.0, n=10):
    """Two threads handing the GIL back and forth every ``hold`` ms."""
    t0, t1 = [], []
    for k in range(n):
        on, off = (t0, t1) if k % 2 == 0 else (t1, t0)
        on.append(iv(k * hold, (k + 1) * hold, CPU))
        off.append(iv(k * hold, (k + 1) * hold, GIL_WAIT))
    return t0, t1


def timeline(lines, wall_ms, switch_interval=0.005, truth=None, **kw) -> Timeline:
    add_wake_phases(lines, 0)
    return Timeline(threads=lines, t0_ns=0, t1_ns=int(wall_ms * MS), period_ns=PERIOD,
                    together_on_cpu=together(lines, 0, int(wall_ms * MS)),
                    switch_interval=switch_interval, gil_note="_PyRuntime in test",
                    free_threaded=False, scenario={"kernel": "py", "executor": "threads",
                                                   "workers": len(lines)},
                    truth=truth or {}, sampler={"achieved_period_ms": 0.5}, **kw)


class TestSteadyStep:
    """The native sampler steps two periods while no thread changes state, and comes
    back to one period for FAST_HOLD after any change (ext/_sampler.pyx)."""

    def _spacing(self, target, steady_periods=2, seconds=0.3):
        import threading

        from gillab import _sampler

        stop = threading.Event()
        th = threading.Thread(target=target, args=(stop,))
        th.start()
        try:
            time.sleep(0.03)
            base = f"/proc/self/task/{th.native_id}"
            fds = [os.open(f"{base}/schedstat", os.O_RDONLY), os.open(f"{base}/syscall", os.O_RDONLY)]
            try:
                t0 = _sampler.clock_ns()
                data, *_ = _sampler.sample([fds[0]], [fds[1]], PERIOD, t0 + int(seconds * 1e9),
                                           t0 + PERIOD, None, False, steady_periods * PERIOD)
            finally:
                for fd in fds:
                    os.close(fd)
        finally:
            stop.set()
            th.join()
        import struct

        stamps = struct.unpack(f"{len(data) // 8}q", data)[::6]
        # Past the first FAST_HOLD (the first round is always a change):
        late = [b - a for a, b in zip(stamps, stamps[1:]) if a - stamps[0] > 20 * MS]
        return sorted(late)[len(late) // 2]

    def test_a_thread_blocked_throughout_is_sampled_every_two_periods(self):
        assert self._spacing(lambda stop: stop.wait()) == pytest.approx(2 * PERIOD, rel=0.2)

    def test_a_thread_that_keeps_waking_is_sampled_every_period(self):
        def sleeper(stop):
            while not stop.is_set():
                time.sleep(0.001)
        assert self._spacing(sleeper) == pytest.approx(PERIOD, rel=0.2)

    def test_steady_zero_is_a_fixed_period(self):
        assert self._spacing(lambda stop: stop.wait(), steady_periods=0) == pytest.approx(
            PERIOD, rel=0.2)


class TestSummary:
    """Shares, runs, hand-offs, together-on-CPU and the one-line reading."""

    def test_turn_taking_reads_as_the_switch_interval(self):
        a, b = turn_taking()
        lines = [summarize_thread(1, "a", a), summarize_thread(2, "b", b)]
        assert lines[0].median_run_ms == 5.0 and lines[0].median_gil_wait_ms == 5.0
        assert lines[1].handoffs == 5 and lines[0].handoffs == 4
        assert lines[0].shares[CPU] == pytest.approx(0.5)
        tl = timeline(lines, 50)
        assert tl.together_on_cpu == 0
        assert "took turns every 5.0 ms: the switch interval" in report.reading_line(tl)

    def test_a_preemption_of_microseconds_does_not_break_a_run(self):
        ivs = [iv(0, 2, CPU), iv(2, 2.03, QUEUED), iv(2.03, 5, CPU), iv(5, 10, GIL_WAIT)]
        assert summarize_thread(1, "a", ivs).median_run_ms == 5.0

    def test_queueing_does_not_break_a_hold(self):
        ivs = [iv(0, 2, CPU), iv(2, 3, QUEUED), iv(3, 5, CPU), iv(5, 10, GIL_WAIT)]
        line = summarize_thread(1, "a", ivs)
        assert line.median_run_ms == 2.0 and line.median_hold_ms == 5.0

    def test_a_waiters_check_is_part_of_its_wait_not_a_hand_off(self):
        # Waiting 3 x 5 ms for a C call that keeps the GIL: each timed wait ends in a
        # check (queued by a busy OS, a few us on CPU), then the wait goes on.
        ivs = [iv(0, 5, GIL_WAIT), iv(5, 6, QUEUED), iv(6, 6.01, CPU), iv(6.01, 11, GIL_WAIT),
               iv(11, 11.02, CPU), iv(11.02, 16, GIL_WAIT), iv(16, 40, CPU)]
        line = summarize_thread(1, "a", ivs)
        assert line.gil_waits == 1 and line.median_gil_wait_ms == 16.0
        assert line.handoffs == 1 and line.median_hold_ms == 24.0

    def test_a_slow_check_is_part_of_the_wait_while_another_thread_keeps_the_gil(self):
        # In a VM a waiter's check can take 0.3 ms of CPU. While the other thread runs
        # on throughout (a C call holding the GIL), it is still a check...
        waiter = [iv(0, 5, GIL_WAIT), iv(5, 5.3, CPU), iv(5.3, 10, GIL_WAIT), iv(10, 30, CPU)]
        holder = [iv(0, 10, CPU), iv(10, 30, GIL_WAIT)]
        kept = kept_by_another([holder])
        line = summarize_thread(1, "w", waiter, kept)
        assert line.gil_waits == 1 and line.handoffs == 1 and line.median_hold_ms == 20.0
        # ...but not when the other thread was waiting for the GIL meanwhile: then the
        # 0.3 ms was a real turn.
        taker = [iv(0, 5, CPU), iv(5, 5.3, GIL_WAIT), iv(5.3, 10, CPU), iv(10, 30, GIL_WAIT)]
        line = summarize_thread(1, "w", waiter, kept_by_another([taker]))
        assert line.gil_waits == 2 and line.handoffs == 2
        assert summarize_thread(1, "w", waiter).handoffs == 2  # no other thread known

    def test_cells_are_checked_against_the_threads_own_progress_stamps(self):
        # The stamps say the thread did not run 4-6 ms; the timeline has it off 4.4-6:
        # cell 4-5 is 0.4 ms on CPU, a minority, so "off" in both. All ten agree.
        line = summarize_thread(7, "a", [iv(0, 4.4, CPU), iv(4.4, 6, GIL_WAIT), iv(6, 10, CPU)])
        truth = {"tasks": [{"tid": 7, "t0_ns": 0, "t1_ns": 10 * MS,
                            "gaps_ns": [[4 * MS, 6 * MS]]}]}
        tl = timeline([line], 10, truth=truth)
        assert cpu_agreement(tl) == 1.0
        # Drawn a whole cell late (on CPU 5-7 instead of 4-6 off): two cells of ten wrong.
        late = summarize_thread(7, "a", [iv(0, 5, CPU), iv(5, 7, GIL_WAIT), iv(7, 10, CPU)])
        assert cpu_agreement(timeline([late], 10, truth=truth)) == pytest.approx(0.8)
        assert cpu_agreement(timeline([late], 10)) is None  # no stamps, no figure

    def test_threads_that_release_the_gil_read_as_together(self):
        lines = [summarize_thread(i, f"t{i}", [iv(0, 100, CPU)]) for i in (1, 2)]
        tl = timeline(lines, 100)
        assert tl.together_on_cpu == 1.0
        assert "released it" in report.reading_line(tl)

    def test_together_counts_only_the_time_two_threads_had_work(self):
        # Both on CPU 0-80 ms, except b queued by the OS 20-30; a then finishes, b runs
        # on alone to 100 and sleeps to 120: 70 of the 80 shared ms together, not 70/120.
        a = [iv(0, 80, CPU)]
        b = [iv(0, 20, CPU), iv(20, 30, QUEUED), iv(30, 100, CPU), iv(100, 120, IO)]
        lines = [summarize_thread(1, "a", a), summarize_thread(2, "b", b)]
        assert timeline(lines, 120).together_on_cpu == pytest.approx(70 / 80)

    def test_a_gil_wait_counts_against_together(self):
        # A GIL waiter has work: its waits are in the denominator, so taking turns
        # reads 0, and one thread running while the other sleeps reads nothing (0).
        a, b = turn_taking()
        assert together([summarize_thread(1, "a", a), summarize_thread(2, "b", b)],
                        0, 50 * MS) == 0
        sleeper = [summarize_thread(1, "a", [iv(0, 50, CPU)]),
                   summarize_thread(2, "b", [iv(0, 50, IO)])]
        assert together(sleeper, 0, 50 * MS) == 0
        # A main thread in join() waits on a lock: it has nothing to run, so the tail
        # where one worker is left beside it does not count.
        joined = [summarize_thread(1, "main", [iv(0, 100, LOCK_WAIT)]),
                  summarize_thread(2, "a", [iv(0, 50, CPU)]),
                  summarize_thread(3, "b", [iv(0, 100, CPU)])]
        assert together(joined, 0, 100 * MS) == 1.0

    def test_a_1_ms_interval_reads_from_the_runs_when_holds_merged(self):
        # At 1 ms a missed hand-off joins two turns into one hold of 2.8 ms; the
        # uninterrupted runs (1.2 ms) still name the switch interval.
        a, b = [], []
        for k in range(20):
            a += [iv(4 * k, 4 * k + 1.2, CPU), iv(4 * k + 1.2, 4 * k + 1.6, QUEUED),
                  iv(4 * k + 1.6, 4 * k + 2.8, CPU), iv(4 * k + 2.8, 4 * k + 4, GIL_WAIT)]
            b += [iv(4 * k, 4 * k + 2.8, GIL_WAIT), iv(4 * k + 2.8, 4 * k + 4, CPU)]
        tl = timeline([summarize_thread(1, "a", a), summarize_thread(2, "b", b)], 80,
                      switch_interval=0.001)
        assert "running 1.20 ms at a time: the switch interval (1 ms)" in report.reading_line(tl)
        tl5 = timeline(tl.threads, 80, switch_interval=0.005)
        assert "switch interval" not in report.reading_line(tl5)

    def test_time_lost_to_the_hypervisor_is_named_in_the_reading(self):
        # Runnable but neither on a CPU nor queued by the counters (`short`): steal.
        a = summarize_thread(1, "a", [iv(0, 80, CPU), iv(80, 100, SHORT)])
        b = summarize_thread(2, "b", [iv(0, 20, SHORT), iv(20, 100, CPU)])
        text = report.reading_line(timeline([a, b], 100))
        assert "released it" in text and "lost 20% of the time" in text
        c = summarize_thread(3, "c", [iv(0, 100, CPU)])
        assert "hypervisor" not in report.reading_line(timeline([c, c], 100))
        # Threads taking turns at 1 ms block briefly at every hand-off: not lost time.
        def turn(k, mine):  # 1 ms turns; every other turn drawn `,` (25 % short)
            if k % 2 != mine:
                return iv(k, k + 1, GIL_WAIT)
            return iv(k, k + 1, SHORT if k % 4 in (0, 1) else CPU)
        turns = [summarize_thread(10 + m, f"t{m}", [turn(k, m) for k in range(48)])
                 for m in (0, 1)]
        assert turns[0].shares[SHORT] == pytest.approx(0.25)
        assert "hypervisor" not in report.reading_line(timeline(turns, 48))

    def test_long_holds_read_as_a_whole_c_call(self):
        a, b = turn_taking(hold=120.0, n=4)
        tl = timeline([summarize_thread(1, "a", a), summarize_thread(2, "b", b)], 480)
        assert "whole C call" in report.reading_line(tl)

    def test_convoy_reading_names_the_wait_after_waking(self):
        io_ivs, cpu_ivs = [], [iv(0, 60, CPU)]
        for k in range(10):
            io_ivs += [iv(6 * k, 6 * k + 1, IO), iv(6 * k + 1, 6 * k + 6, GIL_WAIT)]
        tl = timeline([summarize_thread(1, "cpu", cpu_ivs), summarize_thread(2, "io", io_ivs)], 60)
        assert "waited a median 5.0 ms for the GIL" in report.reading_line(tl)
        assert "convoy" in report.reading_line(tl)

    def test_clip_and_truth_summary(self):
        assert clip([iv(0, 10, CPU)], 2 * MS, 5 * MS) == [iv(2, 5, CPU)]
        truth = truth_summary({"tasks": [{"tid": 1, "t0_ns": 0, "t1_ns": 2 * MS, "cpu_ns": MS}]})
        assert truth["tasks"][0] == {"tid": 1, "role": "task", "wall_ms": 2.0, "cpu_ms": 1.0}


def spin_then_idle(spin_ms=60.0, wall_ms=180.0, name="spin", tid=1):
    """A CPU thread that runs ``spin_ms`` and then waits on its pool's lock."""
    return summarize_thread(tid, name, [iv(0, spin_ms, CPU), iv(spin_ms, wall_ms, LOCK_WAIT)])


def ticker(spin_ms=60.0, wall_ms=180.0, name="main", tid=2, **kw):
    """A 1 ms ticker: beside the spin each wake-up waits 5 ms for the GIL (the switch
    interval); after it, each runs at once."""
    ivs, t = [], 0.0
    while t + 6 <= spin_ms:
        ivs += [iv(t, t + 1, IO), iv(t + 1, t + 6, GIL_WAIT)]
        t += 6
    while t + 1.1 <= wall_ms:
        ivs += [iv(t, t + 1, IO), iv(t + 1, t + 1.1, CPU)]
        t += 1.1
    line = summarize_thread(tid, name, ivs)
    for key, value in kw.items():
        setattr(line, key, value)
    return line


def samples_in(states_ms, nr_of):
    """Raw samples every 0.5 ms: ``states_ms`` is [(state, ms)], each state a syscall
    name ('epoll', 'nanosleep', 'futex', 'read') or 'run'."""
    out, t = [], 0
    for state, ms in states_ms:
        for _ in range(int(ms * 2)):
            out.append((t, 0, 0, 0, nr_of[state], 0))
            t += PERIOD
    return out


X86_NRS = {"epoll": 232, "nanosleep": 230, "futex": FUTEX_NR, "read": 0, "run": RUNNING}


class TestPhases:
    """A sleeper's wake-to-run per phase of the run, the event loop, and a reading that
    never contradicts its own table."""

    def test_a_ticker_beside_a_spin_that_ends_early_reads_the_phase_it_waited_in(self):
        lines = [spin_then_idle(), ticker()]
        tl = timeline(lines, 180, switch_interval=None)
        main = lines[1]
        # One median over the whole run says the ticker never waited: the issue.
        assert main.median_wake_to_run_ms == pytest.approx(0.0, abs=0.01)
        beside, calm = main.phases
        assert (beside.beside, beside.wakeups, beside.median_wake_to_run_ms) == ("spin", 10, 5.0)
        assert beside.first_wake_ms == 1 and beside.last_wake_ms == 55
        assert calm.beside is None and calm.wakeups == 109 and calm.median_wake_to_run_ms < 0.01
        text = report.reading_line(tl)
        assert text.startswith("while spin ran, main woke 10 times and waited a median 5.0 ms "
                               "for the GIL"), text
        assert "nothing held the GIL" not in text
        assert "while no other thread ran, it woke 109 times" in text
        table = "\n".join(report.format_thread_table(tl))
        assert "main 2 woke 10 times while spin ran (1-55 ms): median 5.00 ms" in table

    def test_a_ticker_alone_reads_that_nothing_held_the_gil(self):
        lines = [spin_then_idle(spin_ms=0.5), ticker(spin_ms=0)]
        text = report.reading_line(timeline(lines, 180))
        assert "main woke 163 times and ran within a median 0.00 ms: nothing held" in text

    def test_a_reading_that_contradicts_its_table_is_caught(self):
        tl = timeline([spin_then_idle(), ticker()], 180, switch_interval=None)
        data = tl.to_dict()
        # The issue's reading, beside a table showing main waiting for the GIL.
        with pytest.raises(AssertionError):
            check_reading(data, "main woke 119 times and ran within a median 0.00 ms: "
                                "nothing held the GIL against it")
        with pytest.raises(AssertionError):  # a figure no field holds
            check_reading(data, "while spin ran, main woke 10 times and waited a median "
                                "4.0 ms for the GIL before it ran")
        with pytest.raises(AssertionError):  # a figure no rule knows
            check_reading(data, "main slept 7 ms")
        with pytest.raises(AssertionError):  # main is no event loop in this record
            check_reading(data, "the event loop (main) woke 119 times and ran within a "
                                "median 0.00 ms")
        check_reading(data, "main woke 119 times and ran within a median 0.00 ms")

    def test_an_event_loops_thread_is_named_as_such(self):
        lines = [spin_then_idle(), ticker(event_loop=True)]
        tl = timeline(lines, 180, switch_interval=None)
        assert report.reading_line(tl).startswith("while spin ran, the event loop (main) woke")
        assert "main 2: an event loop" in "\n".join(report.format_thread_table(tl))
        assert tl.to_dict()["threads"][1]["event_loop"] is True

    def test_an_event_loop_blocks_mostly_in_epoll_wait(self):
        polls = frozenset({232, 7, 23})
        futexes = frozenset({FUTEX_NR})
        loop = samples_in([("run", 1), ("epoll", 6)] * 10, X86_NRS)
        assert blocks_in_poll(loop, polls, futexes)
        # Its GIL waits (futexes) are waits for another thread, not its own blocking.
        waiting = samples_in([("futex", 5), ("run", 0.5), ("epoll", 1)] * 10, X86_NRS)
        assert blocks_in_poll(waiting, polls, futexes)
        sleeper = samples_in([("run", 1), ("nanosleep", 6)] * 10, X86_NRS)
        assert not blocks_in_poll(sleeper, polls, futexes)
        reader = samples_in([("read", 5), ("epoll", 1)] * 10, X86_NRS)
        assert not blocks_in_poll(reader, polls, futexes)
        assert not blocks_in_poll(loop, frozenset(), futexes)  # numbers unknown here

    def test_threads_of_one_name_are_told_apart_by_their_tids(self):
        lines = [spin_then_idle(name="python", tid=11), ticker(name="python", tid=12),
                 summarize_thread(13, "python", [iv(0, 180, LOCK_WAIT)])]
        text = report.reading_line(timeline(lines, 180, switch_interval=None))
        assert text.startswith("while python 11 ran, python 12 woke 10 times"), text

    def test_a_sleeper_that_waited_for_the_gil_between_its_wake_ups_says_so(self):
        ivs = [iv(0, 10, CPU), iv(10, 30, GIL_WAIT)]
        ivs += [iv(30 + 1.1 * k, 31 + 1.1 * k, IO) for k in range(10)]
        ivs = sorted(ivs + [iv(31 + 1.1 * k, 31.1 + 1.1 * k, CPU) for k in range(10)])
        text = report.reading_line(timeline([summarize_thread(1, "x", ivs)], 41))
        assert "x woke 10 times and ran within a median 0.00 ms of waking, but waited for " \
               "the GIL 49% of the time (a median 20.00 ms) at other moments" in text, text
        assert "nothing held" not in text


class TestPicture:
    """The terminal picture: one cell per bucket, plain when piped, a legend."""

    def test_buckets_take_the_dominant_state(self):
        states = bucket_states([iv(0, 1.2, CPU), iv(1.2, 3, GIL_WAIT)], Window(0, MS, 4))
        assert states == [CPU, GIL_WAIT, GIL_WAIT, None]

    def test_plain_picture_and_legend(self):
        a, b = turn_taking()
        tl = timeline([summarize_thread(1, "a", a), summarize_thread(2, "b", b)], 50)
        text = "\n".join(format_timeline(tl, Window(0, MS, 50)))
        assert "|#####.....#####.....#####" in text and "|.....#####.....#####" in text
        assert "# on CPU" in text and ". waiting for the GIL" in text
        assert "\x1b[" not in text
        assert "reading: the 2 threads took turns every 5.0 ms" in text

    def test_colour_picture_has_escape_codes(self):
        a, b = turn_taking()
        tl = timeline([summarize_thread(1, "a", a), summarize_thread(2, "b", b)], 50)
        assert "\x1b[" in "\n".join(format_timeline(tl, Window(0, MS, 50), colour=True))

    def test_default_window_fits_and_is_never_finer_than_two_periods(self):
        a, b = turn_taking(n=100)
        tl = timeline([summarize_thread(1, "a", a), summarize_thread(2, "b", b)], 500)
        w = choose_window(tl, 80)
        assert w.buckets == 80 and w.bucket_ns >= 2 * PERIOD
        assert tl.t0_ns <= w.start_ns and w.end_ns <= tl.t1_ns
        long_holds = timeline([summarize_thread(1, "a", turn_taking(200, 4)[0])], 800)
        assert choose_window(long_holds, 80).bucket_ns > MS


class TestRecordFiles:
    """JSON gillab/timeline/1 and a Chrome trace that Perfetto opens."""

    def test_json_has_the_issue_fields(self):
        a, b = turn_taking()
        data = timeline([summarize_thread(1, "a", a), summarize_thread(2, "b", b)], 50).to_dict()
        assert data["schema"] == "gillab/timeline/1"
        assert {"together_on_cpu", "switch_interval", "threads"} <= set(data)
        th = data["threads"][0]
        assert set(th["shares"]) >= {"cpu", "gil_wait", "lock_wait", "queued", "io"}
        assert {"median_run_ms", "median_gil_wait_ms", "median_wake_to_run_ms"} <= set(th)
        assert th["intervals"][0] == [0.0, 5.0, "cpu"]
        json.dumps(data)

    def test_trace_is_valid_trace_event_json(self):
        a, b = turn_taking()
        trace = timeline([summarize_thread(1, "a", a), summarize_thread(2, "b", b)], 50).to_trace()
        trace = json.loads(json.dumps(trace))
        events = trace["traceEvents"]
        names = [e for e in events if e["ph"] == "M" and e["name"] == "thread_name"]
        assert {e["tid"] for e in names} == {1, 2}
        spans = [e for e in events if e["ph"] == "X"]
        assert len(spans) == 20
        for e in spans:
            assert {"name", "ph", "ts", "dur", "pid", "tid"} <= set(e)
            assert e["dur"] > 0 and e["ts"] >= 0
        assert {e["name"] for e in spans} == {"on CPU", "GIL wait"}


def _no_process_with(marker: str) -> bool:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        return False
            except OSError:
                pass
    return True


def _reading(stdout: str) -> str:
    """The reading of a plain (piped) report: one line."""
    return next(line for line in stdout.splitlines()
                if line.startswith("reading: "))[len("reading: "):]


class TestBadInput:
    """Every bad input ends in one line and the contract's exit code."""

    @pytest.mark.parametrize("platform, says", [
        ("darwin", "works on Linux only (this is darwin)"), ("linux", "is not built")])
    def test_a_missing_sampler_says_why(self, monkeypatch, platform, says):
        from gillab.core.errors import UserError
        from gillab.timeline import measure

        import gillab

        # Import fails: no attribute on the package (an earlier import sets one) and a
        # None in sys.modules.
        monkeypatch.delattr(gillab, "_sampler", raising=False)
        monkeypatch.setitem(sys.modules, "gillab._sampler", None)
        monkeypatch.setattr(sys, "platform", platform)
        with pytest.raises(UserError) as raised:
            measure._sampler()
        assert says in str(raised.value)

    @pytest.mark.parametrize("args", [
        ["--window", "abc"], ["-w", "0"], ["-w", "100"], ["--"], ["--period-ms", "0.01"],
        ["--json", "/no/such/dir/t.json"], ["--convoy", "py", "--", "python", "-c", "pass"],
        ["--wchan"], ["--pid", "1", "--", "python"], ["--pid", "x"],
    ])
    def test_usage_errors_exit_2_before_running(self, args):
        result = run_gillab("timeline", *args, timeout=30)
        assert result.returncode == 2, result.stderr
        assert result.stdout == "" and "Traceback" not in result.stderr

    @pytest.mark.parametrize("program, says", [
        (["/no/such/program"], "cannot start"),
        ([sys.executable, "-c", "raise SystemExit(3)"], "exited with code 3"),
        (["true"], "exited at once"),
    ])
    def test_programs_that_fail_or_exit_at_once(self, program, says):
        result = run_gillab("timeline", "-q", "--", *program, timeout=60)
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1

    def test_attaching_to_no_process(self):
        # Under Linux's largest pid_max (2**22), so the number is valid but unused.
        result = run_gillab("timeline", "-q", "--pid", "4194000", timeout=30)
        assert result.returncode == 1 and "no process 4194000" in result.stderr
        too_big = run_gillab("timeline", "-q", "--pid", "999999999", timeout=30)
        assert too_big.returncode == 2 and "must be <= 4,194,304" in too_big.stderr

    def test_non_linux_is_one_line(self, monkeypatch):
        from gillab.__main__ import create_parser
        from gillab.core.errors import UserError
        from gillab.timeline import cli

        # Parse first: building the parser may import psutil, which reads sys.platform.
        args = create_parser().parse_args(["timeline"])
        monkeypatch.setattr(sys, "platform", "darwin")
        with pytest.raises(UserError, match="Linux only"):
            cli.cmd_timeline(args)


#: Two pure-Python threads counting, for the runs of "any program".
TWO_THREADS = ("import threading\n"
               "def f():\n    s = 0\n    for i in range(3_000_000): s += i\n"
               "ts = [threading.Thread(target=f) for _ in range(2)]\n"
               "[t.start() for t in ts]; [t.join() for t in ts]\n")


@pytest.mark.slow
class TestProgramRuns:
    """Watching any program, a window outside the run, and Ctrl-C."""

    def test_a_threaded_script(self, tmp_path):
        script = tmp_path / "two.py"
        script.write_text(TWO_THREADS)
        out = tmp_path / "t.json"

        def check():  # the GIL wait is measured: retried, then skipped when too busy
            result = run_gillab("timeline", "-q", "--json", str(out), "--trace",
                                str(tmp_path / "t.trace"), "--", sys.executable, str(script))
            assert result.returncode == 0, result.stderr
            data = json.loads(out.read_text())
            assert len(data["threads"]) >= 3  # main + 2 workers
            assert "_PyRuntime" in data["gil"]
            assert sum(th["shares"]["gil_wait"] for th in data["threads"]) > 0.2
            check_reading(data, _reading(result.stdout))
            json.loads((tmp_path / "t.trace").read_text())
        retry_once(check)

    def test_a_program_is_watched_from_its_start(self, tmp_path):
        # Looking the GIL up in libpython's symbol tables takes 0.1-1 s: it is done after
        # the run, so even a program that lasts 0.4 s is watched from its first samples.
        script = tmp_path / "short.py"
        script.write_text("import threading, time\n"
                          "def f():\n    t = time.time()\n    while time.time() - t < 0.4: pass\n"
                          "ts = [threading.Thread(target=f) for _ in range(2)]\n"
                          "[t.start() for t in ts]; [t.join() for t in ts]\n")
        out = tmp_path / "t.json"
        result = run_gillab("timeline", "-q", "--json", str(out), "--", sys.executable,
                            str(script))
        assert result.returncode == 0, result.stderr
        data = json.loads(out.read_text())
        assert data["wall_ms"] >= 400 and "_PyRuntime" in data["gil"]
        workers = [th for th in data["threads"] if th["name"] != "main"]
        assert len(workers) == 2
        # Each worker's 0.4 s reads 390-404 ms here; a new thread is picked up within a
        # 10 ms chunk. Before the fix the first ~1 s went unwatched: nothing at all.
        assert all(th["intervals"][-1][1] - th["intervals"][0][0] >= 300 for th in workers)

    @pytest.mark.parametrize("gil", ["0", "1"])
    def test_a_free_threaded_python_with_its_gil_off_and_on(self, tmp_path, gil):
        from tests.pythons.test_interpreters import free_threaded_python

        python = free_threaded_python()
        if python is None:
            pytest.skip("no free-threaded Python (/opt/py313t or $GILLAB_TEST_FT_PYTHON)")
        script = tmp_path / "two.py"
        script.write_text(TWO_THREADS)
        out = tmp_path / "t.json"

        def check():  # the GIL wait is measured: retried, then skipped when too busy
            result = run_gillab("timeline", "-q", "--json", str(out), "--", python,
                                "-X", f"gil={gil}", str(script))
            assert result.returncode == 0, result.stderr
            data = json.loads(out.read_text())
            assert data["free_threaded"] is True
            waited = sum(th["shares"]["gil_wait"] for th in data["threads"])
            if gil == "0":
                assert waited == 0 and "free-threaded build: no GIL" in result.stdout
            else:
                assert waited > 0.2 and "GIL turned on" in result.stdout
        retry_once(check)

    @pytest.mark.parametrize("wchan", [False, True])
    def test_attach_to_a_running_process(self, tmp_path, wchan):
        script = tmp_path / "spin.py"
        script.write_text("import threading, time\n"
                          "def f():\n    t = time.time()\n    while time.time() - t < 4: pass\n"
                          "ts = [threading.Thread(target=f) for _ in range(2)]\n"
                          "[t.start() for t in ts]; [t.join() for t in ts]\n")
        target = subprocess.Popen([sys.executable, str(script)])
        try:
            time.sleep(0.5)
            out = tmp_path / "t.json"
            result = run_gillab("timeline", "-q", "--pid", str(target.pid), "--max-seconds",
                                "0.5", "--json", str(out), *(["--wchan"] if wchan else []))
            assert result.returncode == 0, result.stderr
            assert target.poll() is None  # attached, not taken over: it is left running
            data = json.loads(out.read_text())
            assert len(data["threads"]) == 3 and data["wchan_only"] == wchan
            waited = sum(th["shares"]["futex" if wchan else "gil_wait"] for th in data["threads"])
            assert waited > 0.3
            check_reading(data, _reading(result.stdout))
            if wchan:
                assert "cannot tell" in result.stdout and "GIL wait" not in result.stdout
        finally:
            target.kill()
            target.wait()

    @pytest.mark.parametrize("executor, threads", [("serial", 1), ("thread_pool", 2)])
    def test_other_executors(self, tmp_path, executor, threads):
        out = tmp_path / "t.json"
        result = run_gillab("timeline", "-q", "-e", executor, "--seconds", "0.1",
                            "--json", str(out))
        assert result.returncode == 0, result.stderr
        data = json.loads(out.read_text())
        assert data["scenario"]["executor"] == executor and len(data["threads"]) == threads
        assert all(th["shares"]["cpu"] > 0.2 for th in data["threads"])

    def test_window_outside_the_run(self):
        result = run_gillab("timeline", "-q", "--seconds", "0.05", "--window", "99999")
        assert result.returncode == 1 and "the run lasted only" in result.stderr

    @pytest.mark.parametrize("lab", [False, True])
    def test_ctrl_c_stops_the_child(self, lab):
        marker = f"gillab-timeline-test-{os.getpid()}"
        if lab:  # the lab's child, while it calibrates or runs
            marker, argv = "gillab.timeline.workload", ["-k", "py", "--seconds", "5"]
        else:
            argv = ["--", sys.executable, "-c", f"import time; time.sleep(60) # {marker}"]
        proc = subprocess.Popen([sys.executable, "-m", "gillab", "timeline", "-q", *argv],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.5)
        assert not _no_process_with(marker)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, err
        assert err.strip().splitlines()[-1] == "gillab: interrupted" and out == ""
        time.sleep(0.2)
        assert _no_process_with(marker)


def _lab(kernel="py", executor="threads", workers=2, switch_interval=None, convoy=False,
         seconds=0.4, truth=False):
    from gillab.timeline import child, measure, record

    argv = child.lab_child_argv(kernel, executor, workers, seconds, switch_interval, convoy,
                                  truth)
    rec = measure.watch_lab_child(argv, PERIOD, steady=measure.steady_ns(PERIOD))
    tl = record.build(rec, {"kernel": kernel, "executor": "convoy" if convoy else executor,
                             "workers": workers})
    report.reading_line(tl)  # held against its record (tests/timeline/conftest.py)
    return tl


#: A hand-off that falls between two samples is a short block (1-3 % of the time at
#: the 5 ms switch interval, 11-18 % at 1 ms), never longer than one sampling period;
#: more than that per hand-off is time the counters cannot account for.
HANDOFF_SHORT_NS = PERIOD


def _too_busy(tl, limit=0.12):
    """The machine's load, measured by the timeline itself: the OS queue, and the time
    runnable threads lost that no counter accounts for (`short` beyond what hand-offs
    explain: in a VM, mostly the hypervisor's steal). One cy_nogil run here lost 16 %
    so and read together 76 %; a py run in a clean-clone CI read median runs of 0.18 ms
    (296 runs, holds of 71 ms) and a minute later 5.2 ms again."""
    queued = sum(th.shares[QUEUED] for th in tl.threads) / len(tl.threads)
    lost = 0.0
    for th in tl.threads:
        span = sum(iv.end_ns - iv.start_ns for iv in th.intervals) or 1
        lost += max(0.0, th.shares[SHORT] - th.handoffs * HANDOFF_SHORT_NS / span)
    lost /= len(tl.threads)
    return queued + lost > limit or lost > 0.03, (
        f"the OS queued the watched threads {queued:.0%} of the time and {lost:.0%} more "
        f"than their hand-offs explain went unaccounted (steal)")


def _check_with_retry(make, check):
    """Run, check; retry once; skip (with the reason) when the machine was too busy."""
    for attempt in (1, 2):
        tl = make()
        busy, why = _too_busy(tl)
        try:
            check(tl)
            return tl
        except AssertionError as exc:
            if attempt == 2:
                if busy:
                    first = str(exc).splitlines()[0][:120]
                    pytest.skip(f"machine too busy to tell: {why} (and then: {first})")
                raise


def _cpu_truth(tl):
    """Per thread: the timeline's CPU ms against the child's own thread_time."""
    by_tid = {th.tid: th for th in tl.threads}
    for task in tl.truth["tasks"]:
        th = by_tid[task["tid"]]
        seen = sum(iv.end_ns - iv.start_ns for iv in th.intervals if iv.state == CPU) / MS
        yield seen, task["cpu_ms"]


@pytest.mark.slow
class TestIssueBars:
    """Real runs against the timeline's accuracy bars on 2 cores, within the child's own truth."""

    def test_py_two_threads_take_turns_at_the_switch_interval(self):
        def check(tl):
            for th in tl.threads:
                assert 4.0 <= th.median_run_ms <= 6.5, (th.name, th.median_run_ms)
                assert 4.0 <= th.median_hold_ms <= 6.5, (th.name, th.median_hold_ms)
            assert "switch interval" in report.reading_line(tl)
            for seen, truth in _cpu_truth(tl):
                assert seen == pytest.approx(truth, rel=0.15)
        _check_with_retry(lambda: _lab("py"), check)

    def test_py_cells_agree_with_the_threads_own_progress_stamps(self):
        # The prototype's truth harness: a pure-Python loop stamps its progress; the
        # gaps are when it did not run. Measured here (quiet): 93-95 % of 1 ms cells
        # agree at the 5 ms switch interval, 83-91 % at 1 ms.
        def check(tl):
            assert cpu_agreement(tl) >= 0.85, cpu_agreement(tl)
        _check_with_retry(lambda: _lab(truth=True), check)

        def check_1ms(tl):
            assert cpu_agreement(tl) >= 0.7, cpu_agreement(tl)
        _check_with_retry(lambda: _lab(truth=True, switch_interval=0.001), check_1ms)

    def test_py_at_a_1_ms_switch_interval(self):
        def check(tl):
            for th in tl.threads:
                assert 0.6 <= th.median_run_ms <= 1.6, (th.name, th.median_run_ms)
        _check_with_retry(lambda: _lab("py", switch_interval=0.001), check)

    def test_cy_gil_runs_as_long_as_the_call(self):
        def check(tl):
            # The OS may preempt a thread in the call (queued), but it keeps the GIL: the
            # hold, from its first to its last CPU time, spans the whole call. (The
            # child's own wall clock for the call is no truth: the GIL is handed over at
            # the eval-breaker check after the call returns, before its end is stamped.)
            calls = {t["tid"]: t["cpu_ms"] for t in tl.truth["tasks"]}
            for th in tl.threads:
                assert th.longest_hold_ms >= 0.8 * calls[th.tid], (th.longest_hold_ms,
                                                                   calls[th.tid])
                assert th.handoffs <= 2, th.handoffs
        _check_with_retry(lambda: _lab("cy_gil"), check)

    def test_cy_nogil_threads_run_together_without_gil_waits(self):
        def check(tl):
            assert tl.together_on_cpu >= 0.8
            for th in tl.threads:
                assert th.shares[GIL_WAIT] < 0.01, th.shares[GIL_WAIT]
        _check_with_retry(lambda: _lab("cy_nogil"), check)

    def test_convoy_beside_py_waits_a_switch_interval(self):
        def check(tl):
            io = next(th for th in tl.threads if th.name == "io-sleep")
            truth = next(t for t in tl.truth["tasks"] if t["role"] == "io")
            assert 3.5 <= io.median_wake_to_run_ms <= 6.5, io.median_wake_to_run_ms
            assert io.median_wake_to_run_ms == pytest.approx(truth["median_late_ms"], abs=1.0)
        _check_with_retry(lambda: _lab("py", convoy=True), check)

    def test_convoy_beside_cy_nogil_barely_waits(self):
        def check(tl):
            io = next(th for th in tl.threads if th.name == "io-sleep")
            assert io.median_wake_to_run_ms < 1.0, io.median_wake_to_run_ms
        _check_with_retry(lambda: _lab("cy_nogil", convoy=True), check)


#: A 1 ms ticker (the main thread) beside a pure-Python spin that ends a third of the
#: way in: the switch interval after each wake-up, then nothing.
TICKER_AND_SPIN = """\
import threading, time
def spin(seconds):
    t = time.perf_counter()
    while time.perf_counter() - t < seconds:
        pass
worker = threading.Thread(target=spin, args=(0.25,))
worker.start()
t0 = time.perf_counter()
while time.perf_counter() - t0 < 0.75:
    time.sleep(0.001)
worker.join()
"""
#: The same with asyncio: a 1 ms asyncio.sleep ticker and asyncio.to_thread of the spin.
ASYNCIO_TICKER_AND_SPIN = """\
import asyncio, time
def spin(seconds):
    t = time.perf_counter()
    while time.perf_counter() - t < seconds:
        pass
async def ticker(seconds):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        await asyncio.sleep(0.001)
async def main():
    tick = asyncio.create_task(ticker(0.75))
    await asyncio.to_thread(spin, 0.25)
    await tick
asyncio.run(main())
"""


def _program(tmp_path, source):
    from gillab.timeline import measure, record

    script = tmp_path / "prog.py"
    script.write_text(source)
    argv = [sys.executable, str(script)]
    rec = measure.watch_program(argv, PERIOD, 20.0, measure.steady_ns(PERIOD))
    tl = record.build(rec, {"argv": argv})
    report.reading_line(tl)  # held against its record (tests/timeline/conftest.py)
    return tl


def _ticker_and_spinner(tl):
    ticker = max(tl.threads, key=lambda th: th.wakeups)
    spinner = max((th for th in tl.threads if th is not ticker), key=lambda th: th.shares[CPU])
    return ticker, spinner


@pytest.mark.slow
class TestPhaseRuns:
    """Real programs whose GIL holder stops partway: the reading names the phase."""

    @pytest.mark.parametrize("source", [TICKER_AND_SPIN, ASYNCIO_TICKER_AND_SPIN],
                             ids=["threads", "asyncio"])
    def test_a_ticker_waits_the_switch_interval_only_while_the_spin_runs(self, tmp_path,
                                                                         source):
        def check():
            tl = _program(tmp_path, source)
            ticker, spinner = _ticker_and_spinner(tl)
            beside = next((p for p in ticker.phases if p.beside_tid == spinner.tid), None)
            assert beside is not None and beside.wakeups >= 10, ticker.phases
            # Python's default switch interval, 5 ms, within 35 %.
            assert 3.25 <= beside.median_wake_to_run_ms <= 6.75, beside
            calm = next(p for p in ticker.phases if p.beside_tid is None)
            assert calm.wakeups > beside.wakeups and calm.median_wake_to_run_ms < 1.0, calm
            text = report.reading_line(tl)
            assert f"while {report.thread_name(tl, spinner)} ran, " in text, text
            assert "nothing held the GIL" not in text, text
            return tl, ticker
        tl, ticker = retry_once(check)
        # asyncio's loop blocks in epoll_wait; a plain ticker in clock_nanosleep.
        assert ticker.event_loop == (source is ASYNCIO_TICKER_AND_SPIN)
        if ticker.event_loop:
            assert "the event loop (main)" in report.reading_line(tl)
