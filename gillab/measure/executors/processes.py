"""Executors whose workers are processes: one per task, multiprocessing.Pool, ProcessPoolExecutor."""
from __future__ import annotations

import contextlib
import os
import time
from concurrent.futures import ProcessPoolExecutor

from gillab.measure.executors.base import (Executor, WorkerFailed, _FuturesExecutor, _run_task_shipped,
                                   _warm, _worker_init)

def _process_main(task, conn, parent_pid=None) -> None:
    _worker_init(parent_pid)
    try:
        conn.send(_run_task_shipped(task))
    except (BrokenPipeError, EOFError):  # the parent gave up on us: nothing to report
        pass
    finally:
        conn.close()


@contextlib.contextmanager
def _closed_if_interrupted(executor):
    """A pool interrupted while it warms up is closed here: its caller never gets it to
    close. Left open, multiprocessing.Pool's worker thread replaces each worker the exit
    path kills, from a thread of its own, racing the last sweep; its finalizer can then
    wait for good on a queue lock a killed worker held."""
    try:
        yield
    except BaseException:
        executor.aborting = True
        executor.close()
        raise


class Processes(Executor):
    """One multiprocessing.Process per task, started and joined inside the timed run."""

    name = "processes"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._live: list = []

    def run(self, task, n_tasks):
        pipes = [self.context.Pipe(duplex=False) for _ in range(n_tasks)]
        procs = [self.context.Process(target=_process_main, args=(task, send, os.getpid()),
                                      daemon=True)
                 for _, send in pipes]
        self._live = procs
        for proc in procs:
            proc.start()
        for _, send in pipes:
            send.close()  # the child holds its own end; EOF then means it died
        results: list = [None] * n_tasks
        deadline = time.monotonic() + self.timeout_s
        for i, (recv, _) in enumerate(pipes):
            remaining = deadline - time.monotonic()
            if remaining > 0 and recv.poll(remaining):
                try:
                    results[i] = recv.recv()
                except EOFError:
                    pass
            recv.close()
        for proc in procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        failed = [p for p, r in zip(procs, results) if r is None]
        self.close()
        if failed:
            codes = sorted({p.exitcode for p in failed}, key=str)
            raise WorkerFailed(f"{len(failed)} worker process(es) died or hung "
                               f"(exit code {', '.join(map(str, codes))})")
        return results

    def start_idle(self):
        procs = [self.context.Process(target=_warm, args=(0.0,), daemon=True)
                 for _ in range(self.n_workers)]
        self._live = procs
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(self.timeout_s)
        self.close()

    def close(self):
        for proc in self._live:
            if proc.pid is None:
                continue  # never started: Ctrl-C came while its siblings were starting
            if proc.is_alive():
                proc.kill()
            proc.join()
        self._live = []


class MpPool(Executor):
    """multiprocessing.Pool(k), created and warm before the timed run."""

    name = "mp_pool"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool = self.context.Pool(self.n_workers, initializer=_worker_init,
                                      initargs=(os.getpid(),))
        with _closed_if_interrupted(self):
            self.pool.map(_warm, [0.0] * self.n_workers, chunksize=1)

    def run(self, task, n_tasks):
        # Pool never notices that a worker died (bpo-22393): it replaces the process
        # and waits forever for the lost task. So watch the workers it started with;
        # Pool has no public list of them, hence the private _pool.
        workers = list(self.pool._pool)
        pending = self.pool.map_async(_run_task_shipped, [task] * n_tasks, chunksize=1)
        deadline = time.monotonic() + self.timeout_s
        while not pending.ready():
            pending.wait(0.05)
            dead = [w for w in workers if w.exitcode is not None]
            if dead and not pending.ready():
                raise WorkerFailed(f"a pool worker process died (exit code {dead[0].exitcode})")
            if time.monotonic() > deadline:
                raise WorkerFailed(f"no answer within {self.timeout_s:.0f} s: "
                                   "a pool worker hung")
        return pending.get()

    def close(self):
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


class ProcessPool(_FuturesExecutor):
    """concurrent.futures.ProcessPoolExecutor(k), all k processes started before the run."""

    name = "process_pool"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool = ProcessPoolExecutor(self.n_workers, mp_context=self.context,
                                        initializer=_worker_init, initargs=(os.getpid(),))
        with _closed_if_interrupted(self):
            # The executor may start workers one per submit (spawn, forkserver): warm it
            # until all k are up, without a fixed sleep that start-up timing would count.
            list(self.pool.map(_warm, [0.0] * self.n_workers))
            for _ in range(100):
                if len(self.pool._processes or {}) >= self.n_workers:
                    break
                list(self.pool.map(_warm, [0.01] * self.n_workers))

    def close(self):
        if self.pool is not None:
            processes = list((self.pool._processes or {}).values())
            # shutdown(wait=False) forgets the executor's manager thread; keep it to
            # join below, so that no thread of the pool's outlives close().
            manager = getattr(self.pool, "_executor_manager_thread", None)
            self.pool.shutdown(wait=False, cancel_futures=True)
            for proc in processes:  # a task mid-call would otherwise run on
                if proc.is_alive():
                    proc.kill()
                proc.join()
            if manager is not None:
                manager.join(timeout=1.0)  # it ends once it sees its processes gone
            self.pool = None
