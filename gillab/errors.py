"""Errors the command line reports in one line, without a traceback."""


class UserError(Exception):
    """A run failed in a way the user should read about: exit 1."""


class UsageError(Exception):
    """The command line asked for something that does not exist: exit 2."""
