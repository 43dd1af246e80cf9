"""One cell's timed runs: each run between CPU and machine-load counters (with the GIL
probe beside in-process cells), repeats while the figures are unclear, and the noise
guard's retries. Returns plain data; never prints."""
from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from dataclasses import dataclass

from gillab.core import stats
from gillab.measure.clocks import cpu_snapshot, machine_busy
from gillab.measure.noise import NOISE_LIMIT, noise_share

__all__ = ["RepeatResult", "ExtraCpu", "CellMeasurement", "GilProbe", "run_counted",
           "measure_once", "measure_cell"]


# --- one cell -------------------------------------------------------------------------


@dataclass(frozen=True)
class RepeatResult:
    """One timed run of a cell: k tasks on k workers."""

    wall_s: float
    cpu_s: float
    noise: float | None          # share of the machine other processes used meanwhile
    tasks: tuple                 # TaskClock per task
    gil_held: float | None = None  # share of the run a probe thread found the GIL taken
    observed: object = None      # what a cpu_source saw beside CPU (a dask cell's figures)
    before: object = None        # what measure_cell's before_each gave just before this run


@dataclass(frozen=True)
class ExtraCpu:
    """CPU a ``cpu_source`` counted during one run that cpu_snapshot() cannot see
    (processes that are not this one's children: a running dask cluster's), the part
    of it used on this machine (the cell's own work there, not noise), and anything
    else the source observed meanwhile (kept as RepeatResult.observed)."""

    cpu_s: float = 0.0
    local_s: float = 0.0
    observed: object = None


@dataclass(frozen=True)
class CellMeasurement:
    """Every repeat of the try that was kept, and how many tries the noise guard needed."""

    repeats: tuple
    tries: int

    @property
    def wall_s(self) -> float:
        return stats.median(r.wall_s for r in self.repeats)

    @property
    def spread(self) -> float:
        """Relative spread of the repeats' wall times (gillab.core.stats.spread)."""
        return stats.spread(r.wall_s for r in self.repeats)

    @property
    def noise(self) -> float | None:
        values = [r.noise for r in self.repeats if r.noise is not None]
        return max(values) if values else None

    @property
    def gil_held(self) -> float | None:
        values = [r.gil_held for r in self.repeats if r.gil_held is not None]
        return stats.median(values) if values else None


class _BackgroundSampler:
    """A daemon thread that runs ``self._sample()`` from ``with`` entry until exit."""

    name = "gillab-sampler"

    def __init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name=self.name, daemon=True)

    def _sample(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class GilProbe(_BackgroundSampler):
    """A thread that samples GIL acquisition (gillab._kernels.gil_probe) while a run goes on."""

    name = "gillab-gil-probe"

    def __init__(self, interval_s: float = 0.001):
        super().__init__()
        self.interval_s = interval_s
        self._result = None

    def _sample(self):
        from gillab import _kernels

        self._result = _kernels.gil_probe(self._stop, self.interval_s)

    @property
    def held(self) -> float | None:
        """Share of the probe's tries that found the GIL taken (None before it ran)."""
        if self._result is None:
            return None
        waited, probed, _samples = self._result
        return min(1.0, waited / probed) if probed > 0 else None

    @property
    def samples(self) -> int | None:
        return None if self._result is None else self._result[2]


def run_counted(run, probe_gil: bool = False, cpu_source=None) -> tuple[object, RepeatResult]:
    """Call ``run()`` between CPU and machine-load counters: what it returned, and a
    RepeatResult of its wall, CPU, noise (and GIL probe) with no task records.

    With ``probe_gil``, a probe thread samples the GIL meanwhile (in-process cells).
    ``cpu_source``, if given, is called just before the run and returns a callable
    called just after it, which returns an ExtraCpu: CPU used elsewhere for the
    cell, added to the run's, its local part taken out of the noise.
    """
    probe = GilProbe() if probe_gil else contextlib.nullcontext()
    stop_source = cpu_source() if cpu_source is not None else None
    busy0 = machine_busy()
    cpu0 = cpu_snapshot()
    with probe:
        wall0 = time.perf_counter()
        output = run()
        wall = time.perf_counter() - wall0
    cpu = cpu_snapshot().seconds_since(cpu0)
    busy1 = machine_busy()
    extra = stop_source() if stop_source is not None else ExtraCpu()
    noise = noise_share(busy0, busy1, cpu + extra.local_s, wall)
    return output, RepeatResult(wall, cpu + extra.cpu_s, noise, (),
                                probe.held if probe_gil else None, extra.observed)


def measure_once(run, probe_gil: bool = False, cpu_source=None, before_each=None) -> RepeatResult:
    """Time ``run()``, which runs the cell's tasks and returns their TaskClocks (see
    run_counted); ``before_each()`` runs first, outside every clock, and what it returns
    is kept as the run's ``before``."""
    before = before_each() if before_each is not None else None
    tasks, result = run_counted(run, probe_gil, cpu_source)
    return dataclasses.replace(result, tasks=tuple(tasks), before=before)


def measure_cell(run, repeat: int, noise_limit: float = NOISE_LIMIT, max_tries: int = 3,
                 pause_s: float = 1.0, probe_gil: bool = False, max_repeat: int | None = None,
                 settled=None, cpu_source=None, before_each=None) -> CellMeasurement:
    """Run a cell ``repeat`` times; if other processes took more than ``noise_limit``
    of the machine meanwhile, wait ``pause_s`` and run it again (``max_tries`` in all).

    Adaptive, like pyperf's calibration: while ``settled(measurement)`` (the caller's
    judgement, so this module never judges) says the figures are not yet clear, add
    repeats up to ``max_repeat``. Keeps the quietest try. ``run`` is a zero-argument
    callable returning TaskClocks; ``cpu_source`` counts CPU used outside this process
    tree (see measure_once). ``before_each``, if given, runs just before each timed run,
    outside its clocks; what it returns is kept as that run's ``before`` (the compare
    engine's paired serial run, so a drift moves both sides of a speedup).
    """
    best = None
    for attempt in range(1, max_tries + 1):
        repeats = [measure_once(run, probe_gil, cpu_source, before_each) for _ in range(repeat)]
        while (settled is not None and len(repeats) < (max_repeat or repeat)
               and not settled(CellMeasurement(tuple(repeats), attempt))):
            repeats.append(measure_once(run, probe_gil, cpu_source, before_each))
        current = CellMeasurement(tuple(repeats), attempt)
        if current.noise is None or current.noise <= noise_limit:
            return current
        if best is None or current.noise < best.noise:
            best = current
        if attempt < max_tries:
            time.sleep(pause_s)
    return CellMeasurement(best.repeats, max_tries)
