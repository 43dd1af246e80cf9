"""A venv per other interpreter, with this same gillab built for it.

The sources come from where this gillab runs: a checkout (``pip install -e .``), or
an installed copy, whose wheel ships what the build reads besides gillab/ itself
(setup.py, pyproject.toml, ext/*.pyx) as ``gillab/_build/`` (see setup.py). Either
way the same files are fingerprinted and copied into a scratch tree that pip builds
for the other interpreter, so its extension is compiled for it.

A venv lives under the user's cache directory (platformdirs; $GILLAB_CACHE_DIR wins),
one per interpreter, stamped with the fingerprint of the sources it was built from.
It is made in a ``.partial-`` directory and renamed into place only when complete,
under a lock (filelock: the kernel drops it when its holder dies, so it never goes
stale); a failure or Ctrl-C removes the partial directory, and leftovers of a killed
run are removed by the next one.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os

from gillab.core.errors import UserError

__all__ = ["InterpreterFailed", "build_sources", "source_fingerprint", "venv_key",
           "cache_root", "ensure_venv", "dependencies_for", "venv_python",
           "NOT_FREE_THREADED", "BUILD_FILES", "STAMP"]

#: Dependencies that cannot be installed on a free-threaded build, left out of its venv:
#: gevent (its executor is skipped there, with the reason: executors.unavailable_reason)
#: and jsonschema, whose rpds-py has no free-threaded wheel on the package index here and
#: builds only with Rust crates from the network. jsonschema serves `gillab show`, which
#: the host runs; a child compare never validates, and a show there says what is missing.
NOT_FREE_THREADED = frozenset({"gevent", "jsonschema"})
#: Read by the build besides gillab/ (setup.py's BUILD_FILES), relative to the tree:
#: these and every Cython source under ext/ (extensions_in lists them).
BUILD_FILES = ("setup.py", "pyproject.toml")
#: In an installed gillab: where setup.py put BUILD_FILES.
SHIPPED = "_build"
#: In a finished venv: the fingerprint of the sources it holds.
STAMP = "gillab-source.sha256"
#: Generated or compiled files: never part of the fingerprint, never copied.
_GENERATED = (".so", ".pyd", ".c", ".html", ".pyc", ".pyo", ".o")
#: How long to wait for another gillab making the same venv.
LOCK_TIMEOUT_S = 900


class InterpreterFailed(Exception):
    """One interpreter could not run the matrix: the others still do."""


def extensions_in(base: str) -> tuple:
    """Every Cython source the build compiles, as ext/NAME paths under ``base``."""
    ext = os.path.join(base, "ext")
    names = sorted(os.listdir(ext)) if os.path.isdir(ext) else []
    return tuple(f"ext/{name}" for name in names if name.endswith((".pyx", ".pxd")))


def build_sources(package_dir: str | None = None) -> dict:
    """{path in a source tree: file here} for every file a build of gillab reads:
    gillab/ as it runs, and BUILD_FILES from the checkout or from gillab/_build/."""
    if package_dir is None:
        import gillab

        package_dir = os.path.dirname(os.path.abspath(gillab.__file__))
    checkout = os.path.dirname(package_dir)
    shipped = os.path.join(package_dir, SHIPPED)
    for base in (checkout, shipped):
        if (all(os.path.isfile(os.path.join(base, rel)) for rel in BUILD_FILES)
                and extensions_in(base)):
            break
    else:
        raise UserError(
            "compare --python builds this gillab for each interpreter, but neither a "
            f"checkout ({checkout}) nor the installed package ({shipped}) holds its build "
            f"files ({', '.join(BUILD_FILES)}); reinstall gillab with pip")
    files = {rel: os.path.join(base, rel) for rel in BUILD_FILES + extensions_in(base)}
    for directory, dirs, names in os.walk(package_dir):
        top = directory == package_dir
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith(".")
                         and not (top and d == SHIPPED))
        for name in names:
            if name.endswith(_GENERATED) or name.startswith("."):
                continue
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, os.path.dirname(package_dir))
            files[rel.replace(os.sep, "/")] = path
    return dict(sorted(files.items()))


def source_fingerprint(sources: dict) -> str:
    """sha256 over the names and contents of ``build_sources``: a venv is reused while
    it matches. File contents, not times or git's index: uncommitted edits count."""
    digest = hashlib.sha256()
    for rel, path in sorted(sources.items()):
        with open(path, "rb") as f:
            data = f.read()
        digest.update(rel.encode() + b"\0")
        digest.update(len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def venv_key(interp) -> str:
    """The venv's directory name: the interpreter's version, then a hash of where and
    what it is (a rebuilt Python at the same path gets a new venv). GIL on and off
    share one venv: it is the same binary."""
    ident = "\n".join((os.path.realpath(interp.path), interp.build, interp.implementation,
                       str(interp.free_threaded)))
    name = interp.version + ("t" if interp.free_threaded else "")
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in name)
    return f"{safe}-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"


def cache_root() -> str:
    """Where venvs live: $GILLAB_CACHE_DIR/venvs, else the user's cache directory for
    gillab (platformdirs: $XDG_CACHE_HOME/gillab or ~/.cache/gillab on Linux)."""
    root = os.environ.get("GILLAB_CACHE_DIR")
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("gillab", appauthor=False)
    return os.path.join(root, "venvs")


