"""The compare command: its arguments, its checks before anything is measured, and the
run (here or across interpreters). Registered by gillab.__main__; imports it never.
"""
from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import sys

from gillab.compare.defaults import DEFAULT_TARGET_S, QUICK_TARGET_S
from gillab.cli import arguments as checks
from gillab.core import registry
from gillab.core.errors import (EXIT_CELLS_FAILED, EXIT_OK, Finished, UsageError, UserError,
                                check_output_path)

__all__ = ["add_parser", "cmd_compare", "KERNEL_NAMES", "EXECUTOR_NAMES",
           "OPTIONAL_EXECUTOR_NAMES"]

# Names for argparse's choices, spelled here so building the parser imports nothing
# heavy (a test checks they match gillab.kernels; executors come from the registry).
KERNEL_NAMES = ["py", "py_shared", "cy_gil", "cy_nogil", "bigint", "sleep"]
EXECUTOR_NAMES = list(registry.DEFAULT_EXECUTORS)
#: Asked for by name only, never in the default matrix.
OPTIONAL_EXECUTOR_NAMES = list(registry.OPTIONAL_EXECUTORS)

DESCRIPTION = ("Measure k identical tasks on k workers for each kernel and executor, and "
               "judge each cell.")


def add_parser(sub) -> argparse.ArgumentParser:
    """The compare subcommand, on the CLI's subparsers."""
    p = sub.add_parser("compare", help="measure every kernel under every executor",
                       description=DESCRIPTION)
    add_arguments(p)
    return p


def compare_parser() -> argparse.ArgumentParser:
    """compare's arguments alone: what compare --python forwards to every run."""
    p = argparse.ArgumentParser(prog="gillab compare", description=DESCRIPTION)
    add_arguments(p)
    return p


def add_arguments(p) -> None:
    """Every option of compare: what to measure, how, where else, and what to write."""
    _add_matrix_arguments(p)
    _add_run_arguments(p)
    _add_elsewhere_arguments(p)
    _add_output_arguments(p)


def _add_matrix_arguments(p) -> None:
    """What to measure: kernels (or a target), executors, worker counts, task size."""
    p.add_argument("-k", "--kernel", nargs="+", action="extend", choices=KERNEL_NAMES,
                   metavar="KERNEL", help=f"kernels to run (default: {', '.join(KERNEL_NAMES)}; "
                                         "py_shared only on a free-threaded build)")
    p.add_argument("-e", "--executor", nargs="+", action="extend",
                   choices=EXECUTOR_NAMES + OPTIONAL_EXECUTOR_NAMES, metavar="EXECUTOR",
                   help=f"executors to run (default: {', '.join(EXECUTOR_NAMES)}; "
                        f"by name only: {', '.join(OPTIONAL_EXECUTOR_NAMES)})")
    p.add_argument("-w", "--workers", type=checks.worker_list, metavar="1,2,4",
                   help="worker counts (default 1,2,4; 1,2 with --quick)")
    p.add_argument("--repeat", type=checks.bounded_int(checks.MAX_REPEAT), metavar="N",
                   help="timed runs per cell at least; more, up to 5 (or N), while the runs "
                        "lead to different verdicts; the median is kept (default 2; 1 with "
                        f"--quick; at most {checks.MAX_REPEAT})")
    p.add_argument("--quick", action="store_true",
                   help="every kernel and executor at 1 and 2 workers, "
                        f"{QUICK_TARGET_S:g} s tasks")
    p.add_argument("--target-s", type=checks.task_seconds, metavar="S",
                   help=f"seconds one task takes serially (default {DEFAULT_TARGET_S:g}; "
                        f"{QUICK_TARGET_S:g} with --quick; "
                        f"from {checks.MIN_TASK_S:g} to {checks.MAX_TARGET_S:g})")
    p.add_argument("--target", metavar="MODULE:FUNC", type=checks.nonempty,
                   help="measure your own zero-argument callable instead of the kernels "
                        "(default executors: serial, threads, processes)")


