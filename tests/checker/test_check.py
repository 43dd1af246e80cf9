"""`gillab check`: does this call release the GIL, and would threads help it?"""
from __future__ import annotations

import json

import pytest

from gillab.checker.judge import find_threshold, judge
from gillab.checker.record import SCHEMA, CheckResult, CheckSweep, Workers
from gillab.checker.statement import parse_sweep, prepare
from gillab.core.errors import UsageError

from tests.conftest import NoisyCells, retry_once, run_gillab


def made(share=1.0, on_cpu=1.0, speedup=1.95, cores=1.96, gil_wait=0.01, cpus=2,
         noisy=False, noise=0.0, call_s=0.001, **kw) -> CheckResult:
    """A hand-made record: what one check on 2 CPUs might have measured."""
    return CheckResult(statement="f()", calls_per_task=100, call_s=call_s, task_s=0.1,
                       released_share=share, on_cpu=on_cpu, cpus=cpus, noisy=noisy,
                       noise=noise,
                       threads=(Workers(2, speedup, cores, gil_wait),), **kw)


class TestJudge:
    """The verdict on hand-made records: the probe and the cores must agree."""

    def test_releasing_call_that_scales(self):
        r = judge(made())
        assert (r.verdict, r.practical, r.releases_gil) == \
            ("releases the GIL", "threads help", True)
        assert "GIL free 100%" in r.reason and "1.96 cores" in r.reason

    def test_holding_call(self):
        r = judge(made(share=0.02, speedup=0.98, cores=1.0, gil_wait=0.5))
        assert (r.verdict, r.practical, r.releases_gil) == \
            ("holds the GIL", "use processes", False)

    def test_speedup_on_one_core_is_never_threads_help(self):
        """Cores lead: 1.64x on 1.02 cores is a slow baseline, not parallelism."""
        r = judge(made(share=0.05, speedup=1.64, cores=1.02, gil_wait=0.48))
        assert r.practical == "use processes"
        assert r.releases_gil is False
        assert "slow baseline" in r.reason

    def test_released_but_serialized_elsewhere(self):
        """GIL free, yet one core: something else (a lock) serializes the call."""
        r = judge(made(share=0.97, speedup=1.0, cores=1.01, gil_wait=0.49))
        assert r.verdict == "releases the GIL" and r.practical == "use processes"
        assert "something other than the GIL" in r.reason

    def test_released_but_too_short_to_hand_the_gil_over(self):
        """GIL free inside a 1.4 us call, yet the threads blocked: the handover between
        calls (sha256 of 2 KiB, measured) or a lock, not "memory bandwidth"."""
        r = judge(made(share=0.98, speedup=0.71, cores=1.14, gil_wait=0.42, call_s=1.36e-6))
        assert r.verdict == "releases the GIL" and r.practical == "use processes"
        assert "a call of 1.36 us gives the GIL back" in r.reason
        assert "memory bandwidth" not in r.reason
        # A long call, or threads that did not block, keep the general reason.
        for kw in (dict(call_s=1e-3, gil_wait=0.42), dict(call_s=1.36e-6, gil_wait=0.05)):
            r = judge(made(share=0.98, speedup=0.9, cores=1.1, **kw))
            assert "something other than the GIL" in r.reason, kw

    def test_partial_release_names_its_share(self):
        r = judge(made(share=0.4, speedup=1.3, cores=1.35, gil_wait=0.3))
        assert r.verdict == "releases it for part of the call (40%)"
        assert r.practical == "use processes" and r.releases_gil is False
        assert "at most 1.7 cores" in r.reason

    def test_waits(self):
        r = judge(made(share=1.0, on_cpu=0.02, speedup=1.98, cores=0.03, gil_wait=0.0))
        assert (r.verdict, r.practical, r.releases_gil) == \
            ("waits", "threads help only for waits", True)

    def test_noisy_and_unclear_says_it_cannot_tell(self):
        r = judge(made(share=0.1, speedup=0.9, cores=0.5, gil_wait=0.03, noisy=True,
                       noise=0.7))
        assert r.releases_gil is None
        assert "machine busy" in r.reason and "too busy to tell" in r.reason

    def test_noisy_but_clocks_agree(self):
        """Blocked time excludes the OS queue, so it still tells on a busy machine."""
        r = judge(made(share=0.99, speedup=1.2, cores=0.7, gil_wait=0.02, noisy=True,
                       noise=0.5))
        assert r.releases_gil is True and r.practical == "threads help"

    def test_probe_and_cores_disagree(self):
        r = judge(made(share=0.05, speedup=1.9, cores=1.9, gil_wait=0.0))
        assert r.releases_gil is None and "disagrees" in r.reason

    def test_thread_safety_finding_is_reported(self):
        r = judge(made(answers="differ", answers_detail="3 on 2 threads, 4 alone"))
        assert "not thread-safe" in r.reason

    def test_failed_statement(self):
        r = judge(CheckResult(statement="1/0", error="ZeroDivisionError: division by zero"))
        assert r.verdict == "failed" and r.releases_gil is None


