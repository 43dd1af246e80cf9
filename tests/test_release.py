"""The release artifacts work where a user gets them: an sdist that holds the Cython
sources, a wheel built from that sdist, and both installed in fresh venvs and run from
outside the checkout (docs/release.md).

Slow: one build of the sdist and a wheel from it per session, then two venvs whose
dependencies come from the package registry pip is configured with (pip's cache helps).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
#: Every subprocess: a build compiles two extensions, an install resolves eight
#: dependencies; generous, so that a busy machine is slow rather than failed.
TIMEOUT_S = 600
#: What `gillab kernels` lists when the compiled kernels loaded (gillab/kernels.py).
COMPILED_KERNELS = ("cy_gil", "cy_nogil")
#: Left out of the copy the sdist is built from: what a build, a venv or a run leaves
#: in a checkout (a stale ext/*.c or egg-info must not reach the sdist unnoticed).
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv*", "venv", "build", "dist", "wheelhouse", "*.egg-info", "__pycache__",
    "*.so", "*.pyd", "*.c", "*.html", ".pytest_cache", ".hypothesis", ".benchmarks",
    ".gillab", ".import_linter_cache")
#: Run inside each installed venv, from a scratch cwd: the extensions load, compute,
#: and the package data (the contract's schemas) is found in the installed package.
IMPORT_CHECK = (
    "import math, gillab, gillab._kernels as k; from gillab.core import schema\n"
    "assert k.fact_mod_nogil(30, 1000003) == divmod(math.factorial(30), 1000003)[1]\n"
    "assert schema.load_schema('gillab/compare/1')['type'] == 'object'\n"
    "print(gillab.__file__)\n"
)


def _clean_env() -> dict:
    """The caller's environment minus what would point a child at the checkout or at
    the venv running the tests."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(args, cwd) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=_clean_env(),
                            capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}\n"
        f"--- stdout (tail)\n{result.stdout[-3000:]}\n--- stderr (tail)\n{result.stderr[-3000:]}")
    return result


def _new_venv(path: Path) -> Path:
    """A venv without pip of its own (ensurepip costs seconds): the running pip installs
    into it with --python."""
    venv.EnvBuilder(with_pip=False, clear=True).create(path)
    return path / ("Scripts" if os.name == "nt" else "bin") / "python"


def _pip_into(python: Path, *args, cwd) -> None:
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", *args],
         cwd=cwd)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> dict:
    """{"sdist": path, "wheel": path}: `python -m build`, which builds the sdist from the
    checkout and then the wheel from that sdist, as a release does. From a copy: the
    sdist step writes ext/*.c and gillab.egg-info where it runs."""
    tmp = tmp_path_factory.mktemp("release")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    builder = Path(sys.executable)
    if importlib.util.find_spec("build") is None:
        # Not in the test extra's environment (an older install): a builder venv.
        builder = _new_venv(tmp / "builder")
        _pip_into(builder, "build", cwd=tmp)
    dist = tmp / "dist"
    _run([builder, "-m", "build", "--outdir", dist, source], cwd=tmp)
    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(dist.iterdir())
    return {"sdist": sdists[0], "wheel": wheels[0], "tmp": tmp}


def test_the_sdist_holds_the_cython_sources_and_build_files_but_no_generated_c(artifacts):
    """A wheel can be built from the sdist alone: it carries ext/*.pyx, setup.py and
    pyproject.toml, the schemas and the docs; the generated C is rebuilt, never shipped."""
    with tarfile.open(artifacts["sdist"]) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    expected = {"setup.py", "pyproject.toml", "README.md", "MANIFEST.in",
                "ext/_kernels.pyx", "ext/_sampler.pyx", "docs/contract.md",
                "gillab/core/schemas/compare-1.schema.json",
                "gillab/core/schemas/convoy-1.schema.json"}
    assert expected <= names, sorted(expected - names)
    generated = sorted(n for n in names if n.endswith((".c", ".html", ".so", ".pyd")))
    assert not generated


def test_the_wheel_holds_the_extensions_and_schemas_and_no_c(artifacts):
    """The compiled modules and the JSON Schemas are in the wheel; no C source is. The
    only .pyx are the build files gillab ships to rebuild itself for another Python
    (gillab/_build/, read by gillab.pythons.venvs)."""
    with zipfile.ZipFile(artifacts["wheel"]) as whl:
        names = whl.namelist()
    compiled = {n.split(".")[0] for n in names if n.endswith((".so", ".pyd"))}
    expected = {"gillab/_kernels"} | ({"gillab/_sampler"} if sys.platform == "linux" else set())
    assert compiled == expected
    assert {"gillab/core/schemas/compare-1.schema.json",
            "gillab/core/schemas/convoy-1.schema.json"} <= set(names)
    assert not [n for n in names if n.endswith((".c", ".html"))]
    assert not [n for n in names if n.endswith(".pyx") and not n.startswith("gillab/_build/")]


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_an_installed_artifact_runs_from_outside_the_checkout(artifacts, kind):
    """Installed in a fresh venv with its dependencies from the registry (the sdist is
    compiled on the way), gillab imports its extension and lists the compiled kernels,
    from a directory that is not the checkout, and the gillab it runs is the venv's."""
    tmp = artifacts["tmp"]
    python = _new_venv(tmp / f"venv-{kind}")
    _pip_into(python, artifacts[kind], cwd=tmp)
    scratch = tmp / f"cwd-{kind}"
    scratch.mkdir()
    where = _run([python, "-c", IMPORT_CHECK], cwd=scratch).stdout.strip()
    assert Path(where).resolve().is_relative_to((tmp / f"venv-{kind}").resolve()), where
    listed = _run([python, "-m", "gillab", "kernels"], cwd=scratch).stdout
    for name in COMPILED_KERNELS:
        assert name in listed, listed
