"""What `gillab check` runs: a statement and its SETUP (timeit's shape) or MODULE:FUNC.

Everything here happens before anything is measured, so every mistake it finds is a
usage error (``errors.UsageError``: exit 2). No clocks, no printing.
"""
from __future__ import annotations

import ast
import copy
import inspect
import re
from dataclasses import dataclass, field
from types import CodeType

from gillab.core.errors import UsageError

__all__ = ["Prepared", "prepare", "prepare_callable", "parse_sweep", "looks_like_target",
           "RESULT_NAME", "DEFAULT_TIMEOUT_S"]

#: Seconds one check (one sweep row) may take before the statement is called hung.
DEFAULT_TIMEOUT_S = 60.0

#: The statement's last expression is stored under this name, so its value can be
#: compared between threads (a statement whose answer differs is not thread-safe).
RESULT_NAME = "__gillab_result"
_LOOP_NAME = "__gillab_loop"
_CHECK_NAME = "__gillab_check"
_SAME_NAME = "__gillab_same_answer"
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class Prepared:
    """A statement ready to loop: ``make_loop(namespace)`` gives ``loop(calls)``.

    ``loop(calls)`` runs the statement ``calls`` times in ``namespace`` (the globals
    SETUP built) and returns the value of its last expression (None if it has none).
    """

    statement: str
    setup: str
    setup_code: CodeType
    loop_code: CodeType
    check_code: CodeType         # the same loop, comparing every call's answer (untimed)
    names: frozenset            # every name the statement and SETUP refer to
    namespace: dict = field(default_factory=dict, compare=False, repr=False)

    def new_namespace(self, bindings: dict | None = None) -> dict:
        """A fresh copy of the caller's globals with ``bindings`` (a sweep value) in it."""
        ns = dict(self.namespace)
        ns.setdefault("__builtins__", __builtins__)
        ns.update(bindings or {})
        return ns

    def run_setup(self, ns: dict, bindings: dict | None = None) -> None:
        """Run SETUP in ``ns``; the sweep's binding is set again after it, as it wins."""
        exec(self.setup_code, ns)
        ns.update(bindings or {})

    def make_loop(self, ns: dict):
        exec(self.loop_code, ns)
        return ns.pop(_LOOP_NAME)

    def make_checker(self, ns: dict):
        """``checker(calls, reference)``: (True, None) if every call answered
        ``reference``, (False, answer) at the first that did not, (None, None) if the
        answers cannot be compared."""
        from gillab.checker.answers import same_answer

        ns[_SAME_NAME] = same_answer  # a global of the checker: answers compared by content
        exec(self.check_code, ns)
        return ns.pop(_CHECK_NAME)


def _compile(source: str, what: str) -> ast.Module:
    try:
        tree = ast.parse(source, f"<{what}>", "exec")
        compile(tree, f"<{what}>", "exec")  # catches 'return' outside a function and the like
    except SyntaxError as exc:
        where = f" (line {exc.lineno})" if exc.lineno and "\n" in source.strip() else ""
        raise UsageError(f"{what} does not compile: {exc.msg}{where}: {source.strip()!r}") from None
    except (ValueError, TypeError) as exc:  # null bytes and the like
        raise UsageError(f"{what} does not compile: {exc}") from None
    return tree


def _names(code: CodeType) -> set:
    out = set(code.co_names) | set(code.co_varnames)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            out |= _names(const)
    return out


def _with_result(tree: ast.Module) -> list:
    body = [copy.deepcopy(node) for node in tree.body] or [ast.Pass()]
    last = body[-1]
    if isinstance(last, ast.Expr):
        body[-1] = ast.Assign(targets=[ast.Name(RESULT_NAME, ast.Store())], value=last.value)
    else:
        body.append(ast.Assign(targets=[ast.Name(RESULT_NAME, ast.Store())],
                               value=ast.Constant(None)))
    return body


def _check_tree(tree: ast.Module) -> ast.Module:
    """Like _loop_tree, comparing each call's answer with a reference (thread safety)."""
    func = ast.parse(f"def {_CHECK_NAME}(__gillab_calls, __gillab_ref):\n"
                     "    for __gillab_i in range(__gillab_calls):\n"
                     "        pass\n"
                     f"        __gillab_same = {_SAME_NAME}({RESULT_NAME}, __gillab_ref)\n"
                     "        if __gillab_same is None:\n"
                     "            return None, None\n"
                     "        if not __gillab_same:\n"
                     f"            return False, {RESULT_NAME}\n"
                     "    return True, None\n").body[0]
    loop = func.body[0]
    loop.body = _with_result(tree) + loop.body[1:]
    return ast.fix_missing_locations(ast.Module(body=[func], type_ignores=[]))


