"""The side-by-side report reads executors by their registry traits, never by name."""
from __future__ import annotations

import dataclasses

import pytest

from gillab.compare import merge, report_across
from gillab.core.registry import SPECS
from tests.pythons.test_interpreters import cell, four_runs, run_311, run_313t


def _renamed(run, old: str, new: str):
    cells = tuple(dataclasses.replace(c, executor=new) if c.executor == old else c
                  for c in run.cells)
    return dataclasses.replace(run, cells=cells)


def test_the_baseline_is_the_executor_the_registry_marks_as_one(monkeypatch):
    # A baseline under another name still gives ns/iter; a name the registry does not
    # know is never taken for the serial run.
    monkeypatch.setitem(SPECS, "plain", dataclasses.replace(SPECS["serial"], name="plain"))
    cells = _renamed(run_311(), "serial", "plain").cells
    assert report_across.ns_per_iter(cells, "py", None) == pytest.approx(100.0)
    unknown = _renamed(run_311(), "serial", "mystery").cells
    assert report_across.ns_per_iter(unknown, "py", None) is None


def test_gil_scaling_reads_the_threads_of_one_process_whatever_they_are_called(monkeypatch):
    run, envs = four_runs()
    text = " ".join(report_across.reading_lines(run, envs))
    assert "3.13t py threads x2" in text
    # The same cells from a thread pool: the scaling is read from them, by its name.
    pooled = _renamed(run, "threads", "thread_pool")
    text = " ".join(report_across.reading_lines(pooled, envs))
    assert "3.13t py thread_pool x2" in text
    # Greenlets share one OS thread: no GIL scaling to read from them.
    greenlets = _renamed(run, "threads", "gevent")
    assert "x2" not in " ".join(report_across.reading_lines(greenlets, envs))


def test_the_baseline_row_never_explains_a_disagreement():
    # Two runs whose serial rows carry different verdicts: that is no finding.
    a, b = run_311(), run_313t()
    b = dataclasses.replace(b, cells=(cell("py", "serial", 2, 1.0, 1.0, "baseline"),
                                      *b.cells[1:]))
    a = dataclasses.replace(a, cells=(cell("py", "serial", 2, 1.0, 1.0, "serialized"),
                                      *a.cells[1:]))
    run, envs = merge.merge_runs([("3.11", a), ("3.13t", b)])
    text = "\n".join(report_across.format_side_by_side(run, envs))
    assert "serial x2:" not in text
    assert "threads x2: 3.11 GIL-bound" in text
