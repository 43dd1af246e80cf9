"""Records -> JSON and table, from hand-made cells: nothing is measured here."""
from __future__ import annotations

import json
import os

import pytest

from gillab.compare.report import format_table
from gillab.compare.records import SCHEMA, Cell, CompareRun, load_run, write_json_atomic

ENV = {"gillab": "0.1.0", "python": "3.11.7", "implementation": "CPython",
       "gil_enabled": True, "free_threaded_build": False, "cpu_count": 2,
       "cython": "3.3.1", "gevent": "26.9.0", "switch_interval": 0.005,
       "start_method": "fork", "platform": "Linux"}

DESIGN_FIELDS = ["kernel", "executor", "workers", "n", "wall_s", "wall_s_all", "cpu_s",
                 "cores_used", "speedup", "correct", "gil_wait", "gil_held", "noise",
                 "verdict", "reason"]


def cell(executor="threads", workers=2, verdict="GIL-bound", kernel="py", **kw):
    base = dict(kernel=kernel, executor=executor, workers=workers, n=1_000_000, wall_s=0.6,
                wall_s_all=(0.6, 0.61, 0.59), cpu_s=0.6, cores_used=1.0, speedup=1.0,
                correct=True, gil_wait=0.49, gil_held=0.88, noise=0.01, verdict=verdict,
                reason="speedup 1.00x on 2 threads, 1.00 cores used", serial_s=0.3)
    base.update(kw)
    return Cell(**base)


@pytest.fixture
def run():
    return CompareRun(ENV, (
        cell("serial", 1, "serialized", speedup=1.0, wall_s=0.3, reason="the baseline"),
        cell(),
        cell("processes", 2, "parallel", speedup=1.97, cores_used=1.98, gil_held=None,
             reason="speedup 1.97x on 2 processes, 1.98 cores used (ideal 2)"),
        cell("gevent", 2, "noisy", reason="other processes used 30% of the machine"),
        cell("threads", 2, "wrong", kernel="cy_nogil", correct=False, reason="boom"),
    ), {"repeat": 3})


class TestJson:
    """The gillab/compare/1 schema: DESIGN.md's fields, written atomically."""

    def test_schema_and_fields(self, run, tmp_path):
        path = tmp_path / "r.json"
        write_json_atomic(str(path), run.to_dict())
        data = json.loads(path.read_text())
        assert data["schema"] == SCHEMA == "gillab/compare/1"
        assert data["env"] == ENV
        first = data["cells"][0]
        assert list(first)[:len(DESIGN_FIELDS)] == DESIGN_FIELDS
        assert first["wall_s_all"] == [0.6, 0.61, 0.59]

    def test_round_trip(self, run, tmp_path):
        path = tmp_path / "r.json"
        write_json_atomic(str(path), run.to_dict())
        assert load_run(str(path)) == run

    def test_no_temp_file_left_and_old_file_kept_on_failure(self, tmp_path):
        path = tmp_path / "r.json"
        path.write_text("old")
        with pytest.raises(TypeError):
            write_json_atomic(str(path), {"x": object()})
        assert path.read_text() == "old"
        assert os.listdir(tmp_path) == ["r.json"]

    @pytest.mark.parametrize("text", ["not json", '{"schema": "other"}', "[]",
                                      '{"schema": "gillab/compare/1", "cells": [{}]}'])
    def test_load_rejects_other_files(self, tmp_path, text):
        path = tmp_path / "bad.json"
        path.write_text(text)
        with pytest.raises(ValueError):
            load_run(str(path))


