"""Errors the command line reports in one line, without a traceback, and its exit codes."""

#: Exit codes (docs/contract.md): a script can tell what happened from these alone.
EXIT_OK = 0              # every cell measured and answered right (noisy cells included)
EXIT_FAILED = 1          # the run failed: one line on stderr, no table
EXIT_USAGE = 2           # the command line asked for something impossible; nothing ran
EXIT_CELLS_FAILED = 3    # the run finished, table and JSON written, but a cell was wrong
EXIT_INTERRUPTED = 130   # Ctrl-C


class Finished(list):
    """A command's lines, with the exit status they end in when it is not EXIT_OK
    (compare: every cell reported, but one was wrong). A list, so a command's caller
    prints it like any other; the status is returned, never left on the arguments."""

    def __init__(self, lines, status: int = EXIT_OK):
        super().__init__(lines)
        self.status = status


class UserError(Exception):
    """A run failed in a way the user should read about: exit 1."""


class UsageError(Exception):
    """The command line asked for something that does not exist: exit 2."""


#: Pseudo-filesystems: the kernel's own files, never a place for results.
_PSEUDO = ("/proc", "/sys", "/dev")


def check_output_path(path: str, option: str) -> None:
    """Fail before measuring, not after minutes of work, if PATH cannot be written.

    The directory must exist and take a new file (tried, not assumed: os.access says
    yes to root everywhere, /proc and /sys included), and PATH itself, if it exists,
    must be a regular file: the result replaces it by a rename.
    """
    import os
    import tempfile

    if not path or not path.strip():
        raise UsageError(f"{option} needs a file name, got an empty one")
    full = os.path.abspath(path)
    if os.path.isdir(full):
        raise UsageError(f"{option} {path}: is a directory; give a file name inside it")
    real = os.path.realpath(full)
    if any(real == p or real.startswith(p + "/") for p in _PSEUDO):
        raise UsageError(f"{option} {path}: {real.split('/')[1] and '/' + real.split('/')[1]}"
                         " is the kernel's pseudo-filesystem; write somewhere else")
    if os.path.lexists(full) and not os.path.isfile(full):
        raise UsageError(f"{option} {path}: exists and is not a regular file; "
                         "give another file name")
    directory = os.path.dirname(full)
    if not os.path.isdir(directory):
        raise UsageError(f"{option} {path}: directory {directory} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=".gillab-check-", dir=directory)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot write in {directory} "
                         f"({exc.strerror or exc}); choose a writable directory") from None
    os.close(fd)
    os.unlink(probe)


def one_line(exc: BaseException, with_type: bool = True) -> str:
    """``Type: first non-blank line of the message`` (``Type`` for an empty one): how every
    error that ends up in a cell, a verdict or on stderr is shown, never a traceback.
    ``with_type=False``: the first line alone (the type only if there is no message),
    for errors gillab raised itself, whose message says it all."""
    lines = str(exc).strip().splitlines()
    first = lines[0].strip() if lines else ""
    if not with_type:
        return first or type(exc).__name__
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
