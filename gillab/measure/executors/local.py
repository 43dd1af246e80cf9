"""Executors whose workers share this process and its GIL: serial, threads, a thread pool."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from gillab.measure.executors.base import (Executor, _FuturesExecutor, _join_or_abandon,
                                   _refuse_in_process, _warm)
from gillab.measure.clocks import now, run_task

class Serial(Executor):
    name = "serial"

    def run(self, task, n_tasks):
        _refuse_in_process(task)
        # Each task in a daemon thread of its own, one after another: the same work
        # as a plain call (a thread start, ~0.1 ms, on tasks of >= 10 ms), but one
        # that never returns can be left behind with the cell marked, not the run hung.
        results: list = []
        deadline = time.monotonic() + self.timeout_s
        for _ in range(n_tasks):
            box: list = []
            t = threading.Thread(target=lambda: box.append(run_task(task)), daemon=True,
                                 name="gillab-serial")
            t.start()
            _join_or_abandon([t], deadline, self.timeout_s, task)
            results.append(box[0])
        return results


class Threads(Executor):
    """One threading.Thread per task, started and joined inside the timed run."""

    name = "threads"

    def run(self, task, n_tasks):
        _refuse_in_process(task)
        results: list = [None] * n_tasks
        # Every thread waits at the barrier; the main thread reads the start signal and
        # releases them together. A thread that then waits for the GIL counts that wait
        # (without it, a thread started while another holds the GIL in one long C call
        # would start its clock only after that call: cy_gil read no GIL wait at all).
        barrier = threading.Barrier(n_tasks + 1)
        start_at = [0.0]

        def work(i):
            barrier.wait()
            results[i] = run_task(task, start_at[0])

        # Daemon threads: after Ctrl-C the interpreter may exit without waiting
        # for a task still inside a kernel call.
        threads = [threading.Thread(target=work, args=(i,), daemon=True)
                   for i in range(n_tasks)]
        for t in threads:
            t.start()
        start_at[0] = now()
        barrier.wait()
        _join_or_abandon(threads, time.monotonic() + self.timeout_s, self.timeout_s, task)
        return results

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
