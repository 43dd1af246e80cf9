"""`convoy`: what a CPU-bound thread beside it costs an IO thread's measuring."""
from __future__ import annotations

import json
import sys
import threading
import time
from types import SimpleNamespace

import psutil
import pytest

from gillab import kernels
from gillab.convoy import cli, measuring, records, report, verdict
from gillab.__main__ import create_parser
from gillab.core.errors import UsageError

from tests.conftest import interrupted_run, retry_once, run_gillab

DESIGN_ROW_FIELDS = ("background", "probe", "switch_interval", "samples", "p50_ms", "p99_ms",
                     "max_ms", "verdict", "reason")


#: What each background does with the GIL, as the CLI hands it to the verdicts.
RELEASES_GIL = {name: kernels.get(name).releases_gil for name in records.BACKGROUNDS
                if name != "none"}


def row(background, probe, interval, p50, p99, max_ms=None, call_ms=None, noise=0.0):
    return records.Row(background, probe, interval, 200, p50, p99,
                      max_ms if max_ms is not None else p99,
                      call_ms=call_ms if background != "none" else None, noise=noise)


def judged(*rows) -> dict:
    return {(r.background, r.probe, r.switch_interval): r
            for r in verdict.judge_rows(rows, cpu_count=2, releases_gil=RELEASES_GIL)}


# Hand-made rows shaped like the issue's prototype (1 ms sleep, p50 in ms).
ISSUE_SLEEP = (
    row("none", "sleep", 0.005, 1.11, 1.3), row("none", "sleep", 0.0001, 1.11, 1.3),
    row("py", "sleep", 0.005, 6.27, 6.6, call_ms=20.0),
    row("py", "sleep", 0.0001, 1.32, 1.9, call_ms=20.0),
    row("cy_gil", "sleep", 0.005, 20.6, 21.5, call_ms=19.8),
    row("cy_gil", "sleep", 0.0001, 20.6, 21.4, call_ms=19.8),
    row("cy_nogil", "sleep", 0.005, 1.08, 1.4, call_ms=20.1),
    row("cy_nogil", "sleep", 0.0001, 1.08, 1.3, call_ms=20.1),
)


class TestVerdicts:
    """Verdicts come from the numbers (hand-made rows: nothing is timed here)."""

    def test_the_issue_shapes_get_their_verdicts(self):
        rows = judged(*ISSUE_SLEEP)
        assert rows["none", "sleep", 0.005].verdict == "baseline"
        assert rows["py", "sleep", 0.005].verdict == "convoy"
        assert rows["py", "sleep", 0.0001].verdict == "no convoy"
        assert rows["cy_gil", "sleep", 0.005].verdict == "blocked"
        assert rows["cy_gil", "sleep", 0.0001].verdict == "blocked"
        assert rows["cy_nogil", "sleep", 0.005].verdict == "no convoy"
        assert {r.verdict for r in rows.values()} <= set(verdict.VERDICTS)

    def test_reasons_state_numbers_and_the_mechanism(self):
        rows = judged(*ISSUE_SLEEP)
        py = rows["py", "sleep", 0.005]
        assert py.reason.startswith("p50 6.27 ms = 5.6x the 1.11 ms baseline; 1.32 ms at a "
                                    "0.1 ms interval")
        assert "switch interval (5 ms) forces the CPU thread to drop it" in py.reason
        gil = rows["cy_gil", "sleep", 0.0001]
        assert "20.60 ms = 18.6x" in gil.reason and "19.8 ms call" in gil.reason
        assert "no switch interval can cut it short" in gil.reason
        assert "releases the GIL" in rows["cy_nogil", "sleep", 0.005].reason
        assert py.ratio == pytest.approx(5.65) and py.baseline_p50_ms == 1.11

    def test_bimodal_socketpair_is_a_tail_convoy(self):
        rows = judged(row("none", "socketpair", 0.005, 0.01, 0.03),
                      row("none", "socketpair", 0.0001, 0.01, 0.03),
                      row("py", "socketpair", 0.005, 0.012, 10.2, call_ms=20),
                      row("py", "socketpair", 0.0001, 0.011, 0.3, call_ms=20),
                      row("cy_gil", "socketpair", 0.005, 0.012, 20.3, call_ms=20),
                      row("cy_gil", "socketpair", 0.0001, 0.012, 20.1, call_ms=20))
        py = rows["py", "socketpair", 0.005]
        assert py.verdict == "tail convoy"
        assert "p99 10.20 ms against 0.030 ms" in py.reason
        assert "switch interval (5 ms)" in py.reason
        assert rows["py", "socketpair", 0.0001].verdict == "no convoy"
        gil = rows["cy_gil", "socketpair", 0.0001]
        assert gil.verdict == "tail convoy"
        assert "the rest of a 20.0 ms call" in gil.reason

    def test_a_wait_beside_nogil_is_not_blamed_on_the_gil(self):
        rows = judged(row("none", "echo", 0.005, 0.02, 0.05),
                      row("cy_nogil", "echo", 0.005, 0.03, 6.0, call_ms=20, noise=0.6))
        nogil = rows["cy_nogil", "echo", 0.005]
        assert nogil.verdict == "tail convoy"
        assert "not for the GIL" in nogil.reason and "60%" in nogil.reason

    def test_one_interval_only_falls_back_on_the_call_length(self):
        rows = judged(row("none", "sleep", 0.005, 1.1, 1.2),
                      row("cy_gil", "sleep", 0.005, 20.5, 21, call_ms=20),
                      row("py", "sleep", 0.005, 6.2, 6.5, call_ms=20))
        assert rows["cy_gil", "sleep", 0.005].verdict == "blocked"
        assert rows["py", "sleep", 0.005].verdict == "convoy"

    def test_a_row_without_its_baseline_is_refused(self):
        with pytest.raises(ValueError, match="no baseline row for sleep at 5 ms"):
            verdict.judge_rows([row("py", "sleep", 0.005, 6, 7)], releases_gil=RELEASES_GIL)

    def test_a_background_without_its_gil_trait_is_refused(self):
        """The verdict takes what a kernel does with the GIL as a trait, never guesses it."""
        with pytest.raises(ValueError, match="whether cy_nogil releases the GIL"):
            verdict.judge_rows([row("none", "sleep", 0.005, 1.1, 1.2),
                                row("cy_nogil", "sleep", 0.005, 1.1, 1.2, call_ms=20)],
                               releases_gil={"py": False})


