"""`gillab timeline`: the command's parser and its cmd function.

Registered by gillab/__main__.py; building the parser imports nothing heavy.
"""
from __future__ import annotations

import argparse
import os
import sys

from gillab.cli import arguments as checks
from gillab.core.errors import UsageError, UserError, check_output_path

TIMELINE_KERNELS = ["py", "cy_gil", "cy_nogil", "bigint"]
TIMELINE_EXECUTORS = ["threads", "thread_pool", "serial"]
#: More rows than this do not fit a terminal, and the sampler's cost grows per thread.
MAX_WORKERS = 16
#: A run shorter than this shows nothing worth a picture (a program that exits at once).
MIN_RUN_NS = 50_000_000
#: How long --pid watches by default.
PID_SECONDS = 2.0


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "timeline", help="see the GIL change hands, per thread (from /proc, no root)",
        description="Start a program as gillab's child, sample each of its threads every "
                    "0.5 ms from /proc (CPU, run queue, the syscall it is blocked in), and "
                    "draw when each ran, waited for the GIL, for another lock, for the OS, "
                    "or slept. Either one of the lab's cells (-k/-e/-w, --convoy) or any "
                    "program after --.",
        epilog="examples: gillab timeline -k py -w 2 | gillab timeline --convoy py | "
               "gillab timeline -- python my_script.py ARGS")
    p.add_argument("-k", "--kernel", choices=TIMELINE_KERNELS, default="py",
                   help="the kernel each worker runs (default py)")
    p.add_argument("-e", "--executor", choices=TIMELINE_EXECUTORS, default="threads",
                   help="how the workers run (default threads)")
    p.add_argument("-w", "--workers", type=checks.bounded_int(64), default=2, metavar="N",
                   help=f"worker threads (default 2, at most {MAX_WORKERS})")
    p.add_argument("--switch-interval", type=checks.bounded_float(1.0), metavar="S",
                   help="sys.setswitchinterval in the child (default: Python's, 0.005)")
    p.add_argument("--convoy", choices=TIMELINE_KERNELS, metavar="KERNEL",
                   help="the convoy: a thread doing 1 ms sleeps beside one thread running KERNEL")
    p.add_argument("--seconds", type=checks.bounded_float(60.0), default=0.4, metavar="S",
                   help="serial seconds of one worker's task (default 0.4)")
    p.add_argument("--period-ms", type=checks.bounded_float(100.0, least=0.05), default=0.5, metavar="MS",
                   help="sampling period (default 0.5; cells are never finer than 2 periods)")
    p.add_argument("--fixed-period", action="store_true",
                   help="sample every period throughout; by default the sampler steps two "
                        "periods while no thread changes state (each wake-up costs CPU "
                        "the program pays for when every core is busy)")
    p.add_argument("--window", type=_window, metavar="START[:LENGTH]",
                   help="the slice to draw, in ms from the start of the work "
                        "(default: a little after the start, as much as the terminal fits)")
    p.add_argument("--max-seconds", type=checks.bounded_float(3600.0), metavar="S",
                   help="stop watching a program after S seconds (it is then stopped); "
                        f"with --pid, watch this long (default {PID_SECONDS:g})")
    p.add_argument("--pid", type=checks.bounded_int(1 << 22), metavar="PID",
                   help="attach to a running process gillab did not start (it is left "
                        "running); without permission for its syscall files, falls back "
                        "to wchan and says what it cannot tell apart")
    p.add_argument("--wchan", action="store_true",
                   help="with --pid: read wchan even when syscall is readable (to see "
                        "what the fallback shows)")
    p.add_argument("--json", metavar="PATH",
                   help="also write intervals and figures as JSON (schema gillab/timeline/1)")
    p.add_argument("--trace", metavar="PATH",
                   help="also write Chrome trace-event JSON (opens in Perfetto, chrome://tracing)")
    p.add_argument("--png", metavar="PATH", help="also write the picture as a PNG (gillab[plot])")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("program", nargs=argparse.REMAINDER,
                   help="-- PROGRAM ARGS: watch this program instead of a lab cell")
    return p


