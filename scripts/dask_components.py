"""What each of distributed's own threads costs a dask 2x1 cell on a pure-Python task.

A worker process runs more than its task: the statistical profiler (a thread that
samples every thread's stack every 10 ms), the system monitor with gilknocker (a
thread that knocks on the GIL every 1 ms), and the event loop (ticks every 20 ms,
heartbeats). Each needs the worker's GIL and a CPU. This script runs the same
calibrated task on LocalClusters of 2 processes x 1 thread with each of them
switched off in turn, interleaved (A B C D, then D C B A, ...) so that a busy machine
hurts every configuration alike, beside a plain pool of 2 processes, and prints per
configuration: the speedup over the serial task timed in the same round, the cores
the cell used, what the worker's other threads used while its task ran (inside the
worker: process CPU minus the task thread's), the tasks' GIL wait (off-CPU time that
was not the OS queue: in a single-threaded worker only Dask's threads hold the GIL),
what the idle cluster uses, and the noise (the share of the machine other processes
took).

    python scripts/dask_components.py [--rounds 4] [--repeat 3] [--target-s 0.3]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import statistics
import time

from gillab import kernels
from gillab.measure.dask_cluster import local_cluster
from gillab.measure.clocks import cpu_snapshot, run_task
from gillab.measure.cell import measure_once
from gillab.measure.calibrate import calibrate_n

CONFIGS = {
    "dask defaults": {},
    "no profiler": {"distributed.worker.profile.enabled": False},
    "no GIL monitor": {"distributed.admin.system-monitor.gil.enabled": False},
    "neither": {"distributed.worker.profile.enabled": False,
                "distributed.admin.system-monitor.gil.enabled": False},
}
PROCESSES = "process pool 2"


def task_in_worker(task):
    """run_task, and the CPU the rest of this process used meanwhile (sent by value:
    dask pickles __main__'s functions with cloudpickle; the pool imports this module)."""
    cpu0 = time.process_time()
    result = run_task(task)
    return result, (time.process_time() - cpu0) - result.cpu_s


def _figures(runs, serial_s) -> dict:
    tasks = [(t, other) for run, answers in runs for t, other in answers]
    return {
        "speedup": statistics.median(2 * serial_s / run.wall_s for run, _ in runs),
        "cores": statistics.median(run.cpu_s / run.wall_s for run, _ in runs),
        "others": statistics.median(other / t.wall_s for t, other in tasks),
        "gil_wait": statistics.fmean(max(0.0, t.wall_s - t.cpu_s - (t.run_delay_s or 0))
                                     / t.wall_s for t, _ in tasks),
        "noise": statistics.median(run.noise or 0.0 for run, _ in runs),
    }


def _timed(send, repeat):
    runs = []
    for _ in range(repeat):
        answers = []
        run = measure_once(lambda: answers.extend(send()) or [a for a, _ in answers])
        runs.append((run, answers))
    return runs


def _idle_cores(seconds=2.0) -> float:
    before, wall0 = cpu_snapshot(), time.perf_counter()
    time.sleep(seconds)
    used = cpu_snapshot().seconds_since(before)
    return used / (time.perf_counter() - wall0)


def on_dask(config, task, repeat):
    with local_cluster(2, 1, config=config) as client:
        workers = sorted(client.nthreads())

        def send():
            futures = [client.submit(task_in_worker, task, pure=False, workers=[w],
                                     allow_other_workers=False) for w in workers]
            return client.gather(futures)

        send()
        time.sleep(1.0)
        idle = _idle_cores()
        return _timed(send, repeat), idle


def on_pool(task, repeat):
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        def send():
            return list(pool.map(task_in_worker, [task, task]))

        send()
        time.sleep(1.0)
        return _timed(send, repeat), _idle_cores()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--target-s", type=float, default=0.3)
    args = parser.parse_args()
    n = calibrate_n(kernels.get("py"), args.target_s)
    task = kernels.Task("py", (n, kernels.DEFAULT_P))
    names = [PROCESSES, *CONFIGS]
    results = {name: [] for name in names}
    load0 = open("/proc/loadavg").read().split()[:3]
    for r in range(args.rounds):
        serial_s = statistics.median(run_task(task).wall_s for _ in range(3))
        for name in names if r % 2 == 0 else names[::-1]:
            runs, idle = (on_pool(task, args.repeat) if name == PROCESSES
                          else on_dask(CONFIGS[name], task, args.repeat))
            results[name].append((_figures(runs, serial_s), idle))
    load1 = open("/proc/loadavg").read().split()[:3]
    print(f"py, n={n:,} (~{args.target_s} s a task), 2 workers x 1 thread, {args.rounds} rounds"
          f" x {args.repeat} runs; loadavg {' '.join(load0)} -> {' '.join(load1)}")
    print(f"{'':16} {'speedup':>8} {'cores':>6} {'others':>7} {'GIL wait':>9} {'idle':>6}"
          f" {'noise':>6}   speedup per round")
    for name in names:
        rounds = results[name]

        def med(key):
            return statistics.median(f[key] for f, _ in rounds)

        per_round = " ".join(f"{f['speedup']:.2f}" for f, _ in rounds)
        print(f"{name:16} {med('speedup'):7.2f}x {med('cores'):6.2f} {med('others'):7.3f}"
              f" {med('gil_wait'):9.3f} {statistics.median(i for _, i in rounds):6.3f}"
              f" {med('noise'):6.2f}   {per_round}")
    print("others: cores the worker's other threads used while its task ran (per worker);"
          " idle: cores the idle cluster (or pool) used, all processes")


if __name__ == "__main__":
    main()