def _loop_tree(tree: ast.Module) -> ast.Module:
    """def __gillab_loop(__gillab_calls): for _ in range(calls): STATEMENT; return result.

    The statement's names are globals of the namespace SETUP built (as with timeit's
    ``globals``), except those it assigns, which stay local to the loop as in timeit.
    """
    body = _with_result(tree)
    func = ast.parse(f"def {_LOOP_NAME}(__gillab_calls):\n"
                     f"    {RESULT_NAME} = None\n"
                     "    for __gillab_i in range(__gillab_calls):\n"
                     "        pass\n"
                     f"    return {RESULT_NAME}\n").body[0]
    func.body[1].body = body
    module = ast.Module(body=[func], type_ignores=[])
    return ast.fix_missing_locations(module)


def prepare(statement: str, setup: str = "", globals: dict | None = None) -> Prepared:
    """Compile ``statement`` and ``setup``; UsageError (one line) if either does not."""
    if not statement.strip():
        raise UsageError("the statement is empty")
    tree = _compile(statement, "statement")
    setup_tree = _compile(setup, "SETUP")
    try:
        loop_code = compile(_loop_tree(tree), "<statement>", "exec")
        check_code = compile(_check_tree(tree), "<statement>", "exec")
    except SyntaxError as exc:  # e.g. 'nonlocal' at top level
        raise UsageError(f"statement does not compile: {exc.msg}: {statement.strip()!r}") from None
    setup_code = compile(setup_tree, "<SETUP>", "exec")
    names = frozenset(_names(compile(tree, "<statement>", "exec")) | _names(setup_code))
    return Prepared(statement, setup, setup_code, loop_code, check_code, names,
                    dict(globals or {}))


def looks_like_target(text: str) -> bool:
    """``package.module:func`` with no spaces: a callable to import, not a statement."""
    return bool(_TARGET.match(text.strip()))


def _check_no_arguments(func, label: str) -> None:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return  # some builtins have none to read: calling it will tell
    required = [p.name for p in signature.parameters.values()
                if p.default is p.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise UsageError(f"{label} needs arguments ({', '.join(required)}): check takes a "
                         "zero-argument callable; use a statement instead, e.g. "
                         f"-s 'import ...' '{label.split(':')[-1]}(...)'")


def prepare_callable(func, label: str | None = None, args: tuple = (),
                     kwargs: dict | None = None) -> Prepared:
    """A callable (or "MODULE:FUNC") as a statement: ``func(*args, **kwargs)``."""
    if isinstance(func, str):
        from gillab.kernels import load_target

        label = func
        try:
            func = load_target(func)
        except ValueError as exc:
            raise UsageError(str(exc).replace("--target", "check")) from None
        _check_no_arguments(func, label)
    elif not callable(func):
        raise UsageError(f"not callable: {func!r}")
    label = label or _callable_label(func, args, kwargs)
    prepared = prepare("__gillab_func(*__gillab_args, **__gillab_kwargs)")
    ns = {"__gillab_func": func, "__gillab_args": tuple(args),
          "__gillab_kwargs": dict(kwargs or {})}
    return Prepared(label, "", prepared.setup_code, prepared.loop_code, prepared.check_code,
                    frozenset(), ns)


def _callable_label(func, args, kwargs) -> str:
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    module = getattr(func, "__module__", None)
    if module and module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    shown = [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in (kwargs or {}).items()]
    return f"{name}({', '.join(shown)})"


def _short(value) -> str:
    if isinstance(value, (bytes, bytearray, str)) and len(value) > 16:
        return f"<{type(value).__name__} of {len(value)}>"
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _value(text: str):
    """A sweep value: a Python expression without names (2**20, b'x'*10, 0.5), else the text."""
    try:
        return eval(compile(text, "<sweep>", "eval"), {"__builtins__": {}}, {})  # noqa: S307
    except NameError:
        return text
    except Exception as exc:
        raise UsageError(f"--sweep value {text!r} is not a Python value ({exc})") from None


def parse_sweep(text: str, prepared: Prepared | None = None) -> tuple[str, tuple]:
    """'n=1024,4096' -> ('n', (1024, 4096)); the name must be one the statement uses."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise UsageError(f"--sweep takes NAME=V1,V2,...: got {text!r}")
    parts = [v.strip() for v in values.split(",") if v.strip()]
    if not parts:
        raise UsageError(f"--sweep {name}= needs values, e.g. {name}=1024,4096")
    if prepared is not None and name not in prepared.names:
        raise UsageError(f"--sweep name {name!r} is not used by the statement or SETUP")
    return name, tuple(_value(v) for v in parts)
