"""gillab: a GIL laboratory.

The same CPU-bound loop as pure Python, as C holding the GIL and as C releasing
it, run under threads, processes, pools and greenlets, measured on this machine.

Importing gillab changes no process state (no signal handler, no fork hook): the
command line installs what it needs when it starts (gillab.__main__.main). It imports
nothing either: ``python -m gillab`` runs this before the CLI can take Ctrl-C, so the
less it does, the shorter the moment a Ctrl-C would print Python's own traceback.
"""
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
    if name == "__version__":
        from gillab._version import __version__

        return __version__
    if name == "check":  # gillab.check(statement, setup="", globals=None, ...)
        from gillab.checker.api import check

        return check
    raise AttributeError(f"module 'gillab' has no attribute {name!r}")
