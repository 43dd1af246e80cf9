"""Frozen records and their JSON (schema gillab/compare/1). No measuring, no printing."""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field

__all__ = ["SCHEMA", "Cell", "CompareRun", "load_run", "write_json_atomic"]

SCHEMA = "gillab/compare/1"


@dataclass(frozen=True)
class Cell:
    """One (kernel, executor, workers) measurement with its verdict.

    The DESIGN.md fields come first, in its order; the rest were added for the
    report (DESIGN.md: fields may be added, none renamed).
    """

    kernel: str
    executor: str
    workers: int
    n: int | None
    wall_s: float | None
    wall_s_all: tuple = ()
    cpu_s: float | None = None
    cores_used: float | None = None
    speedup: float | None = None
    correct: bool = False
    gil_wait: float | None = None
    gil_held: float | None = None
    noise: float | None = None
    verdict: str = "wrong"
    reason: str = ""
    # Added fields.
    seconds: float | None = None      # sleep kernel: seconds per task
    serial_s: float | None = None     # T(one task, serial): the speedup's baseline
    ideal: float | None = None        # the speedup a perfect executor would reach
    os_wait: float | None = None      # off-CPU share owed to the OS queue (workers > CPUs)
    tries: int = 1                    # runs the noise guard needed
    error: str | None = None          # one line, when a task raised or a worker died
    interpreter: str | None = None    # compare --python: which interpreter ran the cell
    shape: str | None = None          # dask: "PxT", P worker processes x T threads each
    loop_stall_s: float | None = None  # dask: longest freeze of a worker's event loop
    dask_gil_contention: float | None = None  # dask: what distributed itself reports
    dask_own_cores: float | None = None  # dask: cluster CPU beyond its tasks, per wall second
    dask_config: str | None = None    # dask: "quiet", "dask" (its defaults), "as running"
    mem_mb: float | None = None       # PSS the cell's workers took at peak, minus idle
    startup_s: float | None = None    # bringing the workers up, apart from the work
    startup_cpu_s: float | None = None  # CPU seconds that start-up took (all processes)
    start_method: str | None = None   # multiprocessing start method of process executors
    dispatch_us: float | None = None  # per-task overhead on trivial tasks
    # Where the time went (gillab.compare.verdict.where_the_time_went) and how sure the figures are.
    spread: float | None = None       # (max - min) / median of the repeats' wall times
    uncertain: bool = False           # the repeats did not all lead to the verdict
    task_slowdown: float | None = None  # a task's CPU in the cell / the serial task's
    losses: dict | None = None        # {"slower_tasks", "waiting", "executor"}: shares of wall
    main_loss: str | None = None      # the largest of those, when the speedup fell short
    calls_per_task: int | None = None  # --target: calls of the function in one task
    # Facts the report reads as fields, never from the reason's prose.
    unbacked: bool = False            # a wall-clock speedup the cores used cannot account for
    io_bound: bool = False            # the task waits (sleep; a target that used no CPU)
    # Paired speedups: each repeat ran right after a serial run of its own.
    paired: bool = False              # speedup = median of the pairs; serial_s = theirs
    speedup_all: tuple = ()           # k x T(serial run) / T(cell run), one per pair
    speedup_spread: float | None = None  # (max - min) / median of speedup_all

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["wall_s_all"] = list(self.wall_s_all)
        d["speedup_all"] = list(self.speedup_all)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "Cell":
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        known["wall_s_all"] = tuple(known.get("wall_s_all") or ())
        known["speedup_all"] = tuple(known.get("speedup_all") or ())
        return cls(**known)


@dataclass(frozen=True)
class CompareRun:
    """A whole compare run: where it ran, how, and every cell."""

    env: dict
    cells: tuple
    settings: dict = field(default_factory=dict)
    skipped: tuple = ()   # ({"executor": name, "reason": why}, ...): could not run here
    lesson_costs: dict | None = None  # compare --cost: 100 threads vs 100 processes, ...

    def to_dict(self) -> dict:
        data = {"schema": SCHEMA, "env": self.env, "settings": self.settings,
                "skipped": list(self.skipped), "cells": [c.to_dict() for c in self.cells]}
        if self.lesson_costs is not None:
            data["lesson_costs"] = self.lesson_costs
        return data


def load_run(path: str) -> CompareRun:
    """Read a ``compare --json`` file; ValueError (one line) if it is not one."""
    from gillab.core.schema import validate

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not JSON (not UTF-8 text)") from None
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to be a gillab result") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a gillab compare result (schema {SCHEMA})")
    validate(data, SCHEMA, path)  # wrong types: one line naming the field, not a traceback
    try:
        cells = tuple(Cell.from_dict(c) for c in data["cells"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path} has a malformed cell ({exc})") from None
    return CompareRun(data.get("env", {}), cells, data.get("settings", {}),
                      tuple(data.get("skipped", ())), data.get("lesson_costs"))


def write_json_atomic(path: str, data: dict) -> None:
    """Write JSON to a temporary file beside ``path``, then rename it into place,
    so an interrupted run never leaves a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".gillab-", suffix=".json.tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
