"""thread-api: start, join(timeout), name, is_alive, daemon, current_thread, active_count."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass

from gillab.demos._common import child_env, pad, pick
from gillab.core.errors import UserError

TEXT = {
    "en": {
        "title": "the Thread API, each call with the value it returned; what daemon really means",
        "shows": [
            "Each Thread method and threading function the lesson uses, called on a real",
            "thread, with the value it returned. Then a child interpreter starts a daemon",
            "thread and a normal one and lets its main thread end, to see which one survives.",
        ],
        "observed": "  {call} -> {value}",
        "calls": {
            "main_name": "current_thread().name",
            "active_before": "active_count() before start()",
            "name": "t.name",
            "daemon": "t.daemon (inherited from the creating thread)",
            "alive_before": "t.is_alive() before start()",
            "alive_started": "t.is_alive() after start()",
            "active_running": "active_count() while t runs",
            "timed_join_s": "seconds t.join(timeout={timeout:g}) waited",
            "alive_timed_join": "t.is_alive() after t.join(timeout={timeout:g})",
            "alive_joined": "t.is_alive() after t.join()",
            "active_joined": "active_count() after t.join()",
            "inside_name": "current_thread().name inside t",
        },
        "daemon": "Child interpreter: a non-daemon thread working {worker_s:.2f} s and a daemon "
                  "thread working {daemon_s:.0f} s; its main thread ends at once. "
                  "Printed: {printed}. "
                  "The child exited after {child_exit_s:.2f} s: it waited for the non-daemon "
                  "thread and stopped the daemon thread unfinished.",
        "lesson": "Where the lesson is wrong: it describes setDaemon(True) backwards. A daemon "
                  "thread is the one that is stopped when the main thread ends (the interpreter "
                  "does not wait for it); a normal thread is waited for. And setDaemon, "
                  "getName, setName, isDaemon, currentThread and activeCount are deprecated: "
                  "use the daemon and name attributes, current_thread() and active_count(). "
                  "Called here with the warnings caught:",
        "warning": "  {message}",
        "fail": "observed {call} -> {value}, expected {expected}",
        "fail_daemon": "the daemon thread was not stopped with the main thread (printed {printed}, "
                       "exit after {child_exit_s:.2f} s)",
        "fail_warnings": "only {count} of the deprecated calls warned",
    },
    "zh": {
        "title": "Thread API：每个调用及其在此处返回的值；daemon 的真正含义",
        "shows": [
            "课程用到的每个 Thread 方法和 threading 函数，都在一个真实线程上调用，并给出返回值。",
            "然后一个子解释器启动一个守护线程和一个普通线程，并让它的主线程结束，",
            "看哪一个能活下来。",
        ],
        "observed": "  {call} -> {value}",
        "calls": {
            "main_name": "current_thread().name",
            "active_before": "start() 之前的 active_count()",
            "name": "t.name",
            "daemon": "t.daemon（继承自创建它的线程）",
            "alive_before": "start() 之前的 t.is_alive()",
            "alive_started": "start() 之后的 t.is_alive()",
            "active_running": "t 运行时的 active_count()",
            "timed_join_s": "t.join(timeout={timeout:g}) 实际等待的秒数",
            "alive_timed_join": "t.join(timeout={timeout:g}) 之后的 t.is_alive()",
            "alive_joined": "t.join() 之后的 t.is_alive()",
            "active_joined": "t.join() 之后的 active_count()",
            "inside_name": "t 内部的 current_thread().name",
        },
        "daemon": "子解释器：一个运行 {worker_s:.2f} 秒的非守护线程和一个运行 {daemon_s:.0f} 秒的守护线程；"
                  "它的主线程立即结束。输出：{printed}。子进程在 {child_exit_s:.2f} 秒后退出："
                  "它等待了非守护线程，而守护线程未完成就被终止。",
        "lesson": "课程的错误之处：它把 setDaemon(True) 讲反了。守护线程是在主线程结束时被终止的那一种"
                  "（解释器不会等待它）；普通线程才会被等待。另外 setDaemon、getName、setName、"
                  "isDaemon、currentThread 和 activeCount 都已弃用：请使用 daemon 和 name 属性、"
                  "current_thread() 和 active_count()。此处在捕获警告的情况下调用了它们：",
        "warning": "  {message}",
        "fail": "观察到 {call} -> {value}，预期为 {expected}",
        "fail_daemon": "守护线程没有随主线程一起被终止（输出 {printed}，{child_exit_s:.2f} 秒后退出）",
        "fail_warnings": "弃用的调用中只有 {count} 个发出了警告",
    },
}

_DEPRECATED_CALLS = 6


def sleeper(seconds: float, seen: dict) -> None:
    seen["name inside"] = threading.current_thread().name
    time.sleep(seconds)


def daemon_child(worker_s: float, daemon_s: float) -> None:
    """Runs in a child interpreter: whoever finishes prints; then the main thread just ends."""
    def work(label: str, seconds: float) -> None:
        time.sleep(seconds)
        print(f"{label} finished", flush=True)

    threading.Thread(target=work, args=("daemon", daemon_s), daemon=True).start()
    threading.Thread(target=work, args=("non-daemon", worker_s)).start()


@dataclass(frozen=True)
class Result:
    observed: tuple[tuple[str, str], ...]  # (call's key in TEXT["calls"], repr of its value)
    expected: tuple[tuple[str, str], ...]  # (call's key, the value the claim needs)
    join_timeout_s: float
    worker_s: float
    daemon_s: float
    child_printed: tuple[str, ...]
    child_exit_s: float
    deprecation_warnings: tuple[str, ...]


def measure(fast: bool = False) -> Result:
    work_s = pick(fast, 0.5, 0.1)
    join_timeout = work_s / 5
    observed: list[tuple[str, str]] = []

    def see(key: str, value) -> None:
        observed.append((key, repr(value)))

    see("main_name", threading.current_thread().name)
    active_before = threading.active_count()
    see("active_before", active_before)
    seen: dict = {}
    worker = threading.Thread(target=sleeper, args=(work_s, seen), name="worker-1")
    see("name", worker.name)
    see("daemon", worker.daemon)
    see("alive_before", worker.is_alive())
    worker.start()
    see("alive_started", worker.is_alive())
    see("active_running", threading.active_count())
    t0 = time.perf_counter()
    worker.join(timeout=join_timeout)
    see("timed_join_s", round(time.perf_counter() - t0, 3))
    see("alive_timed_join", worker.is_alive())
    worker.join()
    see("alive_joined", worker.is_alive())
    see("active_joined", threading.active_count())
    see("inside_name", seen["name inside"])
    expected = (("main_name", repr("MainThread")), ("daemon", "False"),
                ("alive_before", "False"), ("alive_started", "True"),
                ("active_running", repr(active_before + 1)), ("alive_timed_join", "True"),
                ("alive_joined", "False"), ("active_joined", repr(active_before)),
                ("inside_name", repr("worker-1")))

    daemon_s = 5.0  # only paid if the daemon thread is wrongly waited for
    printed, child_exit_s = _run_daemon_child(work_s, daemon_s)
    return Result(tuple(observed), expected, join_timeout, work_s, daemon_s, printed,
                  child_exit_s, _deprecated_api_warnings())


def _run_daemon_child(worker_s: float, daemon_s: float) -> tuple[tuple[str, ...], float]:
    code = ("from gillab.demos.thread_api import daemon_child; "
            f"daemon_child({worker_s!r}, {daemon_s!r})")
    t0 = time.perf_counter()
    try:
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env=child_env(), timeout=daemon_s + 10)
    except subprocess.TimeoutExpired:
        raise UserError("the daemon-thread child did not end") from None
    if child.returncode != 0:
        raise UserError(f"the daemon-thread child exited {child.returncode}: {child.stderr!r}")
    return tuple(child.stdout.splitlines()), time.perf_counter() - t0


def _deprecated_api_warnings() -> tuple[str, ...]:
    """The lesson's camelCase calls, made with their DeprecationWarnings caught on purpose."""
    thread = threading.Thread(target=print)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        thread.setDaemon(True)
        thread.isDaemon()
        thread.setName("renamed")
        thread.getName()
        threading.currentThread()
        threading.activeCount()
    return tuple(str(w.message) for w in caught if issubclass(w.category, DeprecationWarning))


def narrate(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    lines = [text["observed"].format(
                 call=pad(text["calls"][key].format(timeout=result.join_timeout_s), 46),
                 value=value)
             for key, value in result.observed]
    lines.append(text["daemon"].format(
        worker_s=result.worker_s, daemon_s=result.daemon_s, child_exit_s=result.child_exit_s,
        printed=", ".join(map(repr, result.child_printed)) or "-"))
    lines.append(text["lesson"])
    lines += [text["warning"].format(message=m) for m in result.deprecation_warnings]
    return lines


def failures(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    observed = dict(result.observed)
    failed = [text["fail"].format(call=text["calls"][key].format(timeout=result.join_timeout_s),
                                  value=observed.get(key), expected=value)
              for key, value in result.expected if observed.get(key) != value]
    if (result.child_printed != ("non-daemon finished",)
            or result.child_exit_s >= result.daemon_s):
        failed.append(text["fail_daemon"].format(printed=result.child_printed,
                                                 child_exit_s=result.child_exit_s))
    if len(result.deprecation_warnings) != _DEPRECATED_CALLS:
        failed.append(text["fail_warnings"].format(count=len(result.deprecation_warnings)))
    return failed
