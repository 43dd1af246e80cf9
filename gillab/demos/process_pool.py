"""process-pool: Pool(3), 21 apply_async tasks, close()/join(), every result collected."""
from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass

from gillab.demos._common import pick

N_WORKERS = 3
N_TASKS = 21
LESSON_SLEEP_S = 15

TEXT = {
    "en": {
        "title": "Pool(3), 21 apply_async tasks, close()/join(), every result read",
        "shows": [
            "The lesson's process pool: Pool(3) and 21 apply_async tasks. The lesson then",
            "sleeps 15 s and never reads a result. The right way: close() (no more tasks),",
            "join() (wait for the workers), then .get() each AsyncResult.",
        ],
        "right": "close()/join() returned after {elapsed_s:.3f} s (21 tasks of {task_ms:g} ms on "
                 "3 workers: ~7 waves); {collected}/{tasks} results read, {correct} correct, from "
                 "{workers_seen} worker pids.",
        "sample": "  results: {sample}",
        "lesson": "Where the lesson is wrong: time.sleep({lesson_sleep}) waits {lesson_sleep} s "
                  "whatever the tasks take ({ratio:.0f}x longer than needed here), hopes they are "
                  "done by then, and drops the AsyncResult objects: their return values are lost.",
        "with_block": "And the shortcut `with Pool(3) as pool:` without close()/join(): leaving "
                      "the block calls terminate(), which killed the workers with {finished}/"
                      "{tasks} tasks finished.",
        "fail_results": "{collected}/{tasks} results read, {correct} correct",
        "fail_terminate": "terminate() at the end of the with-block lost no task "
                          "({finished}/{tasks} finished)",
    },
    "zh": {
        "title": "Pool(3)，21 个 apply_async 任务，close()/join()，读取每一个结果",
        "shows": [
            "课程中的进程池：Pool(3) 和 21 个 apply_async 任务。课程接着睡眠 15 秒，",
            "却从不读取任何结果。正确的做法：close()（不再接受任务），",
            "join()（等待工作进程结束），然后对每个 AsyncResult 调用 .get()。",
        ],
        "right": "close()/join() 在 {elapsed_s:.3f} 秒后返回（21 个 {task_ms:g} 毫秒的任务，3 个工作进程："
                 "约 7 批）；读取了 {collected}/{tasks} 个结果，{correct} 个正确，"
                 "来自 {workers_seen} 个工作进程 pid。",
        "sample": "  结果：{sample}",
        "lesson": "课程的错误之处：time.sleep({lesson_sleep}) 不管任务需要多久都等 {lesson_sleep} 秒"
                  "（这里比实际需要长 {ratio:.0f} 倍），只是寄希望于任务到那时已经完成，"
                  "而且丢弃了 AsyncResult 对象：它们的返回值丢失了。",
        "with_block": "还有一种捷径 `with Pool(3) as pool:` 而不调用 close()/join()：离开 with 块时会调用 "
                      "terminate()，它杀死了工作进程，此时只完成了 {finished}/{tasks} 个任务。",
        "fail_results": "读取了 {collected}/{tasks} 个结果，{correct} 个正确",
        "fail_terminate": "with 块结束时的 terminate() 没有丢失任何任务（完成了 {finished}/{tasks} 个）",
    },
}


def square_slowly(i: int, task_s: float) -> tuple[int, int, int]:
    time.sleep(task_s)
    return i, i * i, os.getpid()


@dataclass(frozen=True)
class Result:
    tasks: int
    task_s: float
    elapsed_s: float
    collected: int
    correct: int
    workers_seen: int
    sample: tuple[tuple[int, int], ...]
    finished_before_terminate: int


def measure(fast: bool = False, start_method: str | None = None) -> Result:
    ctx = multiprocessing.get_context(start_method)
    task_s = pick(fast, 0.1, 0.02)
    t0 = time.perf_counter()
    pool = ctx.Pool(N_WORKERS)
    try:
        pending = [pool.apply_async(square_slowly, (i, task_s)) for i in range(N_TASKS)]
        pool.close()  # no more tasks: join() may now wait for the workers to finish
        pool.join()
    except BaseException:
        pool.terminate()
        pool.join()
        raise
    elapsed_s = time.perf_counter() - t0
    results = [p.get(0) for p in pending]  # all done: get() returns at once, or re-raises
    correct = sum(square == i * i for i, square, _ in results)

    # The shortcut: the with-block ends with terminate(), not close()/join().
    with ctx.Pool(N_WORKERS) as pool:
        lost = [pool.apply_async(square_slowly, (i, task_s)) for i in range(N_TASKS)]
    finished = sum(p.ready() and p.successful() for p in lost)
    pool.join()  # reap the terminated workers
    return Result(N_TASKS, task_s, elapsed_s, len(results), correct,
                  len({pid for _, _, pid in results}),
                  tuple((i, square) for i, square, _ in results[:5]), finished)


def narrate(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    fields = vars(result) | {"task_ms": result.task_s * 1000, "lesson_sleep": LESSON_SLEEP_S,
                             "ratio": LESSON_SLEEP_S / result.elapsed_s,
                             "finished": result.finished_before_terminate,
                             "sample": ", ".join(f"{i}->{sq}" for i, sq in result.sample) + ", ..."}
    return [text[key].format(**fields) for key in ("right", "sample", "lesson", "with_block")]


def failures(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    fields = vars(result) | {"finished": result.finished_before_terminate}
    failed = []
    if not result.collected == result.correct == result.tasks:
        failed.append(text["fail_results"].format(**fields))
    if result.finished_before_terminate >= result.tasks:
        failed.append(text["fail_terminate"].format(**fields))
    return failed
