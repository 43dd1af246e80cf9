"""gillab: a GIL laboratory.

The same CPU-bound loop as pure Python, as C holding the GIL and as C releasing
it, run under threads, processes, pools and greenlets, measured on this machine.
"""
from gillab._version import __version__

import sys as _sys

if _sys.argv[:1] == ["-m"] or _sys.argv[0].endswith(("/gillab", "\\gillab.exe")):
    # Being started as the program (python -m gillab: runpy imports this package with
    # argv[0] still "-m"; or the console script): Ctrl-C while the modules load exits
    # 130 at once instead of a KeyboardInterrupt traceback from inside an import.
    import os as _os
    import signal as _signal

    def _interrupted_early(signum, frame):
        _os.write(2, b"gillab: interrupted\n")
        _os._exit(130)

    _signal.signal(_signal.SIGINT, _interrupted_early)

__all__ = ["__version__", "Kernel", "KERNELS", "CPU_KERNELS", "get", "check",
           "load_ipython_extension"]


def load_ipython_extension(ipython):
    """`%load_ext gillab`: the %gillab line magic and %%gillab cell magic."""
    from gillab.ipython import load_ipython_extension as load

    load(ipython)


def __getattr__(name):
    # Lazy, so `python -m gillab` can report a missing extension in one line
    # instead of failing inside the package import.
    if name in ("Kernel", "KERNELS", "CPU_KERNELS", "get"):
        from gillab import kernels

        return getattr(kernels, name)
    if name == "check":  # gillab.check(statement, setup="", globals=None, ...)
        from gillab.checker.api import check

        return check
    raise AttributeError(f"module 'gillab' has no attribute {name!r}")
