"""pool-lock: Pool(3) and 21 apply_async tasks that share a Manager().Lock()."""
from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass

from gillab.demos._common import max_overlap, pad, pick

N_WORKERS = 3
N_TASKS = 21

TEXT = {
    "en": {
        "title": "Pool(3), 21 tasks sharing a Manager().Lock(): one task inside at a time",
        "shows": [
            "A Pool of 3 processes runs 21 apply_async tasks. Each task takes a lock, stays",
            "inside for a while, and leaves. Every task stamps when it entered and left, so",
            "the number of tasks inside together is counted, not assumed. Three variants:",
            "no lock; a Manager().Lock() passed as an argument; a multiprocessing.Lock.",
        ],
        "row": "  {variant} max inside at once {max_inside}  ({tasks_done}/{tasks} tasks, "
               "{workers_seen} worker pids, {elapsed_s:.2f} s)",
        "no_lock": "no lock",
        "manager_lock": "Manager().Lock() as an argument",
        "mp_lock": "multiprocessing.Lock via Pool(initializer)",
        "hold": "Each task stays inside {hold_ms:.0f} ms.",
        "mp_lock_arg": "A multiprocessing.Lock passed to apply_async as an argument fails: {error}",
        "why": "A Manager().Lock() is a proxy: every acquire and release is a message to the "
               "manager's server process, so it pickles and travels to any worker. A "
               "multiprocessing.Lock is a semaphore in shared memory: a worker must inherit "
               "it when it starts (Pool(initializer=..., initargs=(lock,))), never receive it "
               "in a task.",
        "fail": "{variant}: {max_inside} tasks were inside the lock at once",
        "fail_tasks": "{variant}: {tasks_done}/{tasks} tasks completed",
        "fail_free": "{variant}: tasks never overlapped (max {max_inside}), so the lock "
                     "variants prove nothing",
        "fail_arg": "passing a multiprocessing.Lock as a task argument did not fail",
    },
    "zh": {
        "title": "Pool(3)，21 个任务共享一个 Manager().Lock()：同一时刻只有一个任务在锁内",
        "shows": [
            "一个 3 进程的 Pool 运行 21 个 apply_async 任务。每个任务获取锁，在锁内停留一段时间，",
            "然后离开。每个任务都记录进入和离开的时刻，所以同时在锁内的任务数是数出来的，",
            "而不是假设的。三种情形：不加锁；把 Manager().Lock() 作为参数传入；multiprocessing.Lock。",
        ],
        "row": "  {variant} 同时在锁内最多 {max_inside} 个（{tasks_done}/{tasks} 个任务，"
               "{workers_seen} 个工作进程 pid，{elapsed_s:.2f} 秒）",
        "no_lock": "不加锁",
        "manager_lock": "Manager().Lock() 作为参数",
        "mp_lock": "multiprocessing.Lock 经 Pool(initializer)",
        "hold": "每个任务在锁内停留 {hold_ms:.0f} 毫秒。",
        "mp_lock_arg": "把 multiprocessing.Lock 作为参数传给 apply_async 会失败：{error}",
        "why": "Manager().Lock() 是一个代理：每次 acquire 和 release 都是发给管理器服务进程的消息，"
               "因此它可以被 pickle 并传给任何工作进程。multiprocessing.Lock 是共享内存中的信号量："
               "工作进程必须在启动时继承它（Pool(initializer=..., initargs=(lock,))），"
               "而不能在任务中接收它。",
        "fail": "{variant}：同时有 {max_inside} 个任务在锁内",
        "fail_tasks": "{variant}：完成了 {tasks_done}/{tasks} 个任务",
        "fail_free": "{variant}：任务从未重叠（最多 {max_inside} 个），加锁的对比因此说明不了什么",
        "fail_arg": "把 multiprocessing.Lock 作为任务参数传入并没有失败",
    },
}

#: The lock a Pool worker inherited through its initializer (multiprocessing.Lock variant).
_inherited_lock = None


def inherit_lock(lock) -> None:
    """Pool initializer: runs in each worker as it starts, when inheriting a lock is allowed."""
    global _inherited_lock
    _inherited_lock = lock


