"""``compare --python PATH ...``: the matrix under the host, then under each other run
(a Python, or a free-threaded one with its GIL off and on); the runs merged as data.

The host's run is handed in by the CLI (``run_host``), as is compare's parser (for
the options to forward): this package imports nothing from the command line, prints
nothing, and measures nothing itself.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from gillab.pythons.child import (child_command, child_env, child_failure, forwarded_args,
                                  gil_flags, run_child)
from gillab.pythons.found import select_interpreters
from gillab.compare.merge import merge_runs
from gillab.pythons.venvs import (InterpreterFailed, build_sources, ensure_venv,
                                  source_fingerprint)

__all__ = ["Across", "plan_across", "run_across"]


@dataclass
class Across:
    """What ``run_across`` gives back: the merged run, an env per run, and one line per
    run that did not happen (the others are still reported)."""

    run: object
    envs: dict
    failures: list
    interpreters: list


def plan_across(paths, gil: str | None = None) -> list:
    """Every run to make, checked before anything is measured: each --python probed
    (UsageError for one that is no Python, too old, or silent), --gil checked, and the
    sources for other interpreters' venvs found (UserError if this install has none)."""
    interpreters = select_interpreters(paths, gil=gil)
    if any(not i.host for i in interpreters):
        build_sources()
    return interpreters


def run_across(interpreters: list, args, compare_parser, run_host,
               say=lambda text: None) -> Across:
    """Run each of ``interpreters`` (from ``plan_across``): the host by calling
    ``run_host(json_path)``, the others as child compares from their venvs."""
    import tempfile

    from gillab.compare.records import load_run

    sources = fingerprint = None
    if any(not i.host for i in interpreters):
        sources = build_sources()
        fingerprint = source_fingerprint(sources)
    words = forwarded_args(args, compare_parser)
    extra_path = os.getcwd() if getattr(args, "target", None) else None
    runs, failures = [], []
    with tempfile.TemporaryDirectory(prefix="gillab-across-") as tmp:
        for number, interp in enumerate(interpreters, 1):
            out = os.path.join(tmp, f"run{number}.json")
            gil = {"on": ", GIL forced on (-X gil=1)",
                   "off": ", GIL off (-X gil=0)"}.get(interp.gil or "", "")
            say(f"gillab: [{number}/{len(interpreters)}] {interp.label}: {interp.path}"
                + (" (this interpreter)" if interp.host else gil))
            if interp.host:
                run_host(out)
            else:
                try:
                    python = ensure_venv(interp, sources, fingerprint, say)
                    code, tail = run_child(
                        child_command(python, [*words, "--json", out], extra_path,
                                      gil_flags(interp)),
                        cwd=tmp, env=child_env(interp),
                        on_line=lambda line, lab=interp.label: say(f"  {lab}: {line}"))
                except InterpreterFailed as exc:
                    code, tail = None, [str(exc)]
                if code == 130:
                    raise KeyboardInterrupt
                if code != 0 or not os.path.exists(out):
                    reason = tail[-1] if code is None else child_failure(code, tail)
                    failures.append(f"{interp.label} ({interp.path}): {reason}")
                    say(f"gillab: {interp.label} did not run: {reason}")
                    continue
            runs.append((interp.label, load_run(out)))
    run, envs = merge_runs(runs, interpreters)
    return Across(run, envs, failures, interpreters)
