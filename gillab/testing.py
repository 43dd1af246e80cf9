"""pytest helpers for C-extension authors: does my function really release the GIL?

    from gillab.testing import assert_releases_gil

    def test_my_call_releases_the_gil():
        assert_releases_gil(mymod.crunch, data)

Each helper runs ``gillab.check`` on ``func(*args, **kwargs)`` and fails with the
evidence (the table and the verdict) in its message. A busy machine is retried;
if it still cannot tell, the test is skipped with the reason, never failed.
"""
from __future__ import annotations

__all__ = ["assert_releases_gil", "assert_holds_gil"]

#: Checks tried before a machine too busy to tell skips the test.
ATTEMPTS = 3


def _evidence(result) -> str:
    from gillab.checker.report import format_check

    return "\n".join(format_check(result))


def _check(func, args, kwargs, want: bool, options: dict):
    from gillab.checker.api import check

    result = None
    for _ in range(ATTEMPTS):
        result = check(func, args=args, kwargs=kwargs, **options)
        if result.releases_gil is not None:
            break
    if result.releases_gil is None:
        import pytest  # only the test runner needs it

        pytest.skip(f"gillab cannot tell whether {result.statement} releases the GIL here "
                    f"after {ATTEMPTS} checks: {result.reason}")
    if result.releases_gil is not want:
        verb = "release" if want else "hold"
        raise AssertionError(f"expected {result.statement} to {verb} the GIL, but gillab "
                             f"found: {result.verdict}\n{_evidence(result)}")
    return result


def assert_releases_gil(func, *args, _check_options: dict | None = None, **kwargs):
    """Fail unless ``func(*args, **kwargs)`` releases the GIL; returns the CheckResult."""
    return _check(func, args, kwargs, True, _check_options or {})


def assert_holds_gil(func, *args, _check_options: dict | None = None, **kwargs):
    """Fail unless ``func(*args, **kwargs)`` holds the GIL; returns the CheckResult."""
    return _check(func, args, kwargs, False, _check_options or {})
