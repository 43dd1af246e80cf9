"""check on a free-threaded build, without clocks: scales or contends, the GIL an import
turned on, calls with threads of their own, answers by content, --python's plan and
its bad input."""
from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
import warnings

import pytest

from gillab.checker import judge
from gillab.checker.answers import hex_digest, same_answer
from gillab.checker.record import CheckResult, Workers
from gillab.core import gilstate
from gillab.core.errors import UsageError
from tests.conftest import run_gillab

FT_OFF = {"free_threaded_build": True, "gil_enabled": False, "gil_enabled_by": []}


def record(speedup, cores, env=FT_OFF, setup="d = {}", cores_alone=1.0, noisy=False,
           private=None, cpus=2, on_cpu=1.0, share=1.0):
    return CheckResult(statement="s", setup=setup, env=dict(env), cpus=cpus,
                       released_share=share, on_cpu=on_cpu, cores_alone=cores_alone,
                       noisy=noisy, noise=0.5 if noisy else 0.0,
                       threads=(Workers(2, speedup, cores, 0.0),),
                       private_speedup=private, private_cores=private)


class TestScalesOrContends:
    """GIL off: no "releases the GIL"; threads that used the cores yet ran no faster contend."""

    def test_a_private_loop_scales(self):
        r = judge.judge(record(1.96, 1.97))
        assert (r.verdict, r.practical, r.scales, r.contends) == (
            "scales", "threads help", True, False)
        assert "releases the GIL" not in r.verdict + r.reason

    def test_shared_objects_contend_and_their_private_copies_scale(self):
        r = judge.judge(record(0.56, 1.87, private=1.96))
        assert (r.verdict, r.contends, r.scales) == ("contends", True, False)
        assert "contends on objects SETUP made: shared 0.56x, each thread its own 1.96x" \
            in r.reason
        assert r.practical == "threads help with objects of their own"

    def test_contention_elsewhere_when_private_copies_stay_slow(self):
        r = judge.judge(record(1.01, 1.91, private=1.02))
        assert r.contends is True and r.practical == "use processes"
        assert "lies elsewhere" in r.reason and "module globals" in r.reason

    def test_without_setup_the_call_itself_shares(self):
        r = judge.judge(record(1.01, 1.91, setup=""))
        assert "no SETUP to give each thread its own objects" in r.reason

    def test_threads_that_left_the_cores_idle_do_not_contend(self):
        r = judge.judge(record(0.9, 1.05))
        assert (r.verdict, r.contends) == ("does not scale", False)

    def test_threads_parked_on_shared_objects_contend_when_their_own_copies_scale(self):
        """3.13t's shared dict on a quiet machine: the threads block on its lock (1.35
        cores, not 2), and the run with objects of their own scales: measured, so named."""
        r = judge.judge(record(0.46, 1.35, private=1.93))
        assert (r.verdict, r.contends, r.scales) == ("contends", True, False)
        assert "waited on what they share" in r.reason
        assert "contends on objects SETUP made: shared 0.46x, each thread its own 1.93x" \
            in r.reason
        assert r.practical == "threads help with objects of their own"

    def test_a_lock_elsewhere_with_idle_cores_does_not_scale(self):
        r = judge.judge(record(0.46, 1.35, private=0.5))
        assert (r.verdict, r.contends) == ("does not scale", False)

    def test_a_busy_machine_cannot_tell(self):
        r = judge.judge(record(0.9, 1.05, noisy=True))
        assert (r.verdict, r.scales, r.contends) == ("too busy to tell", None, None)

    def test_own_objects_measured_only_in_quiet_rounds(self, monkeypatch):
        """The pass with SETUP once per thread keeps only rounds the noise guard passes:
        noisy ones are retried, and none quiet leaves the cause unmeasured, saying why."""
        from gillab.checker import api
        from gillab.checker.statement import prepare
        from gillab.measure import loops
        from gillab.measure.clocks import TaskClock

        def fake_runs(noises):
            noises = iter(noises)

            def run_threads(loop, calls, k, deadline, own=None):
                noise = next(noises)
                # Quiet, 2 threads take one task's time: 2.00x; noisy, three times it.
                wall = 0.3 if k > 1 and noise > 0.5 else 0.1
                return loops.Run("threads", k, wall, k * wall, noise,
                                 tuple(TaskClock(None, None, wall, wall) for _ in range(k)))
            return run_threads

        prepared = prepare("d[0] = 1", "d = {}")
        shared = record(0.46, 1.35)
        monkeypatch.setattr(loops, "run_threads", fake_runs([0.0, 0.6, 0.0, 0.0, 0.0, 0.0]))
        got = api._private_pass(prepared, None, shared, float("inf"), 60)
        assert got.private_speedup == 2.0  # the noisy first round was not kept

        monkeypatch.setattr(loops, "run_threads", fake_runs([0.0, 0.7] * api.PRIVATE_TRIES))
        got = api._private_pass(prepared, None, shared, float("inf"), 60)
        assert got.private_speedup is None and got.noise == 0.7
        r = judge.judge(got)
        assert "each thread's own objects: too busy to measure (other processes took 70%" \
            in r.reason
        assert r.verdict == "does not scale"  # the shared run's own figures still judged

    def test_the_same_figures_with_the_gil_on_are_judged_by_the_gil(self):
        env = {**FT_OFF, "gil_enabled": True}
        r = judge.judge(record(0.9, 1.0, env=env, share=0.05))
        assert r.verdict == "holds the GIL" and r.contends is None


