"""The suite's own retry rule: a measuring claim fails only when the machine was quiet."""
from __future__ import annotations

import pytest

from tests import conftest


def _failing():
    raise AssertionError("cores 1.02, wanted >= 1.5")


def test_a_claim_that_holds_runs_once():
    calls = []
    assert conftest.retry_once(lambda: calls.append(1) or "ok") == "ok"
    assert calls == [1]


def test_a_claim_that_fails_once_is_tried_again():
    calls = []

    def flaky():
        calls.append(1)
        assert len(calls) > 1, "first try lies"
        return "ok"

    assert conftest.retry_once(flaky) == "ok"
    assert len(calls) == 2


def test_two_failures_on_a_quiet_machine_fail(monkeypatch):
    monkeypatch.setattr(conftest, "others_share", lambda run: (_capture(run), 0.05))
    with pytest.raises(AssertionError, match="cores 1.02"):
        conftest.retry_once(_failing)


def test_two_failures_on_a_busy_machine_skip_with_the_load(monkeypatch):
    monkeypatch.setattr(conftest, "others_share", lambda run: (_capture(run), 0.6))
    with pytest.raises(pytest.skip.Exception, match="other processes used 60% .*cores 1.02"):
        conftest.retry_once(_failing)


def test_a_second_failure_on_noise_skips_even_on_a_quiet_machine(monkeypatch):
    """The noise guard measured the others' CPU during the cell itself: a cell it called
    noisy twice could not be judged, whatever the load over the whole check was."""
    monkeypatch.setattr(conftest, "others_share", lambda run: (_capture(run), 0.05))

    def noisy():
        conftest.assert_not_noisy([{"verdict": "noisy", "reason": "others took 30%"},
                                   {"verdict": "parallel", "reason": ""}])

    with pytest.raises(pytest.skip.Exception, match="on noise .*1 cell.*others took 30%"):
        conftest.retry_once(noisy)


def test_a_noisy_first_try_then_a_real_failure_fails(monkeypatch):
    monkeypatch.setattr(conftest, "others_share", lambda run: (_capture(run), 0.05))
    calls = []

    def noisy_then_wrong():
        calls.append(1)
        if len(calls) == 1:
            raise conftest.NoisyCells("noisy")
        raise AssertionError("cores 1.02, wanted >= 1.5")

    with pytest.raises(AssertionError, match="cores 1.02"):
        conftest.retry_once(noisy_then_wrong)


def test_a_slow_stop_fails_on_a_quiet_machine_and_skips_on_a_busy_one():
    conftest.assert_prompt(0.4, 1.0, 0.9, "Ctrl-C")  # in time: load does not matter
    with pytest.raises(AssertionError, match="Ctrl-C took 2.50 s .limit 1 s. on a quiet"):
        conftest.assert_prompt(2.5, 1.0, 0.05, "Ctrl-C")
    with pytest.raises(pytest.skip.Exception, match="other processes used 60%"):
        conftest.assert_prompt(2.5, 1.0, 0.6, "Ctrl-C")


def test_the_load_of_others_leaves_this_process_out():
    def spin():
        total = 0
        for i in range(2_000_000):
            total += i
        return total

    outcome, share = conftest.others_share(spin)
    assert outcome == sum(range(2_000_000))
    assert 0.0 <= share <= 1.0


def _capture(run):
    try:
        return run()
    except AssertionError as exc:
        return exc
