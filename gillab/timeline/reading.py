"""The timeline's one-sentence reading: small deciders over the record's figures, each
returning a sentence or None, the first that speaks wins. Words only what the record
holds (tests/timeline/consistency.py holds every reading against it). Never measures."""
from __future__ import annotations

from gillab.core import stats
from gillab.timeline.gilmap import CPU, FUTEX, GIL_WAIT, IO, QUEUED, SHORT
from gillab.timeline.record import Timeline

__all__ = ["reading_line", "gil_waited", "thread_name", "MIN_PHASE_WAKES", "WAITED_MS"]


def ms_text(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def gil_waited(tl: Timeline) -> bool:
    """Did any thread wait for the GIL (a free-threaded build with it turned on does)?"""
    return any(th.shares.get(GIL_WAIT, 0) > 0 for th in tl.threads)


#: A sleeper wakes at least this often and sleeps (or waits on IO) this share of the run.
SLEEPER_WAKES, SLEEPER_IO = 5, 0.05
#: A phase of wake-ups is read when it has this many; it waited for the GIL when its
#: median wake-to-run is this long (a sleeper that gets the GIL at once runs within
#: tens of microseconds of waking).
MIN_PHASE_WAKES, WAITED_MS = 3, 1.0


def _is_sleeper(th) -> bool:
    return (th.median_wake_to_run_ms is not None and th.wakeups >= SLEEPER_WAKES
            and th.shares[IO] > SLEEPER_IO)


def _thread(tl: Timeline, tid: int):
    return next(th for th in tl.threads if th.tid == tid)


def thread_name(tl: Timeline, th) -> str:
    """How a reading names a thread: its name (with its tid when another thread has the
    same name), and an event loop's thread as such."""
    name = th.name if sum(t.name == th.name for t in tl.threads) == 1 else f"{th.name} {th.tid}"
    return f"the event loop ({name})" if th.event_loop else name


class Figures:
    """What every decider of the reading needs: the threads in the contest for the GIL,
    the switch interval to compare with, their mean shares, and the busy-machine note."""

    def __init__(self, tl: Timeline):
        # Threads that mostly waited on a lock or slept (a main thread in join()) are
        # not part of the contest for the GIL; sleepers are read on their own.
        self.threads = [th for th in tl.threads
                        if th.shares[CPU] + th.shares[QUEUED] + th.shares[GIL_WAIT] >= 0.2
                        ] or tl.threads
        n = len(self.threads)
        self.si_ms = tl.switch_interval * 1e3 if tl.switch_interval else None
        self.default_si = ""
        if self.si_ms is None and ("argv" in tl.scenario or "pid" in tl.scenario):
            self.si_ms, self.default_si = 5.0, ", Python's default"
        self.gil_share = sum(th.shares[GIL_WAIT] for th in self.threads) / n
        self.queued = sum(th.shares[QUEUED] for th in self.threads) / n
        # Blocks shorter than a sample are also every hand-off of threads taking turns
        # at a short switch interval; only where nobody waits for the GIL are they lost.
        short = (sum(th.shares[SHORT] for th in self.threads) / n
                 if self.gil_share < 0.05 else 0.0)
        self.note = (f" (the OS also queued the threads {self.queued:.0%} of the time: the "
                     "machine is busy)" if self.queued > 0.1 else "")
        if short > 0.1:
            self.note += (f" (the threads also lost {short:.0%} of the time to blocks shorter "
                          "than a sample or, in a VM, to the hypervisor: the machine is busy)")

    def near_switch_interval(self, ms: float) -> bool:
        return bool(self.si_ms) and abs(ms - self.si_ms) <= 0.35 * self.si_ms

    def switch_interval(self) -> str:
        return f"the switch interval ({self.si_ms:g} ms{self.default_si})"


def reading_line(tl: Timeline) -> str:
    """The one sentence a reader should take away, decided from the figures: the first
    decider that has something to say says it."""
    if not tl.threads:
        return "no thread was seen running"
    fig = Figures(tl)
    for decide in (_read_wchan, _read_free_threaded, _read_sleeper, _read_together,
                   _read_turns, _read_one_thread):
        sentence = decide(tl, fig)
        if sentence:
            return sentence + fig.note
    return (f"the threads waited for the GIL {fig.gil_share:.0%} of the time and ran together "
            f"{tl.together_on_cpu:.0%}{fig.note}")


def _read_wchan(tl: Timeline, fig: Figures) -> str | None:
    if not tl.wchan:
        return None
    futex = sum(th.shares[FUTEX] for th in fig.threads) / len(fig.threads)
    return (f"the threads waited on a futex {futex:.0%} of the time, the GIL or another "
            f"lock: without the syscall files gillab cannot tell which (start the program "
            f"with gillab timeline -- to see)")


def _read_free_threaded(tl: Timeline, fig: Figures) -> str | None:
    if not tl.free_threaded or gil_waited(tl):
        return None
    return (f"free-threaded build: no GIL; threads on CPUs together "
            f"{tl.together_on_cpu:.0%} of the time they had work")


def _waited_phases(th) -> list:
    return [p for p in th.phases if p.beside_tid is not None and p.wakeups >= MIN_PHASE_WAKES
            and p.median_wake_to_run_ms >= WAITED_MS]


def _convoy(fig: Figures, wake_ms: float) -> str:
    if fig.near_switch_interval(wake_ms):
        return f": about {fig.switch_interval()}, the convoy effect"
    return ": the convoy effect"


def _read_sleeper(tl: Timeline, fig: Figures) -> str | None:
    """A thread that sleeps and wakes: how long each wake-up waited to run, phase by
    phase where another thread ran for only part of the run."""
    # An event loop first, then a sleeper that waited for the GIL after waking.
    sleepers = sorted((th for th in tl.threads if _is_sleeper(th)),
                      key=lambda th: (not th.event_loop, not _waited_phases(th)))
    if not sleepers:
        return None
    th = sleepers[0]
    who, waited = thread_name(tl, th), _waited_phases(th)
    if waited:
        return _read_phases(tl, fig, th, max(waited, key=lambda p: p.wakeups))
    wake = th.median_wake_to_run_ms
    if wake >= WAITED_MS:
        return (f"{who} woke {th.wakeups} times and each time waited a median {wake:.1f} ms "
                f"for the GIL before it ran{_convoy(fig, wake)}")
    if th.shares[GIL_WAIT] >= 0.05:  # its waits came while it ran, not after waking
        return (f"{who} woke {th.wakeups} times and ran within a median {wake:.2f} ms of "
                f"waking, but waited for the GIL {th.shares[GIL_WAIT]:.0%} of the time "
                f"(a median {ms_text(th.median_gil_wait_ms)} ms) at other moments")
    return (f"{who} woke {th.wakeups} times and ran within a median {wake:.2f} ms: "
            f"nothing held the GIL against it")


def _read_phases(tl: Timeline, fig: Figures, th, phase) -> str:
    """'while X ran, Y woke N times and waited a median W ms for the GIL', and what the
    wake-ups found when no other thread ran."""
    beside = thread_name(tl, _thread(tl, phase.beside_tid))
    wake = phase.median_wake_to_run_ms
    text = (f"while {beside} ran, {thread_name(tl, th)} woke {phase.wakeups} times and "
            f"waited a median {wake:.1f} ms for the GIL before it ran{_convoy(fig, wake)}")
    calm = next((p for p in th.phases if p.beside_tid is None
                 and p.wakeups >= MIN_PHASE_WAKES), None)
    if calm is not None:
        text += (f"; while no other thread ran, it woke {calm.wakeups} times and ran "
                 f"within a median {calm.median_wake_to_run_ms:.2f} ms")
    return text


def _read_together(tl: Timeline, fig: Figures) -> str | None:
    if len(fig.threads) >= 2 and tl.together_on_cpu >= 0.5 and fig.gil_share < 0.05:
        return (f"the threads ran on CPUs together {tl.together_on_cpu:.0%} of the time they "
                f"both had work and waited for the GIL {fig.gil_share:.0%}: they released it")
    return None


def _read_turns(tl: Timeline, fig: Figures) -> str | None:
    """Threads taking turns: at the switch interval, past it (whole C calls), or
    stretched by the OS queue."""
    holds = [th.median_hold_ms for th in fig.threads if th.median_hold_ms and th.handoffs]
    if len(fig.threads) < 2 or not holds or fig.gil_share < 0.2:
        return None
    n, si_ms, default_si = len(fig.threads), fig.si_ms, fig.default_si
    hold = stats.median(holds)
    if fig.near_switch_interval(hold):
        return f"the {n} threads took turns every {hold:.1f} ms: {fig.switch_interval()}"
    # At a switch interval of two sampling periods or less, a hand-off the samples
    # missed joins two turns into one hold; the uninterrupted runs still show it.
    runs = [th.median_run_ms for th in fig.threads if th.median_run_ms]
    run = stats.median(runs) if runs else None
    if si_ms and run and si_ms * 1e6 <= 2 * tl.period_ns and fig.near_switch_interval(run):
        return (f"the {n} threads took turns, running {run:.2f} ms at a time: "
                f"{fig.switch_interval()}")
    if si_ms and hold > 3 * si_ms and (fig.queued < 0.1 or hold > 10 * si_ms):
        return (f"the {n} threads took turns every {hold:.0f} ms, far past the {si_ms:g} ms "
                f"switch interval{default_si}: each held the GIL for a whole C call")
    if si_ms and fig.queued >= 0.1 and hold > si_ms:
        return (f"the {n} threads took turns every {hold:.1f} ms: "
                f"{fig.switch_interval()} stretched by the OS queue")
    return f"the {n} threads took turns holding the GIL every {hold:.1f} ms"


def _read_one_thread(tl: Timeline, fig: Figures) -> str | None:
    if len(fig.threads) == 1:
        return f"one thread, on CPU {fig.threads[0].shares[CPU]:.0%} of the time"
    return None