class TestTable:
    """The table fits 80 columns, is grouped by kernel and explains each verdict."""

    def test_fits_80_columns(self, run):
        lines = format_table(run, {"py": "pure Python"})
        assert max(len(line) for line in lines) <= 80

    def test_environment_on_top(self, run):
        top = format_table(run)[0]
        assert "CPython 3.11.7" in top and "GIL enabled" in top and "2 CPUs" in top

    def test_grouped_by_kernel(self, run):
        lines = format_table(run)
        titles = [i for i, line in enumerate(lines) if line.startswith(("py ", "cy_nogil "))]
        assert len(titles) == 2
        assert lines[titles[0]].startswith("py (n=1,000,000; one task 0.300 s serially)")

    def test_rows_carry_numbers_and_verdict(self, run):
        row = next(line for line in format_table(run) if line.startswith("  threads"))
        # No tick column: a cell that failed reads "wrong" in the verdict column.
        assert row.split() == ["threads", "2", "0.600", "1.00x", "1.00", "0.49", "0.88",
                               "GIL-bound"]

    def test_missing_values_show_a_dash(self, run):
        row = next(line for line in format_table(run) if line.startswith("  processes"))
        assert row.split()[6] == "-"

    def test_reasons_follow_each_group(self, run):
        text = "\n".join(format_table(run))
        assert "GIL-bound (threads x2): speedup 1.00x on 2 threads" in text
        assert "parallel (processes x2): speedup 1.97x" in text

    def test_a_contended_cell_explains_the_word_once(self, run):
        contended = cell(verdict="contended", kernel="py_shared", cores_used=1.87,
                         speedup=0.56, reason="speedup 0.56x on 2 threads, 1.87 cores used")
        lines = format_table(CompareRun(ENV, (*run.cells, contended, contended), {}))
        text = " ".join(" ".join(lines).split())
        assert text.count("contended: no GIL, and the threads kept every core busy") == 1
        assert "py_shared shows it beside py" in text
        assert "contended: no GIL" not in " ".join(format_table(run))

    def test_noisy_and_wrong_cells_are_called_out(self, run):
        text = "\n".join(format_table(run))
        assert "WARNING: 1 cell(s) ran while other processes took the CPU" in text
        assert "ERROR: 1 cell(s) failed or gave a wrong answer" in text
        assert "cy_nogil/threads x2: boom" in text


class TestTerminal:
    """Verdict words in colour on a terminal; the same text, plain, when piped."""

    LINES = ["  threads    2  0.600    1.00x   1.00   0.49  0.88  GIL-bound",
             "  parallel (processes x2): speedup 1.97x", "not-parallel stays plain"]

    def _printed(self, monkeypatch, **env):
        import io

        from gillab.cli.terminal import print_lines

        for name in ("NO_COLOR", "FORCE_COLOR"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        out = io.StringIO()
        print_lines(self.LINES, out)
        return out.getvalue()

    def test_piped_output_is_plain(self, monkeypatch):
        assert self._printed(monkeypatch) == "\n".join(self.LINES) + "\n"

    def test_a_terminal_colours_the_words_and_keeps_the_columns(self, monkeypatch):
        import re

        coloured = self._printed(monkeypatch, FORCE_COLOR="1")
        assert "\x1b[" in coloured
        assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == "\n".join(self.LINES) + "\n"
        last = coloured.splitlines()[-1]
        assert "\x1b[" not in last  # "not-parallel" is not the verdict word

    def test_no_color_wins(self, monkeypatch):
        assert "\x1b[" not in self._printed(monkeypatch, FORCE_COLOR="1", NO_COLOR="1")


def test_cost_table_is_drawn_by_its_columns():
    """The cost view: one row per executor and worker count, medians over kernels."""
    from gillab.compare.report import format_cost_table
    from gillab.compare.records import Cell, CompareRun

    def cell(kernel, executor, startup_s, mem_mb):
        return Cell(kernel=kernel, executor=executor, workers=2, n=1, wall_s=0.3,
                    startup_s=startup_s, mem_mb=mem_mb,
                    startup_cpu_s=None if startup_s is None else startup_s / 2)

    run = CompareRun({}, (cell("py", "serial", None, None), cell("py", "processes", 0.004, 20.0),
                          cell("cy_gil", "processes", 0.006, 22.0)))
    lines = format_cost_table(run)
    header = next(line for line in lines if "start-up ms" in line)
    row = next(line for line in lines if line.startswith("  processes"))
    assert header.split()[:3] == ["executor", "w", "start-up"]
    assert row.split() == ["processes", "2", "5.0", "2.5", "21.0", "-"]


def test_coroutines_and_greenlets_get_a_reason_line_each():
    """Both are serialized on one OS thread, for causes worded apart: one line would give
    the coroutines the greenlets' reason."""
    from gillab.compare.records import Cell
    from gillab.compare.report import _why_lines

    def cell(executor, reason):
        return Cell(kernel="py", executor=executor, workers=2, n=10, seconds=None,
                    serial_s=0.2, wall_s=0.4, speedup=1.0, cores_used=1.0, correct=True,
                    verdict="serialized", reason=reason)

    lines = _why_lines([cell("asyncio", "coroutines share one OS thread"),
                        cell("gevent", "greenlets share one OS thread")])
    assert lines == ["  serialized (asyncio x2): coroutines share one OS thread",
                     "  serialized (gevent x2): greenlets share one OS thread"]
