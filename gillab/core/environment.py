"""What machine and interpreter a result was measured on."""
from __future__ import annotations

import multiprocessing
import os
import platform
import sys
import sysconfig
from importlib import metadata

# One reading of the GIL for every command (gillab.core.gilstate), re-exported here.
from gillab.core.gilstate import free_threaded_build, gil_enabled

__all__ = ["collect_env", "gil_enabled", "free_threaded_build", "cpu_count", "build_info"]


def _version(dist: str) -> str | None:
    # Read versions from metadata: importing gevent here could tempt a patch,
    # and the measuring process must never be patched.
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _built_with_cython() -> str | None:
    try:
        from gillab import _kernels
    except ImportError:
        return None
    return _kernels.CYTHON_VERSION


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, not the whole machine)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def build_info() -> dict:
    """How this interpreter was compiled: two builds of one version differ here."""
    def var(name):
        value = sysconfig.get_config_var(name)
        return " ".join(str(value).split()) if value else None

    return {"compiler": platform.python_compiler() or None, "cc": var("CC"),
            "cflags": var("CFLAGS"), "config_args": var("CONFIG_ARGS")}


def collect_env() -> dict:
    """The DESIGN.md ``env`` object, as plain data."""
    try:
        from gillab._version import __version__
    except ImportError:  # pragma: no cover - only inside a broken install
        __version__ = None
    return {
        "gillab": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "gil_enabled": gil_enabled(),
        # The modules whose import turned the GIL on: a command that watches its run
        # (gillab.core.gilstate.watch_gil) fills it in; [] until then.
        "gil_enabled_by": [],
        "free_threaded_build": free_threaded_build(),
        "cpu_count": cpu_count(),
        "cython": _built_with_cython(),
        "gevent": _version("gevent"),
        # compare's event loop unless --loop picks another (the run's env says which ran)
        "event_loop": "asyncio",
        "uvloop": _version("uvloop"),
        "switch_interval": sys.getswitchinterval(),
        "start_method": multiprocessing.get_start_method(allow_none=True)
        or multiprocessing.get_context().get_start_method(),
        "platform": platform.platform(),
        "build": build_info(),
    }