class TestGilTurnedOn:
    def test_the_verdict_names_the_module_and_how_to_test_without_it(self):
        env = {**FT_OFF, "gil_enabled": True, "gil_enabled_by": ["gilneeded"]}
        r = judge.judge(record(1.0, 1.0, env=env, share=0.05))
        assert "turned on by importing gilneeded" in r.reason
        assert "PYTHON_GIL=0" in r.reason and "at your own risk" in r.reason

    def test_a_build_with_a_gil_gets_no_such_note(self):
        env = {"free_threaded_build": False, "gil_enabled": True, "gil_enabled_by": []}
        assert "PYTHON_GIL" not in judge.judge(record(1.0, 1.0, env=env, share=0.05)).reason


class TestOwnThreads:
    """One thread alone on ~2 cores: the call runs threads of its own."""

    def test_a_call_that_fills_the_cpus_never_answers_use_processes(self):
        env = {"free_threaded_build": False, "gil_enabled": True}
        r = judge.judge(record(1.0, 1.98, env=env, cores_alone=1.97, on_cpu=0.02))
        assert r.verdict == "parallel by itself (1.97 cores)"
        assert r.practical == "already parallel"
        assert "1.97 cores by itself" in r.reason and "neither more threads nor processes" \
            in r.reason

    def test_cpus_left_free_are_what_more_workers_are_judged_against(self):
        env = {"free_threaded_build": False, "gil_enabled": True}
        r = judge.judge(record(1.9, 3.9, env=env, cores_alone=2.0, cpus=4))
        assert r.practical == "threads help" and "2.00 CPUs left" in r.reason


class TestGilState:
    def test_the_warning_names_the_module(self):
        text = (f"{gilstate.ENABLED_WARNING} 'pkg._ext', which has not declared that it can "
                "run safely without the GIL.")
        assert gilstate.modules_named([text, text, "other"]) == ["pkg._ext"]

    def test_watch_records_the_gil_warning_and_shows_the_others_again(self):
        with pytest.warns(UserWarning, match="unrelated"):
            with gilstate.watch_gil() as watch:
                warnings.warn(f"{gilstate.ENABLED_WARNING} 'x_ext', which ...", RuntimeWarning)
                warnings.warn("unrelated", UserWarning)
        assert watch.enabled_by == ["x_ext"]
        assert watch.env_fields()["gil_enabled_by"] == ["x_ext"]

    def test_a_build_with_a_gil_reads_on(self):
        if gilstate.free_threaded_build():
            pytest.skip("a build with a GIL only")
        assert gilstate.gil_enabled() is True


class NoTruth:
    """== answers an object with no truth value, as numpy and symbolic libraries do."""

    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return self

    def __bool__(self):
        raise TypeError("no truth value")


