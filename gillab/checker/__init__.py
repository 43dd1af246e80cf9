"""`gillab check`: does this call release the GIL, and would threads help it?

    >>> import gillab
    >>> r = gillab.check("hashlib.sha256(data)", "import hashlib; data = bytes(1 << 20)")
    >>> r.verdict, r.practical, r.releases_gil
    ('releases the GIL', 'threads help', True)

Modules, in the order data flows: statement (what runs), measure (clocks, the only
one that reads them), api (rounds and summary), judge (verdict), record (JSON),
report (lines), cli (the subcommand). Loaded lazily: building the CLI's parser must
not import the compiled extension.
"""
__all__ = ["check", "CheckResult", "CheckSweep", "Workers", "SCHEMA", "StatementFailed"]

_WHERE = {"check": "api", "StatementFailed": "api", "CheckResult": "record",
          "CheckSweep": "record", "Workers": "record", "SCHEMA": "record"}


def __getattr__(name):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"gillab.checker.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'gillab.checker' has no attribute {name!r}")
