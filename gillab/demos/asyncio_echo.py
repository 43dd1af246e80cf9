"""asyncio: an asyncio echo server answering while CPU work runs beside it.

The modern twin of the lesson's gevent part. One event loop serves every connection;
the question a service owner brings is where to put a CPU job so the loop stays
responsive. ``asyncio.to_thread`` runs it in a thread of the same process: the job
holds the GIL, so after every wake-up the loop waits for it (up to the switch interval,
5 ms by default) before it can answer. ``run_in_executor`` with a process pool runs it
in another interpreter with a GIL of its own: the loop answers at once.

The client is a separate Python process, so its own round trips never wait for this
process's GIL: what it measures is the server's delay alone.
"""
from __future__ import annotations

import asyncio
import functools
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from gillab.core import stats
from gillab.core.errors import UserError
from gillab.demos._common import pad, pick

#: Where the CPU job runs, in the order the demo shows them.
MODES = ("idle", "to_thread", "process_pool")

#: Answers slower than this share of the switch interval count as held up by the GIL;
#: answers faster than it count as prompt. A loop that waits for the GIL after a wake
#: waits about one interval; one that does not answers in well under a millisecond.
STARVED_SHARE = 0.4

TEXT = {
    "en": {
        "title": "asyncio echo server beside CPU work: to_thread starves the loop, a process "
                 "pool does not",
        "shows": [
            "An asyncio echo server answers a client (another process) every millisecond,",
            "three times: with nothing else running, while a pure-Python CPU job runs through",
            "asyncio.to_thread (a thread of the same process: it holds the GIL), and while",
            "the same job runs through run_in_executor on a process pool (its own GIL).",
        ],
        "header": "  {mode} {replies:>8} {p50:>8} {p99:>8} {max:>8}  {job}",
        "columns": {"mode": "job runs", "replies": "replies", "p50": "p50 ms", "p99": "p99 ms",
                    "max": "max ms", "job": "CPU job"},
        "modes": {"idle": "nowhere", "to_thread": "to_thread", "process_pool": "process pool"},
        "job": "{chunks} loops, answer {answer}",
        "no_job": "-",
        "reading": "The loop answered in a median {idle:.2f} ms alone, {thread:.2f} ms beside "
                   "to_thread ({ratio:.0f}x slower: after each wake it waited for the GIL, and "
                   "the switch interval is {interval:g} ms), and {pool:.2f} ms beside the "
                   "process pool: CPU work belongs in another process, not in to_thread.",
        "fail_replies": "{mode}: {got}/{sent} replies correct ({errors})",
        "fail_job": "{mode}: the CPU job answered {answer}, expected {expected}",
        "fail_slow": "beside to_thread the loop answered in a median {thread:.2f} ms, not "
                     "held up by the GIL (expected at least {floor:.2f} ms)",
        "fail_prompt": "beside the process pool the loop answered in a median {pool:.2f} ms, "
                       "not promptly (expected under {floor:.2f} ms and a third of "
                       "to_thread's {thread:.2f} ms)",
    },
    "zh": {
        "title": "asyncio 回显服务器旁边运行 CPU 任务：to_thread 让事件循环挨饿，进程池不会",
        "shows": [
            "一个 asyncio 回显服务器每毫秒回答一次客户端（另一个进程），共三轮：",
            "没有其他工作时；纯 Python 的 CPU 任务通过 asyncio.to_thread 运行时",
            "（同一进程中的线程：它持有 GIL）；以及同一任务通过 run_in_executor",
            "在进程池中运行时（它有自己的 GIL）。",
        ],
        "header": "  {mode} {replies:>8} {p50:>8} {p99:>8} {max:>8}  {job}",
        "columns": {"mode": "任务运行于", "replies": "回复数", "p50": "p50 毫秒",
                    "p99": "p99 毫秒", "max": "最大毫秒", "job": "CPU 任务"},
        "modes": {"idle": "无", "to_thread": "to_thread", "process_pool": "进程池"},
        "job": "循环 {chunks} 次，结果 {answer}",
        "no_job": "-",
        "reading": "事件循环单独运行时回复中位数为 {idle:.2f} 毫秒；在 to_thread 旁边为 "
                   "{thread:.2f} 毫秒（慢 {ratio:.0f} 倍：每次唤醒后都要等待 GIL，切换间隔为 "
                   "{interval:g} 毫秒）；在进程池旁边为 {pool:.2f} 毫秒："
                   "CPU 工作应放到另一个进程中，而不是 to_thread。",
        "fail_replies": "{mode}：{got}/{sent} 个回复正确（{errors}）",
        "fail_job": "{mode}：CPU 任务的结果为 {answer}，应为 {expected}",
        "fail_slow": "在 to_thread 旁边事件循环的回复中位数为 {thread:.2f} 毫秒，"
                     "没有被 GIL 拖慢（预期至少 {floor:.2f} 毫秒）",
        "fail_prompt": "在进程池旁边事件循环的回复中位数为 {pool:.2f} 毫秒，不够及时"
                       "（预期低于 {floor:.2f} 毫秒，且低于 to_thread 的 {thread:.2f} 毫秒的三分之一）",
    },
}

