"""Subinterpreters, each with its own GIL (PEP 684), driven by threads of this process."""
from __future__ import annotations

import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout

from gillab.core.errors import one_line
from gillab.measure.executors.base import Executor, WorkerFailed, _refuse_in_process

class Interpreters(Executor):
    """One subinterpreter per worker, each with its own GIL (PEP 684), each driven by a
    thread of this process: InterpreterPoolExecutor where this Python has it (3.14+,
    found by feature in gillab.measure.subinterpreters), else 3.13's private _interpreters
    module. Created, with gillab imported in each, before the timed run.
    """

    name = "interpreters"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import sys

        from gillab.measure import subinterpreters as sub

        self._pool = None
        self._ids: list = []
        self._threads: list = []
        InterpreterPoolExecutor = sub.pool_executor_class()
        try:
            if InterpreterPoolExecutor is not None:
                self._pool = InterpreterPoolExecutor(
                    self.n_workers, initializer=sub.subinterpreter_setup,
                    initargs=(tuple(sys.path),))
                # k overlapping sleeps make it start every worker (and report a failed setup).
                list(self._pool.map(sub.subinterpreter_warm, [0.05] * self.n_workers))
            else:
                import _interpreters

                for _ in range(self.n_workers):
                    self._ids.append(_interpreters.create())  # "isolated": its own GIL
                    failure = _interpreters.exec(self._ids[-1], sub.SETUP_SCRIPT,
                                                 shared={"path": "\0".join(sys.path)})
                    if failure is not None:
                        raise WorkerFailed(getattr(failure, "msg", None) or str(failure))
        except WorkerFailed:
            self.close()
            raise
        except Exception as exc:  # the subinterpreter's own error, as the cell's reason
            self.close()
            raise WorkerFailed(f"subinterpreters could not start: {one_line(exc)}") from None

    def run(self, task, n_tasks):
        _refuse_in_process(task)
        if self._pool is not None:
            from gillab.measure.subinterpreters import subinterpreter_run_task

            # Pickled by reference into each subinterpreter: gillab.measure.subinterpreters imports
            # nothing that cannot load there, unlike this module (psutil, via measure).
            futures = [self._pool.submit(subinterpreter_run_task, task)
                       for _ in range(n_tasks)]
            try:
                return [f.result(timeout=self.timeout_s) for f in futures]
            except FutureTimeout:
                raise WorkerFailed(f"no answer within {self.timeout_s:.0f} s") from None
            except Exception as exc:
                raise WorkerFailed(one_line(exc)) from None
        return self._run_low_level(task, n_tasks)

    def _run_low_level(self, task, n_tasks):
        import os
        import pickle
        import select

        import _interpreters

        from gillab.measure import subinterpreters as sub

        if n_tasks > len(self._ids):
            raise WorkerFailed(f"{n_tasks} tasks for {len(self._ids)} subinterpreters")
        payload = pickle.dumps(task)
        pipes = [os.pipe() for _ in range(n_tasks)]
        failures: list = [None] * n_tasks

        def work(i):
            try:
                failure = _interpreters.exec(self._ids[i], sub.RUN_SCRIPT,
                                             shared={"task": payload, "fd": pipes[i][1]})
                if failure is not None:
                    failures[i] = getattr(failure, "formatted", None) or str(failure)
            except Exception as exc:  # reported as the task's failure below
                failures[i] = f"{type(exc).__name__}: {exc}"
            finally:
                os.close(pipes[i][1])  # EOF for the reader, answer or not

        self._threads = [threading.Thread(target=work, args=(i,), daemon=True)
                         for i in range(n_tasks)]
        for t in self._threads:
            t.start()
        answers: list = [None] * n_tasks
        deadline = time.monotonic() + self.timeout_s
        try:
            # Pipe by pipe: a writer only ever waits for its own reader, never another.
            for i, (read_end, _) in enumerate(pipes):
                chunks = []
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or not select.select([read_end], [], [], remaining)[0]:
                        raise WorkerFailed(f"no answer within {self.timeout_s:.0f} s")
                    chunk = os.read(read_end, 1 << 16)
                    if not chunk:
                        break
                    chunks.append(chunk)
                answers[i] = b"".join(chunks)
        finally:
            for read_end, _ in pipes:
                os.close(read_end)
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        results = []
        for answer, failure in zip(answers, failures):
            if not answer:
                raise WorkerFailed((failure or "a subinterpreter gave no answer")
                                   .strip().splitlines()[-1])
            results.append(pickle.loads(answer))
        return results

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        # A subinterpreter cannot be destroyed while a task runs in it, and Ctrl-C
        # does not reach it: let the tasks end (they are short) first.
        for t in self._threads:
            t.join(timeout=max(5.0, min(self.timeout_s, 60.0)))
        self._threads = []
        if self._ids:
            import _interpreters

            for interp in self._ids:
                try:
                    _interpreters.destroy(interp)
                except Exception:  # still running after the wait: left to process exit
                    pass
            self._ids = []
