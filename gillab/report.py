"""Records -> lines of text. Reporting never measures (house style: build lines, caller prints)."""
from __future__ import annotations

__all__ = ["format_env", "format_kernels"]

_ENV_LABELS = [
    ("python", "Python"),
    ("implementation", "implementation"),
    ("gil_enabled", "GIL enabled now"),
    ("free_threaded_build", "free-threaded build"),
    ("cpu_count", "CPUs"),
    ("cython", "Cython (built with)"),
    ("gevent", "gevent"),
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
