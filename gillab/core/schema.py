"""The JSON contract as JSON Schema files (gillab/core/schemas/), and checking a file against
them: ``gillab show`` validates what it loads, and the tests validate what a real run
writes. No measuring, no printing.
"""
from __future__ import annotations

import functools
import json
from importlib import resources

__all__ = ["SCHEMA_FILES", "load_schema", "validate"]

#: The ``schema`` field of a gillab JSON file -> its JSON Schema in gillab/core/schemas/.
SCHEMA_FILES = {"gillab/compare/1": "compare-1.schema.json",
                "gillab/convoy/1": "convoy-1.schema.json"}


@functools.lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """The JSON Schema for ``name`` (e.g. "gillab/compare/1"), shipped as package data."""
    text = resources.files("gillab.core").joinpath("schemas", SCHEMA_FILES[name]).read_text(
        encoding="utf-8")
    return json.loads(text)


def validate(data, name: str, source: str = "the file") -> None:
    """ValueError (one line, naming where) unless ``data`` follows schema ``name``."""
    try:
        import jsonschema
    except ImportError:  # left out of a free-threaded venv (gillab.pythons.venvs)
        raise ValueError("checking a file against its schema needs jsonschema, which is "
                         "not installed here: pip install jsonschema") from None

    validator = jsonschema.Draft202012Validator(load_schema(name))
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    message = error.message if len(error.message) <= 120 else error.message[:117] + "..."
    raise ValueError(f"{source} does not follow {name}: at {where.lstrip('.') or 'the top'}: "
                     f"{message}")
