"""The lesson's demos: each one runs, says what it shows, measures it, and checks its claim.

This registry is deliberately light: importing it imports no demo, no gevent and
no multiprocessing machinery. A demo module is imported only when it is listed or run.

Every demo module has the same shape:

- ``TEXT = {"en": {...}, "zh": {...}}``: its narration, both languages side by side;
- ``measure(fast=False) -> Result``: runs the demo, returns a frozen record of numbers,
  never prints (so tests assert on numbers, not on text);
- ``narrate(result, lang) -> list[str]``: the measured outcome as lines of text;
- ``failures(result, lang) -> list[str]``: the claims that did not hold (empty: all held).
"""
from __future__ import annotations

import importlib
from types import ModuleType

from gillab.core.errors import UsageError, UserError

__all__ = ["DEMOS", "LANGS", "names", "load", "list_lines", "run"]

#: Demo name (the CLI contract) -> module in this package, in the lesson's order.
DEMOS: dict[str, str] = {
    "tcp-processes": "tcp_processes",
    "tcp-threads": "tcp_threads",
    "tcp-gevent": "tcp_gevent",
    "pool-lock": "pool_lock",
    "thread-create": "thread_create",
    "thread-api": "thread_api",
    "gil-counter": "gil_counter",
    "race": "race",
    "cpu-vs-io": "cpu_vs_io",
    "deadlock": "deadlock",
    "semaphore": "semaphore",
    "event": "event",
    "process-pool": "process_pool",
    "thread-pool": "thread_pool",
    "gevent-spawn": "gevent_spawn",
    "hybrid": "hybrid",
    "asyncio": "asyncio_echo",
}

LANGS = ("en", "zh")

_HEADER = {"en": "== demo {name}: {title} ==", "zh": "== 演示 {name}：{title} =="}
_HELD = {"en": "Claim held.", "zh": "结论成立。"}


def names() -> list[str]:
    return list(DEMOS)


def _check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise UsageError(f"unknown language {lang!r}; choose from {', '.join(LANGS)}")


def load(name: str) -> ModuleType:
    """The module of demo ``name``; UsageError (exit 2) names every demo if there is none."""
    try:
        module_name = DEMOS[name]
    except KeyError:
        raise UsageError(f"unknown demo {name!r}; choose from: {', '.join(DEMOS)}") from None
    return importlib.import_module(f"{__name__}.{module_name}")


def list_lines(lang: str = "en") -> list[str]:
    """One line per demo: its name and what it shows."""
    _check_lang(lang)
    width = max(len(name) for name in DEMOS)
    return [f"{name:<{width}}  {load(name).TEXT[lang]['title']}" for name in DEMOS]


def run(name: str, lang: str = "en", fast: bool = False):
    """Print what demo ``name`` shows, run it, print the measured outcome; return its record.

    Raises UserError (exit 1) with one line when a claim the demo makes did not hold.
    """
    _check_lang(lang)
    module = load(name)
    text = module.TEXT[lang]
    _say(_HEADER[lang].format(name=name, title=text["title"]))
    for line in text["shows"]:
        _say(line)
    _say("")
    result = module.measure(fast=fast)
    for line in module.narrate(result, lang):
        _say(line)
    failed = module.failures(result, lang)
    if failed:
        raise UserError(f"demo {name}: " + "; ".join(failed))
    _say(_HELD[lang])
    return result


def _say(line: str) -> None:
    from gillab.demos._common import wrap

    # Flushed line by line: the intro is on screen before a slow demo starts measuring.
    for piece in wrap(line):
        print(piece, flush=True)
