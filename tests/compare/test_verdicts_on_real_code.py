"""On real runs: verdicts agree with the CPU evidence on code nobody here
wrote, and gillab's figures agree with an independent stopwatch."""
from __future__ import annotations

import json
import resource
import threading
import time

import pytest

from gillab import kernels
from gillab.compare.engine import Plan, run_compare
from gillab.measure.gevent_cells import measure_gevent_cells
from gillab.measure.outcome import CellFailure

from tests.conftest import assert_not_noisy, retry_once, run_gillab

pytestmark = pytest.mark.slow


def _cells(path) -> dict:
    with open(path) as f:
        return {(c["executor"], c["workers"]): c for c in json.load(f)["cells"]}


class TestTargetsNobodyHereWrote:
    """A short GIL-holding call and a large hashlib call, judged by their cores."""

    @pytest.mark.parametrize("target, verdict, cores_ok", [
        # ~1 ms of bytecode a call: looped inside a task, and about one core.
        ("tests.targets:short_gil", "GIL-bound", lambda cores: cores <= 1.3),
        # sha256 of 8 MiB releases the GIL while it hashes: both cores.
        ("tests.targets:sha256_big", "parallel", lambda cores: cores >= 1.6),
    ])
    def test_verdict_follows_the_cores(self, tmp_path, target, verdict, cores_ok):
        path = tmp_path / "r.json"

        def check():
            result = run_gillab("compare", "--target", target, "-e", "serial", "threads",
                                "-w", "2", "--target-s", "0.15", "--json", str(path), "-q")
            assert result.returncode == 0, result.stderr
            cell = _cells(path)["threads", 2]
            assert_not_noisy([cell])  # tried again, then skipped with the guard's reason
            assert cell["calls_per_task"] >= 1
            assert cores_ok(cell["cores_used"]), cell
            assert cell["verdict"] == verdict, cell

        retry_once(check)

    def test_a_short_call_is_looped(self, tmp_path):
        path = tmp_path / "r.json"
        result = run_gillab("compare", "--target", "tests.targets:short_gil", "-e", "serial",
                            "-w", "1", "--target-s", "0.05", "--json", str(path), "-q")
        assert result.returncode == 0, result.stderr
        assert _cells(path)["serial", 1]["calls_per_task"] > 1


def _stopwatch(func, args) -> dict:
    """Serial and 2-thread figures by perf_counter and getrusage alone (no gillab code)."""
    t0 = time.perf_counter()
    func(*args)
    serial = time.perf_counter() - t0
    threads = [threading.Thread(target=func, args=args) for _ in range(2)]
    r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - w0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"speedup": 2 * serial / wall, "cores": cpu / wall}


@pytest.mark.parametrize("kernel", ["py", "cy_nogil"])
def test_gillab_agrees_with_an_independent_stopwatch(kernel):
    """In one run: gillab's threads x2 cell against plain threads timed by hand."""
    def check():
        run = run_compare(Plan(kernels=(kernel,), executors=("serial", "threads"),
                               workers=(2,), repeat=2, target_s=0.15))
        cell = next(c for c in run.cells if c.executor == "threads")
        assert_not_noisy([{"verdict": cell.verdict, "reason": cell.reason}])
        hand = _stopwatch(kernels.get(kernel), (cell.n, kernels.DEFAULT_P))
        # Margins for a busy 2-core machine: the two stopwatches run seconds apart.
        assert cell.cores_used == pytest.approx(hand["cores"], abs=0.3), (cell, hand)
        assert cell.speedup == pytest.approx(hand["speedup"], abs=0.35), (cell, hand)

    retry_once(check)


class TestGeventChild:
    """Every gevent cell asked for comes back, as an error if the child dies or hangs."""

    def test_a_dying_child_leaves_no_cell_behind(self):
        task = kernels.Task(target="tests.targets:exit_hard")
        got = list(measure_gevent_cells(task, [1, 2, 4], repeat=1, timeout_s=5))
        assert [w for w, _ in got] == [1, 2, 4]
        assert all(isinstance(m, CellFailure) and "exited with code 3" in m.message
                   for _, m in got)

    def test_a_greenlet_that_never_yields_is_bounded(self):
        task = kernels.Task(target="tests.targets:spin_forever")
        t0 = time.monotonic()
        got = list(measure_gevent_cells(task, [1, 2], repeat=1, timeout_s=1, max_tries=1,
                                        startup_s=5))
        assert time.monotonic() - t0 < 30
        assert [w for w, _ in got] == [1, 2]
        assert all(isinstance(m, CellFailure) and "no answer within" in m.message
                   for _, m in got)
