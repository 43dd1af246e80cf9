"""``check --python PATH [--gil off|on|both]``: the same check under another interpreter.

Each run is ``python -I [-X gil=0|1] -m gillab check ... --json TMP`` from the venv
compare's ``--python`` uses (gillab.pythons: the probe, the venv with this gillab built
for it, the child process and its group). A free-threaded build runs once per --gil
setting, from one binary; without --gil it runs as the build would for a user (its GIL
off unless an import turns it on, or as $PYTHON_GIL says), which is what check is
there to see. Nothing measured, nothing printed here: records back.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from gillab.core.errors import UsageError, UserError
from gillab.pythons.found import (Interpreter, make_labels, probe, probe_each,
                                  with_gil_settings)

__all__ = ["CheckRun", "plan_check_runs", "child_words", "run_check_across", "runs_to_dict"]


@dataclass(frozen=True)
class CheckRun:
    """One interpreter's check: who ran it (label, path, GIL setting) and its record."""

    interpreter: Interpreter
    result: object  # CheckResult or CheckSweep, as the child wrote it

    def to_dict(self) -> dict:
        i = self.interpreter
        return {"label": i.label, "python": i.path, "version": i.version,
                "free_threaded": i.free_threaded, "gil": i.gil,
                "result": self.result.to_dict()}


def _default_gil() -> str | None:
    """What the user's $PYTHON_GIL asks for (the child runs with -I, which ignores it)."""
    return {"0": "off", "1": "on"}.get(os.environ.get("PYTHON_GIL", "").strip())


def plan_check_runs(paths, gil: str | None = None, probe_func=probe) -> list:
    """Every run to make, checked before anything runs: UsageError for a --python that is
    no Python, --gil without a free-threaded --python, or an unknown --gil. Unlike
    compare, no host run, and without --gil a free-threaded build runs as it would (as
    $PYTHON_GIL says): an import that turns its GIL on is what check must see."""
    if gil is not None and not paths:
        raise UsageError(f"--gil {gil} needs --python PATH (a free-threaded build)")
    found = probe_each(paths, gil, probe_func)
    return make_labels(with_gil_settings(found, gil or _default_gil()))


def child_words(args, json_path: str) -> list:
    """check's options, as words for the child's ``gillab check``."""
    words = ["--debug"] if getattr(args, "debug", False) else []
    words += ["check", "--timeout", repr(args.timeout), "--max-threads", str(args.max_threads),
              "--json", json_path]
    for setup in args.setup:
        words += ["-s", setup]
    if args.sweep:
        words += ["--sweep", args.sweep]
    if args.processes:
        words.append("--processes")
    return words + ["--", *args.statement]


def _load(path: str):
    from gillab.checker.record import CheckResult, CheckSweep

    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return CheckSweep.from_dict(data) if "rows" in data else CheckResult.from_dict(data)


def _relay(code: int, tail: list) -> None:
    """The child's own one-line error, with its exit code's meaning (2: usage)."""
    if code == 130:
        raise KeyboardInterrupt
    errors = [line for line in tail if line.startswith("gillab")]
    last = errors[-1] if errors else (tail[-1] if tail else f"exited with code {code}")
    message = last.split("error: ", 1)[-1]
    raise (UsageError if code == 2 else UserError)(message)


def run_check_across(interpreters: list, args, say=lambda text: None) -> list:
    """Run the check under each of ``interpreters`` (from ``plan_check_runs``); the
    CheckRuns. The first failing child's error is raised (one line, its exit code)."""
    import tempfile

    from gillab.pythons.child import child_command, child_env, gil_flags, run_child
    from gillab.pythons.venvs import (InterpreterFailed, build_sources, ensure_venv,
                                      source_fingerprint)

    sources = build_sources()
    fingerprint = source_fingerprint(sources)
    runs = []
    with tempfile.TemporaryDirectory(prefix="gillab-check-") as tmp:
        for number, interp in enumerate(interpreters, 1):
            out = os.path.join(tmp, f"run{number}.json")
            try:
                python = ensure_venv(interp, sources, fingerprint, say)
            except InterpreterFailed as exc:
                raise UserError(f"{interp.label} ({interp.path}): {exc}") from None
            # The user's directory joins sys.path (after site-packages), as it does for
            # `python -m gillab check`: their SETUP and MODULE:FUNC import from it.
            cmd = child_command(python, child_words(args, out), os.getcwd(), gil_flags(interp))
            code, tail = run_child(cmd, cwd=tmp, env=child_env(interp))
            if code != 0 or not os.path.exists(out):
                _relay(code, tail)
            runs.append(CheckRun(interp, _load(out)))
    return runs


def runs_to_dict(runs: list) -> dict:
    """The JSON of a check under other interpreters: each run with its interpreter."""
    from gillab.checker.record import SCHEMA

    first = runs[0].result
    return {"schema": SCHEMA, "statement": first.statement, "setup": first.setup,
            "runs": [r.to_dict() for r in runs]}
