"""The matrix a Plan asks for: which cells run, before anything is measured."""
from __future__ import annotations

from gillab.compare.engine import Plan, plan_cells


def counts(cells, kernel, executor):
    return [w for k, e, w, _ in cells if k == kernel and e == executor]


class TestEventLoopTrim:
    """The default matrix runs executors on an event loop at CPU kernels only up to the
    CPU count; sleeps, other executors and an explicit -w keep every count."""

    def test_cpu_kernels_on_an_event_loop_stop_at_the_cpu_count(self):
        cells = plan_cells(Plan(kernels=("py", "sleep"), workers=(1, 2, 4),
                                executors=("serial", "threads", "asyncio", "to_thread"),
                                loop_cpu_workers=2))
        assert counts(cells, "py", "asyncio") == [1, 2]
        assert counts(cells, "py", "to_thread") == [1, 2]
        assert counts(cells, "py", "threads") == [1, 2, 4]
        assert counts(cells, "sleep", "asyncio") == [1, 2, 4]
        assert counts(cells, "sleep", "to_thread") == [1, 2, 4]

    def test_without_the_trim_every_count_runs(self):
        cells = plan_cells(Plan(kernels=("py",), workers=(1, 2, 4),
                                executors=("serial", "asyncio")))
        assert counts(cells, "py", "asyncio") == [1, 2, 4]

    def test_counts_all_above_the_cpus_keep_the_smallest(self):
        cells = plan_cells(Plan(kernels=("py",), workers=(4, 8), executors=("asyncio",),
                                loop_cpu_workers=2))
        assert counts(cells, "py", "asyncio") == [4]
