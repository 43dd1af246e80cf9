"""tcp-processes: the lesson's echo server with one process per connection."""
from __future__ import annotations

import multiprocessing
import os
import queue
import socket
import time

from gillab.demos import _echo
from gillab.demos._common import pick
from gillab.core.errors import UserError

TEXT = {
    "en": _echo.TEXT["en"] | {
        "title": "echo server, one process per connection; a client checks every reply",
        "shows": [
            "The lesson's TCP echo server (receive, print, reply upper-case) in its own process;",
            "for each connection it accepts, it starts a new process to serve it.",
            "A built-in client opens all connections at once and checks every reply.",
        ],
        "workers": "processes (pids)",
    },
    "zh": _echo.TEXT["zh"] | {
        "title": "回显服务器，每个连接一个进程；内置客户端检查每条回复",
        "shows": [
            "课程中的 TCP 回显服务器（接收、打印、以大写回复）运行在自己的进程中；",
            "每接受一个连接，就启动一个新进程来服务它。",
            "内置客户端同时打开所有连接，并检查每一条回复。",
        ],
        "workers": "进程（pid）",
    },
}


def serve_connection(conn: socket.socket, records, timeout: float) -> None:
    """A handler process: serve one connection, then send its record to the demo."""
    conn.settimeout(timeout)
    records.put(_echo.talk(conn, f"pid {os.getpid()}"))


def serve_forking(listener: socket.socket, n_connections: int, records, timeout: float,
                  start_method: str) -> None:
    """The server process: accept ``n_connections``, a new process for each, then wait for them.

    The lesson's server accepts forever; this one stops after the demo's clients so it ends.
    """
    ctx = multiprocessing.get_context(start_method)
    handlers = []
    listener.settimeout(timeout)
    with listener:
        for _ in range(n_connections):
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                break
            handler = ctx.Process(target=serve_connection, args=(conn, records, timeout))
            handler.start()
            conn.close()  # the handler has its own copy; keeping ours would hold the socket open
            handlers.append(handler)
    for handler in handlers:
        handler.join(timeout)
        if handler.is_alive():
            handler.terminate()
            handler.join()


def measure(fast: bool = False, start_method: str | None = None) -> _echo.EchoResult:
    ctx = multiprocessing.get_context(start_method)
    n_connections = pick(fast, 20, 10)
    timeout = _echo.TIMEOUT_S
    records_queue = ctx.Queue()
    # The demo binds, so it knows the port; the server process gets the listening socket.
    # The server is a process of its own, as in the lesson: handlers forked from it
    # inherit none of the clients' sockets (a client's inherited copy would keep the
    # connection open after the client closed it, and no handler would ever see b'').
    listener = socket.create_server(("127.0.0.1", 0), backlog=n_connections)
    address = listener.getsockname()
    t0 = time.perf_counter()
    server = ctx.Process(target=serve_forking, name="echo-server",
                         args=(listener, n_connections, records_queue, timeout,
                               ctx.get_start_method()))
    server.start()
    listener.close()
    try:
        clients = _echo.run_clients(address, n_connections, timeout)
        records = _collect(records_queue, server, n_connections, timeout)
        server.join(timeout)
    finally:
        if server.is_alive():
            server.terminate()
            server.join()
        records_queue.close()
    elapsed = time.perf_counter() - t0
    if server.exitcode != 0:
        raise UserError(f"the echo server process exited with {server.exitcode}")
    spin = _echo.lesson_loop_spins(pick(fast, 0.1, 0.02))
    return _echo.summarize("processes", clients, records, elapsed, spin)


def _collect(records_queue, server, n_records: int, timeout: float) -> list[dict]:
    """Every handler's record; stop early once the server has ended and the queue is dry."""
    records, deadline = [], time.monotonic() + timeout
    while len(records) < n_records and time.monotonic() < deadline:
        try:
            records.append(records_queue.get(timeout=0.1))
        except queue.Empty:
            if server.exitcode is not None:
                break  # the server joins its handlers before it ends: nothing more can come
    return records


def narrate(result: _echo.EchoResult, lang: str) -> list[str]:
    return _echo.narrate(result, TEXT[lang])


def failures(result: _echo.EchoResult, lang: str) -> list[str]:
    return _echo.failures(result, TEXT[lang])
