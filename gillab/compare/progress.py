"""Progress on stderr while compare runs: a rich bar on a terminal, plain lines elsewhere."""
from __future__ import annotations

import sys

from gillab.compare.engine import Progress

__all__ = ["make_progress"]


class LineProgress(Progress):
    """One line per cell, for logs and CI where a redrawn bar would be noise."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.total = self.done = 0

    def start(self, total_cells):
        self.total = total_cells

    def step(self, label):
        print(f"[{self.done}/{self.total}] {label}", file=self.stream, flush=True)

    def cell_done(self, cell):
        self.done += 1


class BarProgress(Progress):
    """rich's progress bar: cells done, the cell running, time elapsed and left."""

    def __init__(self):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)

        # Two refreshes a second: the drawing thread's CPU is counted in the cells.
        self.bar = RichProgress(TextColumn("{task.description:<34}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(),
                                TimeRemainingColumn(), console=Console(stderr=True),
                                refresh_per_second=2, transient=True)
        self.task = None

    def start(self, total_cells):
        self.bar.start()
        self.task = self.bar.add_task("starting", total=total_cells)

    def step(self, label):
        self.bar.update(self.task, description=label[:34])

    def cell_done(self, cell):
        self.bar.advance(self.task)

    def close(self):
        self.bar.stop()


def make_progress(quiet: bool = False) -> Progress:
    if quiet:
        return Progress()
    return BarProgress() if sys.stderr.isatty() else LineProgress()
