"""The side-by-side report of ``compare --python``: one table per kernel with a column
group per run, each run's interpreter and build on top, and a reading that says which
pair of columns isolates what (report layer: reads records, measures nothing).

Which comparison isolates what:

- the same binary with its GIL off and forced on (3.13t, 3.13t+GIL): the GIL's own
  effect on scaling, nothing else changes;
- the same version built with a GIL and free-threaded (3.13, 3.13t), one thread
  each: what the free-threaded build costs a single thread (ns/iter of py, bigint);
- different versions: everything at once (interpreter, build, compiler, flags).
"""
from __future__ import annotations

import textwrap

from gillab.core.registry import SPECS

__all__ = ["format_side_by_side", "reading_lines", "single_thread_cost", "pairs", "WIDTH"]

WIDTH = 80
_COL = 30   # one run's columns: "  speedup cores verdict"
#: Kernels whose one-thread speed shows the free-threaded build's cost (the
#: interpreter loop and object allocation; cy_nogil runs C that no build changes).
COST_KERNELS = ("py", "bigint")


def _wrap(text: str, indent: str = "", hang: str = "    ") -> list:
    return textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent + hang,
                         break_on_hyphens=False) or [""]


def _row_key(cell) -> tuple:
    return cell.executor, cell.workers, cell.shape


def _row_name(key) -> str:
    executor, _, shape = key
    return f"{executor} {shape}" if shape else executor


def _speed(cell) -> str:
    return "-" if cell.speedup is None else f"{cell.speedup:6.2f}x"


def _cols(cell, skip_reason) -> str:
    if cell is None:
        return f"  {'-':>7} {'':>5} {'skipped' if skip_reason else '-':<14}"
    cores = "-" if cell.cores_used is None else f"{cell.cores_used:5.2f}"
    return f"  {_speed(cell):>7} {cores:>5} {cell.verdict:<14}"


def _baseline(executor: str) -> bool:
    """The serial run every speedup divides (an executor the registry does not know is
    never taken for it)."""
    spec = SPECS.get(executor)
    return spec is not None and spec.baseline


def _threads_of_one_gil(executor: str) -> bool:
    """Workers that are threads of the measuring process, one GIL between them: the
    cells in which the GIL's own effect on scaling shows."""
    spec = SPECS.get(executor)
    return (spec is not None and spec.shares_gil and not spec.baseline
            and not spec.one_os_thread)


def ns_per_iter(cells, kernel: str, label: str) -> float | None:
    """One serial task's time per loop iteration, in ns, for ``label``'s ``kernel``."""
    serial = next((c for c in cells if c.kernel == kernel and c.interpreter == label
                   and _baseline(c.executor)), None)
    if serial is None or not serial.n or not serial.serial_s:
        return None
    return serial.serial_s / serial.n * 1e9


def _minor(env: dict) -> str:
    return ".".join(str(env.get("python", "?")).split(".")[:2])


def pairs(envs: dict) -> dict:
    """{"gil": [(off, on)], "build": [(gil build, free-threaded)], "other": [(a, b)]}:
    each pair of runs by what it isolates (labels, in the order of ``envs``)."""
    labels = list(envs)
    found: dict = {"gil": [], "build": [], "other": []}
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            ea, eb = envs[a], envs[b]
            ft_a, ft_b = bool(ea.get("free_threaded_build")), bool(eb.get("free_threaded_build"))
            same_binary = (ea.get("executable") == eb.get("executable")
                           and ea.get("python") == eb.get("python"))
            if (same_binary and ft_a and ft_b
                    and bool(ea.get("gil_enabled")) != bool(eb.get("gil_enabled"))):
                off, on = (a, b) if not ea.get("gil_enabled") else (b, a)
                found["gil"].append((off, on))
            elif _minor(ea) == _minor(eb) and ft_a != ft_b:
                gil_build, ft = (a, b) if not ft_a else (b, a)
                found["build"].append((gil_build, ft))
            elif not same_binary:
                found["other"].append((a, b))
    # One build comparison per free-threaded binary: its GIL-off run where it has one.
    by_build: dict = {}
    for gil_build, ft in found["build"]:
        key = (gil_build, envs[ft].get("executable"))
        if key not in by_build or (envs[by_build[key][1]].get("gil_enabled", True)
                                   and not envs[ft].get("gil_enabled", True)):
            by_build[key] = (gil_build, ft)
    found["build"] = list(by_build.values())
    return found


