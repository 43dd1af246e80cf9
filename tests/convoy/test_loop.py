"""`convoy -p loop`: an asyncio loop's 1 ms timer beside work on a thread, inline, or in
a process; and the switch interval as a knob (--switch-interval, --plot)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from types import SimpleNamespace

import psutil
import pytest

from gillab import kernels
from gillab.convoy import cli, measuring, records, report, verdict
from gillab.core.errors import UsageError

from tests.conftest import interrupted_run, retry_once, run_gillab

RELEASES_GIL = {name: kernels.get(name).releases_gil for name in records.BACKGROUNDS
                if name != "none"}


def lag_row(background, where, interval, p50, p99=None, call_ms=20.0, share=None,
            noise=0.0):
    none = background == "none"
    return records.Row(background, "loop", interval, 200, p50, p99 or p50 * 1.5,
                       (p99 or p50 * 1.5) * 1.2, call_ms=None if none else call_ms,
                       noise=noise, where=None if none else where, throughput_share=share)


def judged(*rows) -> dict:
    return {(r.background, r.where, r.switch_interval): r
            for r in verdict.judge_rows(rows, cpu_count=2, releases_gil=RELEASES_GIL)}


# Hand-made rows shaped like a quiet machine's run at 5 ms and 0.1 ms (lag p50 in ms).
LOOP_ROWS = (
    lag_row("none", None, 0.005, 0.08), lag_row("none", None, 0.0001, 0.08),
    lag_row("py", "thread", 0.005, 5.1, share=0.97),
    lag_row("py", "thread", 0.0001, 0.2, share=0.85),
    lag_row("py", "loop", 0.005, 19.5, call_ms=20.0),
    lag_row("py", "loop", 0.0001, 19.8, call_ms=20.0),
    lag_row("py", "process", 0.005, 0.09), lag_row("py", "process", 0.0001, 0.09),
    lag_row("cy_gil", "thread", 0.005, 18.0, call_ms=20.0),
    lag_row("cy_gil", "thread", 0.0001, 17.5, call_ms=20.0),
    lag_row("cy_nogil", "thread", 0.005, 0.09), lag_row("cy_nogil", "thread", 0.0001, 0.09),
)


class TestLoopVerdicts:
    """Each loop row's word names the cause; its reason gives the figure (no timing)."""

    def test_each_cause_gets_its_word(self):
        rows = judged(*LOOP_ROWS)
        assert rows["none", None, 0.005].verdict == "baseline"
        assert rows["py", "thread", 0.005].verdict == "starved"
        assert rows["py", "thread", 0.0001].verdict == "responsive"
        assert rows["py", "loop", 0.005].verdict == "self-blocked"
        assert rows["py", "loop", 0.0001].verdict == "self-blocked"
        assert rows["py", "process", 0.005].verdict == "responsive"
        assert rows["cy_gil", "thread", 0.005].verdict == "blocked"
        assert rows["cy_gil", "thread", 0.0001].verdict == "blocked"
        assert rows["cy_nogil", "thread", 0.005].verdict == "responsive"

    def test_reasons_name_the_figure_of_the_cause(self):
        rows = judged(*LOOP_ROWS)
        starved = rows["py", "thread", 0.005].reason
        assert starved.startswith("lag p50 5.10 ms = 1.0x the 5 ms switch interval")
        assert "asyncio.to_thread" in starved
        inline = rows["py", "loop", 0.005].reason
        assert inline.startswith("lag p50 19.50 ms = 1.0x the 20.0 ms callback")
        blocked = rows["cy_gil", "thread", 0.0001].reason
        assert "0.9x the 20.0 ms call" in blocked and "no switch interval" in blocked
        assert "another process" in rows["py", "process", 0.005].reason
        assert "releases the GIL" in rows["cy_nogil", "thread", 0.005].reason

    def test_the_same_kernel_in_each_place_is_judged_apart(self):
        """Rows of one kernel on a thread, inline and in a process are three series."""
        rows = verdict.judge_rows(LOOP_ROWS, releases_gil=RELEASES_GIL)
        py = {r.where: r.verdict for r in rows
              if r.background == "py" and r.switch_interval == 0.005}
        assert py == {"thread": "starved", "loop": "self-blocked", "process": "responsive"}

    def test_one_interval_tells_a_call_from_the_interval_by_their_lengths(self):
        rows = judged(lag_row("none", None, 0.001, 0.08),
                      lag_row("py", "thread", 0.001, 1.1),
                      lag_row("cy_gil", "thread", 0.001, 12.0, call_ms=20.0))
        assert rows["py", "thread", 0.001].verdict == "starved"
        assert rows["cy_gil", "thread", 0.001].verdict == "blocked"

    def test_a_slow_timer_beside_a_process_is_not_blamed_on_the_gil(self):
        rows = judged(lag_row("none", None, 0.005, 0.08),
                      lag_row("py", "process", 0.005, 3.0, noise=0.6))
        row = rows["py", "process", 0.005]
        assert row.verdict == "starved"
        assert "not for the GIL" in row.reason and "60%" in row.reason

    def test_a_quiet_lag_beside_idle_work_says_the_work_was_idle(self):
        rows = judged(lag_row("none", None, 0.005, 0.08),
                      lag_row("cy_gil", "thread", 0.005, 0.1, share=0.3))
        row = rows["cy_gil", "thread", 0.005]
        assert row.verdict == "responsive" and "30% of its speed alone" in row.reason

    def test_every_word_is_in_the_legend_and_the_schema(self):
        with open(os.path.join(os.path.dirname(records.__file__), os.pardir, "core",
                               "schemas", "convoy-1.schema.json")) as f:
            schema = json.load(f)["$defs"]["row"]["properties"]
        words = {r.verdict for r in verdict.judge_rows(LOOP_ROWS, releases_gil=RELEASES_GIL)}
        assert words <= set(verdict.VERDICTS) <= set(schema["verdict"]["enum"])
        assert set(records.WHERES) <= set(schema["where"]["enum"])
        assert set(records.PROBES) == set(schema["probe"]["enum"])
        assert set(records.BACKGROUNDS) == set(schema["background"]["enum"])


