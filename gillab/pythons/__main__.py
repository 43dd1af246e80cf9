"""``python -m gillab.pythons venv PYTHON``: make (or reuse) the venv compare --python
would use for PYTHON and print its python's path (for .ci/free-threaded)."""
from __future__ import annotations

import argparse
import sys

from gillab.core.errors import UsageError, UserError
from gillab.pythons.found import make_labels, probe
from gillab.pythons.venvs import InterpreterFailed, ensure_venv


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gillab.pythons")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("venv", help="print the path of PYTHON's venv python, made if need be")
    p.add_argument("python", metavar="PYTHON")
    args = parser.parse_args(argv)
    try:
        chosen = make_labels([probe(args.python)])[0]
        print(ensure_venv(chosen, say=lambda text: print(text, file=sys.stderr, flush=True)))
    except UsageError as exc:
        print(f"gillab: error: {exc}", file=sys.stderr)
        return 2
    except (UserError, InterpreterFailed) as exc:
        print(f"gillab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gillab: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
