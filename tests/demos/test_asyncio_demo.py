"""demo asyncio: an event loop beside CPU work answers late through to_thread and at
once beside a process pool; the claims are checked on hand-made records and on a real run."""
from __future__ import annotations

import pytest

from gillab.demos import asyncio_echo
from gillab.demos.asyncio_echo import ModeResult, Result
from gillab.kernels import DEFAULT_P, fact_mod_py
from tests.conftest import retry_once, run_gillab

EXPECTED = fact_mod_py(20_000, DEFAULT_P)


def _result(idle=0.06, thread=5.1, pool=0.05, answer=EXPECTED, errors=()) -> Result:
    def mode(name, ms, job=True):
        return ModeResult(name, (ms,) * 50, 50, tuple(errors) if name == "idle" else (),
                          chunks=10 if job else 0, answer=answer if job else None)
    return Result((mode("idle", idle, job=False), mode("to_thread", thread),
                   mode("process_pool", pool)), EXPECTED, 0.005)


class TestClaims:
    """failures() names each claim that did not hold; narrate() gives the figures."""

    def test_the_lessons_outcome_holds(self):
        assert asyncio_echo.failures(_result(), "en") == []

    def test_a_prompt_loop_beside_to_thread_fails_the_starvation_claim(self):
        failed = asyncio_echo.failures(_result(thread=0.3), "en")
        assert len(failed) == 1 and "not held up by the GIL" in failed[0]

    def test_a_pool_no_faster_than_to_thread_is_not_called_prompt(self):
        failed = asyncio_echo.failures(_result(thread=2.1, pool=1.0), "en")
        assert failed == [asyncio_echo.TEXT["en"]["fail_prompt"].format(
            pool=1.0, thread=2.1, floor=2.0)]

    def test_a_slow_loop_beside_the_pool_fails_the_prompt_claim(self):
        failed = asyncio_echo.failures(_result(pool=3.0), "en")
        assert failed and "not promptly" in failed[0]

    def test_a_wrong_answer_from_the_cpu_job_fails(self):
        failed = asyncio_echo.failures(_result(answer=EXPECTED + 1), "zh")
        assert len(failed) == 2 and all(str(EXPECTED) in f for f in failed)

    def test_a_wrong_reply_fails(self):
        failed = asyncio_echo.failures(_result(errors=("reply b'x' to b'ping 0'",)), "en")
        assert failed == ["idle: 49/50 replies correct (reply b'x' to b'ping 0')"]

    @pytest.mark.parametrize("lang", ["en", "zh"])
    def test_the_reading_gives_each_median_and_the_ratio(self, lang):
        text = "\n".join(asyncio_echo.narrate(_result(), lang))
        assert "0.06" in text and "5.10" in text and "0.05" in text and "85" in text


@pytest.mark.slow
class TestRealRun:
    """A real run: the loop waits about a switch interval beside to_thread, not beside a pool."""

    def test_to_thread_starves_the_loop_and_a_process_pool_does_not(self):
        def check():
            result = asyncio_echo.measure(fast=True)
            assert asyncio_echo.failures(result, "en") == [], asyncio_echo.narrate(result, "en")
            return result

        result = retry_once(check)
        assert result.mode("to_thread").p50 >= 0.4 * result.switch_interval_s * 1000
        assert all(m.sent > 20 for m in result.modes)

    def test_from_the_cli_in_chinese(self):
        result = retry_once(lambda: _ran(run_gillab("demo", "asyncio", "--fast", "--lang", "zh")))
        assert "结论成立" in result.stdout and "to_thread" in result.stdout


def _ran(result):
    assert result.returncode == 0, result.stderr
    return result