class TestRecords:
    """JSON of schema gillab/check/1: the record's attributes are its fields."""

    def test_round_trip(self):
        r = judge(made())
        data = json.loads(json.dumps(r.to_dict()))
        assert data["schema"] == SCHEMA
        for name in ("statement", "setup", "env", "calls_per_task", "released_share",
                     "releases_gil", "threads", "verdict", "reason"):
            assert name in data
        assert data["threads"][0]["speedup"] == 1.95
        assert CheckResult.from_dict(data) == r

    def test_a_partial_release_carries_its_word_beside_its_share(self):
        r = judge(made(share=0.4))
        assert r.verdict == "releases it for part of the call (40%)"
        assert r.verdict_word == "releases it for part of the call"

    def test_the_threshold_reads_the_word_not_the_sentence(self):
        # Two partial releases at different shares are one verdict for a sweep; a row
        # whose word differs is a change even when its sentence starts alike.
        rows = tuple(judge(made(share=s, params={"n": n})) for n, s in ((1, 0.4), (2, 0.6)))
        assert find_threshold("n", rows).startswith("the verdict does not change")
        import dataclasses
        moved = dataclasses.replace(rows[1], verdict_word="holds the GIL")
        assert find_threshold("n", (rows[0], moved)).startswith("the verdict changes")

    def test_sweep_rows_and_threshold(self):
        rows = tuple(judge(made(share=s, params={"n": n}, speedup=sp, cores=sp,
                                gil_wait=gw))
                     for n, s, sp, gw in ((1024, 0.02, 1.0, 0.5), (2048, 0.03, 1.0, 0.5),
                                          (4096, 0.9, 1.8, 0.02)))
        threshold = find_threshold("n", rows)
        assert threshold == ("the verdict changes between n=2048 (holds the GIL) and "
                             "n=4096 (releases the GIL)")
        data = CheckSweep("f(n)", "", {}, "n", rows, threshold).to_dict()
        assert [row["verdict_word"] for row in data["rows"]] == [
            "holds the GIL", "holds the GIL", "releases the GIL"]
        assert [row["params"] for row in data["rows"]] == [{"n": 1024}, {"n": 2048},
                                                           {"n": 4096}]


class TestStatement:
    """Statements compile like timeit's; sweep names must be used."""

    def test_loop_returns_last_expression(self):
        p = prepare("y = x * 2\ny + 1", "x = 20")
        ns = p.new_namespace()
        p.run_setup(ns)
        assert p.make_loop(ns)(3) == 41

    def test_sweep_value_bound_after_setup(self):
        p = prepare("len(data)", "data = bytes(n)")
        name, values = parse_sweep("n=2**10,4096", p)
        assert (name, values) == ("n", (1024, 4096))
        ns = p.new_namespace({"n": 4096})
        p.run_setup(ns, {"n": 4096})
        assert p.make_loop(ns)(1) == 4096

    def test_checker_compares_every_call(self):
        p = prepare("n[0] += 1\nn[0] % 3", "n = [0]")
        ns = p.new_namespace()
        p.run_setup(ns)
        assert p.make_checker(ns)(5, 1) == (False, 2)  # the second call answered 2

    @pytest.mark.parametrize("statement, setup, message", [
        ("f(", "", "does not compile"),
        ("1", "x = (", "SETUP does not compile"),
        ("return 1", "", "does not compile"),
    ])
    def test_bad_source(self, statement, setup, message):
        with pytest.raises(UsageError, match=message):
            prepare(statement, setup)

    def test_unknown_sweep_name(self):
        with pytest.raises(UsageError, match="not used"):
            parse_sweep("zz=1,2", prepare("x + 1", "x = 1"))


