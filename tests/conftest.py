"""Shared helpers: running the CLI, retrying parallelism claims once."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time

import pytest


def pytest_configure(config):
    """A pytest started in the background by a non-interactive shell (`pytest &`, some CI
    runners) inherits SIGINT ignored, and so would every child it starts: each Ctrl-C
    test would wait out its timeout and fail. Python's own handler here gives the
    children the default again (exec resets a handled signal, never an ignored one)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run_gillab(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m gillab ARGS`` as a user would; capture stdout and stderr."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "gillab", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, **kwargs)


def interrupted_run(args: list, after_s: float, watch=None, timeout: float = 20):
    """``python -m gillab ARGS`` in a session of its own, sent a terminal's Ctrl-C (SIGINT
    to its process group) ``after_s`` seconds in; ``watch(proc)``, if given, runs just
    before the signal (to list its workers, say). Returns (exit status, stdout, stderr,
    what watch returned); the run is killed if it outlives ``timeout``."""
    proc = subprocess.Popen([sys.executable, "-m", "gillab", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    watched = None
    try:
        time.sleep(after_s)
        watched = watch(proc) if watch is not None else None
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out, err, watched


def cores_used_by_threads(func, args, n_threads: int = 2) -> float:
    """CPU seconds of this process / wall seconds while n threads each call func(*args)."""
    threads = [threading.Thread(target=func, args=args) for _ in range(n_threads)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


#: Other processes' share of the machine above which a failed measuring claim is
#: skipped rather than failed: the figure says more about the neighbours than the code.
BUSY_SHARE = 0.25


def _own_cpu_s() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def others_share(run):
    """Run ``run()``; return (its result or the AssertionError it raised, the share of the
    machine that processes other than this test and its children used meanwhile)."""
    from gillab.measure.clocks import machine_busy
    from gillab.measure.noise import noise_share

    busy0, own0, wall0 = machine_busy(), _own_cpu_s(), time.perf_counter()
    try:
        outcome = run()
    except AssertionError as exc:
        outcome = exc
    wall = time.perf_counter() - wall0
    busy1, own1 = machine_busy(), _own_cpu_s()
    share = noise_share(busy0, busy1, own1 - own0, wall)  # gillab's own noise rule
    return outcome, share or 0.0


def with_load(run):
    """(run()'s result, the share of the machine other processes used meanwhile), for
    assert_prompt; an assertion run() raises is raised here, never returned."""
    outcome, share = others_share(run)
    if isinstance(outcome, AssertionError):
        raise outcome
    return outcome, share


def assert_prompt(took_s: float, limit_s: float, share: float, what: str) -> None:
    """A bound on seconds (a Ctrl-C obeyed, a hang called) that only a busy machine can
    break: over the limit on a quiet machine fails; while other processes took more than
    BUSY_SHARE (``share``, from others_share) it skips, naming the load. The rest of
    what the trial showed (exit status, nothing left) is asserted apart, never skipped."""
    if took_s < limit_s:
        return
    if share > BUSY_SHARE:
        pytest.skip(f"{what} took {took_s:.2f} s (limit {limit_s:g} s) while other processes "
                    f"used {share:.0%} of the machine (over {BUSY_SHARE:.0%})")
    raise AssertionError(f"{what} took {took_s:.2f} s (limit {limit_s:g} s) on a quiet "
                         f"machine (others used {share:.0%})")


class NoisyCells(AssertionError):
    """gillab's own noise guard called a measured cell noisy: other processes took the
    CPUs it needed, so its figures prove nothing either way (retry_once skips on it)."""


def assert_not_noisy(cells) -> None:
    """Raise NoisyCells, naming the first reason, if any cell's verdict is "noisy"."""
    noisy = [c for c in cells if c["verdict"] == "noisy"]
    if noisy:
        raise NoisyCells(f"the noise guard called {len(noisy)} cell(s) noisy: "
                         f"{noisy[0]['reason']}")


def retry_once(check):
    """Run check(); if its assertion fails, run it once more (a busy machine can lie once).

    If it fails twice while other processes took more than BUSY_SHARE of the machine,
    or the second failure is gillab's own noise guard (NoisyCells: it measured the
    others' CPU during the cell), the claim could not be tested here: skip, naming the
    measured load. On a quiet machine any other second failure stands.
    """
    outcomes = []
    for _ in range(2):
        outcome, share = others_share(check)
        if not isinstance(outcome, AssertionError):
            return outcome
        outcomes.append((outcome, share))
    busiest = max(share for _, share in outcomes)
    last = outcomes[-1][0]
    first_line = str(last).splitlines()[0] if str(last) else ""
    if isinstance(last, NoisyCells):
        pytest.skip(f"failed twice, the second time on noise ({first_line}); other "
                    f"processes used up to {busiest:.0%} of the machine")
    if busiest > BUSY_SHARE:
        pytest.skip(f"failed twice while other processes used {busiest:.0%} of the machine "
                    f"(over {BUSY_SHARE:.0%}): too busy to test this claim; last failure: "
                    f"{first_line}")
    raise last


@pytest.fixture
def gillab_cli():
    return run_gillab


# --- built once per session, shared --------------------------------------------------


@pytest.fixture(scope="session")
def release_artifacts(tmp_path_factory) -> dict:
    """The sdist and the wheel built from it (tests/artifacts.py), once per session:
    tests/test_release.py and the wheel install of compare --python both use them."""
    from tests import artifacts

    return artifacts.build_artifacts(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="session")
def installed_artifact(release_artifacts):
    """install(kind): the python of a fresh venv with the "wheel" or "sdist" installed,
    made the first time a test asks for that kind and reused after (no test changes it)."""
    from tests import artifacts

    made: dict = {}

    def install(kind: str):
        if kind not in made:
            made[kind] = artifacts.install(release_artifacts, kind)
        return made[kind]

    return install


@pytest.fixture(scope="session")
def venv_cache(tmp_path_factory) -> str:
    """One cache of compare --python venvs for the whole session: the other interpreter's
    venv is built once (by whichever test comes first) and reused by the rest.

    $GILLAB_CACHE_DIR when the caller set one (.ci/run does, so that its free-threaded
    step reuses the 3.13t venv made here; a developer can, to keep venvs across runs);
    else a directory of this session, so that sessions testing other sources at the same
    time never rebuild each other's venvs. Tests pass it on as $GILLAB_CACHE_DIR.
    """
    return os.environ.get("GILLAB_CACHE_DIR") or str(tmp_path_factory.mktemp("gillab-cache"))

