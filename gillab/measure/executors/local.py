"""Executors whose workers share this process and its GIL: serial, threads, a thread pool."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from gillab.measure.executors.base import (Executor, WorkerFailed, _FuturesExecutor, _join_or_abandon,
                                   _refuse_in_process, _warm)
from gillab.measure.bounded import CallTimeout, call_bounded, deadline_in
from gillab.measure.clocks import run_task
from gillab.measure.runs import ThreadRun


class Serial(Executor):
    name = "serial"

    def run(self, task, n_tasks):
        _refuse_in_process(task)
        # Each task in a daemon thread of its own, one after another: the same work
        # as a plain call (a thread start, ~0.1 ms, on tasks of >= 10 ms), but one
        # that never returns can be left behind with the cell marked, not the run hung.
        deadline = deadline_in(self.timeout_s)
        results: list = []
        for _ in range(n_tasks):
            try:
                results.append(call_bounded(lambda: run_task(task), deadline, "the task",
                                            name="gillab-serial"))
            except CallTimeout as exc:
                _join_or_abandon(exc.threads, deadline, self.timeout_s, task)
                # It ended just after the deadline: its answer is gone with the thread.
                raise WorkerFailed(f"no answer within {self.timeout_s:.0f} s") from None
        return results


class Threads(Executor):
    """One threading.Thread per task, started and joined inside the timed run."""

    name = "threads"

    def run(self, task, n_tasks):
        _refuse_in_process(task)
        # Every thread parks at the start line and they go together: a thread that then
        # waits for the GIL counts that wait (without it, a thread started while another
        # holds the GIL in one long C call would start its clock only after that call:
        # cy_gil read no GIL wait at all). Daemon threads: after Ctrl-C the interpreter
        # may exit without waiting for a task still inside a kernel call.
        run = ThreadRun(lambda i, at: run_task(task, at), n_tasks, name="gillab-thread")
        run.start().go()
        deadline = deadline_in(self.timeout_s)
        try:
            return run.finish(deadline, "a task")
        except CallTimeout as exc:
            _join_or_abandon(exc.threads, deadline, self.timeout_s, task)
            return run.results  # every thread ended just after the deadline

    def start_idle(self):
        threads = [threading.Thread(target=_warm, args=(0.0,), daemon=True)
                   for _ in range(self.n_workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


class ThreadPool(_FuturesExecutor):
    """concurrent.futures.ThreadPoolExecutor(k), all k threads started before the run."""

    name = "thread_pool"
    in_process = True
    start_signal = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool = ThreadPoolExecutor(self.n_workers)
        # The executor starts threads lazily; a barrier makes it start all k now.
        barrier = threading.Barrier(self.n_workers)
        list(self.pool.map(lambda _: barrier.wait(timeout=30), range(self.n_workers)))

    def close(self):
        if self.pool is not None:
            # Wait for the idle threads to end unless interrupted: a process executor
            # forking while they live would copy a multi-threaded process (3.12+ warns).
            self.pool.shutdown(wait=not getattr(self, "aborting", False), cancel_futures=True)
            self.pool = None
