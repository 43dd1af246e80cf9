"""The lines of ``convoy``: env on top, one table per probe with its reasons, the verdict
words, then what the shapes mean, in this run's own numbers.

Rows in, lines out (the caller prints them): it never measures.
"""
from __future__ import annotations

import textwrap

from gillab.compare.report import Column, render_table
from gillab.convoy.records import (LOOP_PROBE, SLEEP_S, TICK_S, Row, interval_text,
                                   ms_text)
from gillab.convoy.verdict import NOISE_LIMIT, VERDICTS
from gillab.compare.report import format_env_line

__all__ = ["PROBE_TITLES", "WIDTH", "format_convoy", "write_plot"]

PROBE_TITLES = {
    "sleep": f"sleep: time.sleep({SLEEP_S * 1000:g} ms), from the call to its return",
    "socketpair": "socketpair: 1 byte there and back over a socketpair, both ends in the "
                  "main thread",
    "echo": "echo: one small request to the lab's thread-per-connection TCP echo server "
            "(127.0.0.1), and its reply",
    "loop": f"loop: an asyncio loop's {TICK_S * 1000:g} ms timer, its lag = the time "
            f"`await asyncio.sleep({TICK_S:g})` took - {TICK_S * 1000:g} ms. Where the work "
            "ran: thread = asyncio.to_thread, loop = inline in the loop, process = "
            "run_in_executor(ProcessPoolExecutor); work = its kernel iterations per second, "
            "against its speed alone",
}

WIDTH = 80
def _wrap(text: str, indent: str = "", hang: str = "    ") -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=indent,
                         subsequent_indent=indent + hang) or [""]


def _ratio(row: Row) -> str:
    return f"{row.ratio:.2f}x" if row.ratio is not None else "-"


def _verdict(row: Row) -> str:
    return row.verdict + ("*" if row.noise is not None and row.noise > NOISE_LIMIT else "")


#: The convoy table, described by its columns (gillab.compare.report draws it).
COLUMNS = [Column("background", 10, lambda r: r.background, "<"),
           Column("switch", 6, lambda r: interval_text(r.switch_interval), "<"),
           Column("p50 ms", 8, lambda r: ms_text(r.p50_ms)),
           Column("p99 ms", 8, lambda r: ms_text(r.p99_ms)),
           Column("max ms", 8, lambda r: ms_text(r.max_ms)),
           Column("p50/base", 8, _ratio),
           Column("verdict", 7, _verdict, "<")]


def _share(row: Row) -> str:
    return f"{row.throughput_share:.0%}" if row.throughput_share is not None else "-"


#: The loop probe's table: the timer's lag, where the work ran and what it got done.
LOOP_COLUMNS = [Column("backgr.", 8, lambda r: r.background, "<"),
                Column("where", 7, lambda r: r.where or "-", "<"),
                Column("switch", 6, lambda r: interval_text(r.switch_interval), "<"),
                Column("lag p50", 7, lambda r: ms_text(r.p50_ms)),
                Column("lag p99", 7, lambda r: ms_text(r.p99_ms)),
                Column("lag max", 7, lambda r: ms_text(r.max_ms)),
                Column("work", 6, _share),
                Column("verdict", 12, _verdict, "<")]


def _find(rows, background, probe, interval, where="thread"):
    for r in rows:
        if (r.background, r.probe, r.switch_interval) == (background, probe, interval) and (
                r.background == "none" or r.where == where):
            return r
    return None


def _lesson(rows, settings: dict, env: dict) -> list[str]:
    """What the shapes mean, with this run's own numbers where it has them."""
    text = _thread_lesson(rows, settings) if any(
        r.probe != LOOP_PROBE for r in rows) else []
    if any(r.probe == LOOP_PROBE for r in rows):
        text += _loop_lesson(rows, env)
    lines = []
    for paragraph in text:
        lines += ["", *_wrap(paragraph, hang="")]
    return lines


