"""The gevent side of the demos, run in a fresh child interpreter, never in the CLI's process.

The demo starts ``sys.executable -c "<patch first>; main()" ENTRY ARGS...`` (see
``_common.child_command``): when the entry wants monkey patching, ``patch_all()`` has
already run before this module is imported. Each entry prints JSON lines on stdout;
the last one is its record.
"""
from __future__ import annotations

import json
import socket
import sys
import threading
import time


def _emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def _os_threads() -> int:
    import psutil

    return psutil.Process().num_threads()


def echo(n_connections: int, timeout: float) -> None:
    """The echo server with one greenlet per connection (sockets patched: they yield)."""
    import gevent
    from gevent import monkey

    from gillab.demos._echo import talk

    listener = socket.create_server(("127.0.0.1", 0), backlog=n_connections)
    _emit({"port": listener.getsockname()[1]})
    listener.settimeout(timeout)
    greenlets = []
    with listener:
        for index in range(n_connections):
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                break
            conn.settimeout(timeout)
            greenlets.append(gevent.spawn(talk, conn, f"greenlet {index}"))
    gevent.joinall(greenlets, timeout=timeout)
    _emit({"records": [g.value for g in greenlets if g.successful()],
           "os_threads": _os_threads(), "socket_patched": monkey.is_module_patched("socket")})


def spawn(*sleeps: float) -> None:
    """One greenlet per sleep; time.sleep yields only if the launcher patched first."""
    import gevent
    from gevent import monkey

    t0 = time.perf_counter()
    greenlets = [gevent.spawn(_sleep_then_clock, seconds, t0) for seconds in sleeps]
    gevent.joinall(greenlets, timeout=sum(sleeps) + 10)
    _emit({"elapsed_s": time.perf_counter() - t0, "ended_after_s": [g.value for g in greenlets],
           "time_patched": monkey.is_module_patched("time"), "os_threads": _os_threads()})


def _sleep_then_clock(seconds: float, t0: float) -> float:
    time.sleep(seconds)
    return time.perf_counter() - t0


def hybrid(n_threads: int, n_greenlets: int, n: int, p: int, io_s: float) -> None:
    """A worker process of the hybrid demo: ``n_threads`` threads x ``n_greenlets`` greenlets.

    No monkey patching: greenlets wait with gevent.sleep, and each thread runs its own hub.
    It starts when the demo says "go", so sibling workers begin together whatever their
    interpreters' start-up took.
    """
    import gevent  # noqa: F401 -- imported before "ready", so start-up is not in the timing

    from gillab.demos.hybrid import run_greenlets

    _emit({"ready": True})
    sys.stdin.readline()
    records: list = [None] * n_threads
    if n_threads == 1:
        records[0] = run_greenlets(n_greenlets, n, p, io_s)
    else:
        threads = [threading.Thread(target=_thread_slot, args=(records, t, n_greenlets, n, p, io_s))
                   for t in range(n_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    _emit({"tasks": [task for per_thread in records for task in per_thread]})


def _thread_slot(records: list, index: int, n_greenlets: int, n: int, p: int, io_s: float):
    from gillab.demos.hybrid import run_greenlets

    records[index] = run_greenlets(n_greenlets, n, p, io_s)


ENTRIES = {"echo": (echo, (int, float)), "spawn": (spawn, None),
           "hybrid": (hybrid, (int, int, int, int, float))}


def main(argv: list[str] | None = None) -> None:
    entry, *raw = sys.argv[1:] if argv is None else argv
    func, types = ENTRIES[entry]
    args = [float(a) for a in raw] if types is None else [t(a) for t, a in zip(types, raw)]
    func(*args)
