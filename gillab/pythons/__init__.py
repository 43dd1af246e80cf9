"""Other interpreters: finding and probing them (found), a venv for each with this
gillab built for it (venvs), and one child command run there (child).

Each other interpreter runs ``python -I -m gillab COMMAND ... --json TMP`` from its
venv; ``-I`` and a working directory outside any checkout keep it from importing a
source tree. A free-threaded one runs once per --gil setting, with -X gil=0 or 1.
This package returns data and never prints; running compare across them and merging
the runs is gillab.compare.across's and gillab.compare.merge's, the side-by-side text
gillab.compare.report_across's. ``python -m gillab.pythons venv PYTHON`` makes (or
reuses) the venv for PYTHON and prints its python (for .ci/free-threaded).
"""
from gillab.pythons.found import (GIL_CHOICES, Interpreter, make_labels, probe,  # noqa: F401
                                  select_interpreters)
from gillab.pythons.venvs import (InterpreterFailed, build_sources, cache_root,  # noqa: F401
                                  ensure_venv, source_fingerprint, venv_key)

__all__ = ["GIL_CHOICES", "Interpreter", "make_labels", "probe", "select_interpreters",
           "InterpreterFailed", "build_sources", "cache_root", "ensure_venv",
           "source_fingerprint", "venv_key"]
