"""tcp-threads: the lesson's echo server with one thread per connection."""
from __future__ import annotations

import socket
import threading
import time

from gillab.demos import _echo
from gillab.demos._common import pick
from gillab.core.errors import UserError

TEXT = {
    "en": _echo.TEXT["en"] | {
        "title": "echo server, one thread per connection; a client checks every reply",
        "shows": [
            "The same echo server, but each accepted connection is served by a new thread",
            "of the server's one process. Serving sockets is IO: a thread waiting in recv",
            "releases the GIL, so threads serve many connections at once.",
        ],
        "workers": "threads (native thread ids)",
    },
    "zh": _echo.TEXT["zh"] | {
        "title": "回显服务器，每个连接一个线程；内置客户端检查每条回复",
        "shows": [
            "同样的回显服务器，但每个接受的连接都由服务器进程中的一个新线程来服务。",
            "处理套接字属于 IO：在 recv 中等待的线程会释放 GIL，",
            "所以多个线程可以同时服务许多连接。",
        ],
        "workers": "线程（原生线程 id）",
    },
}


def serve_threading(listener: socket.socket, n_connections: int, records: list,
                    timeout: float) -> None:
    """Accept ``n_connections``, a new thread for each, then wait for every handler."""
    handlers = []
    listener.settimeout(timeout)
    with listener:
        for index in range(n_connections):
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                break
            conn.settimeout(timeout)
            handler = threading.Thread(target=_serve_into, args=(conn, records, index),
                                       name=f"echo-handler-{index}")
            handler.start()
            handlers.append(handler)
    for handler in handlers:
        handler.join(timeout)


def _serve_into(conn: socket.socket, records: list, index: int) -> None:
    # Each handler writes its own slot: no shared list to append to from many threads.
    records[index] = _echo.talk(conn, f"thread {threading.get_native_id()}")


def measure(fast: bool = False) -> _echo.EchoResult:
    n_connections = pick(fast, 20, 10)
    timeout = _echo.TIMEOUT_S
    records: list = [None] * n_connections
    listener = socket.create_server(("127.0.0.1", 0), backlog=n_connections)
    address = listener.getsockname()
    t0 = time.perf_counter()
    server = threading.Thread(target=serve_threading, name="echo-server",
                              args=(listener, n_connections, records, timeout))
    server.start()
    clients = _echo.run_clients(address, n_connections, timeout)
    server.join(2 * timeout)
    elapsed = time.perf_counter() - t0
    if server.is_alive():
        raise UserError("the echo server thread did not end")
    spin = _echo.lesson_loop_spins(pick(fast, 0.1, 0.02))
    return _echo.summarize("threads", clients, [r for r in records if r], elapsed, spin)


def narrate(result: _echo.EchoResult, lang: str) -> list[str]:
    return _echo.narrate(result, TEXT[lang])


def failures(result: _echo.EchoResult, lang: str) -> list[str]:
    return _echo.failures(result, TEXT[lang])
