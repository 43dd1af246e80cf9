"""Build the C extensions: gillab._kernels (ext/_kernels.pyx) and, on Linux only,
gillab._sampler (ext/_sampler.pyx).

Compiler directives are set here, once, for every .pyx (house style).
"""
import os
import shutil
import sys

import Cython
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

#: What building gillab reads besides gillab/ itself. Shipped inside the package as
#: gillab/_build/, so that an installed (not editable) gillab can build itself for
#: another interpreter (compare --python; gillab/pythons/venvs.py reads them back).
BUILD_FILES = ("setup.py", "pyproject.toml",
               *sorted(f"ext/{name}" for name in os.listdir(os.path.join(
                   os.path.dirname(os.path.abspath(__file__)), "ext"))
                       if name.endswith((".pyx", ".pxd"))))


class build_py_with_sources(build_py):
    def run(self):
        super().run()
        here = os.path.dirname(os.path.abspath(__file__))
        for rel in BUILD_FILES:
            target = os.path.join(self.build_lib, "gillab", "_build", rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(here, rel), target)

#: ext/_sampler.pyx reads /proc and calls Linux's prctl and clock_nanosleep: it does not
#: compile elsewhere, and `gillab timeline` refuses other platforms before importing it.
LINUX = sys.platform.startswith("linux")

extensions = [
    Extension(
        "gillab._kernels",
        ["ext/_kernels.pyx"],
        # Recorded in the module: the Cython that built it, not whatever the
        # environment has installed later (`gillab env` reports it).
        define_macros=[
            ("GILLAB_CYTHON_VERSION", f'"{Cython.__version__}"'),
            # Module state instead of C globals: with the directive below, it lets the
            # module load in subinterpreters that have their own GIL (PEP 684).
            ("CYTHON_USE_MODULE_STATE", "1"),
        ],
    ),
]
if LINUX:
    # The timeline's /proc sampler: its loop runs without the GIL (gillab/timeline).
    extensions.append(Extension("gillab._sampler", ["ext/_sampler.pyx"]))

setup(
    cmdclass={"build_py": build_py_with_sources},
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            # The module keeps no shared mutable state, so it may load on a
            # free-threaded build without turning the GIL back on.
            "freethreading_compatible": True,
            "subinterpreters_compatible": "own_gil",
        },
    ),
)
