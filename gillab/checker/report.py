"""`gillab check` records -> lines of text. Never measures; the caller prints."""
from __future__ import annotations

from gillab.checker.record import CheckResult, CheckSweep

__all__ = ["format_check", "format_sweep", "format_runs", "format_time", "verdict_line"]


def format_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def verdict_line(result: CheckResult) -> str:
    if result.error is not None:
        return f"verdict: failed: {result.error}"
    if result.env.get("free_threaded_build") and result.env.get("gil_enabled") is False:
        # No GIL to release: the question is whether the threads scale.
        known = {True: "yes", False: "no", None: "cannot tell"}[result.scales]
        return (f"verdict: {result.verdict} -> {result.practical or 'cannot tell'} "
                f"(scales: {known}): {result.reason}")
    known = {True: "yes", False: "no", None: "cannot tell"}[result.releases_gil]
    return (f"verdict: {result.verdict} -> {result.practical} "
            f"(releases the GIL: {known}): {result.reason}")


def format_check(result: CheckResult) -> list[str]:
    """A table of the evidence, then the verdict line."""
    lines = [f"statement: {result.statement.strip()}"]
    if result.setup.strip():
        lines.append(f"setup:     {'; '.join(s for s in result.setup.splitlines() if s.strip())}")
    if result.params:
        lines.append("params:    " + ", ".join(f"{k}={v!r}" for k, v in result.params.items()))
    if result.error is None:
        no_gil = result.env.get("free_threaded_build") and result.env.get("gil_enabled") is False
        lines.append(
            f"one call {format_time(result.call_s)}, {result.calls_per_task} calls a task "
            f"({format_time(result.task_s)}); alone on one thread: on a CPU "
            f"{_share(result.on_cpu)} of the time, "
            + ("no GIL (free-threaded build, GIL off)" if no_gil else
               f"GIL free {_share(result.released_share)} of it (probe)"))
        if result.env.get("gil_enabled_by"):
            lines.append(f"GIL: turned on by importing {', '.join(result.env['gil_enabled_by'])}")
        lines.append("")
        lines.append(f"{'workers':<14}{'speedup':>9}{'cores used':>12}{'GIL wait':>10}"
                     f"{'off-CPU':>9}{'wall':>10}")
        lines.append(f"{'1 thread':<14}{'1.00x':>9}{_num(result.cores_alone, '.2f'):>12}"
                     f"{'-':>10}{_share(1 - result.on_cpu if result.on_cpu is not None else None):>9}"
                     f"{format_time(result.task_s):>10}")
        for kind, rows in (("threads", result.threads), ("processes", result.processes)):
            for w in rows:
                speed = "-" if w.speedup is None else f"{w.speedup:.2f}x"
                lines.append(f"{f'{w.workers} {kind}':<14}{speed:>9}"
                             f"{_num(w.cores_used, '.2f'):>12}"
                             f"{_num(w.gil_wait, '.2f') if kind == 'threads' else '-':>10}"
                             f"{_share(w.off_cpu):>9}{format_time(w.wall_s):>10}")
        if result.private_speedup is not None:
            w = result.largest_threads()
            lines.append(f"{f'{w.workers} threads, SETUP once per thread (own objects)'}: "
                         f"{result.private_speedup:.2f}x, "
                         f"{_num(result.private_cores, '.2f')} cores used")
        lines.append("")
        lines.append(f"answers: {result.answers}"
                     + (f" ({result.answers_detail})" if result.answers_detail else ""))
        if result.noisy:
            lines.append(f"WARNING: other processes took {_share(result.noise)} of the CPUs "
                         f"in every one of {result.tries} rounds: cores used may be low")
    lines.append(verdict_line(result))
    return lines