def venv_python(venv: str) -> str:
    if os.name == "nt":
        return os.path.join(venv, "Scripts", "python.exe")
    return os.path.join(venv, "bin", "python")


def dependencies_for(requirements: list, free_threaded: bool) -> list:
    """gillab's own requirement strings (PEP 508), less extras and those a
    free-threaded build cannot install. A marker cannot say "free-threaded", so
    pyproject cannot express the second itself."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    kept = []
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is not None and "extra" in str(req.marker):
            continue
        if free_threaded and canonicalize_name(req.name) in NOT_FREE_THREADED:
            continue
        kept.append(text)
    return kept


_READ_REQUIRES = ("import json, importlib.metadata as m; "
                  "print(json.dumps(m.requires('gillab') or []))")


def ensure_venv(interp, sources: dict | None = None, fingerprint: str | None = None,
                say=lambda text: None) -> str:
    """A venv for ``interp`` with this gillab built and installed in it; its python.

    Reused while its stamp matches the sources' fingerprint; otherwise made anew
    beside it and swapped in when complete. InterpreterFailed (one line) if the lock
    cannot be had or pip fails; nothing half-made is left either way.
    """
    import filelock

    sources = sources if sources is not None else build_sources()
    fingerprint = fingerprint or source_fingerprint(sources)
    root = cache_root()
    os.makedirs(root, exist_ok=True)
    venv = os.path.join(root, venv_key(interp))
    python = venv_python(venv)
    lock = filelock.FileLock(venv + ".lock", timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise InterpreterFailed(f"another gillab has held {lock.lock_file} for over "
                                f"{LOCK_TIMEOUT_S} s while making this venv") from None
    try:
        if _read(os.path.join(venv, STAMP)) == fingerprint and os.path.exists(python):
            return python
        for leftover in glob.glob(glob.escape(venv) + ".partial-*"):
            _remove(leftover)  # a killed run's: nobody else holds the lock
        _make_venv(interp, venv, sources, fingerprint, say)
        return python
    finally:
        lock.release()


def _installed_requires(python: str, cwd: str) -> list:
    """gillab's requirements as the venv's own pip installed them (PEP 508 strings)."""
    import subprocess

    return json.loads(subprocess.run(
        [python, "-I", "-c", _READ_REQUIRES], capture_output=True, text=True,
        check=True, cwd=cwd, stdin=subprocess.DEVNULL).stdout)


def _make_venv(interp, venv: str, sources: dict, fingerprint: str, say) -> None:
    import shutil
    import tempfile

    label = interp.label or interp.version
    partial = tempfile.mkdtemp(prefix=os.path.basename(venv) + ".partial-",
                               dir=os.path.dirname(venv))
    log_path = venv + ".install.log"
    try:
        say(f"gillab: {label}: making a venv with gillab built for it in {venv} "
            "(first run or sources changed: about a minute)")
        _pip_step([interp.path, "-m", "venv", partial], None,
                  f"could not create a venv with {interp.path}")
        python = venv_python(partial)
        with tempfile.TemporaryDirectory(prefix="gillab-src-") as src:
            # A copy: the build writes build/ and ext/_kernels.c, and must see exactly
            # the files the fingerprint saw while others edit the checkout.
            for rel, path in sources.items():
                os.makedirs(os.path.join(src, os.path.dirname(rel)), exist_ok=True)
                shutil.copyfile(path, os.path.join(src, rel))
            with open(os.path.join(src, "README.md"), "w", encoding="utf-8") as f:
                f.write("gillab, built for another interpreter by compare --python.\n")
            pip = [python, "-m", "pip", "--disable-pip-version-check", "--no-input",
                   "install", "--quiet"]
            with open(log_path, "w", encoding="utf-8") as log:
                _pip_step(pip + ["--no-deps", src], log,
                          f"pip could not build gillab for {label} (log: {log_path})")
                requires = _installed_requires(python, src)
                deps = dependencies_for(requires, interp.free_threaded)
                if deps:
                    _pip_step(pip + deps, log, f"pip could not install {', '.join(deps)} "
                                               f"for {label} (log: {log_path})")
        with open(os.path.join(partial, STAMP), "w", encoding="utf-8") as f:
            f.write(fingerprint + "\n")
        # Swapped in whole: a reader never sees a venv without its stamp.
        old = None
        if os.path.lexists(venv):
            old = tempfile.mkdtemp(prefix=os.path.basename(venv) + ".partial-old-",
                                   dir=os.path.dirname(venv))
            os.replace(venv, os.path.join(old, "venv"))
        os.replace(partial, venv)
        if old:
            _remove(old)
    except BaseException:
        _remove(partial)
        raise


def _remove(path: str) -> None:
    import shutil

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def _pip_step(cmd: list, log, failure: str) -> None:
    import subprocess

    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace")
    if log is not None:
        log.write(f"$ {' '.join(cmd)}\n{done.stdout}\n")
        log.flush()
    if done.returncode != 0:
        lines = [line for line in done.stdout.splitlines()
                 if line.strip() and not line.startswith("WARNING: Location")]
        raise InterpreterFailed(f"{failure}: {lines[-1].strip() if lines else 'no output'}")
