"""Other interpreters: the compare matrix under several Pythons, side by side
(``compare --python PATH``), and the bootstrap that runs inside subinterpreters.

Each other interpreter runs ``python -I -m gillab compare ... --json TMP`` from a venv
of its own, with gillab installed from this checkout (not editable: the checkout's
gillab/ holds an extension built for the host only). ``-I`` and a working directory
outside the checkout keep the child from importing the source tree instead. A venv
is kept under the user's cache directory, keyed by the interpreter, and gillab is
reinstalled into it only when the checkout's sources change. The host interpreter
runs the same matrix first, in this process, exactly as ``compare`` without
``--python`` would.

This module imports nothing heavy at the top: subinterpreters import it first thing
(see ``subinterpreter_setup``), before gillab.measure, whose psutil cannot load there.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass

from gillab.errors import UsageError, UserError

__all__ = ["Interpreter", "compare_across", "select_interpreters", "make_labels",
           "source_files", "source_fingerprint", "venv_key", "ensure_venv",
           "forwarded_args", "merge_runs", "to_json", "load_across", "format_side_by_side",
           "subinterpreter_problem", "subinterpreter_setup", "subinterpreter_warm",
           "subinterpreter_run_task", "main"]

#: gillab needs this much Python (pyproject's requires-python).
MIN_VERSION = (3, 10)
#: Dependencies that cannot be installed on a free-threaded build: their executors
#: are skipped there with the reason (executors.unavailable_reason).
NOT_FREE_THREADED = frozenset({"gevent"})


class InterpreterFailed(Exception):
    """One interpreter could not run the matrix: the others still do."""


# --- which interpreters -----------------------------------------------------------------

# Run with -I under each candidate: what it is, without importing gillab.
_PROBE = """\
import json, platform, sys, sysconfig
print(json.dumps({
    "version": platform.python_version(),
    "version_info": list(sys.version_info[:2]),
    "build": sys.version,
    "implementation": platform.python_implementation(),
    "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "executable": sys.executable,
}))
"""


@dataclass(frozen=True)
class Interpreter:
    """One Python to run the matrix under. ``label`` names it in tables and JSON."""

    path: str               # as the user gave it (sys.executable for the host)
    version: str            # "3.13.5"
    build: str              # sys.version: tells two builds of one version apart
    implementation: str     # "CPython"
    free_threaded: bool     # built with --disable-gil (PEP 703)
    host: bool = False      # the interpreter running this command
    label: str = ""


def probe(path: str) -> Interpreter:
    """Ask the Python at ``path`` what it is; UsageError (one line) if it is not one."""
    import shutil
    import subprocess

    if os.sep not in path:  # a bare name, like python3.12: look it up on PATH
        path = shutil.which(path) or path
    if not os.path.exists(path):
        raise UsageError(f"--python {path}: no such file")
    if not os.access(path, os.X_OK):
        raise UsageError(f"--python {path}: not executable")
    try:
        done = subprocess.run([path, "-I", "-c", _PROBE], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        info = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        raise UsageError(f"--python {path}: does not run as a Python interpreter") from None
    if tuple(info["version_info"]) < MIN_VERSION:
        raise UsageError(f"--python {path}: gillab needs Python "
                         f"{'.'.join(map(str, MIN_VERSION))}+, this is {info['version']}")
    return Interpreter(path, info["version"], info["build"], info["implementation"],
                       info["free_threaded"])


def _host() -> Interpreter:
    import platform
    import sysconfig

    return Interpreter(sys.executable, platform.python_version(), sys.version,
                       platform.python_implementation(),
                       bool(sysconfig.get_config_var("Py_GIL_DISABLED")), host=True)


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def make_labels(interpreters: list) -> list:
    """Short, unique names: "3.11", "3.13t" (t: free-threaded, as CPython spells it);
    the full version where two share a minor version, "#2" where even that repeats."""
    def short(i):
        return ".".join(i.version.split(".")[:2]) + ("t" if i.free_threaded else "")

    def full(i):
        return i.version + ("t" if i.free_threaded else "")

    labels = [short(i) for i in interpreters]
    labels = [full(i) if labels.count(lab) > 1 else lab
              for i, lab in zip(interpreters, labels)]
    seen: dict = {}
    unique = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        unique.append(lab if seen[lab] == 1 else f"{lab}#{seen[lab]}")
    return [dataclasses.replace(i, label=lab) for i, lab in zip(interpreters, unique)]


def select_interpreters(paths, host: Interpreter | None = None, probe_func=probe) -> list:
    """The host first, then each --python PATH once (the host too if named again)."""
    host = host or _host()
    chosen = [host]
    for path in paths:
        if any(_same_file(path, c.path) for c in chosen):
            continue
        chosen.append(probe_func(path))
    return make_labels(chosen)


# --- venvs ------------------------------------------------------------------------------

#: Generated or compiled files: never part of the fingerprint, never copied.
_GENERATED = (".so", ".pyd", ".c", ".html", ".pyc", ".pyo", ".o")


def find_checkout() -> str:
    """The source tree this gillab runs from; UserError if it is an installed copy."""
    import gillab

    root = os.path.dirname(os.path.dirname(os.path.abspath(gillab.__file__)))
    needed = ("setup.py", "pyproject.toml", os.path.join("ext", "_kernels.pyx"))
    if not all(os.path.exists(os.path.join(root, f)) for f in needed):
        raise UserError("compare --python installs gillab into each interpreter's venv from "
                        "its source tree, but this gillab is not running from one "
                        f"({root}); run it from a checkout (pip install -e .)")
    return root


def source_files(checkout: str) -> list:
    """Every file a build of gillab reads, relative to the checkout, sorted."""
    files = [f for f in ("setup.py", "pyproject.toml", "MANIFEST.in")
             if os.path.isfile(os.path.join(checkout, f))]
    for top in ("gillab", "ext"):
        for directory, dirs, names in os.walk(os.path.join(checkout, top)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
            for name in names:
                if name.endswith(_GENERATED) or name.startswith("."):
                    continue
                files.append(os.path.relpath(os.path.join(directory, name), checkout))
    return sorted(files)


def source_fingerprint(checkout: str, files: list | None = None) -> str:
    """sha256 over the names and contents of ``source_files``: a venv is reused while
    it matches. Working-tree contents, not git's index: uncommitted edits count."""
    digest = hashlib.sha256()
    for rel in files if files is not None else source_files(checkout):
        with open(os.path.join(checkout, rel), "rb") as f:
            data = f.read()
        digest.update(rel.replace(os.sep, "/").encode() + b"\0")
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def venv_key(interp: Interpreter) -> str:
    """The venv's directory name: the label, then a hash of where and what the
    interpreter is (a rebuilt Python at the same path gets a new venv)."""
    ident = "\n".join((os.path.realpath(interp.path), interp.build, interp.implementation,
                       str(interp.free_threaded)))
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in interp.label)
    return f"{safe}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"