#: The client: its own interpreter, so its round trips never wait for the server's GIL.
#: argv: host port seconds gap_s. Prints {"rtt_ms": [...], "sent": n, "errors": [...]}.
_CLIENT = r"""
import json, socket, sys, time
host, port, seconds, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rtts, errors, sent = [], [], 0
try:
    with socket.create_connection((host, port), timeout=10) as s:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            message = b"ping %d" % sent
            t0 = time.perf_counter()
            s.sendall(message)
            reply = b""
            while len(reply) < len(message):
                chunk = s.recv(64)
                if not chunk:
                    break
                reply += chunk
            rtts.append((time.perf_counter() - t0) * 1000)
            sent += 1
            if reply != message.upper():
                errors.append(f"reply {reply!r} to {message!r}")
            time.sleep(gap)
except OSError as exc:  # the server went away (the demo was interrupted): said, not raised
    errors.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"rtt_ms": rtts, "sent": sent, "errors": errors[:3]}))
"""


def spin(seconds: float, n: int, p: int) -> tuple[int, int]:
    """The CPU job: the lab's pure-Python loop, again and again for ``seconds``.
    Returns (loops run, the last answer). Module-level: a process pool pickles it."""
    from gillab.kernels import fact_mod_py

    end = time.perf_counter() + seconds
    chunks, answer = 0, None
    while chunks == 0 or time.perf_counter() < end:
        answer = fact_mod_py(n, p)
        chunks += 1
    return chunks, answer


def _warm() -> int:
    import gillab.kernels  # noqa: F401 - the pool's first task pays the import, not the job

    return 0


def _worker_init(parent_pid: int) -> None:
    """In the pool's worker: Ctrl-C is the parent's to answer, and the worker dies with
    it. SIGINT stayed blocked from the spawn until here (see _open_pool)."""
    from gillab.core.procutil import worker_setup

    worker_setup(parent_pid)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _open_pool() -> ProcessPoolExecutor:
    """One spawned worker, started and warmed with SIGINT blocked: the child inherits the
    mask, so a Ctrl-C that lands while it is still starting up cannot print a
    KeyboardInterrupt traceback from inside its imports. The parent gets the signal as
    soon as the mask is restored, a fraction of a second later."""
    # spawn: forking a process whose loop runs threads copies their locks mid-use.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(),))
    try:
        pool.submit(_warm).result(timeout=60)
    except BaseException:
        pool.shutdown(cancel_futures=True)
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return pool


@dataclass(frozen=True)
class ModeResult:
    mode: str
    rtt_ms: tuple[float, ...]
    sent: int
    errors: tuple[str, ...]
    chunks: int = 0
    answer: int | None = None

    @property
    def p50(self) -> float:
        return stats.median(self.rtt_ms) if self.rtt_ms else float("nan")

    @property
    def p99(self) -> float:
        return stats.percentile(self.rtt_ms, 0.99) if self.rtt_ms else float("nan")


@dataclass(frozen=True)
class Result:
    modes: tuple[ModeResult, ...]
    expected: int
    switch_interval_s: float

    def mode(self, name: str) -> ModeResult:
        return next(m for m in self.modes if m.mode == name)


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(64):
            writer.write(data.upper())
            await writer.drain()
    except ConnectionError:  # the client went away: nothing more to echo
        pass
    finally:
        writer.close()


