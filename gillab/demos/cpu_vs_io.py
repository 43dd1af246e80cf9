"""cpu-vs-io: the lesson's four cases (CPU/IO x threads/processes) measured on this machine."""
from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from dataclasses import dataclass

from gillab import kernels
from gillab.demos._common import CpuMeter, available_cpus, pad, pick
from gillab.core.errors import UserError
from gillab.measure.calibrate import calibrate_n

#: The lesson's own figures, measured on its 12-CPU machine.
LESSON = {"cpus": 12, "cpu_processes_s": 5.67, "cpu_threads_s": 30.23,
          "io_threads_s": 0.015, "io_processes_s": 0.64}
CPU_KERNEL = "bigint"  # the lesson's own loop: res *= i on a Python int
N_CPU_WORKERS = 4
N_IO_WORKERS = 100
TIMEOUT_S = 120.0

TEXT = {
    "en": {
        "title": "CPU-bound and IO-bound work on threads vs processes, beside the lesson's figures",
        "shows": [
            "The lesson's four timings: CPU-bound work (its big-integer factorial) on threads",
            "and on processes, then IO-bound work (a sleep) on 100 threads and 100 processes.",
            "Every answer is checked; CPU seconds over wall seconds tell how many cores worked.",
        ],
        "cpu_row": "  CPU  {workers} x {model} {wall_s:7.3f} s   {cores_used:4.2f} cores used   "
                   "answers {correct}   (others on this machine: {others_cores:.2f} cores)",
        "attempts": "  (measured {attempts} times: other processes on this machine were busy)",
        "threads": "threads",
        "processes": "processes",
        "correct": "all correct",
        "wrong": "WRONG",
        "cpu_lesson": "CPU-bound, {workers} tasks of {kernel}(n={n:,}), one task {one_s:.3f} s "
                      "alone. "
                      "Lesson ({lesson_cpus} CPUs): processes {lp:.2f} s vs threads {lt:.2f} s, "
                      "{lesson_ratio:.1f}x. Here ({cpus} CPUs): processes {pp:.3f} s vs threads "
                      "{pt:.3f} s, {ratio:.1f}x.",
        "cpu_why": "Threads take turns holding the GIL, so CPU-bound threads use about one core "
                   "whatever the machine. Processes each have their own GIL, so as many run at "
                   "once as there are CPUs: min({workers} tasks, {cpus} CPUs) = {ideal} here. On "
                   "this machine processes can beat threads by at most {cpus}x, however many "
                   "tasks; the lesson's {lesson_cpus} CPUs allow up to {lesson_cpus}x, and it "
                   "measured {lesson_ratio:.1f}x.",
        "io_row": "  IO   {workers} x {model} the lesson's way (start only) {lesson_s:7.3f} s;  "
                  "joined {wall_s:7.3f} s",
        "io_lesson": "IO-bound, {workers} tasks each sleeping {io_s:g} s. Lesson: threads "
                     "{lt:.3f} s vs processes {lp:.2f} s.",
        "io_why": "Where the lesson is wrong: its IO loops never append to t_list/p_list, so they "
                  "join nothing and its 0.015 s and 0.64 s time only the start-up of 100 workers, "
                  "not the {lesson_sleep:g} s sleep they were meant to wait for. Joined, both "
                  "models wait about one sleep ({io_s:g} s here) because sleeping releases the "
                  "GIL; processes add their start-up ({proc_extra:.3f} s more here).",
        "fail_correct": "{model}: a CPU answer was wrong",
        "fail_cores": "processes used {pc:.2f} cores and threads {tc:.2f}: processes did not "
                      "run CPU work in parallel (other processes kept {others:.2f} cores busy "
                      "meanwhile{noisy})",
        "noisy": ": noisy, run it again on a quieter machine",
        "fail_io": "{model}: joined IO run took {wall_s:.3f} s for {io_s:g} s sleeps",
        "fail_lesson_io": "the lesson-style (unjoined) thread timing {lesson_s:.3f} s was not "
                          "shorter than one sleep",
    },
    "zh": {
        "title": "CPU 密集与 IO 密集任务在线程与进程上的对比，与课程中的数字并列",
        "shows": [
            "课程中的四组计时：CPU 密集任务（它的大整数阶乘）分别在线程和进程上运行，",
            "然后是 IO 密集任务（sleep）在 100 个线程和 100 个进程上运行。",
            "每个结果都经过校验；CPU 秒数除以墙钟秒数，说明有多少个核心在工作。",
        ],
        "cpu_row": "  CPU  {workers} x {model} {wall_s:7.3f} 秒   使用 {cores_used:4.2f} 个核心   "
                   "结果{correct}   （本机其他进程占用 {others_cores:.2f} 个核心）",
        "attempts": "  （测了 {attempts} 次：本机其他进程正忙）",
        "threads": "线程",
        "processes": "进程",
        "correct": "全部正确",
        "wrong": "有错误",
        "cpu_lesson": "CPU 密集：{workers} 个 {kernel}(n={n:,}) 任务，单个任务单独运行 {one_s:.3f} 秒。"
                      "课程（{lesson_cpus} 个 CPU）：进程 {lp:.2f} 秒 对 线程 {lt:.2f} 秒，"
                      "{lesson_ratio:.1f} 倍。本机（{cpus} 个 CPU）：进程 {pp:.3f} 秒 对 线程 "
                      "{pt:.3f} 秒，{ratio:.1f} 倍。",
        "cpu_why": "线程轮流持有 GIL，所以 CPU 密集的线程无论在什么机器上都只用大约一个核心。"
                   "每个进程有自己的 GIL，所以同时运行的进程数等于 CPU 数：这里是 "
                   "min({workers} 个任务, {cpus} 个 CPU) = {ideal}。在本机上，无论任务多少，"
                   "进程最多比线程快 {cpus} 倍；课程的 {lesson_cpus} 个 CPU 最多允许 {lesson_cpus} 倍，"
                   "它实测为 {lesson_ratio:.1f} 倍。",
        "io_row": "  IO   {workers} x {model} 按课程的方式（只计启动）{lesson_s:7.3f} 秒；  "
                  "join 之后 {wall_s:7.3f} 秒",
        "io_lesson": "IO 密集：{workers} 个任务，各睡眠 {io_s:g} 秒。课程：线程 {lt:.3f} 秒 对 "
                     "进程 {lp:.2f} 秒。",
        "io_why": "课程的错误之处：它的 IO 循环从未向 t_list/p_list 添加任何元素，所以什么也没有 join，"
                  "它的 0.015 秒和 0.64 秒只计了 100 个工作者的启动时间，而不是它们本该等待的 "
                  "{lesson_sleep:g} 秒睡眠。join 之后，两种模型都大约等待一次睡眠的时间"
                  "（这里是 {io_s:g} 秒），因为睡眠会释放 GIL；进程还要加上启动开销"
                  "（这里多 {proc_extra:.3f} 秒）。",
        "fail_correct": "{model}：有一个 CPU 结果错误",
        "fail_cores": "进程使用了 {pc:.2f} 个核心，线程 {tc:.2f} 个：进程没有并行运行 CPU 任务"
                      "（同时其他进程占用了 {others:.2f} 个核心{noisy}）",
        "noisy": "：测量受干扰，请在更空闲的机器上重试",
        "fail_io": "{model}：join 之后的 IO 运行用了 {wall_s:.3f} 秒，而睡眠是 {io_s:g} 秒",
        "fail_lesson_io": "按课程方式（未 join）的线程计时 {lesson_s:.3f} 秒并不比一次睡眠短",
    },
}


