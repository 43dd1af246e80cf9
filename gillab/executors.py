"""Every concurrency model of the lesson behind one signature.

``open_executor(name, n_workers)`` returns a started executor whose ``run(task, k)``
runs k identical tasks on its workers and returns their TaskResults in order.
Pools are created (and warmed) when the executor opens, apart from the timed work;
``threads`` and ``processes`` start their workers inside ``run``, as the lesson does.

gevent is never imported here: gevent cells run in a child process of their own
(gillab.gevent_child), which patches itself first thing.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from gillab import kernels, procutil, registry
from gillab.measure import TaskResult, now, run_task

__all__ = ["EXECUTORS", "IN_PROCESS", "PROCESS_EXECUTORS", "PER_RUN_STARTUP", "open_executor",
           "unavailable_reason", "WorkerFailed"]

# Views of gillab.registry, the one table of executor traits.
EXECUTORS = registry.DEFAULT_EXECUTORS
#: Executors whose workers share the measuring process (and its GIL).
IN_PROCESS = registry.names_where(shares_gil=True)
#: Executors whose workers are processes started by multiprocessing (a start method applies).
PROCESS_EXECUTORS = registry.names_where(start_method=True)
#: Executors that start their workers inside each run rather than when they open.
PER_RUN_STARTUP = registry.names_where(starts_per_run=True)


class WorkerFailed(Exception):
    """A worker died or hung: the cell reports it and the run goes on."""


def _worker_init(parent_pid: int | None = None) -> None:
    # Ctrl-C belongs to the parent, which stops the workers itself: a worker
    # printing its own KeyboardInterrupt traceback would only be noise. And a worker
    # must not outlive its parent (SIGKILL of the parent): see gillab.procutil.
    procutil.worker_setup(parent_pid)


def _run_task_shipped(task: kernels.Task, start_at: float | None = None) -> TaskResult:
    """run_task in a worker process: a result that cannot be pickled back becomes the
    task's error (the cell is wrong, the run goes on) instead of a worker traceback."""
    import dataclasses

    result = run_task(task, start_at)
    try:
        pickle.dumps(result)
    except Exception as exc:  # any pickling failure: the value cannot travel
        why = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        return dataclasses.replace(
            result, value=None,
            error=f"the result cannot be sent back from a worker process ({why})")
    return result


#: Tasks that hung in this process once: running them here again would only leave
#: another thread behind (task -> why).
_HUNG_HERE: dict = {}


def _refuse_in_process(task: kernels.Task) -> None:
    why = task.unsafe_in_process or _HUNG_HERE.get(task)
    if why:
        raise WorkerFailed(why)


def _join_or_abandon(threads, deadline: float, timeout_s: float, task) -> None:
    """Join threads until ``deadline``; any still running is abandoned (a thread cannot
    be killed) and the cell fails with the reason."""
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t for t in threads if t.is_alive()]
    if alive:
        why = (f"no answer within {timeout_s:.0f} s; a thread cannot be killed, so "
               f"{len(alive)} is left running and gillab exits without waiting for it")
        for t in alive:
            procutil.abandon(t, why)
        _HUNG_HERE[task] = f"hung earlier in this run (no answer within {timeout_s:.0f} s)"
        raise WorkerFailed(why)


def _warm(seconds: float) -> int:
    time.sleep(seconds)
    return 0


