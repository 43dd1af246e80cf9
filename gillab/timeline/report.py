"""Draw a Timeline: the terminal picture, the per-thread figures, the one-line reading,
and the PNG. Never measures."""
from __future__ import annotations

from gillab.timeline.gilmap import CPU, FUTEX, GIL_WAIT, IO, LOCK_WAIT, QUEUED, SHORT
from gillab.timeline.reading import (MIN_PHASE_WAKES, _is_sleeper, _thread, gil_waited,
                                     ms_text, reading_line, thread_name)
from gillab.timeline.record import Timeline

#: One character per state: plain when piped, coloured on a terminal.
CHARS = {CPU: "#", GIL_WAIT: ".", LOCK_WAIT: "L", QUEUED: "q", IO: "_", SHORT: ",", FUTEX: "f"}
STYLES = {CPU: "bold green", GIL_WAIT: "red", LOCK_WAIT: "magenta", QUEUED: "yellow",
          IO: "blue", SHORT: "dim", FUTEX: "bright_red"}
LEGEND = {CPU: "on CPU", GIL_WAIT: "waiting for the GIL", LOCK_WAIT: "waiting for another lock",
          QUEUED: "runnable, queued by the OS", IO: "IO or sleep",
          SHORT: "a block shorter than a sample (or VM steal)",
          FUTEX: "a futex: the GIL or another lock"}
#: PNG colours, the same meaning as the terminal's.
COLOURS = {CPU: "#2ca02c", GIL_WAIT: "#d62728", LOCK_WAIT: "#9467bd", QUEUED: "#ffbf00",
           IO: "#1f77b4", SHORT: "#bbbbbb", FUTEX: "#ff7f0e"}


class Window:
    """The slice of the run the picture shows: start and bucket width, in ns."""

    def __init__(self, start_ns: int, bucket_ns: int, buckets: int):
        self.start_ns, self.bucket_ns, self.buckets = start_ns, bucket_ns, buckets

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.bucket_ns * self.buckets


