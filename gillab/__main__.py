"""Command line: python -m gillab {compare,show,kernels,env,demo,convoy}."""
from __future__ import annotations

import argparse
import sys

from gillab.errors import UsageError, UserError

__all__ = ["create_parser", "main"]


def cmd_env(args) -> list[str]:
    from gillab.environment import collect_env
    from gillab.report import format_env

    return format_env(collect_env())


def cmd_kernels(args) -> list[str]:
    from gillab import kernels
    from gillab.report import format_kernels

    calibration = None
    if args.calibrate:
        from gillab.measure import calibrate_kernels

        calibration = calibrate_kernels(target_s=args.target_s)
    return format_kernels(kernels.KERNELS, calibration)


def cmd_demo(args) -> list[str]:
    from gillab import demos

    if args.name is None:
        return demos.list_lines(args.lang)
    # Demos narrate as they go, so they print themselves; a failed claim raises UserError.
    demos.run(args.name, lang=args.lang, fast=args.fast)
    return []


COMMANDS = {
    "demo": cmd_demo,
    "env": cmd_env,
    "kernels": cmd_kernels,
}


def create_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gillab", description="A GIL laboratory: where CPython's GIL binds, measured here.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sub.add_parser("env", help="the interpreter and machine the lab runs on")

    p = sub.add_parser("kernels", help="list the kernels and what each shows")
    p.add_argument("--calibrate", action="store_true",
                   help="measure ns per iteration and the ratio to the plain C loop")
    p.add_argument("--target-s", type=_positive_float, default=0.2, metavar="S",
                   help="seconds per calibrated call (default 0.2)")
    p = sub.add_parser("demo", help="run one of the lesson's demos (no NAME: list them)")
    p.add_argument("name", nargs="?", metavar="NAME", help="the demo to run")
    p.add_argument("--lang", choices=["en", "zh"], default="en",
                   help="language of the narration (default en)")
    p.add_argument("--fast", action="store_true", help="scale sleeps down (for tests)")
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = create_parser()
    args = parser.parse_args(argv)
    try:
        lines = COMMANDS[args.command](args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"gillab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gillab: interrupted", file=sys.stderr)
        return 130
    except (UserError, ImportError, OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"gillab: error: {exc}", file=sys.stderr)
        return 1
    for line in lines or ():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