class TestLoopSummaryAndReport:
    """Readings -> rows -> lines and a picture, without measuring."""

    def test_throughput_is_held_against_the_kernel_alone(self):
        reading = records.Reading("py", "loop", 0.005, (0.001, 0.002, 0.003), 0.0, 0.02,
                                  "thread", 900_000.0, 1_000_000.0)
        r = records.summarize(reading)
        assert (r.where, r.throughput, r.throughput_share) == ("thread", 900000.0, 0.9)
        assert r.p50_ms == 2.0

    def test_the_loop_table_shows_lag_work_and_the_trade_off(self):
        rows = verdict.judge_rows(LOOP_ROWS, releases_gil=RELEASES_GIL)
        env = {"implementation": "CPython", "python": "3.11.7", "gil_enabled": True,
               "cpu_count": 2, "switch_interval": 0.005}
        settings = {"samples": 200, "switch_intervals": [0.005, 0.0001], "call_ms": 20.0,
                    "gap_ms": 1.0}
        lines = report.format_convoy(rows, env, settings)
        text = "\n".join(lines)
        assert max(len(line) for line in lines) <= 80, text
        assert "loop: an asyncio loop's 1 ms timer" in text
        assert "  py        thread   5 ms       5.10" in text
        assert "97%  starved" in text
        assert "py (loop) @ 5 ms: lag p50 19.50 ms" in text
        flat = " ".join(lines)
        assert "0.1 ms: lag 0.200 ms, py at 85% of its speed alone; 5 ms: lag 5.10 ms" in flat
        assert "here the hand-offs cost py 12% of its speed alone" in flat
        assert "time.sleep" not in text  # the thread probes' lesson is not told here

    def test_the_plot_is_a_png_written_atomically(self, tmp_path):
        pytest.importorskip("matplotlib")
        rows = verdict.judge_rows(LOOP_ROWS, releases_gil=RELEASES_GIL)
        path = tmp_path / "loop.png"
        report.write_plot(rows, {"python": "3.11.7"}, str(path))
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert [p.name for p in tmp_path.iterdir()] == ["loop.png"]