def stay_inside(lock, hold_s: float) -> tuple[float, float, int]:
    """Take ``lock`` (None: the inherited one), stamp entry and exit, return them with our pid."""
    lock = _inherited_lock if lock is None else lock
    with lock:
        entered = time.monotonic()
        time.sleep(hold_s)
        left = time.monotonic()  # stamped before the release: the next entry comes after
    return entered, left, os.getpid()


def stay_unlocked(hold_s: float) -> tuple[float, float, int]:
    entered = time.monotonic()
    time.sleep(hold_s)
    return entered, time.monotonic(), os.getpid()


@dataclass(frozen=True)
class Variant:
    variant: str
    tasks: int
    tasks_done: int
    max_inside: int
    workers_seen: int
    elapsed_s: float


@dataclass(frozen=True)
class Result:
    hold_s: float
    no_lock: Variant
    manager_lock: Variant
    mp_lock: Variant
    mp_lock_arg_error: str | None  # what apply_async(f, (multiprocessing.Lock(),)) raised


def _run_pool(ctx, variant: str, func, args: tuple, timeout: float,
              initializer=None, initargs=()) -> Variant:
    t0 = time.perf_counter()
    pool = ctx.Pool(N_WORKERS, initializer=initializer, initargs=initargs)
    try:
        pending = [pool.apply_async(func, args) for _ in range(N_TASKS)]
        pool.close()
        stamps = [p.get(timeout) for p in pending]
    except BaseException:
        pool.terminate()  # stop the workers before re-raising, so none is left behind
        raise
    finally:
        pool.join()
    return Variant(variant, N_TASKS, len(stamps), max_overlap([s[:2] for s in stamps]),
                   len({s[2] for s in stamps}), time.perf_counter() - t0)


def _lock_as_argument_error(ctx, timeout: float) -> str | None:
    """What apply_async does with a multiprocessing.Lock in its arguments."""
    pool = ctx.Pool(1)
    try:
        pending = pool.apply_async(stay_inside, (ctx.Lock(), 0.0))
        try:
            pending.get(timeout)
        except RuntimeError as exc:  # the pickling refusal, handed back by the pool
            return f"RuntimeError: {exc}"
        return None
    finally:
        pool.close()
        pool.join()


def measure(fast: bool = False, start_method: str | None = None) -> Result:
    ctx = multiprocessing.get_context(start_method)
    hold_s = pick(fast, 0.05, 0.01)
    timeout = 30 + N_TASKS * hold_s
    no_lock = _run_pool(ctx, "no_lock", stay_unlocked, (hold_s,), timeout)
    with ctx.Manager() as manager:
        manager_lock = _run_pool(ctx, "manager_lock", stay_inside,
                                 (manager.Lock(), hold_s), timeout)
    mp_lock = _run_pool(ctx, "mp_lock", stay_inside, (None, hold_s), timeout,
                        initializer=inherit_lock, initargs=(ctx.Lock(),))
    return Result(hold_s, no_lock, manager_lock, mp_lock, _lock_as_argument_error(ctx, timeout))


def narrate(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    lines = [text["hold"].format(hold_ms=result.hold_s * 1000)]
    for v in (result.no_lock, result.manager_lock, result.mp_lock):
        lines.append(text["row"].format(**(vars(v) | {"variant": pad(text[v.variant], 44)})))
    if result.mp_lock_arg_error:
        lines.append(text["mp_lock_arg"].format(error=result.mp_lock_arg_error))
    lines.append(text["why"])
    return lines


def failures(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    failed = []
    for v in (result.no_lock, result.manager_lock, result.mp_lock):
        fields = vars(v) | {"variant": text[v.variant]}
        if v.tasks_done != v.tasks:
            failed.append(text["fail_tasks"].format(**fields))
        if v.variant != "no_lock" and v.max_inside != 1:
            failed.append(text["fail"].format(**fields))
        if v.variant == "no_lock" and v.max_inside < 2:  # else the lock had nothing to prevent
            failed.append(text["fail_free"].format(**fields))
    if result.mp_lock_arg_error is None:
        failed.append(text["fail_arg"])
    return failed