def _loop_lesson(rows, env: dict) -> list[str]:
    """The loop probe's paragraphs: the causes at Python's own switch interval (or the
    largest measured), and the trade-off the interval tunes."""
    loop = [r for r in rows if r.probe == LOOP_PROBE]

    def lag(background, where, interval):
        r = _find(loop, background, LOOP_PROBE, interval, where)
        return f"{ms_text(r.p50_ms)} ms" if r is not None else None

    intervals = sorted({r.switch_interval for r in loop})
    default = env.get("switch_interval")
    default = default if default in intervals else intervals[-1]
    causes = [f"{what} ({got})" for what, got in (
        ("alone", lag("none", None, default)),
        ("beside pure Python on a thread", lag("py", "thread", default)),
        ("beside a C call that holds the GIL", lag("cy_gil", "thread", default)),
        ("beside one that releases it", lag("cy_nogil", "thread", default)),
        ("with the work inline", lag("py", "loop", default)),
        ("with the work in a process pool", lag("py", "process", default))) if got]
    text = [f"The loop's timer at {interval_text(default)}: " + "; ".join(causes) + ". "
            "asyncio.to_thread moves the work off the loop but not off the GIL: beside "
            "Python bytecode the loop wakes on time and then waits one switch interval; "
            "beside a C call that holds the GIL it waits for the call's end; work inline "
            "blocks it for a whole callback. Only work that releases the GIL, or runs in "
            "another process, leaves it responsive."]
    py = sorted((r for r in loop if r.where == "thread" and r.background == "py"),
                key=lambda r: r.switch_interval)
    if len(intervals) > 1 and len(py) > 1:
        trade = "; ".join(f"{interval_text(r.switch_interval)}: lag {ms_text(r.p50_ms)} ms, "
                          f"py at {_share(r)} of its speed alone" for r in py)
        text.append("The trade-off sys.setswitchinterval tunes (py on a thread): "
                    f"{trade}. A smaller interval shortens the loop's lag; "
                    + _price(py[0], py[-1]))
    return text


def _price(small: Row, large: Row) -> str:
    """What the smallest interval cost the busy thread against the largest, as measured."""
    if small.throughput_share is None or large.throughput_share is None:
        return "what it costs the busy thread was not measured."
    cost = large.throughput_share - small.throughput_share
    if cost > 0.05:
        return f"here the hand-offs cost py {cost:.0%} of its speed alone."
    if cost >= -0.05:
        return "here the hand-offs hardly slowed py."
    return ("py ran faster at the smaller interval: here its speed followed the machine's "
            "load, not the interval.")


def _thread_lesson(rows, settings: dict) -> list[str]:
    """The thread probes' paragraphs."""
    default, small = settings["switch_intervals"][0], settings["switch_intervals"][-1]
    # The sleep rows carry the lesson's numbers; without them the text stays general.
    what = f"a {SLEEP_S * 1000:g} ms sleep"

    def p50(background, interval):
        r = _find(rows, background, "sleep", interval)
        return f"{ms_text(r.p50_ms)} ms" if r is not None else None

    text = []
    alone = p50("none", default)
    py, py_small = p50("py", default), p50("py", small)
    gil, gil_small = p50("cy_gil", default), p50("cy_gil", small)
    nogil = p50("cy_nogil", default)
    measured = [r.call_ms for r in rows if r.background == "cy_gil" and r.call_ms]
    call = measured[0] if measured else settings["call_ms"]
    text.append(
        "How to read it. A thread that waits for IO lets go of the GIL and must take it "
        "back when the wait ends. If another thread is running Python, it gets it back only "
        "when the switch interval (sys.setswitchinterval) forces that thread to let go: "
        f"{what} costs about its own time plus one interval"
        + (f" (here {py} beside pure Python at {interval_text(default)}, "
           f"against {alone} alone)" if py and alone else "")
        + ", and a smaller interval shortens the wait"
        + (f" ({py_small} at {interval_text(small)})" if py_small and small != default else "")
        + ".")
    text.append(
        "A C call that holds the GIL (cy_gil) never lets go before it returns: the IO "
        f"thread waits for the rest of the call (~{call:.1f} ms here), whatever the interval"
        + (f" ({gil} at {interval_text(default)}, {gil_small} at {interval_text(small)})"
           if gil and gil_small and small != default else f" ({gil})" if gil else "")
        + ". A C call that releases the GIL (cy_nogil) costs the IO thread nothing"
        + (f" ({nogil})" if nogil else "")
        + ": that is the lesson of GIL release.")
    echo_py = _find(rows, "py", "echo", default)
    echo_nogil = _find(rows, "cy_nogil", "echo", default)
    echo = ""
    if echo_py is not None and echo_nogil is not None:
        echo = (f" (p99 here, at {interval_text(default)}: {ms_text(echo_py.p99_ms)} ms "
                f"beside pure Python, {ms_text(echo_nogil.p99_ms)} ms beside cy_nogil)")
    text.append(
        "Socket calls that do not block (socketpair) usually finish before the busy thread "
        "has woken up to take the GIL, so p50 hardly moves; the few that lose it wait a whole "
        "turn: the damage shows in p99. The echo server's handler is a thread too: a request "
        "may wait for the GIL twice, once in the server and once for the reply. That is what "
        "a CPU-bound thread does to a thread-per-connection server's p99, and what a "
        f"nogil extension spares it{echo}.")
    return text


