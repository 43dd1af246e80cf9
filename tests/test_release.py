"""The release artifacts work where a user gets them: an sdist that holds the Cython
sources, a wheel built from that sdist, and both installed in fresh venvs and run from
outside the checkout (docs/release.md).

Slow: one build of the sdist and a wheel from it per session (tests/artifacts.py, shared
through tests/conftest.py's fixtures with the wheel test of compare --python), then two
venvs whose dependencies come from the package registry pip is configured with.
"""
from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.artifacts import run

pytestmark = pytest.mark.slow

#: What `gillab kernels` lists when the compiled kernels loaded (gillab/kernels.py).
COMPILED_KERNELS = ("cy_gil", "cy_nogil")
#: Run inside each installed venv, from a scratch cwd: the extensions load, compute,
#: and the package data (the contract's schemas) is found in the installed package.
IMPORT_CHECK = (
    "import math, gillab, gillab._kernels as k; from gillab.core import schema\n"
    "assert k.fact_mod_nogil(30, 1000003) == divmod(math.factorial(30), 1000003)[1]\n"
    "assert schema.load_schema('gillab/compare/1')['type'] == 'object'\n"
    "print(gillab.__file__)\n"
)


def test_the_sdist_holds_the_cython_sources_and_build_files_but_no_generated_c(
        release_artifacts):
    """A wheel can be built from the sdist alone: it carries ext/*.pyx, setup.py and
    pyproject.toml, the schemas and the docs; the generated C is rebuilt, never shipped."""
    with tarfile.open(release_artifacts["sdist"]) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    expected = {"setup.py", "pyproject.toml", "README.md", "MANIFEST.in", "LICENSE",
                "ext/_kernels.pyx", "ext/_sampler.pyx", "docs/contract.md",
                "gillab/core/schemas/compare-1.schema.json",
                "gillab/core/schemas/convoy-1.schema.json"}
    assert expected <= names, sorted(expected - names)
    generated = sorted(n for n in names if n.endswith((".c", ".html", ".so", ".pyd")))
    assert not generated


def test_the_wheel_holds_the_extensions_and_schemas_and_no_c(release_artifacts):
    """The compiled modules and the JSON Schemas are in the wheel; no C source is. The
    only .pyx are the build files gillab ships to rebuild itself for another Python
    (gillab/_build/, read by gillab.pythons.venvs)."""
    with zipfile.ZipFile(release_artifacts["wheel"]) as whl:
        names = whl.namelist()
    compiled = {n.split(".")[0] for n in names if n.endswith((".so", ".pyd"))}
    expected = {"gillab/_kernels"} | ({"gillab/_sampler"} if sys.platform == "linux" else set())
    assert compiled == expected
    assert {"gillab/core/schemas/compare-1.schema.json",
            "gillab/core/schemas/convoy-1.schema.json"} <= set(names)
    assert [n for n in names if n.endswith(".dist-info/licenses/LICENSE")], \
        "the MIT licence's text (its copyright notice must travel with every copy)"
    assert not [n for n in names if n.endswith((".c", ".html"))]
    assert not [n for n in names if n.endswith(".pyx") and not n.startswith("gillab/_build/")]


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_an_installed_artifact_runs_from_outside_the_checkout(release_artifacts,
                                                             installed_artifact, kind):
    """Installed in a fresh venv with its dependencies from the registry (the sdist is
    compiled on the way), gillab imports its extension and lists the compiled kernels,
    from a directory that is not the checkout, and the gillab it runs is the venv's."""
    tmp = release_artifacts["tmp"]
    python = installed_artifact(kind)
    scratch = tmp / f"cwd-{kind}"
    scratch.mkdir()
    where = run([python, "-c", IMPORT_CHECK], cwd=scratch).stdout.strip()
    assert Path(where).resolve().is_relative_to((tmp / f"venv-{kind}").resolve()), where
    listed = run([python, "-m", "gillab", "kernels"], cwd=scratch).stdout
    for name in COMPILED_KERNELS:
        assert name in listed, listed
