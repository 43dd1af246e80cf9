"""Comparing across Pythons (``compare --python PATH``): finding and probing other
interpreters (found), a venv for each with this gillab built for it (venvs), running
one child compare (child), merging the runs (merge), and the whole (across).

Each other interpreter runs ``python -I -m gillab compare ... --json TMP`` from its
venv; ``-I`` and a working directory outside any checkout keep it from importing a
source tree. A free-threaded one runs once per --gil setting, with -X gil=0 or 1.
This package returns data and never prints; the side-by-side text is
gillab.report_across's. ``python -m gillab.pythons venv PYTHON`` makes (or reuses)
the venv for PYTHON and prints its python (for .ci/free-threaded).
"""
from gillab.pythons.found import (GIL_CHOICES, Interpreter, make_labels, probe,  # noqa: F401
                                  select_interpreters)
from gillab.pythons.merge import load_across, merge_runs, to_json  # noqa: F401
from gillab.pythons.venvs import (InterpreterFailed, build_sources, cache_root,  # noqa: F401
                                  ensure_venv, source_fingerprint, venv_key)

__all__ = ["GIL_CHOICES", "Interpreter", "make_labels", "probe", "select_interpreters",
           "load_across", "merge_runs", "to_json", "InterpreterFailed", "build_sources",
           "cache_root", "ensure_venv", "source_fingerprint", "venv_key"]
