"""hybrid: processes running threads, threads running greenlets, against each model alone."""
from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from dataclasses import dataclass

from gillab import kernels
from gillab.demos import _common
from gillab.demos._common import CpuMeter, available_cpus, pad, pick
from gillab.core.errors import UserError
from gillab.measure.calibrate import calibrate_n

CPU_KERNEL = "py"
N_THREADS = 2
TIMEOUT_S = 120.0

TEXT = {
    "en": {
        "title": "processes x threads x greenlets on mixed CPU+IO work, against each model alone",
        "shows": [
            "The lesson's last line: \"processes running threads, threads running coroutines\".",
            "Every task computes a little (pure Python: holds the GIL) and then waits (IO).",
            "The same tasks run on threads alone, processes alone, greenlets alone, and on",
            "P processes x T threads x G greenlets (one process per CPU). Greenlets use",
            "gevent.sleep in fresh child interpreters, so no process is monkey-patched.",
        ],
        "task": "{tasks} tasks, each {kernel}(n={n:,}) ({cpu_ms:.1f} ms of CPU alone) then "
                "{io_ms:g} ms of waiting. One after another: ~{serial_s:.2f} s (estimated from "
                "one task timed alone).",
        "row": "  {model} {shape:<12} {span_s:6.3f} s working, {wall_s:6.3f} s with start-up, "
               "{cores_used:4.2f} cores used; answers {correct}/{tasks}; worker processes: "
               "{os_processes:>2}; others on this machine: {others_cores:.2f} cores",
        "legend": "  (shape: processes x threads x greenlets)",
        "threads": "threads alone",
        "processes": "processes alone",
        "greenlets": "greenlets alone",
        "hybrid": "hybrid",
        "best": "Shortest working time: {best} ({best_s:.3f} s). Threads and greenlets overlap "
                "the waits but take turns for the CPU (one GIL, or one OS thread); processes "
                "also compute in parallel, but one per task costs a process each. The hybrid "
                "uses one process per CPU for the computing and threads and greenlets inside "
                "them for the waiting: {hybrid_processes} processes instead of {tasks}.",
        "noisy": "Noisy: other processes took up to {others:.2f} cores during these runs, so "
                 "the times above are theirs as much as the models'.",
        "fail_correct": "{model}: {correct}/{tasks} answers correct",
        "fail_overlap": "{model}: {span_s:.3f} s, not well under the serial {serial_s:.2f} s",
    },
    "zh": {
        "title": "进程 x 线程 x 协程处理 CPU+IO 混合任务，与每种模型单独运行对比",
        "shows": [
            "课程的最后一句：“进程里跑线程，线程里跑协程”。",
            "每个任务先做一点计算（纯 Python：持有 GIL），然后等待（IO）。",
            "同样的任务分别只用线程、只用进程、只用协程运行，以及用 P 个进程 x T 个线程 x G 个协程",
            "（每个 CPU 一个进程）运行。协程在全新的子解释器里使用 gevent.sleep，因此没有任何进程被打补丁。",
        ],
        "task": "{tasks} 个任务，每个先执行 {kernel}(n={n:,})（单独运行需 {cpu_ms:.1f} 毫秒 CPU），"
                "再等待 {io_ms:g} 毫秒。一个接一个运行：约 {serial_s:.2f} 秒（由单独计时的一个任务估算）。",
        "row": "  {model} {shape:<12} 工作 {span_s:6.3f} 秒，含启动 {wall_s:6.3f} 秒，"
               "使用 {cores_used:4.2f} 个核心；结果正确 {correct}/{tasks}；工作进程数："
               "{os_processes:>2}；本机其他进程占用 {others_cores:.2f} 个核心",
        "legend": "  （形状：进程数 x 线程数 x 协程数）",
        "threads": "只用线程",
        "processes": "只用进程",
        "greenlets": "只用协程",
        "hybrid": "混合",
        "best": "工作时间最短的是：{best}（{best_s:.3f} 秒）。线程和协程能让等待相互重叠，但 CPU "
                "要轮流使用（一个 GIL，或一个操作系统线程）；进程还能并行计算，但每个任务一个进程，"
                "每个都要付出一个进程的开销。混合模型每个 CPU 用一个进程来计算，在进程内用线程和协程"
                "来等待：用 {hybrid_processes} 个进程，而不是 {tasks} 个。",
        "noisy": "测量受干扰：这些运行期间其他进程最多占用了 {others:.2f} 个核心，"
                 "所以上面的时间也受到了它们的影响。",
        "fail_correct": "{model}：结果正确 {correct}/{tasks}",
        "fail_overlap": "{model}：{span_s:.3f} 秒，并没有明显少于串行的 {serial_s:.2f} 秒",
    },
}


def mixed_task(n: int, p: int, io_s: float, sleep) -> dict:
    """Compute (holding the GIL), then wait: the shape of a request handler."""
    start = time.monotonic()
    answer = kernels.get(CPU_KERNEL)(n, p)
    sleep(io_s)
    return {"start": start, "end": time.monotonic(), "answer": answer}


def run_greenlets(n_greenlets: int, n: int, p: int, io_s: float) -> list[dict]:
    """In a child interpreter's thread: ``n_greenlets`` tasks on this thread's own gevent hub."""
    import gevent

    greenlets = [gevent.spawn(mixed_task, n, p, io_s, gevent.sleep) for _ in range(n_greenlets)]
    gevent.joinall(greenlets)
    tasks = [g.get() for g in greenlets]
    if threading.current_thread() is not threading.main_thread():
        gevent.get_hub().destroy(destroy_loop=True)  # a hub per thread: free it with the thread
    return tasks


