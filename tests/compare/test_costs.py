"""What each model costs: PSS memory, start-up, worker limits, start methods."""
from __future__ import annotations

import argparse
import json
import multiprocessing
import time

import pytest

from gillab.compare import cli
from gillab import kernels
from gillab.compare.engine import Plan
from gillab.core.errors import UsageError
from gillab.measure.executors import open_executor
from gillab.measure.footprint import PeakMemory, measure_startup, tree_pss_mb

from tests.conftest import retry_once, run_gillab

pytestmark = pytest.mark.slow


def _allocate_and_wait(mb: int, ready, done) -> None:
    block = bytearray(mb * 1024 * 1024)
    for i in range(0, len(block), 4096):  # touch every page, so it is really resident
        block[i] = 1
    ready.set()
    done.wait(30)


@pytest.mark.parametrize("mb", [32, 96])
def test_pss_of_a_hand_made_tree_sees_a_child_allocation(mb):
    """A child that touches N MB adds N MB (within 20%) to the tree's PSS."""
    ctx = multiprocessing.get_context("fork")

    def tree_with_child(alloc_mb: int) -> float:
        ready, done = ctx.Event(), ctx.Event()
        child = ctx.Process(target=_allocate_and_wait, args=(alloc_mb, ready, done))
        child.start()
        try:
            assert ready.wait(30)
            return tree_pss_mb()
        finally:
            done.set()
            child.join(10)

    def check():
        grown = tree_with_child(mb) - tree_with_child(0)
        assert abs(grown - mb) <= 0.2 * mb, f"{grown:.1f} MB seen for {mb} MB allocated"
    retry_once(check)


def _startup_and_memory(executor: str, k: int):
    baseline = tree_pss_mb()
    with open_executor(executor, k) as ex:
        startup, _ = measure_startup(ex.start_idle)
        with PeakMemory() as memory:
            ex.run(kernels.Task("sleep", (0.3,)), k)
    return startup, memory.peak_mb - baseline


def test_threads_cost_less_than_processes():
    """For the same k, threads take less CPU to start and less memory (bytes, CPU time)."""
    k = 20

    def check():
        t_start, t_mem = _startup_and_memory("threads", k)
        p_start, p_mem = _startup_and_memory("processes", k)
        assert t_start.cpu_s < p_start.cpu_s, (t_start, p_start)
        assert t_mem < p_mem, (t_mem, p_mem)
        # Each forked process takes at least a few hundred KB of its own.
        assert p_mem > 0.2 * k
    retry_once(check)


def test_peak_memory_catches_a_short_allocation():
    with PeakMemory(interval_s=0.005) as memory:
        before = tree_pss_mb()
        block = bytearray(64 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        time.sleep(0.05)
        del block
    assert memory.peak_mb - before >= 50


class TestWorkerLimits:
    """-w is bounded so a typo cannot exhaust the machine; the message says how to go on."""

    def test_processes_limit(self):
        result = run_gillab("compare", "-w", "10000", "-e", "processes")
        assert result.returncode == 2
        assert "over the limit of 256" in result.stderr
        assert "--max-processes 10000" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1

    def test_threads_limit_is_far_higher(self):
        result = run_gillab("compare", "-w", "10000", "-e", "threads")
        assert result.returncode == 2
        assert "over the limit of 4096" in result.stderr
        # 300 workers: refused on processes, allowed on threads.
        args = argparse.Namespace(max_processes=cli.MAX_PROCESSES, max_threads=cli.MAX_THREADS)
        cli._check_worker_limits(Plan(executors=("threads", "thread_pool"), workers=(300,)), args)
        with pytest.raises(UsageError):
            cli._check_worker_limits(Plan(executors=("process_pool",), workers=(300,)), args)

    def test_limit_can_be_lowered(self):
        result = run_gillab("compare", "-w", "3", "-e", "mp_pool", "--max-processes", "2")
        assert result.returncode == 2
        assert "over the limit of 2" in result.stderr


@pytest.mark.parametrize("value", ["bogus", "fork,bogus", ","])
def test_bad_start_method_exits_2(value):
    result = run_gillab("compare", "--start-method", value)
    assert result.returncode == 2
    assert "start method" in result.stderr


def test_start_methods_side_by_side(tmp_path):
    """fork and spawn both run; spawn starts a whole interpreter, so it costs more CPU."""
    path = tmp_path / "r.json"
    result = run_gillab("compare", "-k", "cy_nogil", "-e", "processes", "-w", "1",
                        "--repeat", "1", "--target-s", "0.05", "--start-method", "fork,spawn",
                        "--cost", "--json", str(path), "-q", timeout=180)
    assert result.returncode == 0, result.stderr
    with open(path) as f:
        data = json.load(f)
    cells = {c["start_method"]: c for c in data["cells"] if c["executor"] == "processes"}
    assert set(cells) == {"fork", "spawn"}
    assert all(c["correct"] for c in cells.values())
    assert cells["spawn"]["startup_cpu_s"] > cells["fork"]["startup_cpu_s"]
    assert "processes:fk" in result.stdout and "processes:sp" in result.stdout
    assert "What each model costs" in result.stdout
    costs = data["lesson_costs"]
    assert costs["processes"]["mem_mb"] > costs["threads"]["mem_mb"]
    assert "The lesson's cost claims, measured here" in result.stdout
