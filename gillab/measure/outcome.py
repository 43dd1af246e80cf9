"""What measuring one cell gave back, as typed records: the measurement with its
executor's extra fields, or the failure that stopped it. Every path (this process,
the gevent child, a dask cluster) returns one of these two, never a bare string or
a tagged tuple."""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CellFailure", "Measured"]


@dataclass(frozen=True)
class CellFailure:
    """A cell that could not be measured at all; ``message`` is one line saying why."""

    message: str


@dataclass(frozen=True)
class Measured:
    """A cell's CellMeasurement and the extra Cell fields its executor adds (costs,
    a dask cell's shape, ...)."""

    measurement: object
    extra: dict = field(default_factory=dict)
