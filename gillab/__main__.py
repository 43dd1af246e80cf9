"""Command line: python -m gillab {compare,check,timeline,show,convoy,demo,kernels,env}.

One create_parser() and one cmd_<name>(args) per command; the bigger commands keep
their arguments and their work in a module of their own (compare_cli, checker.cli,
timeline.cli).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from gillab.cli import arguments as checks
from gillab.core.errors import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Finished,
                                UsageError, UserError)
from gillab.cli.terminal import ascii_safe_output, print_lines

__all__ = ["create_parser", "main"]


def cmd_env(args) -> list[str]:
    from gillab.core.environment import collect_env
    from gillab.compare.report import format_env

    return format_env(collect_env())


def cmd_kernels(args) -> list[str]:
    from gillab import kernels
    from gillab.compare.report import format_kernels

    calibration = None
    if args.calibrate:
        from gillab.measure.clocks import calibrate_kernels

        calibration = calibrate_kernels(target_s=args.target_s)
    return format_kernels(kernels.KERNELS, calibration)


def cmd_compare(args) -> list[str]:
    from gillab.compare.cli import cmd_compare as run

    return run(args)


def cmd_show(args) -> list[str]:
    # No gillab.kernels here: showing a saved run needs no compiled extension.
    from gillab.core.descriptions import KERNEL_DESCRIPTIONS
    from gillab.compare.report import format_cost_table, format_table
    from gillab.compare.records import load_run

    try:
        run = load_run(args.path)
    except FileNotFoundError:
        raise UserError(f"no such file: {args.path}") from None
    except IsADirectoryError:
        raise UserError(f"{args.path} is a directory, not a compare --json file") from None
    descriptions = dict(KERNEL_DESCRIPTIONS)
    if any(c.interpreter for c in run.cells):  # compare --python: side by side again
        from gillab.compare.merge import load_across
        from gillab.compare.report_across import format_side_by_side

        run, envs = load_across(args.path)
        return format_side_by_side(run, envs, descriptions)
    return format_table(run, descriptions) + format_cost_table(run)


def cmd_convoy(args) -> list[str]:
    from gillab import convoy

    return convoy.main(args)


def cmd_demo(args) -> list[str]:
    from gillab import demos

    if args.name is None:
        return demos.list_lines(args.lang)
    # Demos narrate as they go, so they print themselves; a failed claim raises UserError.
    demos.run(args.name, lang=args.lang, fast=args.fast)
    return []


def cmd_check(args) -> list[str]:
    from gillab.checker.cli import cmd_check as run

    return run(args)


def cmd_timeline(args) -> list[str]:
    from gillab.timeline.cli import cmd_timeline as run

    return run(args)


COMMANDS = {
    "check": cmd_check,
    "compare": cmd_compare,
    "show": cmd_show,
    "demo": cmd_demo,
    "convoy": cmd_convoy,
    "env": cmd_env,
    "kernels": cmd_kernels,
    "timeline": cmd_timeline,
}


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error said in one line (the usage is one --help away)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def create_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gillab", description="A GIL laboratory: where CPython's GIL binds, measured here.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from gillab.compare.cli import add_parser as add_compare_parser

    add_compare_parser(sub)

    from gillab.checker.cli import add_parser as add_check_parser

    add_check_parser(sub)

    p = sub.add_parser("show", help="print the table of a saved compare --json run")
    p.add_argument("path", metavar="RESULTS.json")

    sub.add_parser("env", help="the interpreter and machine the lab runs on")

    p = sub.add_parser("kernels", help="list the kernels and what each shows")
    p.add_argument("--calibrate", action="store_true",
                   help="measure ns per iteration and the ratio to the plain C loop")
    p.add_argument("--target-s", type=checks.task_seconds, default=0.2, metavar="S",
                   help="seconds per calibrated call (default 0.2)")
    from gillab.convoy.cli import add_parser as add_convoy_parser

    add_convoy_parser(sub)

    p = sub.add_parser("demo", help="run one of the lesson's demos (no NAME: list them)")
    p.add_argument("name", nargs="?", metavar="NAME", help="the demo to run")
    p.add_argument("--lang", choices=["en", "zh"], default="en",
                   help="language of the narration (default en)")
    p.add_argument("--fast", action="store_true", help="scale sleeps down (for tests)")

    from gillab.timeline.cli import add_parser as add_timeline_parser

    add_timeline_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status (docs/contract.md).

    Called as the program (argv None), it ends the process itself (os._exit) once its
    output is flushed, without interpreter clean-up: that would meet a Ctrl-C with
    default handling (death by signal, no status) and wait for threads that never
    return. Every worker dies with this process (gillab.core.procutil).
    """
    from gillab.core import procutil

    if argv is not None:
        previous = signal.getsignal(signal.SIGINT)
        try:
            return _main(argv)
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, previous)
    # A Ctrl-C can land anywhere, also between two statements here: each step runs
    # inside the loop's try until the handler that exits at once is in place.
    status, interrupted = None, False
    while True:
        try:
            if status is None and not interrupted:
                status = _main_as_program()
            procutil.exit_on_early_sigint()  # Ctrl-C from here on: 130 at once
            break
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        print("gillab: interrupted", file=sys.stderr)
        status = EXIT_INTERRUPTED
    left = procutil.abandoned()
    if left:
        print(f"gillab: {len(left)} thread(s) never returned; exiting without waiting "
              "for them", file=sys.stderr)
    procutil.hard_exit(status, kill=status == EXIT_INTERRUPTED or bool(left))
    return status  # not reached


def _main_as_program() -> int:
    try:
        return _main(None)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ImportError as exc:  # building the parser needed what is missing: one line
        if "--debug" in sys.argv[1:2]:
            raise
        print(f"gillab: error: {checks.shadowing_problem() or exc}", file=sys.stderr)
        return EXIT_FAILED


def _main(argv) -> int:
    from gillab.core import procutil

    ascii_safe_output()
    args = create_parser().parse_args(argv)
    shadowed = checks.shadowing_problem()
    if shadowed:
        print(f"gillab: error: {shadowed}", file=sys.stderr)
        return EXIT_FAILED
    procutil.install_sigint_watchdog()
    procutil.install_fork_hook()
    return _run(args)


def _run(args) -> int:
    from gillab.core import procutil

    try:
        lines = COMMANDS[args.command](args)
        print_lines(lines or ())
        status = lines.status if isinstance(lines, Finished) else EXIT_OK
        sys.stdout.flush()
    except UsageError as exc:
        print(f"gillab {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gillab: interrupted", file=sys.stderr)
        procutil.kill_descendants()
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (head, less) went away: not an error worth a traceback. Point
        # stdout at devnull so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except ImportError as exc:
        if args.debug:
            raise
        print(f"gillab: error: {checks.shadowing_problem() or exc}", file=sys.stderr)
        return EXIT_FAILED
    except (UserError, OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"gillab: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # a bug of gillab's: still one line, the traceback on ask
        if args.debug:
            raise
        print(f"gillab: internal error: {_one_line(exc)} (run with --debug for the "
              "traceback)", file=sys.stderr)
        return EXIT_FAILED
    return status


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[0]


if __name__ == "__main__":
    sys.exit(main())
