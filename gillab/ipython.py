"""IPython/Jupyter: `%load_ext gillab`, then `%gillab STATEMENT` or a `%%gillab` cell.

    %gillab -s "import hashlib; data = bytes(1 << 20)" hashlib.sha256(data)

    %%gillab -s "import zlib; data = bytes(1 << 20)"
    zlib.compress(data)

Options as on the command line: -s SETUP (repeatable), --sweep NAME=V1,V2,
--processes, --timeout S; -o returns the record. The statement runs in the
notebook's namespace (a copy: SETUP's names do not leak into it). In-process, so a
statement that never returns is given up after --timeout but its thread runs on.
"""
from __future__ import annotations

__all__ = ["load_ipython_extension", "gillab_magic"]


def _run(line: str, cell: str | None, user_ns: dict):
    from IPython.core.error import UsageError as IPythonUsageError

    from gillab.checker.api import check
    from gillab.checker.record import CheckSweep
    from gillab.checker.report import format_check, format_sweep
    from gillab.checker.statement import DEFAULT_TIMEOUT_S
    from gillab.core.errors import UsageError, UserError

    opts, statement = _parse(line)
    if cell is not None:
        statement = cell
    if not statement.strip():
        raise IPythonUsageError("%gillab needs a statement: %gillab [-s SETUP] STATEMENT")
    try:
        result = check(statement, opts["setup"], user_ns, sweep=opts["sweep"],
                       processes=opts["processes"],
                       timeout=opts["timeout"] or DEFAULT_TIMEOUT_S)
    except UsageError as exc:
        raise IPythonUsageError(str(exc)) from None
    except UserError as exc:
        print(f"gillab: error: {exc}")
        return None
    lines = format_sweep(result) if isinstance(result, CheckSweep) else format_check(result)
    print("\n".join(lines))
    return result if opts["return"] else None


def _parse(line: str) -> tuple[dict, str]:
    """Options first, as %timeit takes them; the rest of the line is the statement."""
    import shlex

    from IPython.core.error import UsageError as IPythonUsageError

    opts = {"setup": [], "sweep": None, "processes": False, "timeout": None, "return": False}
    rest = line.strip()
    while rest.startswith("-"):
        try:
            lexer = shlex.shlex(rest, posix=True)
            lexer.whitespace_split = True
            option = lexer.get_token()
            takes_value = option in ("-s", "--setup", "--sweep", "--timeout")
            value = lexer.get_token() if takes_value else None
        except ValueError as exc:
            raise IPythonUsageError(f"%gillab: {exc}") from None
        if takes_value and value is None:
            raise IPythonUsageError(f"%gillab: {option} needs a value")
        rest = lexer.instream.read().strip() if hasattr(lexer.instream, "read") else ""
        if option in ("-s", "--setup"):
            opts["setup"].append(value)
        elif option == "--sweep":
            opts["sweep"] = value
        elif option == "--timeout":
            try:
                opts["timeout"] = float(value)
            except ValueError:
                raise IPythonUsageError(f"%gillab: --timeout takes seconds, got {value!r}") \
                    from None
        elif option == "--processes":
            opts["processes"] = True
        elif option == "-o":
            opts["return"] = True
        else:
            raise IPythonUsageError(f"%gillab: unknown option {option}")
    return opts, rest


def gillab_magic(line: str, cell: str | None = None):
    """%gillab STATEMENT / %%gillab: does it release the GIL, would threads help it?"""
    from IPython import get_ipython

    return _run(line, cell, get_ipython().user_ns)


def load_ipython_extension(ipython) -> None:
    ipython.register_magic_function(gillab_magic, magic_kind="line_cell", magic_name="gillab")