def choose_window(tl: Timeline, columns: int, start_ms: float | None = None,
                  length_ms: float | None = None) -> Window:
    """By default: buckets no finer than two sampling periods (1 ms at 0.5 ms), wider
    when the threads hold the CPU for long, starting a little after go (the start-up is
    not the steady state), as many as the terminal fits."""
    wall = tl.t1_ns - tl.t0_ns
    if length_ms is not None:
        bucket = int(length_ms * 1e6 / columns)
    else:
        # The pattern to show: the turns of threads that take turns (the shortest), or
        # else the longest hold (C calls that keep the GIL, threads that never wait).
        turns = [th.median_hold_ms for th in tl.threads if th.median_hold_ms and th.handoffs >= 2]
        holds = [th.median_hold_ms for th in tl.threads if th.median_hold_ms]
        typical = min(turns) if turns else max(holds) if holds else 1.0
        bucket = 1_000_000
        if typical > 20:  # long holds: show a few of them, not one
            bucket = _nice(int(typical * 1e6 * 3 / columns))
    bucket = max(bucket, tl.period_ns * 2)
    buckets = max(1, min(columns, wall // bucket))
    if start_ms is not None:
        start = tl.t0_ns + int(start_ms * 1e6)
    else:
        spare = wall - buckets * bucket
        start = tl.t0_ns + min(spare, max(0, int(wall * 0.1)))
    return Window(start, bucket, buckets)


def _nice(ns: int) -> int:
    """Round a bucket up to 1, 2 or 5 times a power of ten (in ns)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= ns:
                return m * step
        step *= 10


def bucket_states(intervals, window: Window) -> list[str | None]:
    """The state that filled most of each bucket (None: the thread was not there)."""
    out = []
    ivs = sorted(intervals)
    i = 0
    for b in range(window.buckets):
        lo = window.start_ns + b * window.bucket_ns
        hi = lo + window.bucket_ns
        while i < len(ivs) and ivs[i].end_ns <= lo:
            i += 1
        totals: dict = {}
        j = i
        while j < len(ivs) and ivs[j].start_ns < hi:
            overlap = min(hi, ivs[j].end_ns) - max(lo, ivs[j].start_ns)
            if overlap > 0:
                totals[ivs[j].state] = totals.get(ivs[j].state, 0) + overlap
            j += 1
        out.append(max(totals, key=totals.get) if totals else None)
    return out


def _label(th, width: int) -> str:
    return f"{th.name[:width - 8]} {th.tid}"[:width].ljust(width)


def picture_rows(tl: Timeline, window: Window, colour: bool):
    """(label, cells) per thread; cells a rich Text when colour, else a str."""
    rows = []
    for th in tl.threads:
        states = bucket_states(th.intervals, window)
        if colour:
            from rich.text import Text

            text = Text()
            for s in states:
                text.append(CHARS[s] if s else " ", style=STYLES.get(s, ""))
            rows.append((th, text))
        else:
            rows.append((th, "".join(CHARS[s] if s else " " for s in states)))
    return rows


def format_timeline(tl: Timeline, window: Window, colour: bool = False,
                    width: int = 100) -> list[str]:
    """The whole report: header, picture, legend, per-thread table, reading."""
    label_width = 18
    start_ms = (window.start_ns - tl.t0_ns) / 1e6
    end_ms = (window.end_ns - tl.t0_ns) / 1e6
    steady = tl.sampler.get("steady_period_ms")
    head = [f"gillab timeline: {scenario_text(tl)}",
            f"{len(tl.threads)} thread(s), {tl.wall_ms:.0f} ms; "
            f"showing {start_ms:.0f}-{end_ms:.0f} ms, 1 cell = {window.bucket_ns / 1e6:g} ms",
            f"sampled every {tl.period_ns / 1e6:g} ms"
            + (f", every {steady:g} ms while no thread changed state" if steady else "")
            + f" (mean {tl.sampler.get('achieved_period_ms', 0):.2f} ms)"]
    if tl.attached_note:
        head.append(tl.attached_note)
    if tl.free_threaded and gil_waited(tl):
        head.append("free-threaded build with its GIL turned on (PYTHON_GIL=1, -X gil=1, or an "
                    "extension not marked free-threading-safe)")
    elif tl.free_threaded:
        head.append("free-threaded build: the GIL is off, no thread waited for it; waits are "
                    "locks or IO")
    elif tl.gil_note and not tl.gil_note.startswith("_PyRuntime") and not tl.wchan:
        head.append(f"GIL not located ({tl.gil_note}): futex waits all show as lock waits")
    shown = _legend_states(tl)
    legend = "  ".join(f"{CHARS[s]} {LEGEND[s]}" for s in shown)
    rows = picture_rows(tl, window, colour)
    table = format_thread_table(tl)
    reading = ["", "reading: " + reading_line(tl)]
    if not colour:
        return head + [""] + [f"{_label(th, label_width)}|{cells}|" for th, cells in rows] + \
            ["", "legend: " + legend, ""] + table + reading
    from rich.console import Console
    from rich.text import Text

    console = Console(width=max(width, label_width + window.buckets + 4), force_terminal=True,
                      color_system="standard", highlight=False)
    with console.capture() as capture:
        for line in head + [""]:
            console.print(line, markup=False)
        for th, cells in rows:
            console.print(Text(_label(th, label_width) + "|") + cells + Text("|"))
        legend_text = Text("\nlegend: ")
        for s in shown:
            legend_text.append(CHARS[s], style=STYLES[s])
            legend_text.append(f" {LEGEND[s]}  ")
        console.print(legend_text)
        console.print("")
        for line in table + reading:
            console.print(line, markup=False)
    return capture.get().rstrip("\n").split("\n")


def _legend_states(tl: Timeline) -> tuple:
    if tl.wchan:
        return (CPU, FUTEX, QUEUED, IO, SHORT)
    if tl.free_threaded and not gil_waited(tl):
        return (CPU, LOCK_WAIT, QUEUED, IO, SHORT)
    return (CPU, GIL_WAIT, LOCK_WAIT, QUEUED, IO, SHORT)


def scenario_text(tl: Timeline) -> str:
    sc = tl.scenario
    if "argv" in sc:
        return " ".join(sc["argv"])
    if "pid" in sc:
        return f"process {sc['pid']} ({sc.get('comm', '?')}), attached"
    si = f", switch interval {tl.switch_interval * 1e3:g} ms" if tl.switch_interval else ""
    if sc.get("executor") == "convoy":
        return f"convoy: a thread doing 1 ms sleeps beside a {sc['kernel']} thread{si}"
    return f"{sc['kernel']} on {sc['workers']} worker(s), {sc['executor']}{si}"


def format_thread_table(tl: Timeline) -> list[str]:
    if tl.wchan:
        head = "thread              cpu     futex  lock"
    else:
        head = "thread              cpu  GIL wait  lock"
    lines = [head + "  queued   IO  short | median run  hold  "
             + ("    wait" if tl.wchan else "GIL wait") + "  wake->run | hand-offs"]
    for th in tl.threads:
        s = th.shares
        waited = s[FUTEX] if tl.wchan else s[GIL_WAIT]
        lines.append(
            f"{_label(th, 18)}{s['cpu']:4.0%}  {waited:7.0%}  {s['lock_wait']:4.0%}  "
            f"{s['queued']:6.0%}  {s['io']:3.0%}  {s['short']:5.0%} | "
            f"{ms_text(th.median_run_ms):>7} ms "
            f"{ms_text(th.median_hold_ms):>5}  {ms_text(th.median_gil_wait_ms):>8}  "
            f"{ms_text(th.median_wake_to_run_ms):>9} | {th.handoffs:>9}")
    lines.append(f"two or more threads on a CPU at once: {tl.together_on_cpu:.0%} of the time "
                 "two or more had work (ran, queued or waited for the GIL)")
    for th in tl.threads:
        if th.event_loop:
            lines.append(f"{_label(th, 18).rstrip()}: an event loop (it blocks mostly in "
                         "epoll_wait, select or poll)")
    return lines + format_phases(tl)


def format_phases(tl: Timeline) -> list[str]:
    """A sleeper's wake->run split by what else ran when it woke, where another thread
    did for a few of its wake-ups: one median over both phases says neither."""
    lines = []
    for th in tl.threads:
        if not _is_sleeper(th) or not any(p.beside_tid is not None
                                           and p.wakeups >= MIN_PHASE_WAKES for p in th.phases):
            continue
        if not lines:
            lines.append("wake->run by what else was running when the thread woke:")
        for p in th.phases:
            beside = ("no other thread" if p.beside_tid is None
                      else thread_name(tl, _thread(tl, p.beside_tid)))
            lines.append(f"  {_label(th, 18).rstrip()} woke {p.wakeups} times while {beside} "
                         f"ran ({p.first_wake_ms:.0f}-{p.last_wake_ms:.0f} ms): median "
                         f"{p.median_wake_to_run_ms:.2f} ms")
    return lines


def write_png(tl: Timeline, path: str, window: Window | None = None) -> None:
    """One bar per thread, coloured by state (matplotlib, the plot extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    lo = window.start_ns if window else tl.t0_ns
    hi = window.end_ns if window else tl.t1_ns
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(tl.threads) + 2.4), dpi=100)
    for row, th in enumerate(tl.threads):
        for state, colour in COLOURS.items():
            bars = [((max(iv.start_ns, lo) - lo) / 1e6,
                     (min(iv.end_ns, hi) - max(iv.start_ns, lo)) / 1e6)
                    for iv in th.intervals
                    if iv.state == state and iv.end_ns > lo and iv.start_ns < hi]
            if bars:
                ax.broken_barh(bars, (row - 0.4, 0.8), color=colour, linewidth=0)
    ax.set_yticks(range(len(tl.threads)), [f"{th.name} {th.tid}" for th in tl.threads])
    ax.invert_yaxis()
    ax.set_xlim(0, (hi - lo) / 1e6)
    ax.set_xlabel(f"ms (from {(lo - tl.t0_ns) / 1e6:.0f} ms into the run)")
    import textwrap

    ax.set_title(scenario_text(tl) + "\n" + textwrap.fill(reading_line(tl), 110), fontsize=9)
    # The legend below the figure, in the figure's own space, so it never covers the
    # x axis's label however few threads there are.
    fig.legend(handles=[Patch(color=COLOURS[s], label=LEGEND[s]) for s in _legend_states(tl)],
               loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    from gillab.compare.plot import save_figure

    save_figure(fig, path, bbox_inches="tight")