def _add_run_arguments(p) -> None:
    """How to run the process and event-loop executors, and the limits on workers."""
    p.add_argument("--start-method", type=_start_methods, metavar="fork,spawn",
                   help="multiprocessing start method(s) for the process executors; "
                        "several run side by side (choose from "
                        f"{', '.join(multiprocessing.get_all_start_methods())})")
    p.add_argument("--loop", choices=["asyncio", "uvloop"], metavar="asyncio|uvloop",
                   help="the event loop of the executors that run on one (asyncio, "
                        "to_thread): asyncio's own (default) or uvloop, if installed")
    p.add_argument("--cost", action="store_true",
                   help="also measure what each model costs: start-up, memory (PSS) "
                        "and dispatch per task")
    p.add_argument("--max-processes", type=checks.bounded_int(checks.MAX_COUNT),
                   default=MAX_PROCESSES, metavar="N",
                   help=f"refuse more worker processes than this (default {MAX_PROCESSES})")
    p.add_argument("--max-threads", type=checks.bounded_int(checks.MAX_COUNT),
                   default=MAX_THREADS, metavar="N",
                   help=f"refuse more worker threads than this (default {MAX_THREADS})")


def _add_elsewhere_arguments(p) -> None:
    """Other interpreters and dask clusters."""
    p.add_argument("--python", action="append", metavar="PATH",
                   help="run the matrix under this interpreter too (repeatable), side by side")
    p.add_argument("--gil", choices=["off", "on", "both"], metavar="off|on|both",
                   help="a free-threaded --python's GIL: off (default), forced on, or both "
                        "side by side (-X gil=0/1)")
    p.add_argument("--dask-shape", type=_shape_list, metavar="2x1,1x2",
                   help="dask cluster shapes, P processes x T threads (default: every "
                        "shape whose product is the worker count)")
    p.add_argument("--dask-scheduler", metavar="ADDRESS", type=checks.nonempty,
                   help="use this running dask scheduler instead of a local cluster")
    try:
        from gillab.measure.dask_cells import CONFIGS, DEFAULT_CONFIG
    except ImportError:  # no compiled extension: `show` must still parse its command line
        CONFIGS, DEFAULT_CONFIG = None, "quiet"
    p.add_argument("--dask-config", choices=list(CONFIGS) if CONFIGS else None,
                   help=f"the local cluster's dask settings (default {DEFAULT_CONFIG}: "
                        "distributed's profiler off; dask: its own defaults; see docs/dask.md)")


def _add_output_arguments(p) -> None:
    """What to write besides the table, and progress."""
    p.add_argument("--json", metavar="PATH", type=checks.nonempty,
                   help="also write every cell as JSON (atomically)")
    p.add_argument("--plot", metavar="PATH", type=checks.nonempty,
                   help="also write a PNG of speedup against workers (needs gillab[plot])")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    # Set by compare --python for the runs it starts: skip, do not refuse, an executor
    # asked for by name that one interpreter lacks.
    p.add_argument("--skip-unavailable", action="store_true", help=argparse.SUPPRESS)


def _check_plot_extra() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'gillab[plot]'") from None


#: Each process costs a fork (or a whole interpreter, with spawn) and megabytes of
#: memory; each thread a stack. Past these, a typo like -w 10000 would exhaust the
#: machine before it measured anything.
MAX_PROCESSES = 256
MAX_THREADS = 4096


def _check_worker_limits(plan, args) -> None:
    most = max(plan.workers)
    in_processes = [e for e in plan.executors if registry.spec(e).worker_kind == "process"]
    if in_processes and most > args.max_processes:
        raise UsageError(
            f"-w {most} on {in_processes[0]} means {most} processes, over the limit of "
            f"{args.max_processes} (each costs a fork and megabytes of memory); "
            f"raise it with --max-processes {most} if you mean it")
    in_threads = [e for e in plan.executors if registry.spec(e).worker_kind == "thread"
                  and not registry.spec(e).baseline]
    if in_threads and most > args.max_threads:
        raise UsageError(
            f"-w {most} on {in_threads[0]} means {most} workers, over the limit of "
            f"{args.max_threads}; raise it with --max-threads {most} if you mean it")


