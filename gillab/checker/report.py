"""`gillab check` records -> lines of text. Never measures; the caller prints."""
from __future__ import annotations

from gillab.checker.record import CheckResult, CheckSweep

__all__ = ["format_check", "format_sweep", "format_time", "verdict_line"]


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
        lines.append(
            f"one call {format_time(result.call_s)}, {result.calls_per_task} calls a task "
            f"({format_time(result.task_s)}); alone on one thread: on a CPU "
            f"{_share(result.on_cpu)} of the time, GIL free {_share(result.released_share)}"
            " of it (probe)")
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