def single_thread_cost(run, gil_build: str, ft: str) -> dict:
    """{kernel: (ns/iter on the GIL build, ns/iter free-threaded, relative cost)} for
    COST_KERNELS measured on both runs."""
    costs = {}
    for kernel in COST_KERNELS:
        a = ns_per_iter(run.cells, kernel, gil_build)
        b = ns_per_iter(run.cells, kernel, ft)
        if a and b:
            costs[kernel] = (a, b, b / a - 1.0)
    return costs


def _threads_scaling(run, off: str, on: str) -> str | None:
    """"3.13t cy_gil threads x2 1.82x (parallel); 3.13t+GIL ... 0.96x (GIL-bound)" at
    the most workers, for the first GIL-holding kernel neither run left noisy."""
    def top(label, kernel):
        cells = [c for c in run.cells if c.interpreter == label and c.kernel == kernel
                 and _threads_of_one_gil(c.executor) and c.speedup is not None]
        # The most workers; among as many, plain threads before a pool's (no dispatch).
        return max(cells, key=lambda c: (c.workers, not SPECS[c.executor].dispatch),
                   default=None)

    candidates = []
    for kernel in ("py", "cy_gil", "bigint"):
        a, b = top(off, kernel), top(on, kernel)
        if a is not None and b is not None:
            candidates.append((kernel, a, b))
    if not candidates:
        return None
    clean = [c for c in candidates if "noisy" not in (c[1].verdict, c[2].verdict)]
    kernel, a, b = (clean or candidates)[0]
    return "; ".join(f"{label} {kernel} {c.executor} x{c.workers} {c.speedup:.2f}x on "
                     f"{c.cores_used:.2f} cores ({c.verdict})"
                     for label, c in ((off, a), (on, b)) if c.cores_used is not None)


def reading_lines(run, envs: dict) -> list:
    """Which pair of columns isolates what, with the figures that pair shows."""
    found = pairs(envs)
    if not any(found.values()):
        return []
    lines = ["", "What each comparison isolates:"]
    for off, on in found["gil"]:
        text = (f"{off} vs {on}: the same binary with its GIL off and forced on "
                "(-X gil=1): the only change is the GIL, so the difference in scaling "
                "is the GIL's own effect.")
        scaling = _threads_scaling(run, off, on)
        if scaling:
            text += f" {scaling}."
        lines += _wrap(text, indent="  ")
    for gil_build, ft in found["build"]:
        va, vb = envs[gil_build].get("python"), envs[ft].get("python")
        same = "the same version" if va == vb else f"the same version line ({va}, {vb})"
        text = (f"{gil_build} vs {ft}: {same}, built with a GIL and free-threaded: one "
                "thread's ns/iter is what the free-threaded build costs a single thread.")
        costs = single_thread_cost(run, gil_build, ft)
        if costs:
            text += " " + "; ".join(f"{k} {a:.1f} -> {b:.1f} ns/iter ({rel:+.0%})"
                                    for k, (a, b, rel) in costs.items()) + "."
            noisy = [k for k in costs if any(
                c.verdict == "noisy" for c in run.cells if c.kernel == k
                and c.executor == "serial" and c.interpreter in (gil_build, ft))]
            if noisy:
                text += (f" ({', '.join(noisy)}: a serial cell ran noisy; measure again "
                         "with -e serial --repeat 5 on a quiet machine.)")
        lines += _wrap(text, indent="  ")
    if found["other"]:
        names = ", ".join(f"{a} vs {b}" for a, b in found["other"])
        lines += _wrap(f"{names}: different versions (and builds): everything changes at "
                       "once, interpreter, build, compiler and flags; read them as a sum, "
                       "not as any one cause.", indent="  ")
    return lines


