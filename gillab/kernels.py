"""The lab's kernels: one registry of named tasks and their pure-Python twins.

Every CPU kernel computes n! mod p by the same loop, so the only thing that
changes between them is how the loop runs: as bytecode, as C holding the GIL,
or as C releasing it. ``py_shared`` is the bytecode loop that also writes one object
every worker of a process shares: with a GIL it takes turns like ``py``; without
one (a free-threaded build) its threads fight over that object. ``sleep`` is the
lesson's IO-bound task.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from gillab.core.descriptions import KERNEL_DESCRIPTIONS

try:
    from gillab import _kernels
except ImportError as exc:  # no silent pure-Python fallback
    raise ImportError(
        "gillab's compiled extension gillab._kernels is missing "
        f"({exc}); build it with `pip install -e .` from the source tree "
        "(needs a C compiler and Python headers)"
    ) from None

__all__ = ["Kernel", "KERNELS", "CPU_KERNELS", "DEFAULT_P", "get", "names", "default_names",
           "fact_mod_py", "fact_mod_shared", "fact_mod_bigint", "sleep", "reference", "Task",
           "load_target"]

#: The default modulus: the Mersenne prime 2**61 - 1, so n! mod p is never 0 for
#: the n the lab runs, and every product r * i needs more than 64 bits.
DEFAULT_P = 2**61 - 1

check_args = _kernels.check_args


def fact_mod_py(n: int, p: int) -> int:
    """n! mod p in pure Python: the loop runs as bytecode, holding the GIL."""
    check_args(n, p)
    r = 1
    for i in range(1, n + 1):
        r = r * i % p
    return r


#: The one object every py_shared task of a process writes. A dict, because of the
#: shared objects tried on 3.13t with its GIL off (a dict store, a list append/pop, an
#: attribute of one object, a module-level counter), two threads storing into one
#: dict ran slowest beside one thread while both cores stayed busy: each store takes
#: the dict's own lock and moves its cache lines and reference counts between cores.
_SHARED: dict = {}


def fact_mod_shared(n: int, p: int) -> int:
    """n! mod p by the ``py`` loop, storing each step into one dict all threads share.

    The store changes nothing in the answer; it is the lesson: without a GIL, threads
    that write one object contend for it however many cores they keep busy.
    """
    check_args(n, p)
    shared = _SHARED
    r = 1
    for i in range(1, n + 1):
        r = r * i % p
        shared["r"] = r
    return r


def fact_mod_bigint(n: int, p: int) -> int:
    """The lesson's own loop: the full n! as a Python int, then % p."""
    check_args(n, p)
    res = 1
    for i in range(1, n + 1):
        res *= i
    return res % p


def sleep(seconds: float) -> float:
    """The lesson's IO-bound task: sleep, releasing the GIL. Returns seconds."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number, not {type(seconds).__name__}")
    if not seconds >= 0:  # also rejects NaN
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    time.sleep(seconds)
    return seconds


async def sleep_async(seconds: float) -> float:
    """sleep's awaitable form: an event loop awaits it and runs other coroutines meanwhile
    (time.sleep would block the loop's one thread). Returns seconds."""
    import asyncio

    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number, not {type(seconds).__name__}")
    if not seconds >= 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    await asyncio.sleep(seconds)
    return seconds


def reference(n: int, p: int) -> int:
    """The answer every CPU kernel must give, from the plain C loop."""
    return _kernels.c_reference(n, p)


@dataclass(frozen=True)
class Kernel:
    """A named task the lab can run. CPU kernels take (n, p); ``sleep`` takes seconds."""

    name: str
    func: Callable
    releases_gil: bool
    description: str
    io_bound: bool = False
    #: Every task writes one object shared by all workers of its process: its threads
    #: contend without a GIL. In the default matrix of a free-threaded build only (where
    #: it teaches something: see default_names); elsewhere asked for by name.
    shares_state: bool = False

    def __call__(self, *args):
        return self.func(*args)

    @property
    def awaitable(self) -> Callable | None:
        """The coroutine function an event loop awaits instead of calling ``func`` (an IO
        kernel's non-blocking form), or None: the loop then calls ``func`` inline."""
        return _AWAITABLE.get(self.func)


KERNELS: dict[str, Kernel] = {k.name: k for k in (
    Kernel("py", fact_mod_py, False, KERNEL_DESCRIPTIONS["py"]),
    Kernel("py_shared", fact_mod_shared, False, KERNEL_DESCRIPTIONS["py_shared"],
           shares_state=True),
    Kernel("cy_gil", _kernels.fact_mod_gil, False, KERNEL_DESCRIPTIONS["cy_gil"]),
    Kernel("cy_nogil", _kernels.fact_mod_nogil, True, KERNEL_DESCRIPTIONS["cy_nogil"]),
    Kernel("bigint", fact_mod_bigint, False, KERNEL_DESCRIPTIONS["bigint"]),
    Kernel("sleep", sleep, True, KERNEL_DESCRIPTIONS["sleep"], io_bound=True),
)}

#: IO kernels' awaitable forms, by the blocking function they stand for.
_AWAITABLE: dict = {sleep: sleep_async}

CPU_KERNELS = tuple(name for name, k in KERNELS.items() if not k.io_bound)


def names() -> list[str]:
    return list(KERNELS)


def default_names(free_threaded: bool) -> list[str]:
    """The kernels of the default matrix. A kernel that shares state joins it on a
    free-threaded build only: with a GIL its threads take turns exactly as ``py``'s do,
    so the row would repeat ``py``'s; without one it is the row that shows that no GIL
    is not free scaling. Decided by the build, not by the GIL's state, so a build's
    GIL-off and GIL-on runs (``--gil both``) have the same rows side by side."""
    return [name for name, k in KERNELS.items() if not k.shares_state or free_threaded]


def get(name: str) -> Kernel:
    """Return the kernel called ``name``; KeyError lists the valid names."""
    try:
        return KERNELS[name]
    except KeyError:
        raise KeyError(f"unknown kernel {name!r}; choose from {', '.join(KERNELS)}") from None


@dataclass(frozen=True)
class Task:
    """One unit of work, picklable so any executor can ship it to a worker.

    Either a registered kernel with its arguments, or a user's zero-argument
    callable named as "module:function" (``compare --target``).
    """

    kernel: str | None = None
    args: tuple = ()
    target: str | None = None
    calls: int = 1   # calls a task makes: a short --target is looped until it can be timed
    #: Why this task must not run in gillab's own process (a --target that ended its
    #: process or never returned when probed: see gillab.cli.arguments.probe_target), or None.
    unsafe_in_process: str | None = None

    def resolve(self) -> Callable:
        if self.target is None:
            return get(self.kernel)
        return load_target(self.target)

    @property
    def label(self) -> str:
        return self.target or self.kernel


def load_target(spec: str) -> Callable:
    """Import "module:function"; ValueError (one line) if it cannot be had."""
    import importlib

    from gillab.core.errors import one_line

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--target must look like MODULE:FUNC, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # a broken module: one line, not a traceback
        why = one_line(exc)
        raise ValueError(f"cannot import {module_name!r} for --target: {why}") from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise ValueError(f"--target {spec!r} is not callable")
    return obj