def cache_root() -> str:
    """Where venvs live: $GILLAB_CACHE_DIR, else $XDG_CACHE_HOME/gillab, else ~/.cache/gillab."""
    root = os.environ.get("GILLAB_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".cache")
        root = os.path.join(base, "gillab")
    return os.path.join(root, "venvs")


def _venv_python(venv: str) -> str:
    if os.name == "nt":
        return os.path.join(venv, "Scripts", "python.exe")
    return os.path.join(venv, "bin", "python")


def dependencies_for(requirements: list, free_threaded: bool) -> list:
    """gillab's own requirement strings, less those a free-threaded build cannot install.

    A marker cannot say "free-threaded", so pyproject cannot express this itself;
    extras (``; extra == ...``) are dropped, pip would ignore them anyway.
    """
    import re

    kept = []
    for req in requirements:
        name = re.split(r"[\s;<>=!~\[(@]", req.strip(), maxsplit=1)[0].lower()
        if "extra ==" in req.replace('"', "").replace("'", "") or not name:
            continue
        if free_threaded and name.replace("_", "-") in NOT_FREE_THREADED:
            continue
        kept.append(req)
    return kept


_READ_REQUIRES = ("import json, importlib.metadata as m; "
                  "print(json.dumps(m.requires('gillab') or []))")


def ensure_venv(interp: Interpreter, checkout: str, fingerprint: str | None = None,
                say=lambda text: None) -> str:
    """A venv for ``interp`` with gillab installed from ``checkout``; its python's path.

    Reused as it is while the checkout's fingerprint matches the one stamped in it;
    otherwise gillab alone is rebuilt and reinstalled. Two runs at once wait for each
    other (a lock file). InterpreterFailed (one line) if pip fails.
    """
    import shutil
    import subprocess
    import tempfile

    files = source_files(checkout)
    fingerprint = fingerprint or source_fingerprint(checkout, files)
    root = cache_root()
    venv = os.path.join(root, venv_key(interp))
    python = _venv_python(venv)
    stamp = os.path.join(venv, "gillab-source.sha256")
    log_path = os.path.join(venv, "gillab-install.log")
    os.makedirs(root, exist_ok=True)
    with _locked(venv + ".lock"):
        if _read(stamp) == fingerprint and os.path.exists(python):
            return python
        if not os.path.exists(python):
            say(f"gillab: {interp.label}: creating a venv in {venv} (once)")
            _pip_step([interp.path, "-m", "venv", "--clear", venv], None,
                      f"could not create a venv with {interp.path}")
        if os.path.exists(stamp):
            os.unlink(stamp)
        say(f"gillab: {interp.label}: installing gillab from {checkout} "
            "(sources changed or first run: about a minute)")
        with tempfile.TemporaryDirectory(prefix="gillab-src-") as src:
            # A copy: the build writes build/ and ext/_kernels.c, and must see exactly
            # the files the fingerprint saw while others edit the checkout.
            for rel in files + [f for f in ("README.md", "LICENSE")
                                if os.path.isfile(os.path.join(checkout, f))]:
                os.makedirs(os.path.join(src, os.path.dirname(rel)), exist_ok=True)
                shutil.copy2(os.path.join(checkout, rel), os.path.join(src, rel))
            pip = [python, "-m", "pip", "--disable-pip-version-check", "--no-input",
                   "install", "--quiet"]
            with open(log_path, "w", encoding="utf-8") as log:
                _pip_step(pip + ["--no-deps", "--force-reinstall", src], log,
                          f"pip could not build gillab for {interp.label} (log: {log_path})")
                requires = json.loads(subprocess.run(
                    [python, "-I", "-c", _READ_REQUIRES], capture_output=True, text=True,
                    check=True, cwd=src).stdout)
                deps = dependencies_for(requires, interp.free_threaded)
                if deps:
                    _pip_step(pip + deps, log, f"pip could not install {', '.join(deps)} "
                                               f"for {interp.label} (log: {log_path})")
        with open(stamp, "w", encoding="utf-8") as f:
            f.write(fingerprint + "\n")
    return python


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def _pip_step(cmd: list, log, failure: str) -> None:
    import subprocess

    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace")
    if log is not None:
        log.write(f"$ {' '.join(cmd)}\n{done.stdout}\n")
        log.flush()
    if done.returncode != 0:
        lines = [line for line in done.stdout.splitlines()
                 if line.strip() and not line.startswith("WARNING: Location")]
        raise InterpreterFailed(f"{failure}: {lines[-1].strip() if lines else 'no output'}")


class _locked:
    """An exclusive lock on a file (POSIX flock; a no-op where there is none)."""

    def __init__(self, path: str):
        self.path = path
        self.file = None

    def __enter__(self):
        self.file = open(self.path, "a")
        try:
            import fcntl

            fcntl.flock(self.file, fcntl.LOCK_EX)
        except ImportError:
            pass
        return self

    def __exit__(self, *exc):
        self.file.close()  # closing releases the lock


# --- running each interpreter -------------------------------------------------------------

#: compare options not handed to the children: the parent owns them.
_NOT_FORWARDED = {"python", "json", "plot", "help", "command", "debug"}


def _compare_parser():
    import argparse

    from gillab.__main__ import create_parser

    for action in create_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["compare"]
    raise LookupError("no compare subcommand")  # pragma: no cover


def forwarded_args(args) -> list:
    """The user's compare options, as command-line words for a child ``compare``.

    Generic over the parser, so an option added to compare later is forwarded too.
    """
    import argparse

    words = ["--debug"] if getattr(args, "debug", False) else []
    words.append("compare")
    for action in _compare_parser()._actions:
        if action.dest in _NOT_FORWARDED or not action.option_strings:
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


def _child_command(python: str, words: list, extra_path: str | None) -> list:
    """``python -I -m gillab WORDS``; with --target, the user's directory joins the end
    of sys.path, after site-packages, so their module imports and gillab stays the
    installed one."""
    if extra_path is None:
        return [python, "-I", "-m", "gillab", *words]
    boot = ("import sys; sys.path.append(sys.argv.pop(1)); "
            "from gillab.__main__ import main; sys.exit(main(sys.argv[1:]))")
    return [python, "-I", "-c", boot, extra_path, *words]


def run_child(cmd: list, cwd: str, on_line=lambda line: None, grace_s: float = 5.0):
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
                            start_new_session=True)
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