def task_in_thread(n: int, p: int, io_s: float, records: list, index: int) -> None:
    records[index] = mixed_task(n, p, io_s, kernels.get("sleep"))


def task_in_process(n: int, p: int, io_s: float, records) -> None:
    records.put(mixed_task(n, p, io_s, kernels.get("sleep")))


@dataclass(frozen=True)
class Model:
    model: str
    shape: str          # processes x threads x greenlets
    os_processes: int   # processes doing the work
    wall_s: float       # from launching the first worker to the last one ending
    span_s: float       # first task start to last task end: the work itself, start-up excluded
    correct: int
    tasks: int
    cores_used: float    # CPU seconds of this process and its children / wall seconds
    others_cores: float  # cores other processes on the machine took meanwhile (noise)


@dataclass(frozen=True)
class Result:
    n: int
    cpu_s: float
    io_s: float
    tasks: int
    serial_s: float
    models: tuple[Model, ...]


def _model(name: str, shape: str, os_processes: int, run, expected: int, tasks: int) -> Model:
    """Run ``run()`` -> records, measuring its cores; summarize it as a Model."""
    with CpuMeter() as meter:
        records = run()
    span = (max(r["end"] for r in records) - min(r["start"] for r in records)) if records else 0.0
    return Model(name, shape, os_processes, meter.wall_s, span,
                 sum(r["answer"] == expected for r in records), tasks, meter.cores_used,
                 meter.others_cores)


def _threads(n, p, io_s, tasks) -> list:
    records: list = [None] * tasks
    threads = [threading.Thread(target=task_in_thread, args=(n, p, io_s, records, i))
               for i in range(tasks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r for r in records if r]


def _processes(ctx, n, p, io_s, tasks) -> list:
    results = ctx.Queue()
    procs = [ctx.Process(target=task_in_process, args=(n, p, io_s, results))
             for _ in range(tasks)]
    for proc in procs:
        proc.start()
    try:
        records = [results.get(timeout=TIMEOUT_S) for _ in range(tasks)]
    except queue.Empty:
        raise UserError(f"a worker process sent no result within {TIMEOUT_S:g} s") from None
    finally:
        for proc in procs:
            proc.join(TIMEOUT_S)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        results.close()
    return records


def _children(n_children, n_threads, n_greenlets, n, p, io_s) -> list:
    """Fresh interpreters, each running ``n_threads`` threads of ``n_greenlets`` greenlets."""
    children = [_common.start_child("hybrid", n_threads, n_greenlets, n, p, io_s, patched=False,
                                    stdin_pipe=True)
                for _ in range(n_children)]
    records = []
    try:
        for child in children:
            _common.read_line(child, TIMEOUT_S)  # {"ready": true}: imported, waiting for go
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            records += _common.finish_child(child, TIMEOUT_S)["tasks"]
    finally:
        for child in children:
            if child.poll() is None:  # only when another child failed
                child.kill()
                child.communicate()
    return records


def measure(fast: bool = False, start_method: str | None = None) -> Result:
    ctx = multiprocessing.get_context(start_method)
    p = kernels.DEFAULT_P
    n_processes = max(2, available_cpus())
    n_greenlets = pick(fast, 10, 5)
    tasks = n_processes * N_THREADS * n_greenlets
    io_s = pick(fast, 0.5, 0.1)
    n = calibrate_n(kernels.get(CPU_KERNEL), pick(fast, 0.05, 0.01), p)
    expected = kernels.reference(n, p)
    t0 = time.perf_counter()
    kernels.get(CPU_KERNEL)(n, p)
    cpu_s = time.perf_counter() - t0

    models = (
        _model("threads", f"1 x {tasks} x 1", 1,
               lambda: _threads(n, p, io_s, tasks), expected, tasks),
        _model("processes", f"{tasks} x 1 x 1", tasks,
               lambda: _processes(ctx, n, p, io_s, tasks), expected, tasks),
        _model("greenlets", f"1 x 1 x {tasks}", 1,
               lambda: _children(1, 1, tasks, n, p, io_s), expected, tasks),
        _model("hybrid", f"{n_processes} x {N_THREADS} x {n_greenlets}", n_processes,
               lambda: _children(n_processes, N_THREADS, n_greenlets, n, p, io_s),
               expected, tasks),
    )
    return Result(n, cpu_s, io_s, tasks, tasks * (cpu_s + io_s), models)


def narrate(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    lines = [text["task"].format(tasks=result.tasks, kernel=CPU_KERNEL, n=result.n,
                                 cpu_ms=result.cpu_s * 1000, io_ms=result.io_s * 1000,
                                 serial_s=result.serial_s), text["legend"]]
    for m in result.models:
        lines.append(text["row"].format(**(vars(m) | {"model": pad(text[m.model], 16)})))
    best = min(result.models, key=lambda m: m.span_s)
    hybrid = next(m for m in result.models if m.model == "hybrid")
    lines.append(text["best"].format(best=text[best.model], best_s=best.span_s,
                                     hybrid_processes=hybrid.os_processes,
                                     tasks=result.tasks))
    others = max(m.others_cores for m in result.models)
    if others >= 0.5:
        lines.append(text["noisy"].format(others=others))
    return lines


def failures(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    failed = []
    for m in result.models:
        fields = vars(m) | {"model": text[m.model], "serial_s": result.serial_s}
        if m.correct != m.tasks:
            failed.append(text["fail_correct"].format(**fields))
        # Every model overlaps the waits, so each must beat one-after-another by far.
        if not m.span_s < 0.8 * result.serial_s:
            failed.append(text["fail_overlap"].format(**fields))
    return failed
