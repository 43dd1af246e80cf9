"""Build the C extensions: gillab._kernels (ext/_kernels.pyx) and gillab._sampler.

Compiler directives are set here, once, for every .pyx (house style).
"""
import Cython
from Cython.Build import cythonize
from setuptools import Extension, setup

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
    # The timeline's /proc sampler: its loop runs without the GIL (gillab/timeline).
    Extension("gillab._sampler", ["ext/_sampler.pyx"]),
]

setup(
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
