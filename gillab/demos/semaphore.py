"""semaphore: Semaphore(5) and 20 threads: at most 5 inside at once, measured."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from gillab.demos._common import max_overlap, pick

N_THREADS = 20
PERMITS = 5

TEXT = {
    "en": {
        "title": "Semaphore(5) and 20 threads: at most 5 inside at once, counted",
        "shows": [
            "The lesson's Semaphore(5): 20 threads each take a permit, stay inside a while,",
            "and give it back. Every thread stamps when it entered and left, so the number",
            "inside at once is counted from the stamps, not assumed.",
        ],
        "result": "{n} threads, Semaphore({permits}), {hold_ms:g} ms inside each: at most "
                  "{max_inside} inside at once; all {n} done in {elapsed_s:.3f} s "
                  "(~{waves} waves of {permits}: {n} / {permits} x {hold_ms:g} ms "
                  "= {ideal_s:.3f} s).",
        "why": "A Semaphore(n) is a counter of n permits: acquire takes one or waits, release "
               "gives one back. It bounds concurrency (a pool of connections, n downloads at a "
               "time); a Lock is the case n = 1.",
        "fail": "{max_inside} threads were inside Semaphore({permits}) at once, "
                "not exactly {permits}",
    },
    "zh": {
        "title": "Semaphore(5) 与 20 个线程：同一时刻最多 5 个在内，实测计数",
        "shows": [
            "课程中的 Semaphore(5)：20 个线程各自获取一个许可，在里面停留一段时间，再归还。",
            "每个线程都记录进入和离开的时刻，所以同时在内的线程数是从时间戳数出来的，",
            "而不是假设的。",
        ],
        "result": "{n} 个线程，Semaphore({permits})，每个在内停留 {hold_ms:g} 毫秒：同一时刻最多 "
                  "{max_inside} 个在内；全部 {n} 个用时 {elapsed_s:.3f} 秒"
                  "（约 {waves} 批，每批 {permits} 个：{n} / {permits} x {hold_ms:g} 毫秒 "
                  "= {ideal_s:.3f} 秒）。",
        "why": "Semaphore(n) 是一个有 n 个许可的计数器：acquire 拿走一个或等待，release 归还一个。"
               "它限制并发数（连接池、同时 n 个下载）；Lock 就是 n = 1 的情形。",
        "fail": "同一时刻有 {max_inside} 个线程在 Semaphore({permits}) 内，而不是恰好 {permits} 个",
    },
}


def hold_permit(semaphore: threading.Semaphore, hold_s: float, stamps: list, index: int) -> None:
    with semaphore:
        entered = time.monotonic()
        time.sleep(hold_s)
        stamps[index] = (entered, time.monotonic())  # stamped before the permit goes back


@dataclass(frozen=True)
class Result:
    n: int
    permits: int
    hold_s: float
    max_inside: int
    elapsed_s: float


def measure(fast: bool = False) -> Result:
    hold_s = pick(fast, 0.1, 0.02)
    semaphore = threading.Semaphore(PERMITS)
    stamps: list = [None] * N_THREADS
    threads = [threading.Thread(target=hold_permit, args=(semaphore, hold_s, stamps, i))
               for i in range(N_THREADS)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Result(N_THREADS, PERMITS, hold_s, max_overlap(stamps), time.perf_counter() - t0)


def narrate(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    waves = -(-result.n // result.permits)
    fields = vars(result) | {"hold_ms": result.hold_s * 1000, "waves": waves,
                             "ideal_s": waves * result.hold_s}
    return [text["result"].format(**fields), text["why"]]


def failures(result: Result, lang: str) -> list[str]:
    if result.max_inside != result.permits:
        return [TEXT[lang]["fail"].format(**vars(result))]
    return []
