"""thread-create: two ways to make a thread, and what 100 threads cost against 100 processes."""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from dataclasses import dataclass

from gillab.demos._common import pad
from gillab.core.errors import UserError

N_WORKERS = 100
TIMEOUT_S = 30.0

TEXT = {
    "en": {
        "title": "Thread(target=...) and a Thread subclass; 100 threads vs 100 processes",
        "shows": [
            "A thread is made either by passing a function, Thread(target=f, args=...), or by",
            "subclassing Thread and overriding run(). Then 100 threads and 100 processes are",
            "started and each kept alive until all are running, to measure how long that takes",
            "and how much memory they add (PSS of this process and its children, where the",
            "OS reports PSS: each shared page counted once, split among its users).",
        ],
        "ways": "Thread(target=greet, args=('target',)) returned {by_target!r}; "
                "a Thread subclass's run() returned {by_subclass!r}.",
        "row": "  {kind} start {n} and see all running: {start_s:8.4f} s "
               "({per_ms:.3f} ms each); join: {join_s:.4f} s; memory added: {mem_mb:7.1f} MiB",
        "threads": "threads",
        "processes": "processes",
        "verdict": "Processes cost more memory: {mem_ratio:.0f}x what the threads added; starting "
                   "them took {time_ratio:.1f}x as long as starting the threads. Threads share "
                   "one process (one interpreter, one heap; a thread adds a stack and a thread "
                   "state). Each process is a whole interpreter with "
                   "its own memory, even when fork shares the pages it has not written yet.",
        "fail_ran": "a way of making a thread did not run: {by_target!r}, {by_subclass!r}",
        "fail_mem": "100 processes did not cost more memory than 100 threads "
                    "({proc_mb:.1f} vs {thread_mb:.1f} MiB)",
    },
    "zh": {
        "title": "Thread(target=...) 与 Thread 子类；100 个线程对比 100 个进程：时间与内存",
        "shows": [
            "创建线程有两种方式：传入函数 Thread(target=f, args=...)，或继承 Thread 并重写 run()。",
            "然后分别启动 100 个线程和 100 个进程，让它们都保持存活直到全部运行起来，",
            "测量这需要多长时间，以及它们增加了多少内存（本进程及其子进程的 PSS——",
            "在操作系统提供 PSS 时：共享页面只计一次，按使用者分摊）。",
        ],
        "ways": "Thread(target=greet, args=('target',)) 返回 {by_target!r}；"
                "Thread 子类的 run() 返回 {by_subclass!r}。",
        "row": "  {kind} 启动 {n} 个并确认全部运行：{start_s:8.4f} 秒（每个 {per_ms:.3f} 毫秒）；"
               "join：{join_s:.4f} 秒；增加内存：{mem_mb:7.1f} MiB",
        "threads": "线程",
        "processes": "进程",
        "verdict": "进程的内存开销更大：是线程所增加内存的 {mem_ratio:.0f} 倍；启动它们所用时间是"
                   "启动线程的 {time_ratio:.1f} 倍。"
                   "线程共享一个进程（一个解释器、一个堆；每个线程只多一个栈和一个线程状态）。"
                   "每个进程都是一个完整的解释器，拥有自己的内存，即使 fork 共享了尚未写入的页面。",
        "fail_ran": "有一种创建线程的方式没有运行：{by_target!r}，{by_subclass!r}",
        "fail_mem": "100 个进程的内存开销并不比 100 个线程多（{proc_mb:.1f} 对 {thread_mb:.1f} MiB）",
    },
}


def greet(way: str, out: list) -> None:
    out[0] = f"hello from {threading.current_thread().name}, made by {way}"


class Greeter(threading.Thread):
    """The lesson's second way: subclass Thread and put the work in run()."""

    def __init__(self, out: list):
        super().__init__(name="Greeter")
        self.out = out

    def run(self) -> None:
        greet("subclass", self.out)


def stay_alive(ready, release) -> None:
    """A worker (thread or process): say it is running, then wait until told to finish."""
    ready.release()
    release.wait(TIMEOUT_S)


