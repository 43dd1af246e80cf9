"""Are two answers of a statement the same? By content, where ``==`` cannot say.

``==`` is not always a plain bool: numpy arrays answer an array, a symbolic
expression answers another expression, a hash object compares by identity (two
sha256 objects of the same bytes are "different"). check must not call a call's
answers "varies alone" for that: it compares what the values hold. No clocks.
"""
from __future__ import annotations

import math
import re

__all__ = ["same_answer", "hex_digest"]


def _digest(value):
    """A hashlib-like object's (name, digest), or None for anything else."""
    digest = getattr(value, "digest", None)
    if not callable(digest) or not hasattr(value, "digest_size") or not hasattr(value, "name"):
        return None
    try:
        return value.name, digest()
    except TypeError:  # shake_*: digest(length) has no length of its own
        return None


def hex_digest(value) -> tuple[str, str] | None:
    """A hashlib-like object's (name, hex digest), what to show of it: its repr is
    only an address, which differs between equal answers."""
    got = _digest(value)
    return (got[0], got[1].hex()) if got is not None else None


def _buffer(value):
    try:
        view = memoryview(value)
    except TypeError:
        return None
    return view.format, view.shape, view.tobytes()


def _array_equal(a, b) -> bool | None:
    """numpy arrays (or alike): same shape, dtype and values, NaNs in the same places."""
    import sys

    np = sys.modules.get("numpy")
    if np is None or not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return None
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    try:
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    except TypeError:  # object arrays of things without a truth value
        return None


def same_answer(a, b) -> bool | None:
    """True if ``a`` and ``b`` hold the same answer, False if they differ, None if
    that cannot be told (a type whose ``==`` gives no truth value and holds no buffer).

    By content: the same object; re matches by pattern, span, groups and string;
    hash objects by name and digest; numpy arrays by
    shape, dtype and values; a plain bool from ``==``; NaN equals NaN (a call that
    answers NaN every time does not vary); else a truth value of what ``==`` gave;
    else bytes-like values by their buffer (format, shape, bytes).
    """
    if a is b:
        return True
    if isinstance(a, re.Match) and isinstance(b, re.Match):
        # A match compares by identity: two searches that found the same are "equal"
        # by what they found, where, and in what.
        return (a.re, a.span(), a.groups(), a.string) == (b.re, b.span(), b.groups(), b.string)
    digests = _digest(a), _digest(b)
    if digests[0] is not None and digests[1] is not None:
        return digests[0] == digests[1]
    arrays = _array_equal(a, b)
    if arrays is not None:
        return arrays
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        equal = a == b
    except Exception:  # noqa: BLE001 - a type whose == raises: fall back to its buffer
        equal = NotImplemented
    if isinstance(equal, bool):
        return equal
    if equal is not NotImplemented:
        try:
            return bool(equal)
        except Exception:  # noqa: BLE001 - no truth value: not an answer, try the buffers
            pass
    buffers = _buffer(a), _buffer(b)
    if buffers[0] is not None and buffers[1] is not None:
        return buffers[0] == buffers[1]
    return None
