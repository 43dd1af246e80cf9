"""The release artifacts, built once per test session and shared (tests/conftest.py's
``release_artifacts`` and ``installed_artifact`` fixtures): tests/test_release.py checks
them, tests/pythons/test_interpreters.py's wheel test runs compare --python from one.

A build compiles both extensions twice (the sdist's, then the wheel's from it) and an
install resolves gillab's dependencies: each is tens of seconds, paid once.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Every subprocess: a build compiles two extensions, an install resolves eight
#: dependencies; generous, so that a busy machine is slow rather than failed.
TIMEOUT_S = 600
#: Left out of the copy the sdist is built from: what a build, a venv or a run leaves
#: in a checkout (a stale ext/*.c or egg-info must not reach the sdist unnoticed).
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv*", "venv", "build", "dist", "wheelhouse", "*.egg-info", "__pycache__",
    "*.so", "*.pyd", "*.c", "*.html", ".pytest_cache", ".hypothesis", ".benchmarks",
    ".gillab", ".import_linter_cache")


def clean_env() -> dict:
    """The caller's environment minus what would point a child at the checkout or at
    the venv running the tests."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run(args, cwd) -> subprocess.CompletedProcess:
    """Run a step of a build or an install; a failure names the command and its output."""
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=clean_env(),
                            capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}\n"
        f"--- stdout (tail)\n{result.stdout[-3000:]}\n--- stderr (tail)\n{result.stderr[-3000:]}")
    return result


def new_venv(path: Path) -> Path:
    """A venv without pip of its own (ensurepip costs seconds): the running pip installs
    into it with --python."""
    venv.EnvBuilder(with_pip=False, clear=True).create(path)
    return path / ("Scripts" if os.name == "nt" else "bin") / "python"


def pip_into(python: Path, *args, cwd) -> None:
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", *args],
        cwd=cwd)


def build_artifacts(tmp: Path) -> dict:
    """{"sdist": path, "wheel": path, "tmp": tmp}: `python -m build`, which builds the
    sdist from the checkout and then the wheel from that sdist, as a release does. From
    a copy: the sdist step writes ext/*.c and gillab.egg-info where it runs."""
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    builder = Path(sys.executable)
    if importlib.util.find_spec("build") is None:
        # Not in the test extra's environment (an older install): a builder venv.
        builder = new_venv(tmp / "builder")
        pip_into(builder, "build", cwd=tmp)
    dist = tmp / "dist"
    run([builder, "-m", "build", "--outdir", dist, source], cwd=tmp)
    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(dist.iterdir())
    return {"sdist": sdists[0], "wheel": wheels[0], "tmp": tmp}


def install(artifacts: dict, kind: str) -> Path:
    """A fresh venv (tmp/venv-KIND) with the artifact installed, its dependencies from
    the registry pip is configured with (the sdist is compiled on the way); its python."""
    tmp = artifacts["tmp"]
    python = new_venv(tmp / f"venv-{kind}")
    pip_into(python, artifacts[kind], cwd=tmp)
    return python
