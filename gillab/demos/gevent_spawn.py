"""gevent-spawn: two greenlets sleeping 3 s and 5 s finish in ~5 s, not 8 (own patched process)."""
from __future__ import annotations

from dataclasses import dataclass

from gillab.demos import _common
from gillab.demos._common import pick

TEXT = {
    "en": {
        "title": "two greenlets sleeping 3 s and 5 s finish in ~5 s, not 8 (own patched process)",
        "shows": [
            "The lesson's gevent.spawn: two greenlets sleep 3 s and 5 s (x0.05 with --fast)",
            "with time.sleep. In a child interpreter that ran monkey.patch_all() first,",
            "time.sleep yields to the hub, so the sleeps overlap. The same in a child that",
            "did not patch, for contrast.",
        ],
        "unit": "s",
        "patched": "Patched:   both done after {elapsed_s:.3f} s (greenlets ended at {ends}); "
                   "sum of sleeps {sum_s:g} s, longest {max_s:g} s; {os_threads} OS thread.",
        "unpatched": "Unpatched: both done after {elapsed_s:.3f} s (ended at {ends}): time.sleep "
                     "blocked the one thread, so the greenlets ran one after the other.",
        "why": "Greenlets are not threads: they share one OS thread and switch only when one "
               "waits through gevent. monkey.patch_all() makes time.sleep, sockets and the rest "
               "wait through gevent; without it a blocking call stops every greenlet. Patching "
               "changes the whole process, so the lab patches only a fresh child, first thing.",
        "fail_overlap": "patched greenlets took {elapsed_s:.3f} s for sleeps of {sleeps} "
                        "(expected about {max_s:g} s, well under the sum {sum_s:g} s)",
        "fail_serial": "unpatched greenlets took {elapsed_s:.3f} s: time.sleep did not block",
    },
    "zh": {
        "title": "两个协程分别睡眠 3 秒和 5 秒，约 5 秒就都结束，而不是 8 秒（独立的已打补丁进程）",
        "shows": [
            "课程中的 gevent.spawn：两个协程用 time.sleep 分别睡眠 3 秒和 5 秒（--fast 时乘以 0.05）。",
            "在一个第一件事就执行 monkey.patch_all() 的子解释器中，time.sleep 会让出给 hub，",
            "所以两次睡眠相互重叠。作为对照，再在一个没有打补丁的子解释器中做同样的事。",
        ],
        "unit": "秒",
        "patched": "打补丁：  两个都在 {elapsed_s:.3f} 秒后完成（协程结束于 {ends}）；"
                   "睡眠之和 {sum_s:g} 秒，最长 {max_s:g} 秒；{os_threads} 个操作系统线程。",
        "unpatched": "未打补丁：两个在 {elapsed_s:.3f} 秒后完成（结束于 {ends}）：time.sleep "
                     "阻塞了唯一的线程，所以协程一个接一个地运行。",
        "why": "协程不是线程：它们共享一个操作系统线程，只有在通过 gevent 等待时才会切换。"
               "monkey.patch_all() 让 time.sleep、套接字等都通过 gevent 等待；没有它，"
               "一个阻塞调用就会让所有协程停下。打补丁会改变整个进程，所以实验室只在一个"
               "全新的子进程里、作为第一件事打补丁。",
        "fail_overlap": "打补丁的协程睡眠 {sleeps} 用了 {elapsed_s:.3f} 秒"
                        "（预期约 {max_s:g} 秒，远低于总和 {sum_s:g} 秒）",
        "fail_serial": "未打补丁的协程用了 {elapsed_s:.3f} 秒：time.sleep 没有阻塞",
    },
}

LESSON_SLEEPS = (3.0, 5.0)
FAST_SCALE = 0.05


@dataclass(frozen=True)
class Run:
    elapsed_s: float
    ended_after_s: tuple[float, ...]
    time_patched: bool
    os_threads: int


@dataclass(frozen=True)
class Result:
    sleeps: tuple[float, ...]
    patched: Run
    unpatched: Run


def _run(sleeps, patched: bool) -> Run:
    record = _common.run_child("spawn", *sleeps, patched=patched, timeout=sum(sleeps) + 30)
    return Run(record["elapsed_s"], tuple(record["ended_after_s"]), record["time_patched"],
               record["os_threads"])


def measure(fast: bool = False) -> Result:
    sleeps = tuple(s * pick(fast, 1.0, FAST_SCALE) for s in LESSON_SLEEPS)
    return Result(sleeps, _run(sleeps, patched=True), _run(sleeps, patched=False))


def _fields(result: Result, run: Run, text: dict) -> dict:
    unit = text["unit"]
    return vars(run) | {"sum_s": sum(result.sleeps), "max_s": max(result.sleeps),
                        "sleeps": " + ".join(f"{s:g} {unit}" for s in result.sleeps),
                        "ends": ", ".join(f"{s:.3f} {unit}" for s in run.ended_after_s)}


def narrate(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    return [text["patched"].format(**_fields(result, result.patched, text)),
            text["unpatched"].format(**_fields(result, result.unpatched, text)), text["why"]]


def failures(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    failed = []
    # Generous bounds: overlap means well under the sum; no overlap means about the sum.
    if not (result.patched.time_patched
            and max(result.sleeps) <= result.patched.elapsed_s < 0.8 * sum(result.sleeps)):
        failed.append(text["fail_overlap"].format(**_fields(result, result.patched, text)))
    if result.unpatched.time_patched or result.unpatched.elapsed_s < 0.95 * sum(result.sleeps):
        failed.append(text["fail_serial"].format(**_fields(result, result.unpatched, text)))
    return failed