@dataclass(frozen=True)
class Cost:
    n: int
    start_s: float   # from the first start() until all n said they were running
    join_s: float
    memory_bytes: int


@dataclass(frozen=True)
class Result:
    by_target: str
    by_subclass: str
    threads: Cost
    processes: Cost
    memory_kind: str  # "PSS" (proportional set size) where the OS gives it, else "RSS"


def _memory(pids) -> tuple[int, str]:
    """Memory of these processes together: PSS shares each shared page among its users."""
    import psutil

    total, kind = 0, "PSS"
    for pid in pids:
        proc = psutil.Process(pid)
        try:
            total += proc.memory_full_info().pss
        except (AttributeError, psutil.AccessDenied):  # no PSS on this OS
            total, kind = total + proc.memory_info().rss, "RSS"
    return total, kind


def _cost(workers, ready, release, pids_while_alive) -> tuple[Cost, str]:
    """Start ``workers``, wait until each has said it runs, weigh them, then let them go."""
    before, _ = _memory([os.getpid()])
    t0 = time.perf_counter()
    for worker in workers:
        worker.start()
    try:
        all_ready = all(ready.acquire(timeout=TIMEOUT_S) for _ in workers)
        start_s = time.perf_counter() - t0
        during, kind = _memory(pids_while_alive(workers))
    finally:
        release.set()  # also on failure: every worker ends, none is left waiting
        t1 = time.perf_counter()
        for worker in workers:
            worker.join(TIMEOUT_S)
        join_s = time.perf_counter() - t1
    if not all_ready:
        raise UserError(f"a worker did not start within {TIMEOUT_S:g} s")
    return Cost(len(workers), start_s, join_s, during - before), kind


def measure(fast: bool = False, start_method: str | None = None) -> Result:
    # --fast changes nothing here: 100 of each is the lesson's figure and takes well under 1 s.
    by_target, by_subclass = [None], [None]
    first = threading.Thread(target=greet, args=("target", by_target), name="Worker")
    second = Greeter(by_subclass)
    for thread in (first, second):
        thread.start()
    for thread in (first, second):
        thread.join()

    ready, release = threading.Semaphore(0), threading.Event()
    threads, kind = _cost(
        [threading.Thread(target=stay_alive, args=(ready, release)) for _ in range(N_WORKERS)],
        ready, release, pids_while_alive=lambda _: [os.getpid()])

    ctx = multiprocessing.get_context(start_method)
    ready, release = ctx.Semaphore(0), ctx.Event()
    processes, kind = _cost(
        [ctx.Process(target=stay_alive, args=(ready, release)) for _ in range(N_WORKERS)],
        ready, release, pids_while_alive=lambda procs: [os.getpid()] + [p.pid for p in procs])
    return Result(by_target[0], by_subclass[0], threads, processes, kind)


def _mb(n_bytes: int) -> float:
    return n_bytes / 2**20


def narrate(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    lines = [text["ways"].format(**vars(result))]
    for kind, cost in (("threads", result.threads), ("processes", result.processes)):
        lines.append(text["row"].format(kind=pad(text[kind], 10), n=cost.n, start_s=cost.start_s,
                                        per_ms=cost.start_s / cost.n * 1000, join_s=cost.join_s,
                                        mem_mb=_mb(cost.memory_bytes)))
    # A floor of 1 MiB for threads: their cost can round to ~0 and make the ratio meaningless.
    lines.append(text["verdict"].format(
        time_ratio=result.processes.start_s / max(result.threads.start_s, 1e-6),
        mem_ratio=result.processes.memory_bytes / max(result.threads.memory_bytes, 2**20)))
    return lines


def failures(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    failed = []
    if not (result.by_target and "target" in result.by_target
            and result.by_subclass and "subclass" in result.by_subclass):
        failed.append(text["fail_ran"].format(**vars(result)))
    if result.processes.memory_bytes <= result.threads.memory_bytes:
        failed.append(text["fail_mem"].format(proc_mb=_mb(result.processes.memory_bytes),
                                              thread_mb=_mb(result.threads.memory_bytes)))
    return failed
