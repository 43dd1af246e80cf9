"""``python -m gillab convoy``: what one CPU-bound thread costs an IO thread's latency.

Split along the lab's one-way pipeline, each module importing only those before it:

- ``records``: the run's plan, the raw readings, rows (p50, p99, max) and the JSON
  (schema gillab/convoy/1); no clocks;
- ``measuring``: background threads, probes, the echo server, sampling: the only
  convoy module that reads clocks; it never prints;
- ``verdict``: baseline / no convoy / tail convoy / convoy / blocked, and for the loop
  probe responsive / starved / blocked / self-blocked, and why;
- ``report``: rows -> lines, and the loop probe's plot;
- ``cli``: arguments -> lines (``main``), for __main__.

This file imports none of them up front, so importing one module of the package
loads no other.
"""
from __future__ import annotations

__all__ = ["main"]


def main(args) -> list[str]:
    """The convoy command (gillab.convoy.cli.main)."""
    from gillab.convoy.cli import main as run

    return run(args)
