"""``python -m gillab convoy``: the glue from arguments to lines.

Checks the arguments (UsageError before anything is measured), has the measuring
module take the readings, summarises and judges them, writes --json if asked and
returns the report's lines for __main__ to print. Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import math
import sys

from gillab.cli import arguments as checks
from gillab.convoy.records import (BACKGROUNDS, LOOP_PROBE, PROBES, WHERES, Row, summarize,
                                   to_document)
from gillab.convoy.report import format_convoy
from gillab.convoy.verdict import judge_rows
from gillab.core.errors import UsageError

__all__ = ["add_parser", "switch_intervals", "cmd_convoy", "main", "run_convoy"]

#: CPython keeps the switch interval in whole microseconds: below one it reads back 0.
MIN_SWITCH_INTERVAL = 1e-6
#: Above this each row waits whole seconds for every hand-off: a typo, not a setting.
MAX_SWITCH_INTERVAL = 1.0


def switch_intervals(text: str) -> tuple:
    """'0.001,0.005,0.02' -> (0.001, 0.005, 0.02): seconds, each a finite number from
    1 us to 1 s, comma-separated, repeats dropped, in the order given."""
    parts = text.split(",")
    if any(not part or part != part.strip() for part in parts):
        raise argparse.ArgumentTypeError(
            f"give switch intervals in seconds separated by commas, like 0.001,0.005: "
            f"got {text!r}")
    seconds = checks.bounded_float(MAX_SWITCH_INTERVAL)
    values = tuple(dict.fromkeys(seconds(part) for part in parts))
    small = [v for v in values if v < MIN_SWITCH_INTERVAL]
    if small:
        raise argparse.ArgumentTypeError(
            f"must be >= {MIN_SWITCH_INTERVAL:g} s (CPython counts the switch interval in "
            f"microseconds), got {small[0]:g}")
    return values


def add_parser(sub) -> None:
    """The convoy command's arguments (called by gillab.__main__.create_parser)."""
    p = sub.add_parser("convoy", help="what a CPU-bound thread costs an IO thread's latency",
                       description="The main thread does small IO operations (or runs an "
                                   "asyncio loop's 1 ms timer) while one background kernel "
                                   "runs; p50/p99/max latency.")
    p.add_argument("-b", "--background", nargs="+", action="extend", choices=list(BACKGROUNDS),
                   metavar="BACKGROUND",
                   help=f"background work (default all: {', '.join(BACKGROUNDS)})")
    p.add_argument("-p", "--probe", nargs="+", action="extend", choices=list(PROBES),
                   metavar="PROBE", help=f"probes (default all: {', '.join(PROBES)})")
    p.add_argument("--samples", type=checks.bounded_int(checks.MAX_SAMPLES), default=200,
                   metavar="N",
                   help=f"probe operations per row (default 200, at most {checks.MAX_SAMPLES:,})")
    p.add_argument("--switch-interval", type=switch_intervals, metavar="S[,S...]",
                   help="switch intervals to measure every row at, in seconds, e.g. "
                        "0.001,0.005,0.02 (default: Python's own and 0.0001)")
    p.add_argument("--json", metavar="PATH", type=checks.nonempty,
                   help="also write the rows as JSON (atomically)")
    p.add_argument("--plot", metavar="PATH", type=checks.nonempty,
                   help="also write a PNG of the loop's lag and the background's throughput "
                        "against the switch interval (-p loop; needs gillab[plot])")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _intervals(args) -> tuple:
    """The --switch-interval values, checked again for callers that skip argparse."""
    intervals = getattr(args, "switch_interval", None)
    if intervals is None:
        return ()
    if isinstance(intervals, (int, float)):
        intervals = (intervals,)
    for value in intervals:
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not MIN_SWITCH_INTERVAL <= value <= MAX_SWITCH_INTERVAL):
            raise UsageError(f"--switch-interval must be seconds from "
                             f"{MIN_SWITCH_INTERVAL:g} to {MAX_SWITCH_INTERVAL:g}, got "
                             f"{value!r}")
    return tuple(dict.fromkeys(float(v) for v in intervals))


def _plan(args) -> tuple[tuple, tuple, int]:
    backgrounds = list(getattr(args, "background", None) or BACKGROUNDS)
    probes = list(getattr(args, "probe", None) or PROBES)
    samples = getattr(args, "samples", 200)
    for name in backgrounds:
        if name not in BACKGROUNDS:
            raise UsageError(f"unknown background {name!r}; choose from "
                             f"{', '.join(BACKGROUNDS)}")
    for name in probes:
        if name not in PROBES:
            raise UsageError(f"unknown probe {name!r}; choose from {', '.join(PROBES)}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise UsageError(f"--samples must be a whole number >= 1, got {samples!r}")
    # `none` is always measured: every verdict is relative to it.
    wanted = {"none", *backgrounds}
    return (tuple(b for b in BACKGROUNDS if b in wanted),
            tuple(p for p in PROBES if p in probes), samples)


def run_convoy(backgrounds, probes, samples: int, on_step=None,
               intervals=()) -> tuple[list[Row], dict]:
    """Calibrate, measure and judge; return the rows and the run's settings."""
    from gillab import kernels
    from gillab.convoy.measuring import measure_run
    from gillab.core.environment import cpu_count

    readings, settings = measure_run(backgrounds, probes, samples, on_step, intervals)
    releases_gil = {name: kernels.get(name).releases_gil
                    for name in backgrounds if name != "none"}
    rows = judge_rows([summarize(r) for r in readings], cpu_count(),
                      releases_gil=releases_gil)
    rows.sort(key=lambda r: (PROBES.index(r.probe), BACKGROUNDS.index(r.background),
                             WHERES.index(r.where) if r.where else -1, -r.switch_interval))
    return rows, settings


def _progress_printer(quiet: bool):
    if quiet:
        return None

    def on_step(i: int, total: int, label: str) -> None:
        prefix = f"[{i}/{total}] " if total else ""
        print(f"{prefix}{label}", file=sys.stderr, flush=True)

    return on_step


def main(args) -> list[str]:
    """The convoy command: measure, judge, write --json if asked, return the report lines."""
    from gillab.core.environment import collect_env
    from gillab.core.errors import check_output_path
    from gillab.compare.records import write_json_atomic

    backgrounds, probes, samples = _plan(args)
    intervals = _intervals(args)
    json_path, plot_path = getattr(args, "json", None), getattr(args, "plot", None)
    if json_path:
        check_output_path(json_path, "--json")
    if plot_path:
        _check_plot(plot_path, probes)
    env = collect_env()
    rows, settings = run_convoy(backgrounds, probes, samples,
                                _progress_printer(getattr(args, "quiet", False)), intervals)
    if json_path:
        write_json_atomic(json_path, to_document(rows, env, settings))
    if plot_path:
        from gillab.convoy.report import write_plot

        write_plot(rows, env, plot_path)
    return format_convoy(rows, env, settings)


def _check_plot(path: str, probes) -> None:
    """--plot draws the loop probe's rows, and needs matplotlib: say so before measuring."""
    from gillab.core.errors import check_output_path

    check_output_path(path, "--plot")
    if LOOP_PROBE not in probes:
        raise UsageError("--plot draws the loop probe's rows: add -p loop")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'gillab[plot]'") from None


#: What __main__'s COMMANDS table calls.
cmd_convoy = main