def _run_host(args, json_path: str) -> None:
    """The host's matrix, in this process, as ``compare`` without --python runs it."""
    import argparse

    from gillab.__main__ import cmd_compare

    host_args = argparse.Namespace(**vars(args))
    host_args.python, host_args.json, host_args.plot = None, json_path, None
    cmd_compare(host_args)


def _child_failure(code: int, tail: list) -> str:
    errors = [line for line in tail if line.startswith("gillab")]
    last = errors[-1] if errors else (tail[-1] if tail else "no output")
    return f"exited with code {code}: {last}"


def compare_across(args) -> list:
    """``compare --python PATH ...``: the matrix under the host, then each interpreter;
    one side-by-side report, one JSON (written once, atomically, at the end)."""
    import tempfile

    from gillab import kernels
    from gillab.results import load_run, write_json_atomic

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    interpreters = select_interpreters(args.python)
    checkout = fingerprint = None
    if any(not i.host for i in interpreters):
        checkout = find_checkout()
        fingerprint = source_fingerprint(checkout)
    words = forwarded_args(args)
    extra_path = os.getcwd() if getattr(args, "target", None) else None
    runs, failures = [], []
    with tempfile.TemporaryDirectory(prefix="gillab-across-") as tmp:
        for number, interp in enumerate(interpreters, 1):
            out = os.path.join(tmp, f"run{number}.json")
            say(f"gillab: [{number}/{len(interpreters)}] {interp.label}: {interp.path}"
                + (" (this interpreter)" if interp.host else ""))
            if interp.host:
                _run_host(args, out)
            else:
                try:
                    python = ensure_venv(interp, checkout, fingerprint, say)
                    code, tail = run_child(
                        _child_command(python, [*words, "--json", out], extra_path),
                        cwd=tmp, on_line=lambda line, lab=interp.label: say(f"  {lab}: {line}"))
                except InterpreterFailed as exc:
                    code, tail = None, [str(exc)]
                if code == 130:
                    raise KeyboardInterrupt
                if code != 0 or not os.path.exists(out):
                    reason = tail[-1] if code is None else _child_failure(code, tail)
                    failures.append(f"{interp.label} ({interp.path}): {reason}")
                    say(f"gillab: {interp.label} did not run: {reason}")
                    continue
            runs.append((interp.label, load_run(out)))
    run, envs = merge_runs(runs)
    if args.json:
        write_json_atomic(args.json, to_json(run, envs))
    if args.plot:
        from gillab.report import write_plot

        write_plot(_relabelled(run), args.plot)
    descriptions = {name: k.description for name, k in kernels.KERNELS.items()}
    lines = format_side_by_side(run, envs, descriptions)
    if failures:
        # What did run is still reported; the exit status says that something did not.
        for line in lines:
            print(line)
        raise UserError("; ".join(failures))
    return lines


