"""``python -m gillab convoy``: the glue from arguments to lines.

Checks the arguments (UsageError before anything is measured), has the measuring
module take the readings, summarises and judges them, writes --json if asked and
returns the report's lines for __main__ to print. Progress goes to stderr.
"""
from __future__ import annotations

import sys

from gillab.convoy.records import BACKGROUNDS, PROBES, Row, summarize, to_document
from gillab.convoy.report import format_convoy
from gillab.convoy.verdict import judge_rows
from gillab.core.errors import UsageError

__all__ = ["cmd_convoy", "main", "run_convoy"]


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


def run_convoy(backgrounds, probes, samples: int, on_step=None) -> tuple[list[Row], dict]:
    """Calibrate, measure and judge; return the rows and the run's settings."""
    from gillab import kernels
    from gillab.convoy.measuring import measure_run
    from gillab.core.environment import cpu_count

    readings, settings = measure_run(backgrounds, probes, samples, on_step)
    releases_gil = {name: kernels.get(name).releases_gil
                    for name in backgrounds if name != "none"}
    rows = judge_rows([summarize(r) for r in readings], cpu_count(),
                      releases_gil=releases_gil)
    rows.sort(key=lambda r: (PROBES.index(r.probe), BACKGROUNDS.index(r.background),
                             -r.switch_interval))
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
    json_path = getattr(args, "json", None)
    if json_path:
        check_output_path(json_path, "--json")
    env = collect_env()
    rows, settings = run_convoy(backgrounds, probes, samples,
                                _progress_printer(getattr(args, "quiet", False)))
    if json_path:
        write_json_atomic(json_path, to_document(rows, env, settings))
    return format_convoy(rows, env, settings)


#: What __main__'s COMMANDS table calls.
cmd_convoy = main