def _quiet_on_interrupt(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """Ctrl-C raises inside whichever step runs, and asyncio.run cancels the rest: the
    connection handler it ended would be reported as an unhandled error. The demo is
    ending; anything else is reported as asyncio would."""
    if isinstance(context.get("exception"), (KeyboardInterrupt, asyncio.CancelledError)):
        return
    loop.default_exception_handler(context)


async def _serve_beside(mode: str, window_s: float, job_s: float, n: int, p: int,
                        pool: ProcessPoolExecutor | None) -> ModeResult:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_on_interrupt)
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    job = None
    if mode == "to_thread":
        job = asyncio.ensure_future(asyncio.to_thread(spin, job_s, n, p))
    elif mode == "process_pool":
        job = loop.run_in_executor(pool, spin, job_s, n, p)
    async with server:
        out = await _run_client(host, port, window_s)
    chunks, answer = await asyncio.wait_for(job, timeout=job_s + 30) if job else (0, None)
    report = json.loads(out)
    return ModeResult(mode, tuple(report["rtt_ms"]), report["sent"], tuple(report["errors"]),
                      chunks, answer)


async def _run_client(host: str, port: int, window_s: float) -> bytes:
    """Run the client process to its end; what it printed (it prints once, at its end,
    well under a pipe's buffer). Polled, not awaited through asyncio's child watcher:
    an interrupted run kills and reaps it at once. It ignores Ctrl-C, which is the
    demo's to answer, and dies with the demo (procutil.child_preexec)."""
    from gillab.core.procutil import child_preexec

    client = subprocess.Popen(
        [sys.executable, "-c", _CLIENT, host, str(port), str(window_s), "0.001"],
        stdout=subprocess.PIPE, preexec_fn=functools.partial(child_preexec, os.getpid()))
    try:
        deadline = time.monotonic() + window_s + 30
        while client.poll() is None:
            if time.monotonic() > deadline:
                raise UserError("the echo client did not finish")
            await asyncio.sleep(0.01)
        out = client.stdout.read()
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        client.stdout.close()
    if client.returncode != 0:
        raise UserError(f"the echo client exited with code {client.returncode}")
    return out


def measure(fast: bool = False) -> Result:
    from gillab.kernels import DEFAULT_P, fact_mod_py

    window_s = pick(fast, 1.0, 0.3)
    # The job outlasts the client's window with room for the client's own start-up.
    job_s = window_s + pick(fast, 1.0, 0.6)
    n, p = 20_000, DEFAULT_P  # a loop of about a millisecond: the job is many of them
    with _open_pool() as pool:
        modes = tuple(asyncio.run(_serve_beside(mode, window_s, job_s, n, p, pool))
                      for mode in MODES)
    return Result(modes, fact_mod_py(n, p), sys.getswitchinterval())


def _row(text: dict, result: ModeResult) -> str:
    job = (text["job"].format(chunks=result.chunks, answer=result.answer)
           if result.mode != "idle" else text["no_job"])
    return text["header"].format(mode=pad(text["modes"][result.mode], 14), replies=result.sent,
                                 p50=f"{result.p50:.2f}", p99=f"{result.p99:.2f}",
                                 max=f"{max(result.rtt_ms, default=float('nan')):.2f}", job=job)


def _medians(result: Result) -> dict:
    idle, thread, pool = (result.mode(m).p50 for m in MODES)
    return {"idle": idle, "thread": thread, "pool": pool,
            "ratio": thread / idle if idle > 0 else float("inf"),
            "interval": result.switch_interval_s * 1000}


def narrate(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    lines = [text["header"].format(**text["columns"] | {"mode": pad(text["columns"]["mode"], 14)})]
    lines += [_row(text, m) for m in result.modes]
    return lines + ["", text["reading"].format(**_medians(result))]


def failures(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    failed = []
    for m in result.modes:
        if m.errors or not m.rtt_ms or len(m.rtt_ms) != m.sent:
            failed.append(text["fail_replies"].format(
                mode=m.mode, got=len(m.rtt_ms) - len(m.errors), sent=m.sent,
                errors="; ".join(m.errors) or "-"))
        if m.mode != "idle" and m.answer != result.expected:
            failed.append(text["fail_job"].format(mode=m.mode, answer=m.answer,
                                                  expected=result.expected))
    figures = _medians(result)
    floor = STARVED_SHARE * figures["interval"]
    if not figures["thread"] >= floor:
        failed.append(text["fail_slow"].format(floor=floor, **figures))
    if not (figures["pool"] < floor and figures["pool"] * 3 <= figures["thread"]):
        failed.append(text["fail_prompt"].format(floor=floor, **figures))
    return failed