def _build_lines(envs: dict, width: int) -> list:
    """Each binary's compiler and flags, once (a GIL-on run shares its binary's)."""
    lines, seen = [], set()
    for label, env in envs.items():
        build = env.get("build") or {}
        key = (env.get("executable"), env.get("python"))
        if not build or key in seen:
            continue
        seen.add(key)
        parts = [f"{build.get('compiler') or '?'}"]
        if build.get("cc"):
            parts.append(f"CC {build['cc']}")
        if build.get("cflags"):
            parts.append(f"CFLAGS {build['cflags']}")
        flags = _configure_flags(build.get("config_args"))
        if flags:
            parts.append(f"configure {flags}")
        lines += _wrap(f"{label:<{width}}  built with " + "; ".join(parts), indent="  ",
                       hang=" " * (width + 2))
    return lines


def _configure_flags(config_args: str | None) -> str:
    """The configure options that change the build (--disable-gil, --enable-optimizations,
    --with-lto...), without paths (--prefix, LDFLAGS=...): the JSON keeps them all."""
    import shlex

    try:
        words = shlex.split(config_args or "")
    except ValueError:
        words = (config_args or "").split()
    return " ".join(w for w in words if w.startswith("--") and "/" not in w)


def _asked_gil(run) -> dict:
    return {i.get("label"): i.get("gil") for i in run.settings.get("interpreters", ())
            if isinstance(i, dict)}


def format_side_by_side(run, envs: dict, descriptions: dict | None = None) -> list:
    """One table per kernel: rows executor x workers, columns speedup, cores and verdict
    for each run (80 columns for two); each env and build on top, the reading below."""
    labels = list(envs)
    skipped = {(s.get("interpreter"), s["executor"]): s["reason"] for s in run.skipped}
    lines = _header_lines(envs)
    for kernel in dict.fromkeys(c.kernel for c in run.cells):
        lines += _kernel_table(run, kernel, labels, skipped,
                               (descriptions or {}).get(kernel, "your function (--target)"))
    if skipped:
        lines.append("")
    for (label, executor), reason in skipped.items():
        lines += _wrap(f"skipped on {label}: {executor}: {reason}")
    lines += reading_lines(run, envs)
    lines += _free_threading_notes(envs, _asked_gil(run))
    return lines + _warning_lines(run, labels)


def _header_lines(envs: dict) -> list:
    """The title, each run's interpreter and build, and what the columns mean."""
    from gillab.compare.report import format_env_line

    width = max(len(lab) for lab in envs)
    lines = ["gillab compare, side by side"]
    for label, env in envs.items():
        lines += _wrap(f"{label:<{width}}  {format_env_line(env)}", indent="  ",
                       hang=" " * (width + 2))
    lines += _build_lines(envs, width)
    return lines + _wrap("k identical tasks on k workers. speedup = k x T(serial) / T(cell), "
                         "each run against its own serial run; cores = CPU seconds / wall "
                         "seconds; ns/iter = one serial task's time per loop iteration.")