def format_convoy(rows, env: dict, settings: dict) -> list[str]:
    """Lines of the convoy report: env on top, one table per probe with its reasons,
    the verdict words, then what the shapes mean."""
    lines = [*_wrap(f"gillab convoy — {format_env_line(env)}"), "",
             *_wrap(f"The main thread times one small IO operation at a time (the loop "
                    f"probe: an asyncio loop's timer), {settings['samples']} per row, while "
                    f"a background kernel runs in calls of ~{settings['call_ms']:g} ms "
                    f"(none: nothing). socketpair and echo operations are paced "
                    f"{settings['gap_ms']:g} ms apart (untimed). p50/base = p50 / the p50 of "
                    "`none` at the same interval.", hang="")]
    by_probe: dict = {}
    for r in rows:
        by_probe.setdefault(r.probe, []).append(r)
    for probe, group in by_probe.items():
        columns = LOOP_COLUMNS if probe == LOOP_PROBE else COLUMNS
        lines += ["", *_wrap(PROBE_TITLES[probe]), *render_table(columns, group)]
        for r in group:
            if r.background != "none":
                place = f" ({r.where})" if probe == LOOP_PROBE else ""
                lines += _wrap(f"{r.background}{place} @ "
                               f"{interval_text(r.switch_interval)}: {r.reason}", indent="  ")
    lines += ["", "Verdicts:"]
    width = max(len(word) for word in VERDICTS)
    for word, meaning in VERDICTS.items():
        lines += _wrap(f"{word:<{width}}  {meaning}", indent="  ", hang=" " * (width + 2))
    noisy = [r for r in rows if r.noise is not None and r.noise > NOISE_LIMIT]
    if noisy:
        worst = max(r.noise for r in noisy)
        lines += ["", *_wrap(f"* WARNING: other processes took more than "
                             f"{NOISE_LIMIT:.0%} of the machine during {len(noisy)} of "
                             f"{len(rows)} rows (up to {worst:.0%}); their tails may owe "
                             "as much to the OS as to the GIL.")]
    lines += _lesson(rows, settings, env)
    return lines


def write_plot(rows, env: dict, path: str) -> None:
    """A PNG of the loop probe's rows: the timer's lag p50 (left) and the work's speed
    against its speed alone (right), both against the switch interval; one colour per
    kernel, one line style per place it ran. Written atomically (compare's save_figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gillab.compare.plot import save_figure
    from gillab.compare.report import format_env_line

    loop = [r for r in rows if r.probe == LOOP_PROBE]
    fig, (lag_ax, work_ax) = plt.subplots(1, 2, figsize=(10, 4.2))
    styles = {None: ":", "thread": "-", "loop": "--", "process": "-."}
    colors: dict = {}
    for key in dict.fromkeys((r.background, r.where) for r in loop):
        mine = sorted((r for r in loop if (r.background, r.where) == key),
                      key=lambda r: r.switch_interval)
        xs = [r.switch_interval * 1000 for r in mine]
        color = colors.setdefault(key[0], "k" if key[0] == "none" else f"C{len(colors)}")
        label = key[0] if key[1] is None else f"{key[0]} ({key[1]})"
        lag_ax.plot(xs, [r.p50_ms for r in mine], styles[key[1]], marker="o", color=color,
                    label=label)
        shares = [(x, r.throughput_share * 100) for x, r in zip(xs, mine)
                  if r.throughput_share is not None]
        if shares:
            work_ax.plot(*zip(*shares), styles[key[1]], marker="o", color=color, label=label)
    ticks = sorted({r.switch_interval * 1000 for r in loop})
    for ax in (lag_ax, work_ax):
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("switch interval (ms, sys.setswitchinterval)")
        ax.grid(alpha=0.3)
    lag_ax.set_ylabel(f"loop timer lag p50 (ms past {TICK_S * 1000:g} ms)")
    # Linear below 0.1 ms, where the baseline lives; logarithmic above, up to a call.
    lag_ax.set_yscale("symlog", linthresh=0.1)
    lag_ax.set_ylim(bottom=0)
    work_ax.set_ylabel("background work: % of its speed alone")
    work_ax.set_ylim(0, 110)
    lag_ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"gillab convoy -p loop — {format_env_line(env)}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
