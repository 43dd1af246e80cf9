"""`python -m gillab check`: the parser and the command, registered by gillab.__main__.

The check runs in a forked child process: the parent only waits, so a statement that
never returns, even a C call that holds the GIL forever, is bounded by --timeout (the
child is killed) and Ctrl-C is answered at once. Nothing is left running.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from gillab.cli import arguments as checks
from gillab.core.errors import UsageError, UserError, check_output_path

__all__ = ["add_parser", "cmd_check"]

#: What the parent allows beyond --timeout per row: forking, imports, the JSON.
_GRACE_S = 10.0


def add_parser(sub) -> argparse.ArgumentParser:
    from gillab.checker.statement import DEFAULT_TIMEOUT_S

    p = sub.add_parser(
        "check", help="does this call release the GIL, and would threads help it?",
        description="Run STATEMENT (after SETUP, like timeit) or a zero-argument "
                    "MODULE:FUNC on one thread with a GIL probe beside it, then on "
                    "2..min(4, CPUs) threads, and judge: releases the GIL / holds it / "
                    "releases it for part of the call / waits.")
    p.add_argument("statement", nargs="+", metavar="STATEMENT",
                   help="Python statement(s), one per argument as in timeit; or MODULE:FUNC")
    p.add_argument("-s", "--setup", action="append", default=[], metavar="SETUP",
                   help="run once before, in the statement's namespace (repeatable)")
    p.add_argument("--sweep", metavar="NAME=V1,V2,...",
                   help="check once per value of NAME (bound after SETUP), side by side, "
                        "and name where the verdict changes")
    p.add_argument("--processes", action="store_true",
                   help="also run the task in forked processes, for comparison")
    p.add_argument("--timeout", type=checks.bounded_float(3600.0), default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"give up on a check (a sweep row) after S seconds "
                        f"(default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--max-threads", type=checks.bounded_int(64, least=2), default=4, metavar="K",
                   help="most threads to try, 2-64 (default 4; never more than the CPUs)")
    p.add_argument("--python", action="append", default=[], metavar="PATH",
                   help="run the check under this interpreter instead (repeatable), from a "
                        "venv with this gillab built for it, as compare --python does")
    p.add_argument("--gil", choices=("off", "on", "both"), default=None,
                   help="a free-threaded --python's GIL: off (-X gil=0), forced on "
                        "(-X gil=1), or both side by side; default: as the build runs it "
                        "(off, unless an import turns it on, or as $PYTHON_GIL says)")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON (atomically)")
    return p


def _prepare(args):
    from gillab.checker.api import _sweep_values, prepare_check

    statement = "\n".join(args.statement)
    prepared = prepare_check(statement, args.setup)
    sweep = None
    if args.sweep:
        if not prepared.names:
            raise UsageError("--sweep needs a statement, not MODULE:FUNC")
        sweep = _sweep_values(args.sweep, prepared)
    return prepared, sweep


def _run(prepared, sweep, args):
    from gillab.checker import judge
    from gillab.checker.api import measure_prepared
    from gillab.checker.record import CheckSweep

    kw = dict(processes=args.processes, timeout=args.timeout, max_threads=args.max_threads)
    if sweep is None:
        return measure_prepared(prepared, None, **kw)
    name, values = sweep
    rows = tuple(measure_prepared(prepared, {name: v}, **kw) for v in values)
    return CheckSweep(prepared.statement, prepared.setup, rows[0].env, name, rows,
                      judge.find_threshold(name, rows))


@dataclass(frozen=True)
class ChildFailed:
    """The check's child could not finish: its one-line message, and whether it was the
    statement's usage (exit 2) rather than a failure (exit 1). Otherwise the child
    sends its CheckResult or CheckSweep itself."""

    message: str
    usage: bool = False

    def raise_it(self):
        raise (UsageError if self.usage else UserError)(self.message)


def _child(prepared, sweep, args, conn) -> None:
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent answers Ctrl-C and kills us
    os.setpgid(0, 0)  # a group of our own: the parent kills it with --processes' workers
    try:
        conn.send(_run(prepared, sweep, args))
    except (UsageError, UserError) as exc:
        conn.send(ChildFailed(str(exc), usage=isinstance(exc, UsageError)))
    except BaseException as exc:  # noqa: BLE001 - reported in one line by the parent
        conn.send(ChildFailed(f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _run_in_child(prepared, sweep, args):
    """Run the check in a forked child; kill it if it outlives --timeout per row."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return _run(prepared, sweep, args)  # no fork (Windows): bounded by daemon threads
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    # Not a daemon: --processes forks workers from it (daemons may have no children).
    # The finally below kills it whatever happens, so it never outlives this command.
    proc = ctx.Process(target=_child, args=(prepared, sweep, args, send), daemon=False)
    rows = len(sweep[1]) if sweep else 1
    try:
        proc.start()
        send.close()
        if not recv.poll(args.timeout * rows + _GRACE_S):
            raise UserError(f"the statement did not return within --timeout {args.timeout:g} s"
                            f" (statement: {prepared.statement.strip()!r}); stopped it")
        try:
            reply = recv.recv()
        except EOFError:
            raise UserError(f"the check's process died (exit code {proc.exitcode}): the "
                            "statement crashed the interpreter") from None
    finally:
        _kill_group(proc)
        proc.join()
        recv.close()
    if isinstance(reply, ChildFailed):
        reply.raise_it()
    return reply


def _kill_group(proc) -> None:
    """Kill the check's process and any worker it forked (a hung --processes worker)."""
    import os
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, TypeError):
        pass  # no group (yet, or any more): kill the one process if it still lives
    if proc.is_alive():
        proc.kill()


def cmd_check(args) -> list[str]:
    from gillab.checker.record import CheckSweep
    from gillab.checker.report import format_check, format_sweep

    if args.json:
        check_output_path(args.json, "--json")
    if args.python or args.gil is not None:
        return _cmd_check_across(args)
    prepared, sweep = _prepare(args)  # usage errors (exit 2) before anything runs
    result = _run_in_child(prepared, sweep, args)
    if args.json:
        from gillab.compare.records import write_json_atomic

        write_json_atomic(args.json, result.to_dict())
    if isinstance(result, CheckSweep):
        return format_sweep(result)
    return format_check(result)


def _cmd_check_across(args) -> list[str]:
    """``--python``: the check under each interpreter (and GIL setting), side by side."""
    import sys

    from gillab.checker.across import plan_check_runs, run_check_across, runs_to_dict
    from gillab.checker.report import format_runs

    interpreters = plan_check_runs(args.python, args.gil)  # usage errors first (exit 2)
    runs = run_check_across(interpreters, args,
                            say=lambda text: print(text, file=sys.stderr, flush=True))
    if args.json:
        from gillab.compare.records import write_json_atomic

        write_json_atomic(args.json, runs_to_dict(runs))
    return format_runs(runs)