# --- one run out of several ---------------------------------------------------------------


def merge_runs(runs: list):
    """[(label, CompareRun), ...] -> (one CompareRun whose cells and skips carry their
    interpreter's label, {label: env}). The host's run comes first and gives ``env``."""
    from gillab.results import CompareRun

    cells, skipped, envs = [], [], {}
    settings: dict = {}
    for label, run in runs:
        envs[label] = run.env
        settings = settings or dict(run.settings)
        cells += [dataclasses.replace(c, interpreter=label) for c in run.cells]
        skipped += [{**s, "interpreter": label} for s in run.skipped]
    settings["interpreters"] = [{"label": label, "python": run.env.get("python"),
                                 "executable": run.env.get("executable")}
                                for label, run in runs]
    host_env = runs[0][1].env if runs else {}
    return CompareRun(host_env, tuple(cells), settings, tuple(skipped)), envs


def to_json(run, envs: dict) -> dict:
    """The ``compare --json`` object (schema gillab/compare/1) with ``envs`` beside ``env``."""
    data = run.to_dict()
    ordered = {"schema": data.pop("schema"), "env": data.pop("env"), "envs": envs}
    ordered.update(data)
    return ordered


def load_across(path: str):
    """(CompareRun, {label: env}) from a ``compare --python --json`` file (or a plain one)."""
    from gillab.results import load_run

    run = load_run(path)
    with open(path, encoding="utf-8") as f:
        envs = json.load(f).get("envs")
    if not envs:
        label = next((c.interpreter for c in run.cells if c.interpreter), None) or "this"
        envs = {label: run.env}
    return run, envs