class TestSummaryAndReport:
    """Readings -> rows -> lines, without measuring."""

    def test_percentiles_are_measured_values(self):
        reading = records.Reading("py", "sleep", 0.005,
                                  tuple(i / 1000 for i in range(1, 101)), 0.02, 0.0201)
        r = records.summarize(reading)
        assert (r.samples, r.p50_ms, r.p99_ms, r.max_ms) == (100, 50.5, 99.0, 100.0)
        assert r.call_ms == 20.1 and r.noise == 0.02

    def test_report_fits_80_columns_and_explains_itself(self):
        rows = verdict.judge_rows(ISSUE_SLEEP, releases_gil=RELEASES_GIL)
        env = {"implementation": "CPython", "python": "3.11.7", "gil_enabled": True,
               "cpu_count": 2, "switch_interval": 0.005, "start_method": "fork"}
        settings = {"samples": 200, "switch_intervals": [0.005, 0.0001], "call_ms": 20.0,
                    "gap_ms": 1.0}
        lines = report.format_convoy(rows, env, settings)
        text = "\n".join(lines)
        assert max(len(line) for line in lines) <= 80, text
        assert lines[0].startswith("gillab convoy — CPython 3.11.7, GIL enabled, 2 CPUs")
        assert "sleep: time.sleep(1 ms)" in text
        for word in verdict.VERDICTS:
            assert f"  {word}  " in text or f"  {word} " in text
        assert "  py          5 ms        6.27" in text
        assert "cy_gil @ 0.1 ms: p50 20.60 ms" in text
        assert "lesson of GIL release" in " ".join(lines) and "WARNING" not in text


class TestBadInput:
    """Usage errors exit 2 and measure nothing."""

    @pytest.mark.parametrize("args,expected", [
        (["-b", "unknown"], "invalid choice: 'unknown'"),
        (["-p", "carrier-pigeon"], "invalid choice"),
        (["--samples", "-1"], "must be >= 1"),
        (["--samples", "0"], "must be >= 1"),
        (["--samples", "many"], "not a whole number"),
    ])
    def test_cli(self, args, expected):
        result = run_gillab("convoy", *args)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""

    def test_json_directory_must_exist(self, tmp_path):
        result = run_gillab("convoy", "--json", str(tmp_path / "nope" / "c.json"))
        assert result.returncode == 2
        assert "does not exist" in result.stderr and result.stdout == ""

    def test_in_process_arguments_are_checked_too(self):
        for args in (SimpleNamespace(background=["nope"]), SimpleNamespace(samples=-1),
                     SimpleNamespace(probe=["nope"]), SimpleNamespace(samples=True)):
            with pytest.raises(UsageError):
                cli.main(args)

    def test_the_baseline_is_always_measured(self):
        backgrounds, probes, samples = cli._plan(
            SimpleNamespace(background=["cy_nogil", "py", "py"], probe=["echo"], samples=5))
        assert backgrounds == ("none", "py", "cy_nogil")
        assert probes == ("echo",) and samples == 5


def _open_sockets() -> set:
    return set(psutil.Process().net_connections(kind="all"))


def _parse(*argv):
    return create_parser().parse_args(["convoy", *argv])


