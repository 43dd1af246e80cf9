"""The records of `gillab check` (schema gillab/check/1): frozen, plain data, JSON in and out.

The attributes are the JSON's fields. No measuring, no printing.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["SCHEMA", "Workers", "CheckResult", "CheckSweep"]

SCHEMA = "gillab/check/1"


@dataclass(frozen=True)
class Workers:
    """k copies of the task on k threads (or processes), against one thread alone."""

    workers: int
    speedup: float | None        # k x T(one thread alone) / T(k workers): weak scaling
    cores_used: float | None     # CPU seconds of the run / its wall seconds
    gil_wait: float | None       # share of a task's wall blocked beyond what it blocks alone
    off_cpu: float | None = None  # share of a task's wall off-CPU, from the start signal
    wall_s: float | None = None  # median wall of the run, start signal -> last task's end
    wall_s_all: tuple = ()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["wall_s_all"] = list(self.wall_s_all)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "Workers":
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        known["wall_s_all"] = tuple(known.get("wall_s_all") or ())
        return cls(**known)


@dataclass(frozen=True)
class CheckResult:
    """Does this call release the GIL, and would threads help it? With the evidence.

    ``released_share`` is the share of the call's time the GIL probe found the GIL
    free while one thread ran it alone; ``on_cpu`` that thread's CPU time / wall
    (low: the call waits, on IO or a sleep). ``releases_gil`` is None when the
    machine was too busy to tell or the statement failed.
    """

    statement: str
    setup: str = ""
    env: dict = field(default_factory=dict)
    params: dict | None = None          # --sweep: {"NAME": value} of this row
    calls_per_task: int | None = None
    call_s: float | None = None         # seconds one call took, on one thread alone
    task_s: float | None = None         # seconds one task (calls_per_task calls) took alone
    released_share: float | None = None  # 0..1, GIL free during the call (probe)
    on_cpu: float | None = None          # 0..1, the lone thread's CPU time / wall
    cores_alone: float | None = None     # cores used by the lone thread's run (no probe)
    releases_gil: bool | None = None
    threads: tuple = ()                  # Workers per thread count, 2..min(4, CPUs)
    processes: tuple = ()                # Workers, with --processes
    answers: str = "not compared"        # same / differ / varies alone / not compared
    answers_detail: str = ""
    noise: float | None = None           # worst share of the machine others took
    noisy: bool = False
    rounds: int = 0                      # measuring rounds kept (alone + each thread count)
    tries: int = 0                       # rounds run, noisy ones included
    cpus: int | None = None
    verdict: str = ""                    # releases the GIL / holds the GIL / ... / waits
    verdict_word: str = ""               # the verdict without its figure: one of judge.VERDICTS
    practical: str = ""                  # threads help / use processes / ...
    reason: str = ""
    error: str | None = None             # the statement failed: one line
    # A free-threaded build with its GIL off: did the threads scale, or contend?
    scales: bool | None = None           # min(speedup, cores) reached halfway to the ideal
    contends: bool | None = None         # the threads used the cores, yet did not scale
    private_speedup: float | None = None  # the same, SETUP run once per thread (own objects)
    private_cores: float | None = None
    # The GIL read at the start, after SETUP and at the end (gillab.core.gilstate).
    gil_states: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["threads"] = [w.to_dict() for w in self.threads]
        d["processes"] = [w.to_dict() for w in self.processes]
        d["params"] = _jsonable(self.params) if self.params is not None else None
        return {"schema": SCHEMA, **d}

    @classmethod
    def from_dict(cls, data: dict) -> "CheckResult":
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        known["threads"] = tuple(Workers.from_dict(w) for w in known.get("threads") or ())
        known["processes"] = tuple(Workers.from_dict(w) for w in known.get("processes") or ())
        return cls(**known)

    def largest_threads(self) -> Workers | None:
        return max(self.threads, key=lambda w: w.workers) if self.threads else None


@dataclass(frozen=True)
class CheckSweep:
    """``--sweep NAME=V1,V2,...``: one CheckResult per value, and where the verdict changes."""

    statement: str
    setup: str
    env: dict
    name: str
    rows: tuple                # CheckResult per value, in the order given
    threshold: str = ""        # "between n=1024 (holds the GIL) and n=4096 (releases ...)"

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "statement": self.statement, "setup": self.setup,
                "env": self.env, "sweep": self.name, "threshold": self.threshold,
                "rows": [{k: v for k, v in r.to_dict().items() if k not in ("schema", "env")}
                         for r in self.rows]}

    @classmethod
    def from_dict(cls, data: dict) -> "CheckSweep":
        env = data.get("env") or {}
        rows = tuple(CheckResult.from_dict({**row, "env": env}) for row in data["rows"])
        return cls(data["statement"], data.get("setup", ""), env, data["sweep"], rows,
                   data.get("threshold", ""))


def _jsonable(params: dict) -> dict:
    out = {}
    for key, value in params.items():
        if value is None or isinstance(value, (bool, int, float, str)):
            out[key] = value
        else:
            out[key] = repr(value)  # bytes and the like: as written
    return out