def _relabelled(run):
    """For the plot: each interpreter's executors as lines of their own."""
    return dataclasses.replace(run, cells=tuple(
        dataclasses.replace(c, executor=f"{c.executor} [{c.interpreter}]")
        for c in run.cells))


# --- the side-by-side table ----------------------------------------------------------------

WIDTH = 80
_COL = 30   # one interpreter's columns: "  speedup cores verdict"


def _row_key(cell) -> tuple:
    return cell.executor, cell.workers, cell.shape


def _row_name(key) -> str:
    executor, _, shape = key
    return f"{executor} {shape}" if shape else executor


def _speed(cell) -> str:
    return "-" if cell.speedup is None else f"{cell.speedup:6.2f}x"


def _cols(cell, skip_reason) -> str:
    if cell is None:
        return f"  {'-':>7} {'':>5} {'skipped' if skip_reason else '-':<14}"
    cores = "-" if cell.cores_used is None else f"{cell.cores_used:5.2f}"
    return f"  {_speed(cell):>7} {cores:>5} {cell.verdict:<14}"


def _wrap(text: str, indent: str = "", hang: str = "    ") -> list:
    import textwrap

    return textwrap.wrap(text, WIDTH, initial_indent=indent,
                         subsequent_indent=indent + hang) or [""]


def _ns_per_iter(cells) -> str | None:
    serial = next((c for c in cells if c.executor == "serial"), None)
    if serial is None or not serial.n or not serial.serial_s:
        return None
    return f"{serial.serial_s / serial.n * 1e9:.1f}"