class TestSameAnswer:
    def test_numpy_arrays_by_content(self):
        np = pytest.importorskip("numpy")
        assert same_answer(np.arange(5), np.arange(5)) is True
        assert same_answer(np.arange(5), np.arange(1, 6)) is False
        assert same_answer(np.arange(4), np.arange(4).reshape(2, 2)) is False
        assert same_answer(np.array([np.nan]), np.array([np.nan])) is True

    def test_hash_objects_by_digest(self):
        assert same_answer(hashlib.sha256(b"a"), hashlib.sha256(b"a")) is True
        assert same_answer(hashlib.sha256(b"a"), hashlib.sha256(b"b")) is False

    def test_re_matches_by_what_they_found(self):
        text = "x" * 10 + "needle"
        assert same_answer(re.search("ne+dle", text), re.search("ne+dle", text)) is True
        later = re.compile("ne+dle").search(text + "needle", 11)  # the second needle
        assert same_answer(re.search("ne+dle", text), later) is False
        assert same_answer(re.search("(n)e", text), re.search("(ne)", text)) is False

    def test_a_hash_object_is_shown_by_its_digest_not_its_address(self):
        assert hex_digest(hashlib.sha256(b"")) == (
            "sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        assert hex_digest(b"not a hash") is None

    def test_bytes_like_through_their_buffer(self):
        assert same_answer(memoryview(b"ab"), bytearray(b"ab")) is True
        assert same_answer(memoryview(b"ab"), memoryview(b"ax")) is False

    def test_no_truth_value_is_not_a_difference(self):
        assert same_answer(NoTruth(1), NoTruth(1)) is None
        assert same_answer(float("nan"), float("nan")) is True
        assert same_answer(1, 2) is False

    def test_a_call_answering_arrays_is_compared_not_varies_alone(self):
        from gillab.checker.api import _compare_answers
        np = pytest.importorskip("numpy")

        def run(value):
            task = type("T", (), {"value": value})()
            return type("R", (), {"tasks": (task,)})()

        rounds = [{"alone": run(np.arange(3)), "probed": run(np.arange(3)),
                   2: run(np.arange(3))}]
        assert _compare_answers(np.arange(3), rounds)[0] == "same"
        rounds[0][2] = run(np.arange(1, 4))
        assert _compare_answers(np.arange(3), rounds)[0] == "differ"


def fake_probe(free_threaded):
    from gillab.pythons.found import Interpreter

    return lambda path: Interpreter(path, "3.13.5", "b", "CPython", free_threaded)


class TestPlan:
    def test_both_is_two_runs_from_one_binary(self):
        from gillab.checker.across import plan_check_runs

        runs = plan_check_runs(["/x/python3.13t"], "both", probe_func=fake_probe(True))
        assert [(r.label, r.gil) for r in runs] == [("3.13t", "off"), ("3.13t+GIL", "on")]

    def test_without_gil_the_build_runs_as_it_would(self, monkeypatch):
        from gillab.checker.across import plan_check_runs

        monkeypatch.delenv("PYTHON_GIL", raising=False)
        assert plan_check_runs(["/x/p"], None, probe_func=fake_probe(True))[0].gil is None

    def test_gil_on_a_build_with_a_gil_is_refused(self):
        from gillab.checker.across import plan_check_runs

        with pytest.raises(UsageError, match="a build with a GIL"):
            plan_check_runs(["/x/p"], "on", probe_func=fake_probe(False))
        with pytest.raises(UsageError, match="needs --python"):
            plan_check_runs([], "off", probe_func=fake_probe(True))


class TestBadInput:
    """One line, exit 2, before anything is built or measured."""

    @pytest.mark.parametrize("args", [
        ["--python", "/no/such/python", "1"],
        ["--gil", "both", "1"],
        ["--python", sys.executable, "--gil", "on", "1"],
        ["--python", "/etc/hostname", "1"],
    ])
    def test_one_line_exit_2(self, args):
        if "--gil" in args and "--python" in args and gilstate.free_threaded_build():
            pytest.skip("this interpreter is free-threaded")
        result = run_gillab("check", *args)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr


class TestReport:
    def test_two_runs_side_by_side(self):
        from gillab.checker.across import CheckRun, runs_to_dict
        from gillab.checker.report import format_runs
        from gillab.pythons.found import Interpreter

        off = judge.judge(record(0.56, 1.87, private=1.96))
        on = judge.judge(record(0.9, 1.0, env={**FT_OFF, "gil_enabled": True}, share=0.05))
        i = Interpreter("/x/p", "3.13.5", "b", "CPython", True)
        runs = [CheckRun(dataclasses.replace(i, label="3.13t", gil="off"), off),
                CheckRun(dataclasses.replace(i, label="3.13t+GIL", gil="on"), on)]
        text = "\n".join(format_runs(runs))
        assert "3.13t (GIL off)" in text and "3.13t+GIL (GIL on)" in text
        assert "contends" in text and "holds the GIL" in text and "1.96x" in text
        data = runs_to_dict(runs)
        assert [r["gil"] for r in data["runs"]] == ["off", "on"]
        assert data["runs"][0]["result"]["contends"] is True
        assert data["runs"][0]["result"]["private_speedup"] == 1.96
