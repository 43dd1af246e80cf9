"""Is the GIL on right now, and which import turned it back on? One helper for every command.

A free-threaded CPython (3.13t and later) starts with its GIL off, and turns it on for
good, with a RuntimeWarning, the first time it imports an extension module that has not
declared ``Py_mod_gil`` ("The global interpreter lock (GIL) has been enabled to load
module 'X', which has not declared that it can run safely without the GIL..."). Every
figure measured after that is the GIL's. ``watch_gil()`` records the state before and
after a block and the modules named by that warning, so a report can say so.

Feature checks only (``sys._is_gil_enabled`` where it exists, the build's
``Py_GIL_DISABLED``), never version checks: a later CPython that keeps the function and
the warning's wording is read the same way. No clocks, no printing.
"""
from __future__ import annotations

import re
import sys
import sysconfig
import warnings
from dataclasses import dataclass, field

__all__ = ["gil_enabled", "free_threaded_build", "watch_gil", "GilWatch",
           "modules_named", "ENABLED_WARNING"]

#: The start of CPython's warning (Python/import.c, _PyImport_CheckGILForModule).
ENABLED_WARNING = "The global interpreter lock (GIL) has been enabled to load module"
_MODULE = re.compile(re.escape(ENABLED_WARNING) + r" '([^']+)'")


def free_threaded_build() -> bool:
    """True on a CPython built with --disable-gil (PEP 703)."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool | None:
    """Whether the GIL is on right now: ``sys._is_gil_enabled()`` where it exists; True
    on a build with a GIL (it cannot be off); None on a free-threaded build that cannot
    say (no such function)."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    if is_enabled is not None:
        return bool(is_enabled())
    return None if free_threaded_build() else True


def modules_named(messages) -> list:
    """The modules CPython's GIL warnings name, in order, each once."""
    names: list = []
    for text in messages:
        match = _MODULE.search(str(text))
        if match and match.group(1) not in names:
            names.append(match.group(1))
    return names


@dataclass
class GilWatch:
    """What ``watch_gil`` saw: the GIL before, at each ``mark``, and after the block,
    and the modules whose import turned it on (``enabled_by``, [] when none)."""

    before: bool | None = None
    after: bool | None = None
    marks: dict = field(default_factory=dict)
    enabled_by: list = field(default_factory=list)

    def mark(self, name: str) -> bool | None:
        """Read the GIL now (e.g. "setup": after SETUP ran) and keep it under ``name``."""
        self.marks[name] = gil_enabled()
        return self.marks[name]

    def env_fields(self) -> dict:
        """``gil_enabled`` as measured at the end, and ``gil_enabled_by``: for an env."""
        return {"gil_enabled": self.after if self.after is not None else gil_enabled(),
                "gil_enabled_by": list(self.enabled_by)}


class watch_gil:
    """``with watch_gil() as watch:`` records the GIL before and after the block and
    the modules CPython names when an import inside it turns the GIL on.

    Warnings raised in the block are recorded, then shown again as they would have been
    (same category, file and line), except the GIL warnings, which become
    ``enabled_by``. Inside the block the GIL warning always shows, even under an
    "error" filter: the import it comes from must finish for the check to measure
    anything, and the record says what happened. Like warnings.catch_warnings, not
    safe to nest across threads; use it around a whole run, in one thread.
    """

    def __init__(self):
        self.watch = GilWatch()
        self._catcher = None
        self._seen: list = []

    def __enter__(self) -> GilWatch:
        self.watch.before = gil_enabled()
        self._catcher = warnings.catch_warnings(record=True)
        self._seen = self._catcher.__enter__()
        warnings.filterwarnings("always", message=re.escape(ENABLED_WARNING),
                                category=RuntimeWarning)
        return self.watch

    def __exit__(self, *exc) -> bool:
        self._catcher.__exit__(*exc)
        self.watch.after = gil_enabled()
        gil_messages = [w.message for w in self._seen if ENABLED_WARNING in str(w.message)]
        for name in modules_named(gil_messages):
            if name not in self.watch.enabled_by:
                self.watch.enabled_by.append(name)
        for w in self._seen:
            if ENABLED_WARNING not in str(w.message):
                warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file,
                                     w.line)
        return False
