"""race: read, sleep, write on a shared counter loses updates; with a Lock it ends at 0."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from gillab.demos._common import pick

N_THREADS = 100

TEXT = {
    "en": {
        "title": "read, sleep, write on a shared counter loses updates; a Lock makes it exactly 0",
        "shows": [
            "The lesson's race: 100 threads each read num, sleep, and write back num - 1.",
            "While one thread sleeps, the others read the same old value, so their writes",
            "overwrite each other. The same code with `with lock:` around read-sleep-write.",
        ],
        "unlocked": "Without a lock: num from {n} ended at {unlocked_final} (should be 0): "
                    "{unlocked_final} updates lost; distinct values the {n} threads read: "
                    "{distinct_reads}; {unlocked_s:.3f} s.",
        "locked": "With a Lock:   num from {n} ended at {locked_final}; {locked_s:.3f} s "
                  "({n} x {sleep_ms:g} ms sleep, one thread at a time).",
        "why": "The sleep stands for any pause between a read and the write that depends on "
               "it (IO, a call, a GIL switch): a lock makes the three steps one. The price is "
               "the time: the locked version runs one thread at a time.",
        "fail_unlocked": "without a lock no update was lost (num ended at {unlocked_final})",
        "fail_locked": "with a lock num ended at {locked_final}, not 0",
    },
    "zh": {
        "title": "对共享计数器先读、再睡、后写会丢失更新；加 Lock 后恰好为 0",
        "shows": [
            "课程中的竞争条件：100 个线程各自读取 num，睡眠，然后写回 num - 1。",
            "一个线程睡眠时，其他线程读到的是同一个旧值，于是它们的写入相互覆盖。",
            "然后是同样的代码，只是用 `with lock:` 把读、睡、写包起来。",
        ],
        "unlocked": "不加锁：num 从 {n} 开始，最终为 {unlocked_final}（应为 0）："
                    "丢失了 {unlocked_final} 次更新；{n} 个线程读到的不同值只有 {distinct_reads} 个；"
                    "用时 {unlocked_s:.3f} 秒。",
        "locked": "加 Lock：num 从 {n} 开始，最终为 {locked_final}；用时 {locked_s:.3f} 秒"
                  "（{n} x {sleep_ms:g} 毫秒的睡眠，每次只有一个线程）。",
        "why": "这里的 sleep 代表读和依赖它的写之间的任何停顿（IO、函数调用、GIL 切换）："
               "锁把这三步合成一步。代价是时间：加锁的版本一次只运行一个线程。",
        "fail_unlocked": "不加锁时没有丢失任何更新（num 最终为 {unlocked_final}）",
        "fail_locked": "加锁后 num 最终为 {locked_final}，而不是 0",
    },
}


class Counter:
    def __init__(self, value: int):
        self.value = value


def read_sleep_write(counter: Counter, pause_s: float, reads: list, index: int) -> None:
    """The lesson's work(): a read, a pause, then a write computed from the stale read."""
    seen = counter.value
    reads[index] = seen  # each thread its own slot
    time.sleep(pause_s)
    counter.value = seen - 1


def read_sleep_write_locked(counter: Counter, pause_s: float, reads: list, index: int,
                            lock: threading.Lock) -> None:
    with lock:
        read_sleep_write(counter, pause_s, reads, index)


@dataclass(frozen=True)
class Result:
    n: int
    sleep_s: float
    unlocked_final: int
    distinct_reads: int
    unlocked_s: float
    locked_final: int
    locked_s: float


def _run(target, pause_s: float, *extra) -> tuple[int, int, float]:
    counter, reads = Counter(N_THREADS), [None] * N_THREADS
    threads = [threading.Thread(target=target, args=(counter, pause_s, reads, i, *extra))
               for i in range(N_THREADS)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counter.value, len(set(reads)), time.perf_counter() - t0


def measure(fast: bool = False) -> Result:
    # The pause is far longer than it takes to start the next thread, so reads interleave.
    pause_s = pick(fast, 0.01, 0.002)
    unlocked_final, distinct_reads, unlocked_s = _run(read_sleep_write, pause_s)
    locked_final, _, locked_s = _run(read_sleep_write_locked, pause_s, threading.Lock())
    return Result(N_THREADS, pause_s, unlocked_final, distinct_reads, unlocked_s,
                  locked_final, locked_s)


def narrate(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    fields = vars(result) | {"sleep_ms": result.sleep_s * 1000}
    return [text[key].format(**fields) for key in ("unlocked", "locked", "why")]


def failures(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    failed = []
    if result.unlocked_final <= 0:
        failed.append(text["fail_unlocked"].format(**vars(result)))
    if result.locked_final != 0:
        failed.append(text["fail_locked"].format(**vars(result)))
    return failed