def format_side_by_side(run, envs: dict, descriptions: dict | None = None) -> list:
    """One table per kernel: rows executor x workers, columns speedup, cores and verdict
    for each interpreter (80 columns for two); each env on top, the changes below."""
    from gillab.report import format_env_line

    descriptions = descriptions or {}
    labels = list(envs)
    width = max(len(lab) for lab in labels)
    skipped = {(s.get("interpreter"), s["executor"]): s["reason"] for s in run.skipped}
    lines = ["gillab compare, side by side"]
    for label in labels:
        lines += _wrap(f"{label:<{width}}  {format_env_line(envs[label])}", indent="  ",
                       hang=" " * (width + 2))
    lines += _wrap("k identical tasks on k workers. speedup = k x T(serial) / T(cell), each "
                   "interpreter against its own serial run; cores = CPU seconds / wall "
                   "seconds; ns/iter = one serial task's time per loop iteration.")
    kernels_seen = list(dict.fromkeys(c.kernel for c in run.cells))
    for kernel in kernels_seen:
        cells = [c for c in run.cells if c.kernel == kernel]
        by = {(c.interpreter, _row_key(c)): c for c in cells}
        rows = list(dict.fromkeys(_row_key(c) for c in cells))
        speeds = []
        for label in labels:
            ns = _ns_per_iter([c for c in cells if c.interpreter == label])
            if ns:
                speeds.append(f"{label} {ns}")
        title = kernel + (f" (ns/iter: {', '.join(speeds)})" if speeds else "")
        lines += ["", title, f"  {descriptions.get(kernel, 'your function (--target)')}"]
        lines.append(" " * 17 + "".join(f"  {('-- ' + lab + ' '):-<{_COL - 2}}"
                                        for lab in labels))
        lines.append((f"  {'executor':<13}{'w':>2}"
                      + f"  {'speedup':>7} {'cores':>5} {'verdict':<14}" * len(labels)).rstrip())
        changed = []
        for key in rows:
            row = [by.get((label, key)) for label in labels]
            lines.append(
                (f"  {_row_name(key):<13}{key[1]:>2}"
                 + "".join(_cols(cell, skipped.get((label, key[0])))
                           for label, cell in zip(labels, row))).rstrip())
            present = [(label, c) for label, c in zip(labels, row) if c is not None]
            # Say why where the interpreters disagree: not for the baseline or one
            # worker, and not where noise (listed below) left no verdict to compare.
            if (key[0] != "serial" and key[1] > 1 and len(present) > 1
                    and len({c.verdict for _, c in present}) > 1
                    and not any(c.verdict == "noisy" for _, c in present)):
                changed.append((key, present))
        for key, present in changed:
            parts = "; ".join(f"{label} {c.verdict} ({c.reason})" for label, c in present)
            lines += _wrap(f"{_row_name(key)} x{key[1]}: {parts}", indent="  ")
    if skipped:
        lines.append("")
    for (label, executor), reason in skipped.items():
        lines += _wrap(f"skipped on {label}: {executor}: {reason}")
    lines += _free_threading_notes(envs)
    noisy = [c for c in run.cells if c.verdict == "noisy"]
    wrong = [c for c in run.cells if c.verdict == "wrong"]
    if noisy:
        where = "; ".join(
            f"{label}: " + ", ".join(f"{c.kernel}/{c.executor} x{c.workers}"
                                     for c in noisy if c.interpreter == label)
            for label in labels if any(c.interpreter == label for c in noisy))
        lines += ["", *_wrap(f"WARNING: {len(noisy)} cell(s) ran while other processes took "
                             f"the CPU (noise guard); their figures may be unstable: {where}")]
    if wrong:
        lines += ["", f"ERROR: {len(wrong)} cell(s) failed or gave a wrong answer:"]
        for c in wrong:
            lines += _wrap(f"{c.interpreter} {c.kernel}/{c.executor} x{c.workers}: "
                           f"{c.reason}", indent="  ")
    return lines


def _free_threading_notes(envs: dict) -> list:
    """What a free-threaded build means for the table: said once, in words."""
    lines = []
    off = [lab for lab, env in envs.items()
           if env.get("free_threaded_build") and not env.get("gil_enabled", True)]
    back_on = [lab for lab, env in envs.items()
               if env.get("free_threaded_build") and env.get("gil_enabled", True)]
    if off:
        names = ", ".join(off)
        lines += ["", *_wrap(
            f"free-threaded: {names} {'is a build' if len(off) == 1 else 'are builds'} "
            "without a GIL (PEP 703), and it stayed off with gillab imported. There the "
            "\"GIL-holding\" kernels (py, cy_gil, bigint) hold nothing: their threads run "
            "on every core, as cy_nogil's do everywhere. ns/iter compares one thread's "
            "speed: what running without a GIL costs a single thread (mixed with what "
            "changed between the versions). gevent does not support free-threading, so "
            "its cells are skipped there.")]
    if back_on:
        lines += ["", *_wrap(
            f"WARNING: {', '.join(back_on)} is a free-threaded build, but its GIL was on "
            "during the run (PYTHON_GIL=1, -X gil=1, or an extension module that does not "
            "declare free-threading support): its threads were GIL-bound as on a "
            "default build.")]
    return lines


# --- inside a subinterpreter -------------------------------------------------------------
# executors.Interpreters runs these in subinterpreters that have their own GIL
# (PEP 684). Extension modules must declare that they can load there: psutil does not
# (gillab.measure imports it only where it is used, never in run_task), and
# gillab._kernels is built with Cython's `subinterpreters_compatible` directive.

