"""``python -m gillab.cli.target_probe MODULE:FUNC``: import and call a --target once, here.

Run by gillab.cli.arguments.probe_target in a throwaway process, so that a module that
raises or exits on import, or a function that ends its process, hurts only this one.
Reports one JSON line per stage on the stdout it was given (the function's own output
goes to stderr): ``refused`` (a one-line usage error), ``loaded``, then ``called``.
"""
from __future__ import annotations

import inspect
import json
import os
import pickle
import sys

from gillab.core.errors import one_line


def _say(out, **record) -> None:
    out.write(json.dumps(record) + "\n")
    out.flush()


def required_parameters(func) -> list[str]:
    """Names of the parameters a call with no arguments would leave unfilled."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # a builtin without a signature: let the call tell
        return []
    return [name for name, p in signature.parameters.items()
            if p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def main(spec: str) -> int:
    from gillab.core.procutil import worker_setup

    worker_setup()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what the function prints must not mix with the protocol
    sys.stdout = sys.stderr
    module_name, _, attr = spec.partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        import importlib

        obj = importlib.import_module(module_name)
    except BaseException as exc:  # SyntaxError, SystemExit, anything: the module is broken
        if isinstance(exc, ModuleNotFoundError) and exc.name == module_name.split(".")[0]:
            why = (f"--target {spec}: cannot import {module_name!r} (no module of that "
                   "name); run from the directory that holds it, or put it on PYTHONPATH")
        else:
            why = (f"--target {spec}: importing {module_name!r} failed with "
                   f"{one_line(exc)}; fix the module so importing it works")
        _say(out, stage="refused", error=why)
        return 0
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        _say(out, stage="refused", error=f"--target {spec}: {module_name!r} has no "
                                         f"attribute {attr!r}")
        return 0
    if not callable(obj):
        _say(out, stage="refused", error=f"--target {spec} is not callable "
                                         f"(a {type(obj).__name__})")
        return 0
    missing = required_parameters(obj)
    if missing:
        _say(out, stage="refused", error=(
            f"--target {spec} takes arguments ({', '.join(missing)}); --target needs a "
            "function called with none: wrap it, e.g. def run(): return f(...)"))
        return 0
    _say(out, stage="loaded")
    error = None
    try:
        value = obj()
        try:
            pickle.dumps(value)
        except BaseException as exc:  # noqa: BLE001 - any pickling failure is the answer
            error = f"its result cannot be pickled ({one_line(exc)})"
    except BaseException as exc:  # noqa: BLE001 - SystemExit included: the call's outcome
        error = one_line(exc)
    _say(out, stage="called", error=error)
    return 0


if __name__ == "__main__":
    # os._exit: the user's module may have left threads or atexit hooks that never end.
    status = main(sys.argv[1]) if len(sys.argv) == 2 else 2
    sys.stderr.flush()
    os._exit(status)