def _kernel_table(run, kernel: str, labels: list, skipped: dict, description: str) -> list:
    """One kernel's rows, a column group per run, and why the runs disagree where they do."""
    cells = [c for c in run.cells if c.kernel == kernel]
    by = {(c.interpreter, _row_key(c)): c for c in cells}
    speeds = [f"{label} {ns:.1f}" for label in labels
              if (ns := ns_per_iter(cells, kernel, label))]
    title = kernel + (f" (ns/iter: {', '.join(speeds)})" if speeds else "")
    lines = ["", title, f"  {description}",
             " " * 17 + "".join(f"  {('-- ' + lab + ' '):-<{_COL - 2}}" for lab in labels),
             (f"  {'executor':<13}{'w':>2}"
              + f"  {'speedup':>7} {'cores':>5} {'verdict':<14}" * len(labels)).rstrip()]
    changed = []
    for key in dict.fromkeys(_row_key(c) for c in cells):
        row = [by.get((label, key)) for label in labels]
        lines.append((f"  {_row_name(key):<13}{key[1]:>2}"
                      + "".join(_cols(cell, skipped.get((label, key[0])))
                                for label, cell in zip(labels, row))).rstrip())
        present = [(label, c) for label, c in zip(labels, row) if c is not None]
        # Say why where the runs disagree: not for the baseline or one worker, and
        # not where noise (listed below) left no verdict to compare.
        if (not _baseline(key[0]) and key[1] > 1 and len(present) > 1
                and len({c.verdict for _, c in present}) > 1
                and not any(c.verdict == "noisy" for _, c in present)):
            changed.append((key, present))
    for key, present in changed:
        parts = "; ".join(f"{label} {c.verdict} ({c.reason})" for label, c in present)
        lines += _wrap(f"{_row_name(key)} x{key[1]}: {parts}", indent="  ")
    return lines


def _warning_lines(run, labels: list) -> list:
    """Cells that ran noisy (per run) and cells that failed, loudly, last."""
    lines = []
    noisy = [c for c in run.cells if c.verdict == "noisy"]
    wrong = [c for c in run.cells if c.verdict == "wrong"]
    if noisy:
        where = "; ".join(
            f"{label}: " + ", ".join(f"{c.kernel}/{c.executor} x{c.workers}"
                                     for c in noisy if c.interpreter == label)
            for label in labels if any(c.interpreter == label for c in noisy))
        lines += ["", *_wrap(f"WARNING: {len(noisy)} cell(s) ran while other processes took "
                             f"the CPU (noise guard); their figures may be unstable: {where}")]
    if wrong:
        lines += ["", f"ERROR: {len(wrong)} cell(s) failed or gave a wrong answer:"]
        for c in wrong:
            lines += _wrap(f"{c.interpreter} {c.kernel}/{c.executor} x{c.workers}: "
                           f"{c.reason}", indent="  ")
    return lines


def _free_threading_notes(envs: dict, asked: dict | None = None) -> list:
    """What a free-threaded build means for the table: said once, in words."""
    asked = asked or {}
    lines = []
    off = [lab for lab, env in envs.items()
           if env.get("free_threaded_build") and not env.get("gil_enabled", True)]
    on = [lab for lab, env in envs.items()
          if env.get("free_threaded_build") and env.get("gil_enabled", True)]
    by_request = [lab for lab in on if asked.get(lab) == "on"]
    unexpected = [lab for lab in on if lab not in by_request]
    not_on = [lab for lab in off if asked.get(lab) == "on"]
    if not_on:
        lines += ["", *_wrap(
            f"WARNING: {', '.join(not_on)}: the GIL was asked to be on (-X gil=1), but "
            "it was off inside the run: these columns are not GIL-bound.")]
    if off:
        names = ", ".join(off)
        lines += ["", *_wrap(
            f"free-threaded: {names} {'is a build' if len(off) == 1 else 'are builds'} "
            "without a GIL (PEP 703), and it stayed off with gillab imported. There the "
            "\"GIL-holding\" kernels (py, cy_gil, bigint) hold nothing: their threads run "
            "on every core, as cy_nogil's do everywhere. gevent does not support "
            "free-threading, so its cells are skipped there.")]
    if by_request:
        lines += ["", *_wrap(
            f"{', '.join(by_request)}: the free-threaded build with its GIL forced on "
            "(--gil on/both, -X gil=1), as measured inside the run: its threads are "
            "GIL-bound as on a default build.")]
    if unexpected:
        lines += ["", *_wrap(
            f"WARNING: {', '.join(unexpected)} is a free-threaded build, but its GIL was on "
            "during the run (PYTHON_GIL=1, -X gil=1, or an extension module that does not "
            "declare free-threading support): its threads were GIL-bound as on a "
            "default build.")]
    return lines