class Executor:
    """The shared signature. Subclasses start in __init__ and stop in close()."""

    name = "?"

    def __init__(self, n_workers: int, start_method: str | None = None,
                 timeout_s: float = 300.0):
        self.n_workers = n_workers
        self.timeout_s = timeout_s
        self.context = multiprocessing.get_context(start_method)

    def run(self, task: kernels.Task, n_tasks: int) -> list[TaskResult]:
        raise NotImplementedError

    def start_idle(self) -> None:
        """Bring up n_workers workers that do nothing, and wait for them to end.

        For executors that start workers inside each run (threads, processes), this
        is their start-up cost, measured apart from the work (compare --cost). Pools
        pay theirs when they open.
        """

    def close(self) -> None:
        """Stop every worker. Safe to call twice and after Ctrl-C."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        # Interrupted (Ctrl-C, a failed cell): stop at once rather than wait for tasks.
        self.aborting = exc_type is not None
        self.close()


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


def _process_main(task, conn, parent_pid=None) -> None:
    _worker_init(parent_pid)
    try:
        conn.send(_run_task_shipped(task))
    except (BrokenPipeError, EOFError):  # the parent gave up on us: nothing to report
        pass
    finally:
        conn.close()


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


class _FuturesExecutor(Executor):
    in_process = False   # workers are threads of this process (never ship a task there)
    #: Workers that share this process's clock and GIL get the start signal: a pool
    #: thread that waits for the GIL before its task starts shows that wait.
    start_signal = False

    def run(self, task, n_tasks):
        if self.in_process:
            _refuse_in_process(task)
        args = (task, now()) if self.start_signal else (task,)
        func = run_task if self.in_process else _run_task_shipped
        futures = [self.pool.submit(func, *args) for _ in range(n_tasks)]
        try:
            return [f.result(timeout=self.timeout_s) for f in futures]
        except BrokenProcessPool:
            raise WorkerFailed("a pool worker process died (BrokenProcessPool)") from None
        except FutureTimeout:
            if self.in_process:  # pool threads stuck in the task: never joined at exit
                _join_or_abandon(list(self.pool._threads), time.monotonic(),
                                 self.timeout_s, task)
            raise WorkerFailed(f"no answer within {self.timeout_s:.0f} s") from None


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


class ProcessPool(_FuturesExecutor):
    """concurrent.futures.ProcessPoolExecutor(k), all k processes started before the run."""

    name = "process_pool"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool = ProcessPoolExecutor(self.n_workers, mp_context=self.context,
                                        initializer=_worker_init, initargs=(os.getpid(),))
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
            self.pool.shutdown(wait=False, cancel_futures=True)
            for proc in processes:  # a task mid-call would otherwise run on
                if proc.is_alive():
                    proc.kill()
                proc.join()
            self.pool = None


class Interpreters(Executor):
    """One subinterpreter per worker, each with its own GIL (PEP 684), each driven by a
    thread of this process: InterpreterPoolExecutor where this Python has it (3.14+,
    found by feature in gillab.subinterpreters), else 3.13's private _interpreters
    module. Created, with gillab imported in each, before the timed run.
    """

    name = "interpreters"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import sys

        from gillab import subinterpreters as sub

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
            raise WorkerFailed(f"subinterpreters could not start: {type(exc).__name__}: "
                               f"{exc}".splitlines()[0]) from None

    def run(self, task, n_tasks):
        _refuse_in_process(task)
        if self._pool is not None:
            from gillab.subinterpreters import subinterpreter_run_task

            # Pickled by reference into each subinterpreter: gillab.subinterpreters imports
            # nothing that cannot load there, unlike this module (psutil, via measure).
            futures = [self._pool.submit(subinterpreter_run_task, task)
                       for _ in range(n_tasks)]
            try:
                return [f.result(timeout=self.timeout_s) for f in futures]
            except FutureTimeout:
                raise WorkerFailed(f"no answer within {self.timeout_s:.0f} s") from None
            except Exception as exc:
                raise WorkerFailed(f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
        return self._run_low_level(task, n_tasks)

    def _run_low_level(self, task, n_tasks):
        import os
        import pickle
        import select

        import _interpreters

        from gillab import subinterpreters as sub

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


_CLASSES = {cls.name: cls for cls in (Serial, Threads, Processes, MpPool, ThreadPool,
                                      ProcessPool, Interpreters)}


def unavailable_reason(name: str) -> str | None:
    """Why executor ``name`` cannot run on this interpreter, or None if it can."""
    import importlib.util

    from gillab.environment import free_threaded_build

    if name == "gevent":
        if free_threaded_build():
            return "gevent does not support free-threaded builds"
        if importlib.util.find_spec("gevent") is None:
            return "gevent is not installed"
    if name == "dask" and importlib.util.find_spec("distributed") is None:
        return "dask.distributed is not installed: pip install 'gillab[dask]'"
    if name == "interpreters":
        return _interpreters_unavailable()
    return None


def _interpreters_unavailable() -> str | None:
    # Python < 3.13, no _interpreters module, or gillab's kernels unable to load in a
    # subinterpreter with its own GIL: a throwaway subinterpreter tries (gillab.subinterpreters).
    from gillab.subinterpreters import subinterpreter_problem

    return subinterpreter_problem()


def open_executor(name: str, n_workers: int, start_method: str | None = None,
                  timeout_s: float = 300.0) -> Executor:
    """Start the executor ``name`` with ``n_workers`` workers (not for ``gevent``)."""
    try:
        cls = _CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}"
                         + (" (gevent runs through gillab.gevent_child)" if name == "gevent"
                            else "")) from None
    return cls(n_workers, start_method=start_method, timeout_s=timeout_s)
