"""Every concurrency model of the lesson behind one signature.

``open_executor(name, n_workers)`` returns a started executor whose ``run(task, k)``
runs k identical tasks on its workers and returns their TaskClocks in order.
Pools are created (and warmed) when the executor opens, apart from the timed work;
``threads`` and ``processes`` start their workers inside ``run``, as the lesson does.

gevent is never imported here: gevent cells run in a child process of their own
(gillab.measure.gevent_child), which patches itself first thing.
"""
from __future__ import annotations

from gillab.core import registry
from gillab.measure.executors.aio import AsyncioCoroutines, ToThread
from gillab.measure.executors.base import Executor, WorkerFailed
from gillab.measure.executors.interpreters import Interpreters
from gillab.measure.executors.local import Serial, ThreadPool, Threads
from gillab.measure.executors.processes import MpPool, Processes, ProcessPool

__all__ = ["EXECUTORS", "IN_PROCESS", "PROCESS_EXECUTORS", "PER_RUN_STARTUP", "open_executor",
           "unavailable_reason", "WorkerFailed", "Executor"]

# Views of gillab.core.registry, the one table of executor traits.
EXECUTORS = registry.DEFAULT_EXECUTORS
#: Executors whose workers share the measuring process (and its GIL).
IN_PROCESS = registry.names_where(shares_gil=True)
#: Executors whose workers are processes started by multiprocessing (a start method applies).
PROCESS_EXECUTORS = registry.names_where(start_method=True)
#: Executors that start their workers inside each run rather than when they open.
PER_RUN_STARTUP = registry.names_where(starts_per_run=True)


_CLASSES = {cls.name: cls for cls in (Serial, Threads, Processes, MpPool, ThreadPool,
                                      ProcessPool, Interpreters, AsyncioCoroutines, ToThread)}


def unavailable_reason(name: str) -> str | None:
    """Why executor ``name`` cannot run on this interpreter, or None if it can."""
    import importlib.util

    from gillab.core.environment import free_threaded_build

    if name == "gevent":
        if free_threaded_build():
            return "gevent does not support free-threaded builds"
        if importlib.util.find_spec("gevent") is None:
            return "gevent is not installed"
    if name == "dask" and importlib.util.find_spec("distributed") is None:
        return "dask.distributed is not installed: pip install 'gillab[dask]'"
    if name == "interpreters":
        return _interpreters_unavailable()
    if registry.SPECS.get(name) is not None and registry.spec(name).event_loop:
        return _event_loop_unavailable(name)
    return None


def _event_loop_unavailable(name: str) -> str | None:
    # gillab needs 3.10, which has both; a Python without them (a stripped build) is
    # told in one line, and skipped by compare --python, rather than failing a cell.
    try:
        import asyncio
    except ImportError as exc:
        return f"asyncio cannot be imported here ({exc})"
    if name == "to_thread" and not hasattr(asyncio, "to_thread"):
        return "this Python has no asyncio.to_thread (Python 3.9+)"
    return None


def _interpreters_unavailable() -> str | None:
    # Absent (Python < 3.13, no concurrent.interpreters nor _interpreters): the reason.
    # Present but failing (gillab's kernels unable to load in a subinterpreter with its
    # own GIL, ...): an error with its cause, never a quiet skip.
    from gillab.core.errors import UserError
    from gillab.measure.subinterpreters import SubinterpreterBootstrapFailed, subinterpreter_problem

    try:
        return subinterpreter_problem()
    except SubinterpreterBootstrapFailed as exc:  # one line for the user, the cause chained
        raise UserError(f"-e interpreters: {exc}") from exc


def open_executor(name: str, n_workers: int, start_method: str | None = None,
                  timeout_s: float = 300.0, event_loop: str | None = None) -> Executor:
    """Start the executor ``name`` with ``n_workers`` workers (not for ``gevent``);
    ``event_loop`` ("asyncio" or "uvloop") is the loop of an executor that runs on one."""
    try:
        cls = _CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}"
                         + (" (gevent runs through gillab.measure.gevent_child)" if name == "gevent"
                            else "")) from None
    if registry.spec(name).event_loop:
        return cls(n_workers, start_method=start_method, timeout_s=timeout_s,
                   event_loop=event_loop or "asyncio")
    return cls(n_workers, start_method=start_method, timeout_s=timeout_s)
