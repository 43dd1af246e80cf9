"""pytest helpers for C-extension authors: does my function really release the GIL?

    from gillab.testing import assert_releases_gil

    def test_my_call_releases_the_gil():
        assert_releases_gil(mymod.crunch, data)

Each helper runs ``gillab.check`` on ``func(*args, **kwargs)`` and fails with the
evidence (the table and the verdict) in its message. A busy machine is retried;
if it still cannot tell, the test is skipped with the reason, never failed.
"""
from __future__ import annotations

__all__ = ["assert_releases_gil", "assert_holds_gil", "assert_scales"]

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


def _scaling_evidence(result, threads: int) -> str:
    """What a failed assert_scales shows first: contention, the GIL an import turned on."""
    env = result.env
    said = []
    if env.get("gil_enabled_by"):
        said.append(f"the GIL was turned on by importing {', '.join(env['gil_enabled_by'])}")
    elif env.get("gil_enabled") is not False:
        said.append("the GIL is on" + ("" if env.get("free_threaded_build") else
                                       " (a build with a GIL)"))
    if result.contends:
        said.append("the threads contend on what they share")
    if result.private_speedup is not None:
        said.append(f"each thread its own objects: {result.private_speedup:.2f}x")
    return "; ".join(said)


def assert_scales(func, *args, threads: int = 2, min_speedup: float | None = None,
                  _check_options: dict | None = None, **kwargs):
    """Fail unless ``threads`` threads each calling ``func(*args, **kwargs)`` run at least
    ``min_speedup`` times as fast as one (default: half-way to ``threads``, 1.5 for 2),
    on as many cores: for free-threaded CI. Skipped with the reason when the machine
    has fewer CPUs or is too busy to tell after ATTEMPTS checks; returns the CheckResult.
    """
    from gillab.checker.api import check
    from gillab.core.environment import cpu_count

    import pytest  # only the test runner needs it

    if cpu_count() < threads:
        pytest.skip(f"assert_scales needs {threads} CPUs; this machine lets us use "
                    f"{cpu_count()}")
    want = min_speedup if min_speedup is not None else 1 + 0.5 * (threads - 1)
    options = {**(_check_options or {}), "max_threads": threads}
    result = run = None
    for _ in range(ATTEMPTS):
        result = check(func, args=args, kwargs=kwargs, **options)
        run = next((w for w in result.threads if w.workers == threads), None)
        if run is not None and min(run.speedup or 0.0, run.cores_used or 0.0) >= want:
            return result
        if not result.noisy:
            break
    if result.noisy:
        pytest.skip(f"gillab cannot tell whether {result.statement} scales on {threads} "
                    f"threads here after {ATTEMPTS} checks: {result.reason}")
    got = "-" if run is None else f"{run.speedup:.2f}x on {run.cores_used:.2f} cores"
    evidence = _scaling_evidence(result, threads)
    raise AssertionError(f"expected {result.statement} to scale to {want:.2f}x on {threads} "
                         f"threads, but gillab found {got}: {result.verdict}"
                         + (f" ({evidence})" if evidence else "") + f"\n{_evidence(result)}")