def cpu_in_thread(n: int, p: int, results: list, index: int) -> None:
    results[index] = kernels.get(CPU_KERNEL)(n, p)


def cpu_in_process(n: int, p: int, results, index: int) -> None:
    results.put((index, kernels.get(CPU_KERNEL)(n, p)))


def io_task(seconds: float) -> None:
    kernels.get("sleep")(seconds)


@dataclass(frozen=True)
class Case:
    kind: str        # "cpu" or "io"
    model: str       # "threads" or "processes"
    workers: int
    wall_s: float    # from the first start() to the last join()
    cpu_s: float     # CPU seconds of this process and its children during the case
    lesson_s: float  # from the first start() to the last start(): what the lesson's IO timing saw
    correct: bool
    others_cores: float  # cores other processes on the machine kept busy meanwhile (noise)

    @property
    def cores_used(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


@dataclass(frozen=True)
class Result:
    cpus: int
    n: int
    one_s: float
    io_s: float
    cpu_attempts: int  # > 1 when a busy machine hid the parallelism and the CPU cases re-ran
    cpu_threads: Case
    cpu_processes: Case
    io_threads: Case
    io_processes: Case


def _cpu_cases(ctx, n: int, p: int, expected: int) -> tuple[Case, Case]:
    answers: list = [None] * N_CPU_WORKERS
    threads = [threading.Thread(target=cpu_in_thread, args=(n, p, answers, i))
               for i in range(N_CPU_WORKERS)]

    def thread_answers_correct() -> bool:
        for thread in threads:
            thread.join(TIMEOUT_S)
        return all(a == expected for a in answers)

    cpu_threads = _run_case("cpu", "threads", threads, check=thread_answers_correct)

    answer_queue = ctx.Queue()

    def process_answers_correct() -> bool:
        # Read before joining: a child cannot exit while its answer still fills the pipe.
        try:
            got = [answer_queue.get(timeout=TIMEOUT_S) for _ in range(N_CPU_WORKERS)]
        except queue.Empty:
            return False
        return sorted(i for i, _ in got) == list(range(N_CPU_WORKERS)) \
            and all(a == expected for _, a in got)

    cpu_processes = _run_case("cpu", "processes", [
        ctx.Process(target=cpu_in_process, args=(n, p, answer_queue, i))
        for i in range(N_CPU_WORKERS)], check=process_answers_correct)
    answer_queue.close()
    return cpu_threads, cpu_processes


def _parallel(threads: Case, processes: Case) -> bool:
    """Processes used clearly more cores than GIL-bound threads (margin for a busy 2-core box)."""
    return processes.cores_used > threads.cores_used + 0.3


def _run_case(kind: str, model: str, workers: list, check=lambda: True) -> Case:
    """Start every worker, ``check()`` their answers, join them; time and CPU time it all."""
    with CpuMeter() as meter:
        t0 = time.perf_counter()
        for worker in workers:
            worker.start()
        lesson_s = time.perf_counter() - t0
        correct = check()
        for worker in workers:
            worker.join(TIMEOUT_S)
    if any(worker.is_alive() for worker in workers):
        raise UserError(f"{kind} {model}: a worker did not end within {TIMEOUT_S:g} s")
    return Case(kind, model, len(workers), meter.wall_s, meter.own_s, lesson_s, correct,
                meter.others_cores)


def measure(fast: bool = False, start_method: str | None = None) -> Result:
    ctx = multiprocessing.get_context(start_method)
    p = kernels.DEFAULT_P
    kernel = kernels.get(CPU_KERNEL)
    n = calibrate_n(kernel, pick(fast, 0.5, 0.1), p)
    expected = kernels.reference(n, p)
    t0 = time.perf_counter()
    kernel(n, p)
    one_s = time.perf_counter() - t0

    for cpu_attempts in range(1, 4):
        cpu_threads, cpu_processes = _cpu_cases(ctx, n, p, expected)
        # Another busy process can hide the processes' parallelism: measure again, twice at most.
        if available_cpus() < 2 or _parallel(cpu_threads, cpu_processes):
            break

    io_s = pick(fast, 2.0, 0.5)
    io_threads = _run_case("io", "threads", [
        threading.Thread(target=io_task, args=(io_s,)) for _ in range(N_IO_WORKERS)])
    io_processes = _run_case("io", "processes", [
        ctx.Process(target=io_task, args=(io_s,)) for _ in range(N_IO_WORKERS)])
    return Result(available_cpus(), n, one_s, io_s, cpu_attempts, cpu_threads, cpu_processes,
                  io_threads, io_processes)


def narrate(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    ideal = min(N_CPU_WORKERS, result.cpus)
    lines = [text["cpu_lesson"].format(
        workers=N_CPU_WORKERS, kernel=CPU_KERNEL, n=result.n, one_s=result.one_s,
        lesson_cpus=LESSON["cpus"], lp=LESSON["cpu_processes_s"], lt=LESSON["cpu_threads_s"],
        lesson_ratio=LESSON["cpu_threads_s"] / LESSON["cpu_processes_s"], cpus=result.cpus,
        pp=result.cpu_processes.wall_s, pt=result.cpu_threads.wall_s,
        ratio=result.cpu_threads.wall_s / result.cpu_processes.wall_s)]
    for case in (result.cpu_threads, result.cpu_processes):
        lines.append(text["cpu_row"].format(
            **(vars(case) | {"model": pad(text[case.model], 9),
                             "correct": text["correct" if case.correct else "wrong"]}),
            cores_used=case.cores_used))
    if result.cpu_attempts > 1:
        lines.append(text["attempts"].format(attempts=result.cpu_attempts))
    lines.append(text["cpu_why"].format(
        workers=N_CPU_WORKERS, cpus=result.cpus, ideal=ideal, lesson_cpus=LESSON["cpus"],
        lesson_ratio=LESSON["cpu_threads_s"] / LESSON["cpu_processes_s"]))
    lines.append(text["io_lesson"].format(workers=N_IO_WORKERS, io_s=result.io_s,
                                          lt=LESSON["io_threads_s"], lp=LESSON["io_processes_s"]))
    for case in (result.io_threads, result.io_processes):
        lines.append(text["io_row"].format(**(vars(case) | {"model": pad(text[case.model], 9)})))
    lines.append(text["io_why"].format(
        lesson_sleep=2, io_s=result.io_s,
        proc_extra=result.io_processes.wall_s - result.io_threads.wall_s))
    return lines


def failures(result: Result, lang: str) -> list[str]:
    text = TEXT[lang]
    failed = [text["fail_correct"].format(model=case.model)
              for case in (result.cpu_threads, result.cpu_processes) if not case.correct]
    threads, processes = result.cpu_threads.cores_used, result.cpu_processes.cores_used
    # One CPU cannot show parallelism; with two or more, processes must use clearly more cores.
    if result.cpus >= 2 and not _parallel(result.cpu_threads, result.cpu_processes):
        others = result.cpu_processes.others_cores
        failed.append(text["fail_cores"].format(
            pc=processes, tc=threads, others=others, noisy=text["noisy"] if others >= 0.5 else ""))
    for case in (result.io_threads, result.io_processes):
        # Joined, the run waited out the sleep; overlapped, it took far less than the sum.
        if not result.io_s <= case.wall_s < 0.8 * case.workers * result.io_s:
            failed.append(text["fail_io"].format(model=case.model, wall_s=case.wall_s,
                                                 io_s=result.io_s))
    if result.io_threads.lesson_s >= result.io_s:
        failed.append(text["fail_lesson_io"].format(lesson_s=result.io_threads.lesson_s))
    return failed
