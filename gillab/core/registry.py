"""One table of facts about the executors: every other module reads it.

Verdicts, the report, the CLI, the compare engine and the benchmarks ask an
executor's *traits* here instead of keeping their own lists of names. Adding an
executor means one row here and one module that runs it. A leaf: imports nothing
of gillab's.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ExecutorSpec", "SPECS", "DEFAULT_EXECUTORS", "OPTIONAL_EXECUTORS", "ALL_EXECUTORS",
           "spec", "names_where"]


@dataclass(frozen=True)
class ExecutorSpec:
    """What an executor is, as far as measuring and judging it go."""

    name: str
    noun: str                    # what a reason calls its workers ("pool threads")
    shares_gil: bool             # workers are threads of the measuring process (one GIL);
    #                              with the GIL off it still means one process: every object
    #                              is shared (compare.verdict.shares_memory, `contended`)
    processes: bool              # each worker is an OS process of its own
    start_method: bool           # a multiprocessing start method applies
    starts_per_run: bool         # workers start inside each timed run (threads, processes)
    dispatch: bool               # has a per-task dispatch figure (pools, greenlets)
    remote: bool = False         # measured outside this process's own executor loop
    one_os_thread: bool = False  # every worker runs on one OS thread (greenlets, coroutines)
    default: bool = True         # in the default matrix; False: asked for by name only
    worker_kind: str = "thread"  # what -w counts against: "thread" or "process" limits
    one_noun: str = "worker"     # what a reason calls one worker ("a pool thread")
    baseline: bool = False       # the serial run every speedup divides (one row per subject)
    shaped: bool = False         # workers come as a cluster shape, P processes x T threads,
    #                              the threads of each process sharing its GIL (dask)
    event_loop: bool = False     # runs on one asyncio event loop (--loop picks which loop)

    def workers_noun(self, count: int) -> str:
        """What a reason calls ``count`` workers: ``noun`` ("pool threads"), or for one
        worker ``one_noun`` without its article ("pool thread")."""
        if count != 1:
            return self.noun
        article, _, rest = self.one_noun.partition(" ")
        return rest if article in ("a", "an") and rest else self.one_noun


SPECS: dict[str, ExecutorSpec] = {s.name: s for s in (
    ExecutorSpec("serial", "task", shares_gil=True, processes=False, start_method=False,
                 starts_per_run=False, dispatch=True, one_noun="a plain call", baseline=True),
    ExecutorSpec("threads", "threads", shares_gil=True, processes=False, start_method=False,
                 starts_per_run=True, dispatch=False, one_noun="a thread"),
    ExecutorSpec("processes", "processes", shares_gil=False, processes=True, start_method=True,
                 starts_per_run=True, dispatch=False, worker_kind="process",
                 one_noun="a process"),
    ExecutorSpec("mp_pool", "pool processes", shares_gil=False, processes=True,
                 start_method=True, starts_per_run=False, dispatch=True, worker_kind="process",
                 one_noun="a pool process"),
    ExecutorSpec("thread_pool", "pool threads", shares_gil=True, processes=False,
                 start_method=False, starts_per_run=False, dispatch=True, one_noun="a pool thread"),
    ExecutorSpec("process_pool", "pool processes", shares_gil=False, processes=True,
                 start_method=True, starts_per_run=False, dispatch=True, worker_kind="process",
                 one_noun="a pool process"),
    ExecutorSpec("gevent", "greenlets", shares_gil=False, processes=False, start_method=False,
                 starts_per_run=False, dispatch=True, remote=True, one_os_thread=True,
                 one_noun="a greenlet"),
    ExecutorSpec("asyncio", "coroutines", shares_gil=True, processes=False,
                 start_method=False, starts_per_run=False, dispatch=False, one_os_thread=True,
                 event_loop=True, one_noun="a coroutine"),
    ExecutorSpec("to_thread", "to_thread threads", shares_gil=True, processes=False,
                 start_method=False, starts_per_run=False, dispatch=False, event_loop=True,
                 one_noun="an asyncio.to_thread call"),
    ExecutorSpec("dask", "dask worker threads", shares_gil=False, processes=True,
                 start_method=False, starts_per_run=False, dispatch=True, remote=True,
                 default=False, worker_kind="process", one_noun="a dask worker",
                 shaped=True),
    ExecutorSpec("interpreters", "subinterpreters", shares_gil=False, processes=False,
                 start_method=False, starts_per_run=False, dispatch=False, default=False,
                 one_noun="a subinterpreter"),
)}

DEFAULT_EXECUTORS = tuple(n for n, s in SPECS.items() if s.default)
OPTIONAL_EXECUTORS = tuple(n for n, s in SPECS.items() if not s.default)
ALL_EXECUTORS = DEFAULT_EXECUTORS + OPTIONAL_EXECUTORS


def spec(name: str) -> ExecutorSpec:
    """The spec of executor ``name``; ValueError (one line) for an unknown name."""
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown executor {name!r}; choose from "
                         f"{', '.join(ALL_EXECUTORS)}") from None


def names_where(**traits) -> frozenset:
    """Executor names whose spec has every given trait, e.g. names_where(processes=True)."""
    return frozenset(n for n, s in SPECS.items()
                     if all(getattr(s, k) == v for k, v in traits.items()))
