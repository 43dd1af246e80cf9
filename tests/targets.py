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


def exit_hard():
    """Ends the process that calls it, with no cleanup: a worker that dies."""
    os._exit(3)


def short_gil():
    """About a millisecond of pure-Python work: holds the GIL, too short to time alone."""
    total = 0
    for i in range(20_000):
        total += i * i % 7
    return total


_BUFFER = bytes(range(256)) * (32 * 1024)   # 8 MiB


def sha256_big():
    """hashlib releases the GIL while it hashes more than 2047 bytes (Modules/hashlib.h)."""
    import hashlib

    return hashlib.sha256(_BUFFER).hexdigest()
