"""Which Pythons to run: each --python PATH probed (with a timeout), labelled, and
expanded into one run per GIL setting (--gil) where it is a free-threaded build."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass

from gillab.core.errors import UsageError

__all__ = ["Interpreter", "probe", "host_interpreter", "make_labels", "select_interpreters",
           "GIL_CHOICES", "MIN_VERSION", "probe_timeout_s"]

#: gillab needs this much Python (pyproject's requires-python).
MIN_VERSION = (3, 10)
#: --gil: the GIL of a free-threaded --python, off (its default), forced on, or both.
GIL_CHOICES = ("off", "on", "both")

# Run under each candidate: what it is, without importing gillab. Written so that
# even a Python 2 answers (and is then refused by its version, in one line).
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


def probe_timeout_s() -> float:
    """Seconds a Python may take to say what it is: $GILLAB_PROBE_TIMEOUT_S, else 20."""
    try:
        return max(0.1, float(os.environ.get("GILLAB_PROBE_TIMEOUT_S", "20")))
    except ValueError:
        return 20.0


@dataclass(frozen=True)
class Interpreter:
    """One run of the matrix: a Python, and for a free-threaded one its GIL setting.
    ``label`` names the run in tables and JSON ("3.13t", "3.13t+GIL")."""

    path: str               # as the user gave it (sys.executable for the host)
    version: str            # "3.13.5"
    build: str              # sys.version: tells two builds of one version apart
    implementation: str     # "CPython"
    free_threaded: bool     # built with --disable-gil (PEP 703)
    host: bool = False      # the interpreter running this command
    label: str = ""
    gil: str | None = None  # "off" or "on": -X gil=0/1 for a free-threaded run


def probe(path: str, timeout_s: float | None = None) -> Interpreter:
    """Ask the Python at ``path`` what it is; UsageError (one line) if it is not one,
    is too old, or does not answer within ``timeout_s``."""
    import shutil
    import subprocess

    timeout_s = probe_timeout_s() if timeout_s is None else timeout_s
    if os.sep not in path:  # a bare name, like python3.12: look it up on PATH
        path = shutil.which(path) or path
    if not os.path.exists(path):
        raise UsageError(f"--python {path}: no such file")
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise UsageError(f"--python {path}: not an executable file")
    try:
        # A session of its own: on a timeout the whole group goes, grandchildren too.
        # -E -s and cwd /, not -I (which Python 2 lacks): so that an old Python is
        # told by its version, and nothing in the user's directory shadows the stdlib.
        proc = subprocess.Popen([path, "-E", "-s", "-c", _PROBE], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, errors="replace", start_new_session=True,
                                cwd=os.path.abspath(os.sep))
    except OSError:
        raise UsageError(f"--python {path}: does not run as a Python interpreter") from None
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise UsageError(f"--python {path}: did not answer within {timeout_s:g} s "
                         "when asked its version (is it a Python?)") from None
    except BaseException:
        _kill_group(proc)
        raise
    try:
        info = json.loads(out)
        version_info = tuple(info["version_info"])
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"--python {path}: does not run as a Python interpreter") from None
    if version_info < MIN_VERSION:
        raise UsageError(f"--python {path}: gillab needs Python "
                         f"{'.'.join(map(str, MIN_VERSION))}+, this is {info['version']}")
    return Interpreter(path, info["version"], info["build"], info["implementation"],
                       bool(info["free_threaded"]))


def _kill_group(proc) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.communicate()


def host_interpreter() -> Interpreter:
    """The Python running this command."""
    import platform
    import sysconfig

    return Interpreter(sys.executable, platform.python_version(), sys.version,
                       platform.python_implementation(),
                       bool(sysconfig.get_config_var("Py_GIL_DISABLED")), host=True)


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def make_labels(interpreters: list) -> list:
    """Short, unique names: "3.11", "3.13t" (t: free-threaded, as CPython spells it),
    "3.13t+GIL" (the same build with its GIL forced on); the full version where two
    share a minor version, "#2" where even that repeats."""
    def suffix(i):
        return ("t" if i.free_threaded else "") + ("+GIL" if i.gil == "on" else "")

    def short(i):
        return ".".join(i.version.split(".")[:2]) + suffix(i)

    def full(i):
        return i.version + suffix(i)

    labels = [short(i) for i in interpreters]
    labels = [full(i) if labels.count(lab) > 1 else lab
              for i, lab in zip(interpreters, labels)]
    seen: dict = {}
    unique = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        unique.append(lab if seen[lab] == 1 else f"{lab}#{seen[lab]}")
    return [dataclasses.replace(i, label=lab) for i, lab in zip(interpreters, unique)]


def select_interpreters(paths, gil: str | None = None, host: Interpreter | None = None,
                        probe_func=probe) -> list:
    """The host first, then each --python PATH once (the host too if named again); a
    free-threaded one once per GIL setting of ``gil`` (default "off"; "both": off, then
    on). UsageError if ``gil`` is given and no --python is a free-threaded build."""
    host = host or host_interpreter()
    others = probe_each(paths, gil, probe_func, known=[host])
    return make_labels([host] + with_gil_settings(others, gil or "off"))


def probe_each(paths, gil: str | None, probe_func=probe, known=()) -> list:
    """Each PATH probed once (one already in ``known`` or named twice is skipped); what
    a ``--gil`` given with them asks is checked here, before anything runs."""
    if gil is not None and gil not in GIL_CHOICES:
        raise UsageError(f"--gil {gil}: choose from {', '.join(GIL_CHOICES)}")
    found: list = []
    for path in paths:
        if not any(_same_file(path, i.path) for i in [*known, *found]):
            found.append(probe_func(path))
    if gil is not None and not any(i.free_threaded for i in found):
        named = found[0].path if found else "--python"
        raise UsageError(f"--gil {gil}: {named} is a build with a GIL (only a free-threaded "
                         "build, such as 3.13t, can switch its GIL off and on)")
    return found


def with_gil_settings(interpreters, gil: str | None) -> list:
    """A free-threaded interpreter once per setting of ``gil`` ("both": off, then on;
    None: as the build runs), any other once as it is."""
    settings = {"off": ("off",), "on": ("on",), "both": ("off", "on"), None: (None,)}[gil]
    runs = []
    for interp in interpreters:
        if interp.free_threaded:
            runs += [dataclasses.replace(interp, gil=g) for g in settings]
        else:
            runs.append(interp)
    return runs
