"""Command line: python -m gillab {compare,check,timeline,show,convoy,demo,kernels,env}.

One create_parser() and one cmd_<name>(args) per command; the bigger commands keep
their arguments and their work in a module of their own (compare_cli, checker.cli,
timeline.cli).

Importing this module loads nothing but os, signal and sys and changes no process state:
run as the program, main() first takes Ctrl-C (exit 130 at once, one line), then
imports argparse and the rest (docs/contract.md).
"""
from __future__ import annotations

import os
import signal
import sys

__all__ = ["create_parser", "main"]

EXIT_INTERRUPTED = 130  # gillab.core.errors.EXIT_INTERRUPTED, not imported before the handler


def _interrupted_at_once(signum, frame):
    try:
        os.write(2, b"gillab: interrupted\n")
    except OSError:  # stderr gone: exit all the same
        pass
    os._exit(EXIT_INTERRUPTED)


def cmd_env(args) -> list[str]:
    from gillab.core.environment import collect_env
    from gillab.compare.report import format_env

    return format_env(collect_env())


def cmd_kernels(args) -> list[str]:
    from gillab import kernels
    from gillab.compare.report import format_kernels

    calibration = None
    if args.calibrate:
        from gillab.measure.calibrate import calibrate_kernels

        calibration = calibrate_kernels(target_s=args.target_s)
    return format_kernels(kernels.KERNELS, calibration)


def cmd_compare(args) -> list[str]:
    from gillab.compare.cli import cmd_compare as run

    return run(args)


def cmd_show(args) -> list[str]:
    # No gillab.kernels here: showing a saved run needs no compiled extension.
    from gillab.core.errors import UserError
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


def _parser_class():
    import argparse

    from gillab.core.errors import EXIT_USAGE

    class _Parser(argparse.ArgumentParser):
        """argparse, with a usage error said in one line (the usage is one --help away)."""

        def error(self, message):
            self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    return _Parser


def create_parser():
    """The argparse parser of every command (argparse.ArgumentParser)."""
    from gillab.cli import arguments as checks

    parser = _parser_class()(
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
    if argv is not None:  # in-process (tests, gillab.pythons): its state is put back
        status = _main(argv)
        if status == EXIT_INTERRUPTED:  # no hard exit here to take the workers down
            from gillab.core import procutil

            procutil.kill_descendants()
        return status
    # First, before argparse and gillab's modules load: Ctrl-C exits 130 at once.
    signal.signal(signal.SIGINT, _interrupted_at_once)
    # A Ctrl-C can land anywhere, also between two statements here: each step runs
    # inside the loop's try until the handler that exits at once is back in place.
    status, interrupted = None, False
    while True:
        try:
            if status is None and not interrupted:
                status = _main_as_program()
            signal.signal(signal.SIGINT, _interrupted_at_once)  # from here on: 130 at once
            break
        except KeyboardInterrupt:
            interrupted = True
    from gillab.core import procutil

    if interrupted:
        procutil.say_interrupted()
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
        from gillab.cli.arguments import shadowing_problem
        from gillab.core.errors import EXIT_FAILED

        print(f"gillab: error: {shadowing_problem() or exc}", file=sys.stderr)
        return EXIT_FAILED


def _main(argv) -> int:
    from gillab.cli import arguments as checks
    from gillab.cli.terminal import ascii_safe_output
    from gillab.core import procutil
    from gillab.core.errors import EXIT_FAILED

    ascii_safe_output()
    args = create_parser().parse_args(argv)
    shadowed = checks.shadowing_problem()
    if shadowed:
        print(f"gillab: error: {shadowed}", file=sys.stderr)
        return EXIT_FAILED
    # The command's own Ctrl-C handling and fork hooks, undone when it returns.
    with procutil.command_guards():
        return _run(args)


def _run(args) -> int:
    from gillab.cli.arguments import shadowing_problem
    from gillab.cli.terminal import print_lines
    from gillab.core.errors import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, Finished, UsageError,
                                    UserError, one_line)

    try:
        lines = COMMANDS[args.command](args)
        print_lines(lines or ())
        status = lines.status if isinstance(lines, Finished) else EXIT_OK
        sys.stdout.flush()
    except UsageError as exc:
        print(f"gillab {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Its workers are killed on the way out (main): one sweep, as late as can be,
        # so that no pool thread replaces a killed worker after it.
        from gillab.core import procutil

        procutil.say_interrupted()
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (head, less) went away: not an error worth a traceback. Point
        # stdout at devnull so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except ImportError as exc:
        if args.debug:
            raise
        print(f"gillab: error: {shadowing_problem() or exc}", file=sys.stderr)
        return EXIT_FAILED
    except (UserError, OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"gillab: error: {one_line(exc, with_type=False)}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # a bug of gillab's: still one line, the traceback on ask
        if args.debug:
            raise
        print(f"gillab: internal error: {one_line(exc, with_type=False)} (run with --debug for the "
              "traceback)", file=sys.stderr)
        return EXIT_FAILED
    return status


if __name__ == "__main__":
    sys.exit(main())