_SETUP_ERROR: str | None = None


def subinterpreter_setup(sys_path=None) -> None:
    """First thing in each subinterpreter: the parent's sys.path, then gillab's kernels
    and measuring code imported. Never raises: a failure is kept for
    ``subinterpreter_warm`` to report (an initializer that raises is only logged)."""
    global _SETUP_ERROR
    if sys_path:
        sys.path[:] = list(sys_path)
    try:
        import gillab._kernels  # noqa: F401
    except ImportError as exc:
        _SETUP_ERROR = (f"gillab._kernels cannot load in a subinterpreter with its own GIL "
                        f"({exc}); it needs Cython's subinterpreters_compatible='own_gil'")
        return
    try:
        import gillab.kernels  # noqa: F401
        import gillab.measure  # noqa: F401
    except ImportError as exc:
        _SETUP_ERROR = f"gillab cannot be imported in a subinterpreter: {exc}"


def subinterpreter_warm(seconds: float = 0.0) -> int:
    """Report a failed setup, else sleep (k overlapping sleeps start k pool workers)."""
    import time

    if _SETUP_ERROR:
        raise ImportError(_SETUP_ERROR)
    time.sleep(seconds)
    return 0


def subinterpreter_run_task(task):
    """measure.run_task inside a subinterpreter (after ``subinterpreter_setup``)."""
    if _SETUP_ERROR:
        raise ImportError(_SETUP_ERROR)
    from gillab.measure import run_task

    return run_task(task)


def subinterpreter_run_pickled(payload: bytes, fd: int) -> None:
    """3.13's low-level module passes only simple objects: a pickled Task in, a
    pickled TaskResult out through a pipe the parent reads."""
    import pickle

    data = pickle.dumps(subinterpreter_run_task(pickle.loads(payload)))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


#: Run by executors.Interpreters and subinterpreter_problem in a new subinterpreter.
SETUP_SCRIPT = """\
import sys
sys.path[:] = path.split("\\0")
from gillab.interpreters import subinterpreter_setup, subinterpreter_warm
subinterpreter_setup()
subinterpreter_warm(0)
"""
RUN_SCRIPT = """\
from gillab.interpreters import subinterpreter_run_pickled
subinterpreter_run_pickled(task, fd)
"""


def subinterpreter_problem() -> str | None:
    """Why gillab's kernels cannot run in subinterpreters on this Python, or None.

    Asked once per run (compare skips the executor with the reason): a throwaway
    subinterpreter tries the imports a worker would do.
    """
    if sys.version_info < (3, 13):
        return (f"subinterpreters need Python 3.13+ "
                f"(this is {sys.version_info.major}.{sys.version_info.minor})")
    try:
        import _interpreters
    except ImportError:
        return "this Python was built without the _interpreters module"
    try:
        interp = _interpreters.create()
    except Exception as exc:  # a runtime that cannot make one: the reason, in one line
        return f"cannot create a subinterpreter: {exc}"
    try:
        failure = _interpreters.exec(interp, SETUP_SCRIPT,
                                     shared={"path": "\0".join(sys.path)})
    except Exception as exc:  # the module refused the call itself: same, in one line
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        _interpreters.destroy(interp)
    if failure is None:
        return None
    return getattr(failure, "msg", None) or str(failure)


# --- for CI and scripts -----------------------------------------------------------------


def main(argv=None) -> int:
    """``python -m gillab.interpreters venv PYTHON``: make (or reuse) the venv compare
    --python would use for PYTHON and print its python's path (for .ci/free-threaded)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gillab.interpreters")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("venv", help="print the path of PYTHON's venv python, made if need be")
    p.add_argument("python", metavar="PYTHON")
    args = parser.parse_args(argv)
    try:
        chosen = make_labels([probe(args.python)])[0]
        print(ensure_venv(chosen, find_checkout(),
                          say=lambda text: print(text, file=sys.stderr, flush=True)))
    except (UsageError, UserError, InterpreterFailed) as exc:
        print(f"gillab: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