def format_sweep(sweep: CheckSweep) -> list[str]:
    """The values side by side, one column each, and where the verdict changes."""
    rows = sweep.rows
    heads = [f"{sweep.name}={r.params[sweep.name]!r}" for r in rows]
    largest = [r.largest_threads() for r in rows]
    k = largest[0].workers if largest and largest[0] else 2

    def short(r: CheckResult) -> str:
        return r.verdict.replace("releases it for part of the call", "partly releases") \
            .replace(" the GIL", "")

    table = [
        ("one call", [format_time(r.call_s) for r in rows]),
        ("calls a task", [str(r.calls_per_task or "-") for r in rows]),
        ("GIL free", [_share(r.released_share) for r in rows]),
        ("on a CPU alone", [_share(r.on_cpu) for r in rows]),
        (f"{k} threads speedup", ["-" if w is None or w.speedup is None else f"{w.speedup:.2f}x"
                                  for w in largest]),
        (f"{k} threads cores", [_num(w.cores_used if w else None, ".2f") for w in largest]),
        (f"{k} threads GIL wait", [_num(w.gil_wait if w else None, ".2f") for w in largest]),
        ("answers", [r.answers for r in rows]),
        ("releases the GIL", [{True: "yes", False: "no", None: "?"}[r.releases_gil]
                              for r in rows]),
        ("verdict", [short(r) for r in rows]),
        ("threads", [r.practical.replace("threads help only for waits", "only for waits")
                     .replace("threads help", "help") for r in rows]),
    ]
    label_w = max(len(label) for label, _ in table) + 2
    width = max(10, *(len(h) + 2 for h in heads),
                *(len(v) + 2 for _, values in table for v in values))
    lines = [f"statement: {sweep.statement.strip()}"]
    if sweep.setup.strip():
        lines.append(f"setup:     {'; '.join(s for s in sweep.setup.splitlines() if s.strip())}")
    lines += ["", " " * label_w + "".join(f"{h:>{width}}" for h in heads)]
    for label, values in table:
        lines.append(f"{label:<{label_w}}" + "".join(f"{v:>{width}}" for v in values))
    lines.append("")
    if any(r.noisy for r in rows):
        lines.append("WARNING: the machine was busy during "
                     f"{sum(r.noisy for r in rows)} of {len(rows)} rows: cores used may be low")
    lines.append(f"threshold: {sweep.threshold}")
    for r in rows:
        lines.append(f"  {sweep.name}={r.params[sweep.name]!r}: {verdict_line(r)}")
    return lines


def _gil_state(result: CheckResult) -> str:
    env = result.env
    if not env.get("free_threaded_build"):
        return "on (a build with a GIL)"
    state = {True: "on", False: "off", None: "?"}[env.get("gil_enabled")]
    by = env.get("gil_enabled_by") or []
    return f"{state} (turned on by {', '.join(by)})" if by else state


def _run_column(result: CheckResult) -> list[str]:
    w = result.largest_threads()
    return [format_time(result.call_s), _num(result.cores_alone, ".2f"),
            "-" if w is None or w.speedup is None else f"{w.speedup:.2f}x",
            _num(w.cores_used if w else None, ".2f"),
            "-" if result.private_speedup is None else f"{result.private_speedup:.2f}x",
            _gil_state(result), result.answers, result.verdict, result.practical or "-"]


_RUN_LABELS = ("one call", "cores alone", "k threads speedup", "k threads cores",
               "own objects speedup", "GIL (measured)", "answers", "verdict", "practical")


def format_runs(runs) -> list[str]:
    """``check --python``: each interpreter's run; two or more checks side by side, one
    column each, then each run's verdict line. A sweep's runs one after another."""
    first = runs[0].result
    heads = [f"{r.interpreter.label}" + (f" (GIL {r.interpreter.gil})"
                                          if r.interpreter.gil else "") for r in runs]
    if len(runs) == 1 or any(isinstance(r.result, CheckSweep) for r in runs):
        lines = []
        for head, run in zip(heads, runs):
            lines.append(f"== {head}: {run.interpreter.path}")
            lines += (format_sweep(run.result) if isinstance(run.result, CheckSweep)
                      else format_check(run.result))
            lines.append("")
        return lines[:-1]
    k = max((r.result.largest_threads().workers for r in runs
             if r.result.largest_threads()), default=2)
    columns = [_run_column(r.result) for r in runs]
    label_w = max(len(label) for label in _RUN_LABELS) + 2
    width = max(12, *(len(h) + 2 for h in heads), *(len(v) + 2 for c in columns for v in c))
    lines = [f"statement: {first.statement.strip()}"]
    if first.setup.strip():
        lines.append(f"setup:     {'; '.join(s for s in first.setup.splitlines() if s.strip())}")
    lines += ["", " " * label_w + "".join(f"{h:>{width}}" for h in heads)]
    for row, label in enumerate(_RUN_LABELS):
        label = label.replace("k threads", f"{k} threads")
        lines.append(f"{label:<{label_w}}" + "".join(f"{c[row]:>{width}}" for c in columns))
    lines.append("")
    for head, run in zip(heads, runs):
        lines.append(f"  {head}: {verdict_line(run.result)}")
    return lines
