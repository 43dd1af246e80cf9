"""Zero-argument callables for `compare --target` tests (imported by worker processes)."""
import multiprocessing
import os
import signal


def busy():
    """Pure-Python CPU work: holds the GIL."""
    total = 0
    for i in range(300_000):
        total += i * i % 7
    return total


def boom():
    raise ZeroDivisionError("division by zero in user code")


def die_in_child():
    """Kill the worker process that runs it; fine in the main process."""
    if multiprocessing.parent_process() is not None:
        os.kill(os.getpid(), signal.SIGKILL)
    return 1


NOT_CALLABLE = 42


def spin_forever():
    """Pure-Python CPU work that never returns and never yields to gevent."""
    while True:
        pass