class TestBadInput:
    """Bad input: one line, exit 2 (usage) or 1 (the statement failed), no traceback."""

    @pytest.mark.parametrize("args, code, message", [
        (["f("], 2, "does not compile"),
        (["--sweep", "zz=1,2", "-s", "x = 1", "x + 1"], 2, "not used"),
        (["os:nothere"], 2, "has no attribute"),
        (["os:getenv"], 2, "needs arguments"),
        (["nosuchmodule:f"], 2, "cannot import"),
        (["-s", "raise ValueError('boom')", "1"], 1, "SETUP failed: ValueError: boom"),
        (["1/0"], 1, "ZeroDivisionError"),
        (["import sys; sys.exit(3)"], 1, "SystemExit: 3"),
    ])
    def test_one_line(self, args, code, message):
        result = run_gillab("check", *args, timeout=60)
        assert result.returncode == code, result.stderr
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1

    @pytest.mark.slow
    def test_a_call_that_never_returns_nor_releases_the_gil_is_bounded(self):
        """Catastrophic backtracking in re holds the GIL: only killing the child ends it."""
        result = run_gillab("check", "-s", "import re", "--timeout", "1",
                            "re.match(r'(a+)+b', 'a' * 40)", timeout=60)
        assert result.returncode == 1
        assert "did not return within --timeout 1 s" in result.stderr
        assert "Traceback" not in result.stderr


    @pytest.mark.slow
    def test_ctrl_c_leaves_nothing_running(self):
        """Ctrl-C while a hung call holds the GIL: exit 130, the check's processes gone."""
        import os
        import signal
        import subprocess
        import sys
        import time

        import psutil

        proc = subprocess.Popen(
            [sys.executable, "-m", "gillab", "check", "--processes", "-s", "import re",
             "re.match(r'(a+)+b', 'a' * 40)"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            deadline = time.monotonic() + 30
            while not psutil.Process(proc.pid).children() and time.monotonic() < deadline:
                time.sleep(0.1)
            children = psutil.Process(proc.pid).children(recursive=True)
            assert children, "the check's child process never started"
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive, f"left running: {alive}"


def _real(statement, setup="", **kw):
    """A real check; NoisyCells when the machine was too busy for it to tell (run it
    inside retry_once: tried again, then skipped with the check's own reason)."""
    import gillab

    result = gillab.check(statement, setup, **kw)
    if result.releases_gil is None:
        raise NoisyCells(f"machine too busy to tell: {result.reason}")
    return result


@pytest.mark.slow
class TestRealChecks:
    """Real checks of calls whose GIL behaviour CPython's sources state."""

    def test_sha256_of_4_mib_releases(self):
        def check():
            r = _real("hashlib.sha256(data)", "import hashlib; data = bytes(4 << 20)")
            assert r.verdict == "releases the GIL", r.reason
            assert r.releases_gil is True and r.released_share >= 0.75
        retry_once(check)

    def test_pure_python_loop_holds(self):
        def check():
            r = _real("sum(i * i for i in range(20000))")
            assert r.verdict == "holds the GIL", r.reason
            assert r.releases_gil is False and r.practical == "use processes"
        retry_once(check)

    def test_sleep_waits(self):
        def check():
            r = _real("time.sleep(0.01)", "import time")
            assert r.verdict == "waits" and r.practical == "threads help only for waits"
            assert r.on_cpu < 0.5
        retry_once(check)

    def test_thread_safety_finding(self):
        """A shared list cleared and refilled: same length alone, not in two threads."""
        import gillab

        r = gillab.check("buf.clear()\nfor i in range(20000): buf.append(i)\nlen(buf)",
                         "buf = []")
        assert r.answers == "differ", r.answers_detail
        assert "not thread-safe" in r.reason

    def test_cli_sweep_finds_hashlibs_threshold(self, tmp_path):
        """HASHLIB_GIL_MINSIZE is 2048: below it the GIL is held, above it released."""
        path = tmp_path / "sweep.json"

        def check():
            result = run_gillab("check", "-s", "import hashlib; data = bytes(n)", "--sweep",
                                "n=1024,65536", "--json", str(path), "hashlib.sha256(data)",
                                timeout=120)
            assert result.returncode == 0, result.stderr
            data = json.loads(path.read_text())
            assert data["schema"] == SCHEMA and data["sweep"] == "n"
            assert [row["params"] for row in data["rows"]] == [{"n": 1024}, {"n": 65536}]
            if any(row["releases_gil"] is None for row in data["rows"]):
                raise NoisyCells(f"machine too busy to tell: {data['rows']}")
            assert "threshold: the verdict changes between n=1024 (holds the GIL) and " \
                   "n=65536 (releases the GIL)" in result.stdout
            shares = [row["released_share"] for row in data["rows"]]
            assert shares[0] < 0.25 < 0.75 < shares[1], shares
        retry_once(check)

    def test_cli_json(self, tmp_path):
        path = tmp_path / "check.json"
        result = run_gillab("check", "-s", "import time", "--json", str(path),
                            "time.sleep(0.005)", timeout=60)
        assert result.returncode == 0, result.stderr
        assert "verdict: waits" in result.stdout
        data = json.loads(path.read_text())
        assert data["schema"] == SCHEMA and data["calls_per_task"] >= 1
        assert data["threads"][0]["workers"] == 2


@pytest.mark.slow
class TestPytestHelpers:
    """gillab.testing on the lab's own kernels: the C-extension author's regression test."""

    def test_nogil_kernel_passes(self):
        from gillab import _kernels
        from gillab.testing import assert_releases_gil

        r = assert_releases_gil(_kernels.fact_mod_nogil, 100_000, 2**61 - 1)
        assert r.releases_gil is True

    def test_gil_kernel_fails_with_the_evidence(self):
        from gillab import _kernels
        from gillab.testing import assert_releases_gil

        with pytest.raises(AssertionError) as failure:
            assert_releases_gil(_kernels.fact_mod_gil, 100_000, 2**61 - 1)
        message = str(failure.value)
        assert "holds the GIL" in message
        assert "GIL free" in message and "cores used" in message  # the evidence

    def test_assert_holds_gil_on_the_gil_kernel(self):
        from gillab import _kernels
        from gillab.testing import assert_holds_gil

        assert assert_holds_gil(_kernels.fact_mod_gil, 100_000, 2**61 - 1).releases_gil is False


@pytest.fixture(scope="module")
def shell():
    """IPython's own shell, with `%load_ext gillab` done."""
    pytest.importorskip("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    ipython = InteractiveShell.instance()
    ipython.run_line_magic("load_ext", "gillab")
    yield ipython
    InteractiveShell.clear_instance()


@pytest.mark.slow
class TestIPythonMagic:
    """%load_ext gillab, %gillab and %%gillab through IPython's InteractiveShell."""

    def test_line_magic_in_the_user_namespace(self, shell, capsys):
        shell.run_cell("import time")  # the statement sees the notebook's names
        result = shell.run_line_magic("gillab", "-o time.sleep(0.005)")
        assert result.verdict == "waits"
        assert "verdict: waits -> threads help only for waits" in capsys.readouterr().out

    def test_cell_magic_with_setup_option(self, shell, capsys):
        shell.run_cell_magic("gillab", '-s "n = 3000"', "sum(range(n))")
        out = capsys.readouterr().out
        assert "setup:     n = 3000" in out and "verdict:" in out
        assert "n" not in shell.user_ns or shell.user_ns["n"] != 3000  # SETUP does not leak

    def test_usage_error_is_one_line(self, shell):
        from IPython.core.error import UsageError as IPythonUsageError

        with pytest.raises(IPythonUsageError, match="does not compile"):
            shell.run_line_magic("gillab", "f(")


def test_gillab_check_stays_the_function_once_its_package_is_loaded():
    """The package behind `gillab check` is gillab.checker: a subpackage named check
    would replace the public function gillab.check the first time it is imported."""
    import gillab
    import gillab.checker.api  # noqa: F401 - loading the package must not shadow it

    assert callable(gillab.check) and gillab.check.__module__ == "gillab.checker.api"
