"""Records -> lines of text. Reporting never measures (house style: build lines, caller prints)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from gillab.compare.verdict import EXPLANATIONS
from gillab.core.registry import spec

__all__ = ["format_env", "format_kernels", "format_table", "format_env_line", "Column",
           "render_table"]

_ENV_LABELS = [
    ("python", "Python"),
    ("implementation", "implementation"),
    ("gil_enabled", "GIL enabled now"),
    ("free_threaded_build", "free-threaded build"),
    ("cpu_count", "CPUs"),
    ("cython", "Cython (built with)"),
    ("gevent", "gevent"),
    ("event_loop", "event loop (compare)"),
    ("uvloop", "uvloop"),
    ("switch_interval", "switch interval (s)"),
    ("start_method", "multiprocessing start method"),
    ("platform", "platform"),
    ("gillab", "gillab"),
]


def _yes_no(value) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return "n/a" if value is None else str(value)


def format_env(env: dict) -> list[str]:
    width = max(len(label) for _, label in _ENV_LABELS)
    return [f"{label:<{width}}  {_yes_no(env.get(key))}" for key, label in _ENV_LABELS]


def format_kernels(kernels: dict, calibration: dict | None = None) -> list[str]:
    """One line per kernel; with calibration, ns/iter and the ratio to the C loop."""
    lines = []
    width = max(len(name) for name in kernels)
    if calibration is None:
        for name, k in kernels.items():
            gil = "releases GIL" if k.releases_gil else "holds GIL"
            lines.append(f"{name:<{width}}  {gil:<12}  {k.description}")
        return lines
    width = max(width, len("c_reference"))
    lines.append(f"{'kernel':<{width}}  {'ns/iter':>8}  {'vs C':>6}  {'n':>11}  what it shows")
    descriptions = {name: k.description for name, k in kernels.items()}
    descriptions["c_reference"] = "hand-written C loop: the speed limit"
    for name, row in calibration.items():
        lines.append(f"{name:<{width}}  {row['ns_per_iter']:8.2f}  {row['vs_c']:5.2f}x"
                     f"  {row['n']:>11,}  {descriptions.get(name, '')}")
    if "py" in calibration and "cy_nogil" in calibration:
        ratio = calibration["py"]["ns_per_iter"] / calibration["cy_nogil"]["ns_per_iter"]
        lines.append("")
        lines.append(f"pure Python runs this loop {ratio:.1f}x slower than the Cython kernel; "
                     "bigint's cost per iteration grows with n (its numbers get longer).")
    return lines


# --- compare ------------------------------------------------------------------------

WIDTH = 80
_METHOD_ABBREVIATIONS = {"fork": "fk", "spawn": "sp", "forkserver": "fs"}


@dataclass(frozen=True)
class Column:
    """One column of a plain-text table: its header, width, alignment and how a row
    gives its text. Tables are described by their columns in one place."""

    header: str
    width: int
    text: Callable
    align: str = ">"


def render_table(columns, rows, indent: str = "  ") -> list[str]:
    """The header and one line per row, columns two spaces apart."""
    def line(cells):
        return (indent + "  ".join(f"{c:{col.align}{col.width}}"
                                   for col, c in zip(columns, cells))).rstrip()
    return [line(col.header for col in columns),
            *(line(col.text(row) for col in columns) for row in rows)]


_LOSS_WORDS = {"slower_tasks": "tasks", "waiting": "waits", "executor": "executor"}


def _lost_to(cell) -> str:
    """The largest part of a missing speedup, as the table shows it (the reason gives
    its figure)."""
    if cell.main_loss is None or cell.verdict in ("noisy", "wrong"):
        return ""
    return _LOSS_WORDS.get(cell.main_loss, cell.main_loss)


def _wait_text(cell) -> str:
    if cell.gil_wait is not None and cell.io_bound:
        return _num(cell.gil_wait, ".2f") + "*"   # off-CPU by design, not GIL wait
    return _num(cell.gil_wait, ".2f")


def _seconds(value) -> str:
    return "-" if value is None else (f"{value:.3f}" if value < 10 else f"{value:.4g}")


def _compare_columns(cells, show_method: bool) -> list[Column]:
    width = max([len("executor")] + [len(cell_label(c, show_method)) for c in cells])
    return [
        Column("executor", width, lambda c: cell_label(c, show_method), "<"),
        Column("w", 2, lambda c: str(c.workers)),
        Column("wall", 5, lambda c: _seconds(c.wall_s)),
        Column("speedup", 7, _speedup_text),
        Column("cores", 5, lambda c: _num(c.cores_used, ".2f")),
        Column("wait", 5, _wait_text),
        Column("held", 4, lambda c: _num(c.gil_held, ".2f")),
        Column("verdict", 15, lambda c: c.verdict + ("?" if c.uncertain else ""), "<"),
        Column("lost to", 8, _lost_to, "<"),
    ]


def _speedup_text(cell) -> str:
    """The speedup, with the spread of its pairs when they differ by 10% or more."""
    if cell.speedup is None:
        return "-"
    wide = cell.speedup_spread is not None and cell.speedup_spread >= 0.10
    return f"{cell.speedup:.2f}x" + ("~" if wide else "")


def cell_label(cell, show_method: bool = False) -> str:
    """The executor as a row names it: with a dask shape, or a start method when several ran."""
    if cell.shape:
        return f"{cell.executor} {cell.shape}"
    if show_method and cell.start_method:
        return f"{cell.executor}:{_METHOD_ABBREVIATIONS.get(cell.start_method, cell.start_method)}"
    return cell.executor


def _several_methods(run) -> bool:
    return len({c.start_method for c in run.cells if c.start_method}) > 1


def _num(value, fmt: str, missing: str = "-") -> str:
    return missing if value is None else format(value, fmt)


def format_env_line(env: dict) -> str:
    gil = "GIL enabled" if env.get("gil_enabled", True) else "GIL disabled"
    if env.get("free_threaded_build"):
        gil += " (free-threaded build)"
    interval = env.get("switch_interval")
    interval = f"{interval * 1000:g} ms" if isinstance(interval, (int, float)) else "?"
    return (f"{env.get('implementation', 'Python')} {env.get('python', '?')}, {gil}, "
            f"{env.get('cpu_count', '?')} CPUs, switch interval {interval}, "
            f"start method {env.get('start_method', '?')}")


def _subject_title(cells, descriptions: dict) -> list[str]:
    first = cells[0]
    size = (f"n={first.n:,}" if first.n is not None else
            f"{first.seconds:g} s sleeps" if first.seconds is not None else "")
    base = f"one task {first.serial_s:.3f} s serially" if first.serial_s else ""
    detail = "; ".join(x for x in (size, base) if x)
    what = descriptions.get(first.kernel, "your function (--target)")
    return [f"{first.kernel}" + (f" ({detail})" if detail else ""), f"  {what}"]


def _wrap(text: str, indent: str = "", width: int = WIDTH) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent=indent,
                         subsequent_indent=indent + "    ") or [""]


def _why_key(cell) -> tuple:
    """Cells share a reason line when their word and its cause are the same: greenlets and
    coroutines are both one OS thread, but a greenlet's reason is not a coroutine's."""
    if cell.verdict != "serialized":  # the other words' reasons read alike for all
        return (cell.verdict,)
    s = spec(cell.executor)
    return cell.verdict, s.one_os_thread, s.one_os_thread and s.event_loop


def _why_lines(cells, show_method: bool = False) -> list[str]:
    """One wrapped line per verdict word in a group: which cells, and one reason in numbers.

    The serial baseline and one-worker cells that met their ideal say nothing new,
    so they are left to the table.
    """
    telling = [c for c in cells if not spec(c.executor).baseline]
    lines = []
    for key in dict.fromkeys(_why_key(c) for c in telling):
        members = [c for c in telling if _why_key(c) == key]
        verdict = key[0]
        where = ", ".join(cell_label(c, show_method) + ("" if c.shape else f" x{c.workers}")
                          for c in members)
        example = max(members, key=lambda c: (c.workers, -(c.speedup or 0)))
        lines += _wrap(f"{verdict} ({where}): {example.reason}", indent="  ")
    unbacked = [c for c in telling if c.unbacked]
    if unbacked:  # the example reasons above may not show it: one line for all
        lines += _wrap("speedups the cores do not back (the serial baseline ran slow): "
                       + ", ".join(f"{cell_label(c, show_method)} x{c.workers} "
                                   f"{c.speedup:.2f}x on {c.cores_used:.2f} cores"
                                   for c in unbacked), indent="  ")
    return lines


def _dask_lines(cells) -> list[str]:
    """What Dask says about itself, beside gillab's figures, for a group's dask cells."""
    dask = [c for c in cells if spec(c.executor).shaped]
    if not dask:
        return []
    parts = []
    for c in dask:
        stall = f"loop stall {c.loop_stall_s:.2f} s" if c.loop_stall_s is not None else \
            "loop stall -"
        gil = (f"gil_contention {c.dask_gil_contention:.2f}"
               if c.dask_gil_contention is not None else "gil_contention -")
        parts.append(f"{c.shape}: {stall}, {gil}")
    text = "dask's own view (an idle worker loop stalls ~0.02 s): " + "; ".join(parts)
    if all(c.dask_gil_contention is None for c in dask):
        text += " (gil_contention needs gilknocker: pip install 'gillab[dask]')"
    return _wrap(text, indent="  ")


def _contended_note(cells) -> list[str]:
    """The word new to free-threaded builds, said once where a cell earned it."""
    if not any(c.verdict == "contended" for c in cells):
        return []
    return ["", *_wrap(f"contended: {EXPLANATIONS['contended']}. Without a GIL, cores used "
                       "no longer prove scaling: py_shared shows it beside py (-k py "
                       "py_shared), and processes, which share nothing, show whether the "
                       "work itself scales.")]


def format_table(run, descriptions: dict | None = None) -> list[str]:
    """The compare table: environment on top, one block per kernel, reasons under each."""
    descriptions = descriptions or {}
    lines = [*_wrap(f"gillab compare — {format_env_line(run.env)}"),
             *_wrap("k identical tasks on k workers. speedup = k x T(serial) / T(cell), "
                    "each timed run of a cell right after a serial run of its own, the "
                    "median of those pairs (~: the pairs spread 10% or more); "
                    "ideal = min(k, CPUs) for CPU work, k for waits. cores = CPU seconds / "
                    "wall seconds. wait = GIL wait: the share of its time the longest-waiting "
                    "task was off-CPU from its start signal, the OS queue taken out; held = "
                    "share of time a probe found the GIL taken. "
                    "lost to = the largest measured part of a missing speedup (tasks: each "
                    "task needed more CPU than serially; waits: for the GIL or a CPU; "
                    "executor: start-up, dispatch, results). A ? marks a verdict its "
                    "repeats did not all agree on.")]
    methods = _several_methods(run)
    if methods:
        lines += _wrap("start methods: " + ", ".join(
            f"{abbr} = {name}" for name, abbr in _METHOD_ABBREVIATIONS.items()))
    groups: dict[str, list] = {}
    for cell in run.cells:
        groups.setdefault(cell.kernel, []).append(cell)
    for cells in groups.values():
        lines += ["", *_subject_title(cells, descriptions)]
        lines += render_table(_compare_columns(run.cells, methods), cells)
        if any(c.io_bound and c.gil_wait is not None for c in cells):
            lines.append("  * a sleeping task is off-CPU by design: this is not GIL wait")
        lines += _why_lines(cells, methods)
        lines += _dask_lines(cells)
    lines += _contended_note(run.cells)
    for skip in getattr(run, "skipped", ()):
        lines += ["", *_wrap(f"skipped: {skip['executor']}: {skip['reason']}")]
    noisy = [c for c in run.cells if c.verdict == "noisy"]
    wrong = [c for c in run.cells if c.verdict == "wrong"]
    if noisy:
        lines += ["", *_wrap(f"WARNING: {len(noisy)} cell(s) ran while other processes took "
                             "the CPU (noise guard); their figures may be unstable: "
                             + ", ".join(f"{c.kernel}/{c.executor} x{c.workers}"
                                         for c in noisy))]
    if wrong:
        lines += ["", f"ERROR: {len(wrong)} cell(s) failed or gave a wrong answer:"]
        for c in wrong:
            lines += _wrap(f"{c.kernel}/{c.executor} x{c.workers}: {c.reason}", indent="  ")
    return lines


def format_cost_table(run) -> list[str]:
    """The cost view: start-up, memory and dispatch per executor and worker count."""
    from gillab.core import stats

    show_method = _several_methods(run)
    rows: dict[tuple, list] = {}
    for cell in run.cells:
        if not spec(cell.executor).baseline:
            rows.setdefault((cell_label(cell, show_method), cell.workers), []).append(cell)
    if not any(c.startup_s is not None or c.mem_mb is not None for c in run.cells):
        return []

    def median(attr, scale=1.0):
        """A column's text: the median over kernels of one cost field."""
        def text(row):
            values = [getattr(c, attr) for c in row[1] if getattr(c, attr) is not None]
            return _num(stats.median(values) * scale if values else None, ".1f")
        return text

    width = max([len("executor")] + [len(label) for label, _ in rows])
    columns = [Column("executor", width, lambda row: row[0][0], "<"),
               Column("w", 2, lambda row: str(row[0][1])),
               Column("start-up ms", 11, median("startup_s", 1e3)),
               Column("start CPU ms", 12, median("startup_cpu_s", 1e3)),
               Column("memory MB", 9, median("mem_mb")),
               Column("dispatch us", 11, median("dispatch_us"))]
    lines = ["", "What each model costs (start-up and memory: median over kernels; memory is",
             "PSS, which divides pages shared after fork among the processes sharing them)",
             *render_table(columns, list(rows.items()))]
    costs = run.lesson_costs
    if costs:
        t, p = costs["threads"], costs["processes"]
        small = costs["small_tasks"]
        lines += ["", "The lesson's cost claims, measured here:"]
        lines += _wrap(
            f"- starting {costs['workers']} threads took {t['startup_s'] * 1e3:.1f} ms "
            f"({t['startup_cpu_s'] * 1e3:.1f} ms CPU) and {t['mem_mb']:.1f} MB; "
            f"{costs['workers']} processes took {p['startup_s'] * 1e3:.1f} ms "
            f"({p['startup_cpu_s'] * 1e3:.1f} ms CPU) and {p['mem_mb']:.1f} MB: a process "
            f"costs {_ratio(p['startup_cpu_s'], t['startup_cpu_s'])} the CPU and "
            f"{_ratio(p['mem_mb'], t['mem_mb'])} the memory of a thread to start.",
            indent="  ")
        lines += _wrap(
            f"- {small['tasks']} small tasks on a pool of {small['pool_size']}: "
            f"{small['pool_s']:.3f} s; on {small['pool_size']} fresh processes at a time: "
            f"{small['fresh_processes_s']:.3f} s "
            f"({_ratio(small['fresh_processes_s'], small['pool_s'])} slower): a pool pays "
            "start-up once and reuses its workers.", indent="  ")
    return lines


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.0f}x" if b > 0 and a / b >= 10 else (f"{a / b:.1f}x" if b > 0 else "n/a")
