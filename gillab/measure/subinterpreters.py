"""Running gillab's tasks inside subinterpreters that have their own GIL (PEP 684):
the bootstrap each subinterpreter runs, and why they cannot run here, if they cannot.

A leaf: it imports nothing from gillab at the top, because subinterpreters import it
first thing (``SETUP_SCRIPT``), before gillab.measure.clocks, whose psutil cannot load there.

Which API is used is decided by feature, never by version number:

- ``concurrent.interpreters`` (PEP 734, public from 3.14) and
  ``concurrent.futures.InterpreterPoolExecutor``, when this Python has them;
- else CPython 3.13's private ``_interpreters`` module;
- else none: the executor is skipped with the reason.

The first path cannot be run on this project's machines (no 3.14 here); it follows
the documented API and is exercised wherever a 3.14+ runs the tests.
"""
from __future__ import annotations

import os
import sys

__all__ = ["pool_executor_class", "public_module", "low_level_module", "api_name",
           "subinterpreter_problem", "SubinterpreterBootstrapFailed", "subinterpreter_setup", "subinterpreter_warm",
           "subinterpreter_run_task", "subinterpreter_run_pickled", "SETUP_SCRIPT",
           "RUN_SCRIPT"]


def public_module():
    """``concurrent.interpreters`` (PEP 734), or None where this Python lacks it."""
    try:
        from concurrent import interpreters
    except ImportError:
        return None
    return interpreters


def pool_executor_class():
    """``concurrent.futures.InterpreterPoolExecutor``, or None where there is none."""
    try:
        from concurrent.futures import InterpreterPoolExecutor
    except ImportError:
        return None
    return InterpreterPoolExecutor


def low_level_module():
    """CPython 3.13's private ``_interpreters``, or None."""
    try:
        import _interpreters
    except ImportError:
        return None
    return _interpreters


def api_name() -> str | None:
    """Which subinterpreter API this Python offers, as the reasons and docs name it."""
    if public_module() is not None and pool_executor_class() is not None:
        return "concurrent.interpreters"
    if low_level_module() is not None:
        return "_interpreters"
    return None


# --- inside a subinterpreter -------------------------------------------------------------
# Extension modules must declare that they can load in a subinterpreter with its own
# GIL: psutil does not (gillab.measure.clocks imports it only where it is used, never in
# run_task), and gillab._kernels is built with Cython's `subinterpreters_compatible`.

_SETUP_ERROR: str | None = None


def subinterpreter_setup(sys_path=None) -> None:
    """First thing in each subinterpreter: the parent's sys.path, then gillab's kernels
    and measuring code imported. Never raises: a failure is kept for
    ``subinterpreter_warm`` to report (an initializer that raises is only logged)."""
    global _SETUP_ERROR
    if sys_path:
        sys.path[:] = list(sys_path)
    try:
        import gillab._kernels  # noqa: F401
    except ImportError as exc:
        _SETUP_ERROR = (f"gillab._kernels cannot load in a subinterpreter with its own GIL "
                        f"({exc}); it needs Cython's subinterpreters_compatible='own_gil'")
        return
    try:
        import gillab.kernels  # noqa: F401
        import gillab.measure.clocks  # noqa: F401
    except ImportError as exc:
        _SETUP_ERROR = f"gillab cannot be imported in a subinterpreter: {exc}"


def subinterpreter_warm(seconds: float = 0.0) -> int:
    """Report a failed setup, else sleep (k overlapping sleeps start k pool workers)."""
    import time

    if _SETUP_ERROR:
        raise ImportError(_SETUP_ERROR)
    time.sleep(seconds)
    return 0


def subinterpreter_run_task(task):
    """measure.run_task inside a subinterpreter (after ``subinterpreter_setup``)."""
    if _SETUP_ERROR:
        raise ImportError(_SETUP_ERROR)
    from gillab.measure.clocks import run_task

    return run_task(task)


def subinterpreter_run_pickled(payload: bytes, fd: int) -> None:
    """3.13's low-level module passes only simple objects: a pickled Task in, a
    pickled TaskClock out through a pipe the parent reads."""
    import pickle

    data = pickle.dumps(subinterpreter_run_task(pickle.loads(payload)))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


#: Run in each new subinterpreter, with ``path`` bound to the parent's sys.path.
SETUP_SCRIPT = """\
import sys
sys.path[:] = path.split("\\0")
from gillab.measure.subinterpreters import subinterpreter_setup, subinterpreter_warm
subinterpreter_setup()
subinterpreter_warm(0)
"""
#: Run per task on the low-level path, with ``task`` (pickled) and ``fd`` bound.
RUN_SCRIPT = """\
from gillab.measure.subinterpreters import subinterpreter_run_pickled
subinterpreter_run_pickled(task, fd)
"""


class SubinterpreterBootstrapFailed(RuntimeError):
    """This Python has subinterpreters, but gillab could not start in one: an error
    with its cause, never a reason to skip the executor quietly."""


def subinterpreter_problem() -> str | None:
    """Why this Python has no subinterpreters for gillab (the feature is absent), or None.

    Asked once per run (compare skips the executor with the reason): a throwaway
    subinterpreter, made with whichever API this Python has, tries the imports a
    worker would do. Where the feature exists but that bootstrap fails, this raises
    SubinterpreterBootstrapFailed with the cause: that is a broken install or a bug,
    not an absent feature.
    """
    path = "\0".join(sys.path)
    public = public_module()
    if public is not None and pool_executor_class() is not None:
        return _problem_public(public, path)
    low = low_level_module()
    if low is not None:
        return _problem_low_level(low, path)
    v = sys.version_info
    return (f"subinterpreters need Python 3.13+ (this is {v.major}.{v.minor}: it has "
            "neither concurrent.interpreters nor _interpreters)")


def _created(module):
    """A new subinterpreter from either API's create(); any failure is raised again as
    SubinterpreterBootstrapFailed, with its cause attached."""
    try:
        return module.create()
    except Exception as exc:
        raise SubinterpreterBootstrapFailed(
            f"cannot create a subinterpreter: {_traceback_tail(exc)}") from exc


def _problem_public(module, path: str) -> None:
    interp = _created(module)
    try:
        interp.prepare_main(path=path)
        interp.exec(SETUP_SCRIPT)
    except Exception as exc:  # ExecutionFailed carries the subinterpreter's error
        raise SubinterpreterBootstrapFailed(
            f"gillab cannot start in a subinterpreter: {_traceback_tail(exc)}") from exc
    finally:
        interp.close()
    return None


def _problem_low_level(module, path: str) -> None:
    interp = _created(module)
    try:
        failure = module.exec(interp, SETUP_SCRIPT, shared={"path": path})
    except Exception as exc:  # the module refused the call itself
        raise SubinterpreterBootstrapFailed(
            f"gillab cannot start in a subinterpreter: {_traceback_tail(exc)}") from exc
    finally:
        module.destroy(interp)
    if failure is not None:
        raise SubinterpreterBootstrapFailed(
            "gillab cannot start in a subinterpreter: "
            + (getattr(failure, "msg", None) or str(failure)))
    return None


def _traceback_tail(exc: BaseException) -> str:
    """The subinterpreter's own error: ExecutionFailed's text may carry the traceback
    from inside it, whose last line (not the first, which core.errors.one_line takes)
    is ``Type: message``."""
    info = getattr(exc, "excinfo", None)
    text = getattr(info, "msg", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[-1] if text.strip() else type(exc).__name__
