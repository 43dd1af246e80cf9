"""What reaches the terminal: verdict words in colour on a terminal (plain text when
piped, the same columns), output that survives an ASCII-only terminal, and user code's
prints kept off the stdout that carries the results."""
from __future__ import annotations

import os
import sys

__all__ = ["ascii_safe_output", "print_lines", "wants_colour", "VERDICT_STYLES",
           "stdout_to_stderr"]


#: Characters of the report an ASCII-only terminal cannot show, and what it shows instead.
_ASCII = {"\u2014": "-", "\u2013": "-", "\u2713": "y", "\u2717": "x", "\u00d7": "x",
          "\u2026": "...", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2265": ">=",
          "\u2264": "<=", "\u00b5": "u"}


def _ascii_fallback(exc):
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text = exc.object[exc.start:exc.end]
    return "".join(_ASCII.get(ch, "?") for ch in text), exc.end


def ascii_safe_output() -> None:
    """Output survives a terminal that cannot show every character (PYTHONIOENCODING=
    ascii, a C locale): an em dash becomes '-', a check mark 'y', anything else '?'."""
    import codecs

    codecs.register_error("gillab-ascii", _ascii_fallback)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="gillab-ascii")
        except (AttributeError, ValueError):  # not a text stream we can reconfigure
            pass


#: Verdict words and how a terminal shows them (the same words, coloured).
VERDICT_STYLES = {
    "parallel": "bold green", "IO-overlapped": "bold green", "GIL-bound": "bold red",
    "serialized": "yellow", "overhead-bound": "yellow", "contended": "yellow",
    "noisy": "magenta",
    "wrong": "bold red",
}


def wants_colour(stream) -> bool:
    """Colour on a terminal, plain text when piped; NO_COLOR and FORCE_COLOR decide first
    (https://no-color.org)."""
    import os

    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def print_lines(lines, stream=None) -> None:
    """Print a command's lines; on a terminal the verdict words are coloured (rich), the
    text and its columns unchanged."""
    stream = stream or sys.stdout
    if not wants_colour(stream):
        for line in lines:
            print(line, file=stream)
        return
    import re

    from rich.console import Console
    from rich.text import Text

    console = Console(file=stream, highlight=False, soft_wrap=True, force_terminal=True,
                      emoji=False, markup=False)
    pattern = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, VERDICT_STYLES))
                         + r")(?![\w-])")
    for line in lines:
        text = Text(line)
        for match in pattern.finditer(line):
            text.stylize(VERDICT_STYLES[match.group(1)], match.start(), match.end())
        console.print(text)


class stdout_to_stderr:
    """While inside, file descriptor 1 and sys.stdout point at stderr; on exit both are
    put back. Worker processes started meanwhile inherit the redirection, so what user
    code prints never mixes with the results written to stdout afterwards."""

    def __enter__(self):
        sys.stdout.flush()
        self._saved_fd = os.dup(1)
        self._saved = sys.stdout
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        return self

    def __exit__(self, *exc):
        try:
            sys.stderr.flush()
        except Exception:  # stderr gone: stdout still goes back
            pass
        os.dup2(self._saved_fd, 1)
        os.close(self._saved_fd)
        sys.stdout = self._saved
        return False