@pytest.mark.slow
class TestInProcess:
    """A run leaves nothing behind: threads, sockets, the switch interval."""

    def test_every_background_and_socket_probe(self):
        threads, sockets, fds = threading.enumerate(), _open_sockets(), psutil.Process().num_fds()
        interval = sys.getswitchinterval()
        lines = cli.main(_parse("-p", "socketpair", "echo", "--samples", "8", "-q"))
        assert threading.enumerate() == threads
        assert _open_sockets() == sockets
        assert psutil.Process().num_fds() == fds
        assert sys.getswitchinterval() == interval
        text = "\n".join(lines)
        assert "socketpair: " in text and "echo: " in text and "sleep: " not in text
        for background in records.BACKGROUNDS:
            assert f"  {background:<10}  5 ms" in text and f"  {background:<10}  0.1 ms" in text
        assert max(len(line) for line in lines) <= 80

    def test_ctrl_c_mid_row_stops_everything(self, monkeypatch):
        """KeyboardInterrupt while a GIL-holding thread runs and the echo server serves."""
        calls, busy = [], []

        def interrupted_once(self):
            calls.append(1)
            if len(calls) == records.WARMUP + 20 + 5:  # five operations into the cy_gil row
                busy.extend(t.name for t in threading.enumerate()
                            if t.name.startswith("gillab-"))
                raise KeyboardInterrupt

        threads, sockets, fds = threading.enumerate(), _open_sockets(), psutil.Process().num_fds()
        interval = sys.getswitchinterval()
        sizes = {"cy_gil": measuring.calibrate_call("cy_gil")}
        monkeypatch.setattr(measuring.EchoProbe, "once", interrupted_once)
        with pytest.raises(KeyboardInterrupt):
            measuring.run_readings(("none", "cy_gil"), ("echo",), (0.0001,), 20, sizes)
        assert {"gillab-convoy-cy_gil", "gillab-echo-accept", "gillab-echo-handler"} <= set(busy)
        assert threading.enumerate() == threads
        assert _open_sockets() == sockets
        assert psutil.Process().num_fds() == fds
        assert sys.getswitchinterval() == interval

    def test_background_thread_stops_and_reports_its_calls(self):
        n = measuring.calibrate_call("py", target_s=0.005)
        with measuring.BackgroundThread("py", n) as thread:
            time.sleep(0.05)
        assert not any(t.name == "gillab-convoy-py" for t in threading.enumerate())
        assert thread.call_s is not None and thread.call_s > 0


@pytest.mark.slow
class TestShapesThroughTheCli:
    """The lesson end to end, with margins for a busy 2-core machine, retried once."""

    def test_sleep_beside_py_cy_gil_and_cy_nogil(self, tmp_path):
        path = tmp_path / "convoy.json"

        def check():
            result = run_gillab("convoy", "-b", "py", "cy_gil", "cy_nogil", "-p", "sleep",
                                "--samples", "40", "--json", str(path))
            assert result.returncode == 0, result.stderr
            with open(path) as f:
                data = json.load(f)
            rows = {(r["background"], r["switch_interval"]): r for r in data["rows"]}
            default, small = data["settings"]["switch_intervals"]
            for interval in (default, small):
                base = rows["none", interval]["p50_ms"]
                # Beside cy_nogil the IO thread does not wait for anyone.
                assert rows["cy_nogil", interval]["p50_ms"] <= 1.5 * base + 0.5, rows
                # A GIL-holding C call blocks whatever the switch interval.
                assert rows["cy_gil", interval]["p50_ms"] >= 2 * base, rows
                assert rows["cy_gil", interval]["verdict"] == "blocked", rows
            # Beside pure Python the IO thread waits for the switch interval.
            assert rows["py", default]["p50_ms"] >= 2 * rows["none", default]["p50_ms"], rows
            assert rows["py", default]["verdict"] == "convoy", rows
            return result, data

        result, data = retry_once(check)
        assert "[1/8] none / sleep @ 5 ms" in result.stderr  # progress on stderr
        assert "sleep: time.sleep(1 ms)" in result.stdout
        self.check_schema(data)

    @staticmethod
    def check_schema(data):
        assert data["schema"] == "gillab/convoy/1"
        for key in ("gillab", "python", "implementation", "gil_enabled", "free_threaded_build",
                    "cpu_count", "cython", "gevent", "switch_interval", "start_method",
                    "platform"):
            assert key in data["env"]
        assert len(data["rows"]) == 4 * 1 * 2
        for r in data["rows"]:
            assert list(r)[:len(DESIGN_ROW_FIELDS)] == list(DESIGN_ROW_FIELDS)
            assert r["background"] in ("none", "py", "cy_gil", "cy_nogil")
            assert r["probe"] == "sleep"
            assert r["switch_interval"] in (data["env"]["switch_interval"], 0.0001)
            assert r["samples"] == 40
            assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
            assert r["verdict"] in verdict.VERDICTS and r["reason"]

    def test_quiet_and_ctrl_c(self, tmp_path):
        """-q: nothing on stderr; Ctrl-C: exit 130, no JSON, within about one call."""
        path = tmp_path / "c.json"
        # After 3 s: calibration done, cy_gil rows under way.
        status, out, err, _ = interrupted_run(
            ["convoy", "-b", "cy_gil", "-q", "--json", str(path)], 3)
        assert status == 130, err
        assert err.strip() == "gillab: interrupted"
        assert out == "" and not list(tmp_path.iterdir())
