"""The lesson's echo server, fixed, and a client that checks it: shared by the tcp-* demos.

The server side (``talk``) is the lesson's handler: receive, print, reply upper-case.
It differs in one line: ``if not data: break``. A closed connection reads as b''
at once and forever, so the lesson's loop spins; ``lesson_loop_spins`` measures that.
The client opens every connection at once and holds them all open until each has had
a reply, so the server must serve them concurrently to pass.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from gillab.demos._common import max_overlap

#: How long any socket operation, accept or join may wait before the demo gives up.
TIMEOUT_S = 10.0


def talk(conn: socket.socket, worker) -> dict:
    """Serve one connection until the client closes it; return what happened as a record.

    ``worker`` names who served it (a pid, a thread id, a greenlet). The record stands in
    for the lesson's print: the demo prints it afterwards, so measuring never prints.
    """
    started = time.monotonic()
    received = []
    ended_on = "eof"
    with conn:
        while True:
            try:
                data = conn.recv(1024)
            except TimeoutError:
                ended_on = "timeout"
                break
            except OSError as exc:  # e.g. reset by the peer: the record says so
                ended_on = f"recv failed: {exc}"
                break
            if not data:  # the client closed: the line the lesson's loop is missing
                break
            received.append(data.decode())
            try:
                conn.sendall(data.upper())
            except OSError as exc:
                ended_on = f"send failed: {exc}"
                break
    return {"worker": worker, "start": started, "end": time.monotonic(),
            "received": received, "ended_on": ended_on}


def messages(index: int) -> tuple[str, str]:
    return f"hello from client {index}", f"bye from client {index}"


@dataclass(frozen=True)
class ClientReport:
    connections: int
    replies_expected: int
    replies_correct: int
    errors: tuple[str, ...]


def run_clients(address, n_clients: int, timeout: float = TIMEOUT_S) -> ClientReport:
    """Open ``n_clients`` connections at once; each sends two messages and checks the replies.

    Between its first and second message each client waits at a barrier, so all
    connections are open and answered at one instant before any closes.
    """
    barrier = threading.Barrier(n_clients, timeout=timeout)
    outcomes: list = [None] * n_clients  # one slot per client: no shared counter to race on
    threads = [threading.Thread(target=_client, args=(address, i, barrier, timeout, outcomes),
                                name=f"echo-client-{i}") for i in range(n_clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 1)
    errors = [f"client {i} still running" for i, t in enumerate(threads) if t.is_alive()]
    errors += [error for _, error in filter(None, outcomes) if error]
    correct = sum(ok for ok, _ in filter(None, outcomes))
    return ClientReport(n_clients, 2 * n_clients, correct, tuple(errors))


def _client(address, index: int, barrier: threading.Barrier, timeout: float, outcomes: list):
    correct, error = 0, None
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            for k, message in enumerate(messages(index)):
                if k == 1:
                    barrier.wait()
                sock.sendall(message.encode())
                correct += _recv_exactly(sock, len(message)) == message.upper().encode()
    except (OSError, threading.BrokenBarrierError) as exc:
        error = f"client {index}: {exc!r}"
        barrier.abort()  # the others stop waiting for a client that will not come
    outcomes[index] = (correct, error)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    """TCP is a stream: a reply may arrive in pieces."""
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(size - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def lesson_loop_spins(window_s: float) -> dict:
    """Run the lesson's loop, without the b'' check, on a connection its client has closed.

    The lesson's ``while True`` is cut to ``window_s`` seconds here; it counts how often
    recv returned at once with b'' (and send replied with nothing).
    """
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
    client.close()
    spins = empty = 0
    with conn:
        deadline = time.perf_counter() + window_s
        while time.perf_counter() < deadline:
            data = conn.recv(1024)
            conn.send(data.upper())
            spins += 1
            empty += data == b""
    return {"window_s": window_s, "spins": spins, "all_empty": spins == empty}


@dataclass(frozen=True)
class EchoResult:
    model: str                     # processes, threads or greenlets
    connections: int
    replies_expected: int
    replies_correct: int
    client_errors: tuple[str, ...]
    handlers: int                  # connections the server reported serving
    distinct_workers: int          # distinct pids / thread ids / greenlets among them
    max_concurrent_handlers: int   # handlers open at one instant (from their timestamps)
    ended_on_eof: int              # handlers that stopped because recv returned b''
    sample: tuple[tuple[str, str], ...]  # (worker, message) the server received
    os_threads: int | None         # OS threads in the server process (greenlets only)
    lesson_spins: int
    lesson_all_empty: bool
    lesson_window_s: float
    elapsed_s: float


def summarize(model: str, clients: ClientReport, records: list[dict], elapsed_s: float,
              spin: dict, os_threads: int | None = None) -> EchoResult:
    sample = tuple((str(r["worker"]), m) for r in records[:3] for m in r["received"][:1])
    return EchoResult(
        model=model, connections=clients.connections,
        replies_expected=clients.replies_expected, replies_correct=clients.replies_correct,
        client_errors=clients.errors, handlers=len(records),
        distinct_workers=len({r["worker"] for r in records}),
        max_concurrent_handlers=max_overlap([(r["start"], r["end"]) for r in records]),
        ended_on_eof=sum(r["ended_on"] == "eof" for r in records),
        sample=sample, os_threads=os_threads, lesson_spins=spin["spins"],
        lesson_all_empty=spin["all_empty"], lesson_window_s=spin["window_s"],
        elapsed_s=elapsed_s)


#: The lines every tcp-* demo prints; each demo module merges these into its own TEXT.
TEXT = {
    "en": {
        "clients": "{connections} clients connected at once, 2 messages each: "
                   "{replies_correct}/{replies_expected} replies correct "
                   "(the message upper-cased).",
        "server": "Server: {handlers} connections served by {distinct_workers} distinct {workers}; "
                  "{max_concurrent_handlers} were being served at the same instant.",
        "eof": "{ended_on_eof}/{handlers} handlers stopped because recv returned b'' "
               "(the client closed); whole exchange {elapsed_s:.3f} s.",
        "sample": "  the server printed: {worker} received {message!r}",
        "errors": "  client error: {error}",
        "lesson": "Where the lesson is wrong: its loop has no `if not data: break`. Once the "
                  "client closes, recv returns b'' at once, forever: measured here, the lesson's "
                  "loop went round {lesson_spins:,} times in {window_ms:.0f} ms, "
                  "every recv reading b''. That is a core spinning at 100% per dead connection.",
        "fail_replies": "{replies_correct}/{replies_expected} echo replies correct",
        "fail_concurrent": "only {max_concurrent_handlers} of {connections} connections "
                           "were served at once",
        "fail_eof": "{ended_on_eof}/{handlers} handlers ended on b''",
        "fail_spin": "the lesson's loop did not spin on b'' ({lesson_spins} turns)",
    },
    "zh": {
        "clients": "{connections} 个客户端同时连接，每个发送 2 条消息："
                   "{replies_correct}/{replies_expected} 条回复正确（消息转为大写）。",
        "server": "服务端：{handlers} 个连接由 {distinct_workers} 个不同的{workers}处理；"
                  "同一时刻有 {max_concurrent_handlers} 个连接在被服务。",
        "eof": "{ended_on_eof}/{handlers} 个处理函数因 recv 返回 b''（客户端已关闭）而退出；"
               "整个交互用时 {elapsed_s:.3f} 秒。",
        "sample": "  服务端打印：{worker} 收到 {message!r}",
        "errors": "  客户端错误：{error}",
        "lesson": "课程的错误之处：它的循环里没有 `if not data: break`。客户端关闭后，recv "
                  "立即返回 b''，永远如此：在这里实测，课程的循环在 {window_ms:.0f} 毫秒内空转了 "
                  "{lesson_spins:,} 次，每次 recv 都读到 b''。每个断开的连接都会让一个核心 100% 空转。",
        "fail_replies": "回显回复正确 {replies_correct}/{replies_expected}",
        "fail_concurrent": "{connections} 个连接中只有 {max_concurrent_handlers} 个被同时服务",
        "fail_eof": "{ended_on_eof}/{handlers} 个处理函数因 b'' 退出",
        "fail_spin": "课程的循环没有在 b'' 上空转（{lesson_spins} 次）",
    },
}


def narrate(result: EchoResult, text: dict) -> list[str]:
    fields = vars(result) | {"window_ms": result.lesson_window_s * 1000,
                             "workers": text["workers"]}
    lines = [text["clients"].format(**fields), text["server"].format(**fields)]
    if "threads_line" in text and result.os_threads is not None:
        lines.append(text["threads_line"].format(**fields))
    lines.append(text["eof"].format(**fields))
    lines += [text["sample"].format(worker=w, message=m) for w, m in result.sample]
    lines += [text["errors"].format(error=e) for e in result.client_errors]
    lines.append(text["lesson"].format(**fields))
    return lines


def failures(result: EchoResult, text: dict) -> list[str]:
    fields = vars(result)
    failed = []
    if result.replies_correct != result.replies_expected or result.client_errors:
        failed.append(text["fail_replies"].format(**fields))
    if not (result.handlers == result.distinct_workers == result.max_concurrent_handlers
            == result.connections):
        failed.append(text["fail_concurrent"].format(**fields))
    if result.ended_on_eof != result.handlers:
        failed.append(text["fail_eof"].format(**fields))
    if result.lesson_spins < 2 or not result.lesson_all_empty:
        failed.append(text["fail_spin"].format(**fields))
    return failed
