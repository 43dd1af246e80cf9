"""The lines of ``convoy``: env on top, one table per probe with its reasons, the verdict
words, then what the shapes mean, in this run's own numbers.

Rows in, lines out (the caller prints them): it never measures.
"""
from __future__ import annotations

import textwrap

from gillab.compare.report import Column, render_table
from gillab.convoy.records import SLEEP_S, Row, interval_text, ms_text
from gillab.convoy.verdict import NOISE_LIMIT, VERDICTS
from gillab.compare.report import format_env_line

__all__ = ["PROBE_TITLES", "WIDTH", "format_convoy"]

PROBE_TITLES = {
    "sleep": f"sleep: time.sleep({SLEEP_S * 1000:g} ms), from the call to its return",
    "socketpair": "socketpair: 1 byte there and back over a socketpair, both ends in the "
                  "main thread",
    "echo": "echo: one small request to the lab's thread-per-connection TCP echo server "
            "(127.0.0.1), and its reply",
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


def _find(rows, background, probe, interval):
    for r in rows:
        if (r.background, r.probe, r.switch_interval) == (background, probe, interval):
            return r
    return None


def _lesson(rows, settings: dict) -> list[str]:
    """What the shapes mean, with this run's own numbers where it has them."""
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
    lines = []
    for paragraph in text:
        lines += ["", *_wrap(paragraph, hang="")]
    return lines


def format_convoy(rows, env: dict, settings: dict) -> list[str]:
    """Lines of the convoy report: env on top, one table per probe with its reasons,
    the verdict words, then what the shapes mean."""
    lines = [*_wrap(f"gillab convoy — {format_env_line(env)}"), "",
             *_wrap(f"The main thread times one small IO operation at a time, "
                    f"{settings['samples']} per row, while one background thread runs the "
                    f"kernel in calls of ~{settings['call_ms']:g} ms (none: no thread). "
                    f"socketpair and echo operations are paced {settings['gap_ms']:g} ms "
                    "apart (untimed). p50/base = p50 / the p50 of `none` at the same "
                    "interval.", hang="")]
    by_probe: dict = {}
    for r in rows:
        by_probe.setdefault(r.probe, []).append(r)
    for probe, group in by_probe.items():
        lines += ["", *_wrap(PROBE_TITLES[probe]), *render_table(COLUMNS, group)]
        for r in group:
            if r.background != "none":
                lines += _wrap(f"{r.background} @ {interval_text(r.switch_interval)}: "
                               f"{r.reason}", indent="  ")
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
    lines += _lesson(rows, settings)
    return lines
