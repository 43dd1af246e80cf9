"""tcp-gevent: the lesson's echo server with one greenlet per connection, in a patched child."""
from __future__ import annotations

import time

from gillab.demos import _common, _echo
from gillab.demos._common import pick
from gillab.core.errors import UserError

TEXT = {
    "en": _echo.TEXT["en"] | {
        "title": "echo server, one greenlet per connection (own patched process)",
        "shows": [
            "The same echo server with one gevent greenlet per connection. It runs in a",
            "fresh child interpreter that calls monkey.patch_all() first thing, so its",
            "sockets yield to the other greenlets; the lab's own process is never patched.",
        ],
        "workers": "greenlets",
        "threads_line": "All of them in one process with {os_threads} OS thread(s): "
                        "greenlets take turns on one thread, switching whenever a socket waits.",
        "fail_threads": "the gevent server used {os_threads} OS threads for "
                        "{connections} connections",
    },
    "zh": _echo.TEXT["zh"] | {
        "title": "回显服务器，每个连接一个协程（在独立的已打补丁进程中）",
        "shows": [
            "同样的回显服务器，每个连接一个 gevent 协程（greenlet）。它运行在一个全新的",
            "子解释器中，第一件事就是调用 monkey.patch_all()，于是套接字会让出给其他协程；",
            "实验室自己的进程从不打补丁。",
        ],
        "workers": "协程",
        "threads_line": "它们都在同一个进程中，只有 {os_threads} 个操作系统线程："
                        "协程在一个线程上轮流运行，每当套接字等待时就切换。",
        "fail_threads": "gevent 服务器为 {connections} 个连接用了 {os_threads} 个操作系统线程",
    },
}


def measure(fast: bool = False) -> _echo.EchoResult:
    n_connections = pick(fast, 20, 10)
    timeout = _echo.TIMEOUT_S
    t0 = time.perf_counter()
    child = _common.start_child("echo", n_connections, timeout, patched=True)
    try:
        port = _common.read_line(child, timeout)["port"]
        clients = _echo.run_clients(("127.0.0.1", port), n_connections, timeout)
        report = _common.finish_child(child, timeout)
    finally:
        if child.poll() is None:  # only when something above failed
            child.kill()
            child.communicate()
    elapsed = time.perf_counter() - t0
    if not report or not report["socket_patched"]:
        raise UserError("the gevent echo server did not report, or ran unpatched")
    spin = _echo.lesson_loop_spins(pick(fast, 0.1, 0.02))
    return _echo.summarize("greenlets", clients, report["records"], elapsed, spin,
                           os_threads=report["os_threads"])


def narrate(result: _echo.EchoResult, lang: str) -> list[str]:
    return _echo.narrate(result, TEXT[lang])


def failures(result: _echo.EchoResult, lang: str) -> list[str]:
    failed = _echo.failures(result, TEXT[lang])
    # A thread per connection would pass the echo checks too; greenlets must not need one.
    if result.os_threads is None or result.os_threads >= result.connections:
        failed.append(TEXT[lang]["fail_threads"].format(**vars(result)))
    return failed