class TestSwitchIntervalKnob:
    """--switch-interval: seconds, positive and finite, checked before anything runs."""

    def test_a_list_is_read_in_order_without_repeats(self):
        assert cli.switch_intervals("0.001,0.005,0.02,0.005") == (0.001, 0.005, 0.02)

    @pytest.mark.parametrize("text", ["0", "-0.001", "nan", "inf", "abc", "0.001,,0.002",
                                      "0.001, 0.002", "1e-9", "2", ""])
    def test_nonsense_is_refused(self, text):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.switch_intervals(text)

    @pytest.mark.parametrize("args,expected", [
        (["--switch-interval", "0"], "must be a finite number > 0"),
        (["--switch-interval", "nan"], "must be a finite number > 0"),
        (["--switch-interval", "0.001,fast"], "not a number: 'fast'"),
        (["--switch-interval", "1e-9"], "must be >= 1e-06 s"),
        (["-p", "loops"], "invalid choice: 'loops'"),
        (["-p", "sleep", "--plot", "{tmp}/x.png"], "--plot draws the loop probe's rows"),
    ])
    def test_cli_says_it_in_one_line(self, args, expected, tmp_path):
        result = run_gillab("convoy", *(a.format(tmp=tmp_path) for a in args))
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr and result.stdout == ""

    def test_in_process_intervals_are_checked_too(self):
        for bad in ((0.0,), (float("nan"),), (True,), ("0.001",), (5.0,)):
            with pytest.raises(UsageError):
                cli.main(SimpleNamespace(probe=["loop"], switch_interval=bad))


def _lag_rows(data) -> dict:
    return {(r["background"], r["where"]): r for r in data["rows"] if r["probe"] == "loop"}


@pytest.mark.slow
class TestLoopProbe:
    """The loop's timer beside real work, with margins for a busy 2-core machine."""

    def test_beside_py_it_waits_for_the_interval_and_beside_nogil_it_does_not(self, tmp_path):
        path, picture = tmp_path / "loop.json", tmp_path / "loop.png"

        def check():
            result = run_gillab("convoy", "-p", "loop", "-b", "py", "cy_nogil", "--samples",
                                "60", "--switch-interval", "0.005", "--json", str(path),
                                "--plot", str(picture), "-q")
            assert result.returncode == 0, result.stderr
            with open(path) as f:
                data = json.load(f)
            rows = _lag_rows(data)
            # Beside bytecode on a thread the woken loop waits for the switch interval.
            assert rows["py", "thread"]["p50_ms"] >= 0.4 * 5, rows["py", "thread"]
            assert rows["cy_nogil", "thread"]["p50_ms"] < 1.5, rows["cy_nogil", "thread"]
            assert rows["py", "process"]["p50_ms"] < 1.5, rows["py", "process"]
            assert rows["py", "loop"]["verdict"] == "self-blocked", rows["py", "loop"]
            return data

        data = retry_once(check)
        jsonschema = pytest.importorskip("jsonschema")
        with open(os.path.join(os.path.dirname(records.__file__), os.pardir, "core",
                               "schemas", "convoy-1.schema.json")) as f:
            jsonschema.validate(data, json.load(f))
        assert len(data["rows"]) == 1 + 2 * 3 and data["settings"]["switch_intervals"] == [0.005]
        assert all(r["throughput"] > 0 for r in data["rows"] if r["background"] != "none")
        assert picture.read_bytes()[:4] == b"\x89PNG"

    def test_a_run_leaves_no_thread_process_or_interval_behind(self):
        threads, children = threading.enumerate(), psutil.Process().children(recursive=True)
        interval = sys.getswitchinterval()
        sizes = {"cy_gil": measuring.calibrate_call("cy_gil", target_s=0.005)}
        readings = measuring.run_loop_readings(("none", "cy_gil"), (0.001,), 10, sizes)
        assert [(r.background, r.where) for r in readings] == [
            ("none", None), ("cy_gil", "thread"), ("cy_gil", "loop"), ("cy_gil", "process")]
        assert threading.enumerate() == threads
        assert psutil.Process().children(recursive=True) == children
        assert sys.getswitchinterval() == interval

    def test_ctrl_c_mid_row_exits_130_and_leaves_no_pool_behind(self, tmp_path):
        """Ctrl-C while the work runs inline, on a thread or in the pool: 130, no JSON,
        and the pool's process gone with gillab."""
        path = tmp_path / "loop.json"
        # After 4 s: calibration done, loop rows under way.
        status, out, err, children = interrupted_run(
            ["convoy", "-p", "loop", "-b", "py", "-q", "--json", str(path)], 4,
            watch=lambda proc: psutil.Process(proc.pid).children(recursive=True))
        assert status == 130, err
        assert err.strip() == "gillab: interrupted"
        assert out == "" and not list(tmp_path.iterdir())
        assert children, "the pool's process was not up yet: the test proved nothing"
        gone, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, alive