def cmd_timeline(args) -> list[str]:
    program = list(args.program or [])
    if program and program[0] == "--":
        program = program[1:]
    _check(args, program)
    if not sys.platform.startswith("linux"):
        raise UserError(f"timeline reads /proc and works on Linux only (this is {sys.platform})")
    from gillab.timeline import child, measure, record, report

    period_ns = int(args.period_ms * 1e6)
    steady = measure.steady_ns(period_ns, args.fixed_period)
    if args.pid:
        _progress(args, f"attached to process {args.pid} ...")
        rec = measure.watch_pid(args.pid, period_ns, args.max_seconds or PID_SECONDS,
                                args.wchan, steady)
        scenario = {"pid": args.pid, "comm": _comm(args.pid)}
    elif program:
        _progress(args, f"watching {' '.join(program)} ...")
        rec = measure.watch_program(program, period_ns, args.max_seconds, steady)
        scenario = {"argv": program}
        if rec.exit_code not in (0, None):
            raise UserError(f"{program[0]} exited with code {rec.exit_code} "
                            f"after {(rec.t_end_ns - rec.t_start_ns) / 1e6:.0f} ms "
                            "(it failed or crashed); nothing drawn")
    else:
        kernel = args.convoy or args.kernel
        scenario = {"kernel": kernel, "executor": "convoy" if args.convoy else args.executor,
                    "workers": 2 if args.convoy else args.workers,
                    "switch_interval": args.switch_interval}
        _progress(args, f"running {report_label(scenario)} and sampling its threads ...")
        argv = child.lab_child_argv(kernel, args.executor, args.workers, args.seconds,
                                      args.switch_interval, bool(args.convoy))
        rec = measure.watch_lab_child(argv, period_ns, steady=steady)
    if rec.t_end_ns - rec.t_go_ns < max(4 * period_ns, MIN_RUN_NS):
        raise UserError(f"the run lasted {(rec.t_end_ns - rec.t_go_ns) / 1e6:.1f} ms: too short "
                        "to draw (it exited at once?)")
    tl = record.build(rec, scenario)
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    columns = _columns()
    start_ms, length_ms = args.window or (None, None)
    if start_ms is not None and start_ms >= tl.wall_ms:
        raise UserError(f"--window {start_ms:g}: the run lasted only {tl.wall_ms:.0f} ms")
    window = report.choose_window(tl, max(20, columns - 22), start_ms, length_ms)
    if args.json:
        from gillab.compare.records import write_json_atomic

        write_json_atomic(args.json, tl.to_dict())
    if args.trace:
        from gillab.compare.records import write_json_atomic

        write_json_atomic(args.trace, tl.to_trace())
    if args.png:
        report.write_png(tl, args.png, window)
    return report.format_timeline(tl, window, colour=colour, width=columns)


def report_label(scenario: dict) -> str:
    if scenario["executor"] == "convoy":
        return f"the convoy beside {scenario['kernel']}"
    return f"{scenario['kernel']} on {scenario['workers']} {scenario['executor']}"


def _check(args, program: list[str]) -> None:
    """Usage errors, before anything runs."""
    if args.program and not program:
        raise UsageError("nothing after --: give the program to watch, like -- python app.py")
    if program and args.convoy:
        raise UsageError("--convoy is a lab cell: drop it, or drop the program after --")
    if args.pid and (program or args.convoy):
        raise UsageError("--pid watches a running process: drop the program after -- "
                         "or --convoy")
    if args.wchan and not args.pid:
        raise UsageError("--wchan is the fallback for --pid; a child is always read in full")
    if args.workers > MAX_WORKERS:
        raise UsageError(f"-w {args.workers}: at most {MAX_WORKERS} threads fit the picture")
    if args.period_ms < 0.1:
        raise UsageError("--period-ms below 0.1 costs more than it shows")
    for option in ("json", "trace", "png"):
        if getattr(args, option):
            check_output_path(getattr(args, option), f"--{option}")
    if args.png:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--png needs matplotlib: pip install 'gillab[plot]'") from None


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def _progress(args, text: str) -> None:
    if not args.quiet:
        print(f"gillab timeline: {text}", file=sys.stderr, flush=True)


def _columns() -> int:
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


def _window(text: str) -> tuple:
    """'100:200' -> (100.0, 200.0) ms; '100' -> (100.0, None)."""
    start, _, length = text.partition(":")
    try:
        start_ms = float(start)
        length_ms = float(length) if length else None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"give START[:LENGTH] in ms, like 100:200: got {text!r}") from None
    if start_ms < 0 or (length_ms is not None and length_ms <= 0):
        raise argparse.ArgumentTypeError(f"START >= 0 and LENGTH > 0, got {text!r}")
    return start_ms, length_ms
