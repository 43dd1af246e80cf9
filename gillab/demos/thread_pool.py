"""thread-pool: ThreadPoolExecutor(4) with submit, done and result; and the lesson's tuple."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from gillab.demos._common import max_overlap, pick

N_WORKERS = 4
N_TASKS = 10

TEXT = {
    "en": {
        "title": "ThreadPoolExecutor(4): submit, done, result; the lesson's submit(work, (i,))",
        "shows": [
            "The lesson's thread pool: ThreadPoolExecutor(4), 10 tasks submitted, then",
            "done() and result() on each Future. work(i) sleeps and returns i * 2.",
        ],
        "done": "Right after submitting: {done_early}/{n} futures done(); after result(): "
                "{done_late}/{n}. At most {max_running} tasks ran at once ({workers} workers); "
                "{elapsed_s:.3f} s in all.",
        "right": "submit(work, i)      -> results {right}",
        "wrong": "submit(work, (i,))   -> results {wrong}",
        "lesson": "Where the lesson is wrong: submit(fn, *args) passes its extra arguments to fn "
                  "as they are, like a call, so submit(work, (i,)) calls work((i,)) and work "
                  "gets a tuple: (i,) * 2 is (i, i), not 2i, and nothing fails. The (i,) tuple "
                  "belongs to Thread(target=work, args=(i,)) and Pool.apply_async(work, (i,)), "
                  "which take the arguments as one tuple; the executor's submit does not.",
        "fail_right": "submit(work, i) gave {right}",
        "fail_wrong": "submit(work, (i,)) did not hand work a tuple: {wrong}",
        "fail_pool": "{max_running} tasks ran at once on ThreadPoolExecutor({workers})",
        "fail_done": "done(): {done_early} early, {done_late} after result()",
    },
    "zh": {
        "title": "ThreadPoolExecutor(4)：submit、done、result；以及课程中的 submit(work, (i,))",
        "shows": [
            "课程中的线程池：ThreadPoolExecutor(4)，提交 10 个任务，然后对每个 Future 调用",
            "done() 和 result()。work(i) 睡眠一会儿并返回 i * 2。",
        ],
        "done": "刚提交完时：{done_early}/{n} 个 future 的 done() 为真；result() 之后："
                "{done_late}/{n}。同一时刻最多有 {max_running} 个任务在运行（{workers} 个工作线程）；"
                "总用时 {elapsed_s:.3f} 秒。",
        "right": "submit(work, i)      -> 结果 {right}",
        "wrong": "submit(work, (i,))   -> 结果 {wrong}",
        "lesson": "课程的错误之处：submit(fn, *args) 像普通调用一样把额外参数原样传给 fn，"
                  "所以 submit(work, (i,)) 调用的是 work((i,))，work 拿到的是一个元组："
                  "(i,) * 2 是 (i, i) 而不是 2i，而且不会报任何错。(i,) 这种元组写法属于 "
                  "Thread(target=work, args=(i,)) 和 Pool.apply_async(work, (i,))，"
                  "它们把参数作为一个元组接收；执行器的 submit 不是这样。",
        "fail_right": "submit(work, i) 的结果是 {right}",
        "fail_wrong": "submit(work, (i,)) 没有把元组交给 work：{wrong}",
        "fail_pool": "ThreadPoolExecutor({workers}) 上同一时刻运行了 {max_running} 个任务",
        "fail_done": "done()：提前 {done_early} 个，result() 之后 {done_late} 个",
    },
}


def work(i, task_s: float = 0.0, stamps: list | None = None, index: int = 0):
    entered = time.monotonic()
    time.sleep(task_s)
    if stamps is not None:
        stamps[index] = (entered, time.monotonic())
    return i * 2


@dataclass(frozen=True)
class Result:
    n: int
    workers: int
    done_early: int
    done_late: int
    max_running: int
    elapsed_s: float
    right: tuple
    wrong: tuple


def measure(fast: bool = False) -> Result:
    task_s = pick(fast, 0.1, 0.02)
    stamps: list = [None] * N_TASKS
    t0 = time.perf_counter()
    with ThreadPoolExecutor(N_WORKERS) as pool:
        futures = [pool.submit(work, i, task_s, stamps, i) for i in range(N_TASKS)]
        # Every task sleeps, so none can be done this soon: done() never blocks, it only looks.
        done_early = sum(f.done() for f in futures)
        right = tuple(f.result() for f in futures)
        done_late = sum(f.done() for f in futures)
        # The lesson's call: the tuple (i,) arrives as work's first argument.
        lesson = [pool.submit(work, (i,)) for i in range(3)]
        wait(lesson)
        wrong = tuple(f.result() for f in lesson)
    return Result(N_TASKS, N_WORKERS, done_early, done_late, max_overlap(stamps),
                  time.perf_counter() - t0, right, wrong)


def narrate(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    return [text[key].format(**vars(result)) for key in ("done", "right", "wrong", "lesson")]


def failures(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    fields = vars(result)
    failed = []
    if result.right != tuple(i * 2 for i in range(result.n)):
        failed.append(text["fail_right"].format(**fields))
    if result.wrong != tuple((i, i) for i in range(len(result.wrong))):
        failed.append(text["fail_wrong"].format(**fields))
    if result.max_running != result.workers:
        failed.append(text["fail_pool"].format(**fields))
    if result.done_early >= result.n or result.done_late != result.n:
        failed.append(text["fail_done"].format(**fields))
    return failed
