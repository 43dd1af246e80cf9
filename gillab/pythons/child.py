"""One other interpreter's run: ``python -I -m gillab compare ... --json TMP`` from its
venv, its progress streamed, stopped as a whole process group on Ctrl-C."""
from __future__ import annotations

import os

__all__ = ["forwarded_args", "child_command", "gil_flags", "child_env", "run_child",
           "child_failure", "NOT_FORWARDED"]

#: compare options not handed to the children: the parent owns them.
NOT_FORWARDED = {"python", "gil", "json", "plot", "help", "command", "debug"}


def forwarded_args(args, compare_parser) -> list:
    """The user's compare options, as command-line words for a child ``compare``.

    Generic over ``compare_parser`` (the CLI's compare subparser, handed in by the
    CLI), so an option added to compare later is forwarded too.
    """
    import argparse

    words = ["--debug"] if getattr(args, "debug", False) else []
    words.append("compare")
    for action in compare_parser._actions:
        if action.dest in NOT_FORWARDED or not action.option_strings:
            continue
        value = getattr(args, action.dest, None)
        if value is None or value == action.default:  # the child has the same default
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:  # a flag: store_true/false/const, or a count
            words += [flag] * (value if isinstance(action, argparse._CountAction) else 1)
        elif isinstance(action, (argparse._AppendAction, argparse._ExtendAction)):
            words += [flag, *map(str, value)]
        elif isinstance(value, (list, tuple)):
            words += [flag, ",".join(map(str, value))]
        else:
            words += [flag, str(value)]
    return words


def child_command(python: str, words: list, extra_path: str | None,
                  flags: list | tuple = ()) -> list:
    """``python -I [FLAGS] -m gillab WORDS``; with --target, the user's directory joins
    the end of sys.path, after site-packages, so their module imports and gillab stays
    the installed one."""
    if extra_path is None:
        return [python, "-I", *flags, "-m", "gillab", *words]
    boot = ("import sys; sys.path.append(sys.argv.pop(1)); "
            "from gillab.__main__ import main; sys.exit(main(sys.argv[1:]))")
    return [python, "-I", *flags, "-c", boot, extra_path, *words]


def gil_flags(interp) -> list:
    """``-X gil=0`` or ``-X gil=1`` for a free-threaded run, as ``interp.gil`` says.

    The child runs with -I, which ignores PYTHON_GIL; -X gil is also what
    multiprocessing hands its spawned workers (subprocess._args_from_interpreter_flags),
    and forked ones inherit the running state."""
    if interp.free_threaded and interp.gil in ("off", "on"):
        return ["-X", f"gil={1 if interp.gil == 'on' else 0}"]
    return []


def child_env(interp, base: dict | None = None) -> dict:
    """The child's environment: PYTHON_GIL=0 or 1 for a free-threaded run, as
    ``interp.gil`` says (for any process it starts without -I); otherwise without it."""
    env = dict(os.environ if base is None else base)
    if interp.free_threaded and interp.gil in ("off", "on"):
        env["PYTHON_GIL"] = "1" if interp.gil == "on" else "0"
    else:
        env.pop("PYTHON_GIL", None)
    return env


def run_child(cmd: list, cwd: str, on_line=lambda line: None, grace_s: float = 5.0,
              env: dict | None = None):
    """Run a child compare; hand each stderr line to ``on_line``; return (exit code,
    last stderr lines).

    The child gets a process group of its own: on Ctrl-C (or any exception here) the
    whole group is sent SIGINT, then SIGKILL after ``grace_s``, so no worker of the
    child outlives it; the exception goes on.
    """
    import collections
    import subprocess

    proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True, env=env)
    tail: collections.deque = collections.deque(maxlen=20)
    try:
        for line in proc.stderr:
            line = line.rstrip("\n")
            tail.append(line)
            on_line(line)
        proc.wait()
    except BaseException:
        _stop_group(proc, grace_s)
        raise
    finally:
        proc.stderr.close()
    return proc.returncode, list(tail)


def _stop_group(proc, grace_s: float) -> None:
    import signal
    import subprocess

    def signal_group(sig):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    signal_group(signal.SIGINT)   # the child stops its workers and exits 130
    try:
        proc.wait(grace_s)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    signal_group(signal.SIGKILL)  # whatever is left of the group
    proc.wait()


def child_failure(code: int, tail: list) -> str:
    """A failed child, told by its own last error line."""
    errors = [line for line in tail if line.startswith("gillab")]
    last = errors[-1] if errors else (tail[-1] if tail else "no output")
    return f"exited with code {code}: {last}"