def cmd_compare(args) -> list[str]:
    """Check the arguments, run the matrix (or each --python), write what was asked for;
    the table's lines, Finished with EXIT_CELLS_FAILED when a cell was wrong."""
    if args.json:
        check_output_path(args.json, "--json")
    if args.plot:
        check_output_path(args.plot, "--plot")
        _check_plot_extra()
    if args.python:
        # Side by side, an executor one interpreter lacks is skipped there, not refused
        # (the flag reaches the host run and, forwarded, every child).
        args.skip_unavailable = True
        return _compare_across(args)
    if args.gil:
        raise UsageError("--gil applies to a free-threaded interpreter given by --python")
    return _run_here(args, _checked_plan(args))


def _checked_plan(args):
    """The Plan the arguments ask for; UsageError before anything is measured."""
    from gillab.compare.engine import Plan

    executors = args.executor or (["serial", "threads", "processes"] if args.target else None)
    plan = Plan(
        kernels=tuple(dict.fromkeys(args.kernel)) if args.kernel else Plan.kernels,
        executors=tuple(dict.fromkeys(executors)) if executors else Plan.executors,
        workers=args.workers or ((1, 2) if args.quick else (1, 2, 4)),
        repeat=args.repeat or (1 if args.quick else 2),
        max_repeat=max(args.repeat or 0, 3 if args.quick else 5),
        target_s=args.target_s or (QUICK_TARGET_S if args.quick else DEFAULT_TARGET_S),
        target=args.target,
        start_methods=args.start_method or (None,),
        cost=args.cost,
        dask_shapes=args.dask_shape,
        dask_scheduler=args.dask_scheduler,
        dask_config=args.dask_config,
        event_loop=args.loop or "asyncio",
        loop_cpu_workers=None if args.workers else _cpu_count(),
    )
    _check_worker_limits(plan, args)
    if not getattr(args, "skip_unavailable", False):
        _check_available(args.executor or ())
    _check_loop(args.loop, plan.executors)
    if args.dask_shape and args.dask_scheduler:
        raise UsageError("--dask-shape cannot reshape an existing cluster: "
                         "drop one of --dask-shape, --dask-scheduler")
    if args.dask_config and args.dask_scheduler:
        raise UsageError("--dask-config cannot reconfigure an existing cluster: "
                         "drop one of --dask-config, --dask-scheduler")
    if any(registry.spec(e).shaped for e in plan.executors):
        if plan.dask_scheduler:
            from gillab.measure.dask_cells import check_scheduler

            check_scheduler(plan.dask_scheduler)  # unreachable: one line, exit 1, no waiting
    elif args.dask_shape or args.dask_scheduler or args.dask_config:
        raise UsageError("--dask-shape, --dask-scheduler and --dask-config need -e dask")
    if plan.target:
        # Imported and called once in a throwaway process: a broken module is a usage
        # error; a function that ends its process or hangs runs in worker processes only.
        probe = checks.probe_target(plan.target)
        if probe.unsafe_in_process:
            plan = dataclasses.replace(plan, target_unsafe=probe.unsafe_in_process)
    return plan


def _run_here(args, plan) -> Finished:
    from gillab import kernels
    from gillab.compare.engine import run_compare
    from gillab.compare.progress import make_progress
    from gillab.compare.plot import write_plot
    from gillab.compare.report import format_cost_table, format_table
    from gillab.cli.terminal import stdout_to_stderr
    from gillab.compare.records import write_json_atomic

    progress = make_progress(args.quiet)
    try:
        # A target's own prints go to stderr: stdout carries the table alone.
        with stdout_to_stderr():
            run = run_compare(plan, progress)
    finally:
        getattr(progress, "close", lambda: None)()
    if args.json:
        write_json_atomic(args.json, run.to_dict())
    if args.plot:
        write_plot(run, args.plot)
    # A wrong cell: the table and JSON are written all the same, the status says it.
    failed = any(not c.correct or c.verdict == "wrong" for c in run.cells)
    descriptions = {name: k.description for name, k in kernels.KERNELS.items()}
    return Finished(format_table(run, descriptions) + format_cost_table(run)
                    + _too_short(run, plan), EXIT_CELLS_FAILED if failed else EXIT_OK)


