"""gil-counter: 100 threads doing ``num -= 1`` end at 0, and why that is no guarantee of safety."""
from __future__ import annotations

import dis
import sys
import threading
import time
from dataclasses import dataclass

from gillab.demos._common import pick

N_THREADS = 100
MANY = 1_000_000  # decrements per thread in the two-thread runs: ~40 ms, several switches

TEXT = {
    "en": {
        "title": "100 threads doing num -= 1 end at 0; why the GIL does not make that safe",
        "shows": [
            "The lesson's GIL check: 100 threads each run `num -= 1` once on num = 100.",
            "Then what the GIL really guarantees: one bytecode instruction at a time, not one",
            "statement; and the lesson's join loop, which joins only the last thread.",
        ],
        "lesson_run": "100 threads, each `num -= 1` once, num from 100: "
                      "final num = {one_each_final}.",
        "bytecode": "`num -= 1` is {n_ops} bytecode instructions: {ops}. The GIL passes between "
                    "instructions, so another thread may run between the read and the write.",
        "many": "2 threads x {many:,} decrements: bare `num -= 1` lost {bare_lost:,} updates; "
                "`num -= one()` (a call between the read and the write) lost {call_lost:,} "
                "(final {call_final:,} instead of 0).",
        "why": "Why: CPython {python} hands the GIL over only at certain instructions (loop "
               "back-edges, calls), {bare}, and 100 one-shot threads each finish long before "
               "the {switch_ms:g} ms switch interval asks them to hand over. Change the code "
               "(a call, a property, __isub__), the version, or use a free-threaded build, and "
               "updates are lost. 0 here is luck of the implementation: use a Lock.",
        "bare_kept": "so a bare `num -= 1` happened to keep its updates here",
        "bare_lost": "yet even a bare `num -= 1` lost updates here",
        "lesson": "Where the lesson is wrong: its check `for i in t_list: t.join()` joins `t`, "
                  "the last thread created, {n} times. With each thread sleeping before its "
                  "decrement (the first one longest), {alive_after_lesson_join} of {n} threads "
                  "were still running after that loop and num read {value_after_lesson_join}; "
                  "`for t in t_list: t.join()` waits for all of them: "
                  "num = {value_after_full_join}.",
        "fail_one_each": "100 one-shot decrements ended at {one_each_final}, not 0",
        "fail_call": "no update was lost with a call between read and write ({call_lost})",
        "fail_lesson": "the lesson's join loop left {alive_after_lesson_join} threads running "
                       "(expected most of them)",
        "fail_full": "joining every thread left num = {value_after_full_join}, not 0",
    },
    "zh": {
        "title": "100 个线程执行 num -= 1 最终为 0；为什么 GIL 并不能保证它安全",
        "shows": [
            "课程的 GIL 检验：num = 100，100 个线程各执行一次 `num -= 1`。",
            "然后看 GIL 真正保证的是什么：一次执行一条字节码指令，而不是一条语句；",
            "以及课程中只 join 了最后一个线程的循环。",
        ],
        "lesson_run": "100 个线程，各执行一次 `num -= 1`，num 从 100 开始：最终 num = {one_each_final}。",
        "bytecode": "`num -= 1` 是 {n_ops} 条字节码指令：{ops}。GIL 在指令之间交接，"
                    "所以在读和写之间可能有别的线程运行。",
        "many": "2 个线程 x {many:,} 次递减：单纯的 `num -= 1` 丢失了 {bare_lost:,} 次更新；"
                "`num -= one()`（读和写之间有一次函数调用）丢失了 {call_lost:,} 次"
                "（最终为 {call_final:,} 而不是 0）。",
        "why": "原因：CPython {python} 只在特定指令处（循环回跳、函数调用）交出 GIL，"
               "{bare}；而 100 个只执行一次的线程，每个都早在 {switch_ms:g} 毫秒的切换间隔"
               "要求它交出 GIL 之前就结束了。换一种写法（函数调用、property、__isub__）、"
               "换一个版本，或使用自由线程（free-threaded）构建，更新就会丢失。"
               "这里的 0 只是实现上的运气：请使用 Lock。",
        "bare_kept": "所以单纯的 `num -= 1` 在这里恰好没有丢失更新",
        "bare_lost": "但即便是单纯的 `num -= 1` 在这里也丢失了更新",
        "lesson": "课程的错误之处：它的检验 `for i in t_list: t.join()` 把 `t`（最后创建的那个线程）"
                  "join 了 {n} 次。让每个线程在递减前先睡一会儿（第一个睡得最久），"
                  "这个循环结束后 {n} 个线程中仍有 {alive_after_lesson_join} 个在运行，"
                  "num 读到的是 {value_after_lesson_join}；`for t in t_list: t.join()` "
                  "会等待所有线程：num = {value_after_full_join}。",
        "fail_one_each": "100 次一次性递减的结果是 {one_each_final}，而不是 0",
        "fail_call": "读写之间有函数调用时没有丢失任何更新（{call_lost}）",
        "fail_lesson": "课程的 join 循环之后只有 {alive_after_lesson_join} 个线程仍在运行"
                       "（预期大多数仍在运行）",
        "fail_full": "join 所有线程之后 num = {value_after_full_join}，而不是 0",
    },
}


