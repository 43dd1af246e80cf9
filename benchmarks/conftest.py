"""The benchmark suite's switches and shared sizes.

``pytest --benchmark-only`` measures. Plain ``pytest`` runs every benchmark once,
with tiny inputs and no timing (pytest-benchmark's --benchmark-disable), so the
suite cannot rot unnoticed and the test run stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest

from gillab import kernels
from gillab.core import stats
from gillab.measure.dispatch import Dispatcher
from gillab.measure.calibrate import calibrate_n, time_call

#: Options that ask for real measurements; without one, benchmarks run once, untimed.
MEASURE_OPTIONS = ("benchmark_only", "benchmark_enable", "benchmark_save",
                   "benchmark_autosave", "benchmark_json", "benchmark_compare")


def measuring(config) -> bool:
    return any(config.getoption(name) for name in MEASURE_OPTIONS)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # --benchmark-disable cannot sit in pyproject's addopts: pytest-benchmark refuses
    # it together with --benchmark-only (a UsageError), so it is switched on here,
    # before pytest-benchmark reads it, unless the command line asks to measure.
    if not measuring(config):
        config.option.benchmark_disable = True


def pytest_collection_modifyitems(config, items):
    # `pytest --benchmark-only` from the root also collects tests/ (testpaths);
    # pytest-benchmark would skip each test with its own SKIPPED line under -ra.
    # Deselecting them says the same thing in one word.
    if not config.getoption("benchmark_only"):
        return
    kept, dropped = [], []
    for item in items:
        (kept if "benchmark" in getattr(item, "fixturenames", ()) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@dataclass(frozen=True)
class Budget:
    """How big each benchmark's work is: real sizes when measured, tiny ones otherwise."""

    task_s: float        # one serial CPU task (the design notes' ~0.1 s)
    sleep_s: float       # one IO task: the lesson's sleep(0.5)
    dispatch_tasks: int  # trivial tasks per dispatch round


@pytest.fixture(scope="session")
def budget(pytestconfig) -> Budget:
    # pytest-benchmark's own rule: disabled unless --benchmark-enable overrides it.
    if (pytestconfig.getoption("benchmark_disable")
            and not pytestconfig.getoption("benchmark_enable")):
        return Budget(task_s=0.003, sleep_s=0.01, dispatch_tasks=100)
    return Budget(task_s=0.1, sleep_s=0.5, dispatch_tasks=2000)


@dataclass(frozen=True)
class CpuSubject:
    """A CPU kernel (or the C reference) sized to ``budget.task_s``, with its answer."""

    name: str
    func: Callable
    n: int
    p: int
    expected: int
    serial_s: float      # best of 5 single-threaded calls: T(one serial task)
    ns_per_iter: float   # the same, per loop iteration

    @property
    def task(self) -> kernels.Task:
        return kernels.Task(self.name, (self.n, self.p))


def _calibrate(name: str, target_s: float, p: int = kernels.DEFAULT_P) -> CpuSubject:
    func = kernels.reference if name == "c_reference" else kernels.get(name)
    n = calibrate_n(func, target_s, p)
    expected = kernels.reference(n, p)
    timings = []
    for _ in range(5):
        elapsed, value = time_call(func, n, p)
        assert value == expected, f"{name}({n}, {p}) disagrees with the C reference"
        timings.append(elapsed)
    best = stats.minimum(timings)  # a busy machine only ever adds time
    return CpuSubject(name, func, n, p, expected, best, best / n * 1e9)


@pytest.fixture(scope="session")
def cpu_subject(budget) -> Callable[[str], CpuSubject]:
    """cpu_subject(name): calibrated once per session, on first use (so -k stays cheap)."""
    cache: dict[str, CpuSubject] = {}

    def get(name: str) -> CpuSubject:
        if name not in cache:
            cache[name] = _calibrate(name, budget.task_s)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def sleep_serial_s(budget) -> float:
    """T(one serial sleep task): the IO group's baseline."""
    return stats.minimum(time_call(kernels.get("sleep"), budget.sleep_s)[0] for _ in range(2))


@pytest.fixture(scope="session")
def trivial_task_s(budget) -> float:
    """T(one trivial call, no executor): the dispatch group's baseline, per task."""
    n_tasks = budget.dispatch_tasks
    with Dispatcher("serial") as dispatcher:
        batch_s = stats.minimum(time_call(dispatcher.send, n_tasks)[0] for _ in range(5))
    return batch_s / n_tasks