def _too_short(run, plan) -> list[str]:
    """A --target whose one call is under the floor: its figures cannot be trusted."""
    import textwrap

    serial = next((c for c in run.cells if registry.spec(c.executor).baseline and c.serial_s),
                  None)
    if not plan.target or serial is None or serial.serial_s >= checks.MIN_TASK_S:
        return []
    return ["", *textwrap.wrap(
        f"WARNING: one call of {plan.target} takes {serial.serial_s * 1e3:.3f} ms, under "
        f"the {checks.MIN_TASK_S * 1e3:g} ms floor below which a task is too short to "
        "time (thread start-up and clock ticks are as large as the task): its speedups, "
        "cores and verdicts are not to be trusted. Make the function do more work, e.g. "
        "loop it, and run again.", 80, subsequent_indent="    ")]


def _cpu_count() -> int:
    from gillab.core.environment import cpu_count

    return cpu_count()


def _check_loop(loop: str | None, executors) -> None:
    """--loop names a loop this Python has, for executors that run on one."""
    if loop is None:
        return
    if not any(registry.spec(e).event_loop for e in executors):
        on_loop = [n for n, s in registry.SPECS.items() if s.event_loop]
        raise UsageError(f"--loop applies to {' and '.join(on_loop)}; none is asked for")
    from gillab.measure.executors.aio import loop_unavailable

    reason = loop_unavailable(loop)
    if reason:
        raise UsageError(f"--loop {loop}: {reason}")


def _check_available(asked) -> None:
    """An executor asked for by name that cannot run here is a usage error, not a skip
    (the default matrix skips it and says why)."""
    from gillab.measure.executors import unavailable_reason

    for name in dict.fromkeys(asked):
        reason = unavailable_reason(name)
        if reason:
            raise UsageError(f"-e {name}: {reason}")


def _compare_across(args) -> list[str]:
    """compare --python: each run in gillab.pythons (this process's own run handed in),
    the side-by-side text from gillab.compare.report_across."""
    from gillab import kernels
    from gillab.compare.across import plan_across, run_across
    from gillab.compare.merge import relabelled, to_json
    from gillab.compare.plot import write_plot
    from gillab.compare.report_across import format_side_by_side
    from gillab.compare.records import write_json_atomic

    interpreters = plan_across(args.python, args.gil)  # UsageError before measuring

    def run_host(json_path: str) -> None:
        cmd_compare(argparse.Namespace(**{**vars(args), "python": None, "gil": None,
                                          "json": json_path, "plot": None}))

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    done = run_across(interpreters, args, compare_parser(), run_host, say)
    if args.json:
        write_json_atomic(args.json, to_json(done.run, done.envs))
    if args.plot:
        write_plot(relabelled(done.run), args.plot)
    descriptions = {name: k.description for name, k in kernels.KERNELS.items()}
    lines = format_side_by_side(done.run, done.envs, descriptions)
    if done.failures:  # what did run is still reported; the exit status says the rest
        from gillab.cli.terminal import print_lines

        print_lines(lines)
        raise UserError("; ".join(done.failures))
    return lines


def _start_methods(text: str) -> tuple:
    """'fork,spawn' -> ('fork', 'spawn'), each one this platform offers."""
    valid = multiprocessing.get_all_start_methods()
    methods = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    bad = [m for m in methods if m not in valid]
    if bad or not methods:
        raise argparse.ArgumentTypeError(
            f"invalid start method {', '.join(bad) or repr(text)} (choose from "
            f"{', '.join(valid)})")
    return methods


def _shape_list(text: str) -> tuple:
    """'2x1,1x2' -> ('2x1', '1x2'): P processes x T threads, each >= 1."""
    from gillab.measure.dask_cells import parse_shapes  # the one reader of a shape

    try:
        return parse_shapes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


