"""What reaches the terminal: output that survives an ASCII-only terminal."""
from __future__ import annotations

import sys

__all__ = ["ascii_safe_output"]


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
