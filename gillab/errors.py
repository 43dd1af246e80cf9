"""Errors the command line reports in one line, without a traceback."""


class UserError(Exception):
    """A run failed in a way the user should read about: exit 1."""


class UsageError(Exception):
    """The command line asked for something that does not exist: exit 2."""


def check_output_path(path: str, option: str) -> None:
    """Fail before measuring, not after minutes of work, if PATH cannot be written."""
    import os

    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"{option} {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise UsageError(f"{option} {path}: directory {directory} is not writable")