class Counter:
    """The lesson's global ``num``, as an object the threads share."""

    def __init__(self, value: int):
        self.value = value


def decrement(counter: Counter) -> None:
    counter.value -= 1


def one() -> int:
    return 1


def decrement_many(counter: Counter, times: int) -> None:
    for _ in range(times):
        counter.value -= 1


def decrement_many_with_call(counter: Counter, times: int) -> None:
    # The call to one() runs after counter.value is read and before it is written,
    # and a call is a point where CPython may hand the GIL to another thread.
    for _ in range(times):
        counter.value -= one()


def sleep_then_decrement(counter: Counter, seconds: float) -> None:
    time.sleep(seconds)
    counter.value -= 1


def lesson_bytecode() -> tuple[str, ...]:
    """The instructions of the lesson's statement, from the read of num to its write."""
    instructions = list(dis.get_instructions(compile("num -= 1", "<lesson>", "exec")))
    touching_num = [k for k, i in enumerate(instructions) if i.argval == "num"]
    return tuple(f"{i.opname} {i.argrepr}".strip()
                 for i in instructions[touching_num[0]:touching_num[-1] + 1])


@dataclass(frozen=True)
class Result:
    python: str
    gil_enabled: bool
    switch_interval_s: float
    one_each_final: int
    ops: tuple[str, ...]
    many: int
    bare_lost: int
    call_lost: int
    alive_after_lesson_join: int
    value_after_lesson_join: int
    value_after_full_join: int
    n: int = N_THREADS


def _run_threads(target, args_list) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=args) for args in args_list]
    for thread in threads:
        thread.start()
    return threads


def _lost_updates(target) -> int:
    counter = Counter(2 * MANY)
    for thread in _run_threads(target, [(counter, MANY)] * 2):
        thread.join()
    return counter.value  # every update kept would leave 0


def measure(fast: bool = False) -> Result:
    counter = Counter(N_THREADS)
    for thread in _run_threads(decrement, [(counter,)] * N_THREADS):
        thread.join()
    one_each_final = counter.value

    ops = lesson_bytecode()

    bare_lost = _lost_updates(decrement_many)
    call_lost = _lost_updates(decrement_many_with_call)

    # The lesson's join loop, verbatim in shape: thread 0 sleeps longest, the last one least.
    step = pick(fast, 0.004, 0.001)
    counter = Counter(N_THREADS)
    t_list = []
    for i in range(N_THREADS):
        t = threading.Thread(target=sleep_then_decrement, args=(counter, (N_THREADS - i) * step))
        t.start()
        t_list.append(t)
    for i in t_list:  # noqa: B007 -- the lesson's bug, kept on purpose: joins `t` every time
        t.join()
    alive_after_lesson_join = sum(t.is_alive() for t in t_list)
    value_after_lesson_join = counter.value
    for t in t_list:  # the right loop
        t.join()
    return Result(
        python=".".join(map(str, sys.version_info[:2])),
        gil_enabled=getattr(sys, "_is_gil_enabled", lambda: True)(),
        switch_interval_s=sys.getswitchinterval(),
        one_each_final=one_each_final, ops=ops, many=MANY, bare_lost=bare_lost,
        call_lost=call_lost, alive_after_lesson_join=alive_after_lesson_join,
        value_after_lesson_join=value_after_lesson_join, value_after_full_join=counter.value)


def narrate(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    # The two-thread runs start at 2 x MANY, so what is left at the end is what was lost.
    fields = vars(result) | {"n_ops": len(result.ops), "ops": ", ".join(result.ops),
                             "call_final": result.call_lost,
                             "switch_ms": result.switch_interval_s * 1000,
                             "bare": text["bare_kept" if result.bare_lost == 0 else "bare_lost"]}
    return [text[key].format(**fields) for key in ("lesson_run", "bytecode", "many", "why",
                                                    "lesson")]


def failures(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    fields = vars(result)
    failed = []
    # Only a GIL build promises the one-shot threads never overlap inside `num -= 1`.
    if result.gil_enabled and result.one_each_final != 0:
        failed.append(text["fail_one_each"].format(**fields))
    if result.call_lost <= 0:
        failed.append(text["fail_call"].format(**fields))
    if result.alive_after_lesson_join < result.n // 2:
        failed.append(text["fail_lesson"].format(**fields))
    if result.value_after_full_join != 0:
        failed.append(text["fail_full"].format(**fields))
    return failed
