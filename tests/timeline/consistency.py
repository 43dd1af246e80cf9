"""Does a reading say only what its own table shows?

``check_reading(data, text)`` holds every figure a timeline's reading states against the
record's fields (``Timeline.to_dict()``, the same fields the table prints): a thread's
wake-ups and medians, a phase's, the shares, together-on-CPU, the switch interval. A
number the rules below do not recognise fails too, so a new sentence needs a rule here.
It reads the record, never how the reading was built.
"""
from __future__ import annotations

import re

NUM = r"(\d+(?:\.\d+)?)"


def _close(value, stated: str, slack: float = 0.0) -> bool:
    """``value`` printed with as many decimals as ``stated`` has gives ``stated``."""
    if value is None:
        return False
    digits = len(stated.split(".")[1]) if "." in stated else 0
    return abs(value - float(stated)) <= 0.5 * 10 ** -digits + slack + 1e-9


def _within(values, stated: str) -> bool:
    """``stated`` (an average or median of ``values``) lies within their range."""
    values = [v for v in values if v is not None]
    digits = len(stated.split(".")[1]) if "." in stated else 0
    tol = 0.5 * 10 ** -digits + 1e-9
    return bool(values) and min(values) - tol <= float(stated) <= max(values) + tol


class Reading:
    def __init__(self, data: dict, text: str):
        self.data, self.text = data, text
        self.threads = data["threads"]
        self.names: dict = {}
        for th in self.threads:
            self.names.setdefault(th["name"], []).append(th)
            self.names[f"{th['name']} {th['tid']}"] = [th]
        alternatives = sorted(self.names, key=len, reverse=True)
        names = "|".join(re.escape(n) for n in alternatives)
        self.who = rf"(?:the event loop \((?:{names})\)|{names})"
        self.covered: list = []

    def thread(self, who: str) -> dict:
        """The thread a reading names; 'the event loop (X)' must be one."""
        loop = who.startswith("the event loop (")
        name = who[len("the event loop ("):-1] if loop else who
        found = self.names.get(name, [])
        assert len(found) == 1, f"{who!r} names {len(found)} threads: {self.text}"
        assert found[0]["event_loop"] or not loop, f"{name} is no event loop: {self.text}"
        return found[0]

    def claims(self, pattern: str):
        for m in re.finditer(pattern.replace("WHO", self.who), self.text):
            self.covered.append(m.span())
            yield m

    def shares(self, key: str) -> list:
        return [th["shares"][key] * 100 for th in self.threads]


def check_reading(data: dict, text: str) -> None:
    """AssertionError when ``text`` states a figure its record (``data``) does not hold."""
    r = Reading(data, text)
    _check_wakes(r)
    _check_shares(r)
    _check_turns(r)
    rest = list(text)
    for start, end in r.covered:
        rest[start:end] = " " * (end - start)
    left = re.sub(r.who, "", "".join(rest))
    assert not re.search(r"\d", left), f"figures no rule checks in {left.strip()!r}: {text}"


def _check_wakes(r: Reading) -> None:
    for m in r.claims(rf"(?:while (?P<beside>WHO) ran, )?(?P<who>WHO) woke (?P<n>\d+) times "
                      rf"and (?:each time )?waited a median {NUM} ms for the GIL"):
        th = r.thread(m["who"])
        assert th["shares"]["gil_wait"] > 0, f"{m['who']} never waited for the GIL: {r.text}"
        if m["beside"]:
            tid = r.thread(m["beside"])["tid"]
            phase = next(p for p in th["phases"] if p["beside_tid"] == tid)
            assert phase["wakeups"] == int(m["n"]), (phase, r.text)
            assert _close(phase["median_wake_to_run_ms"], m[4]), (phase, r.text)
        else:
            assert th["wakeups"] == int(m["n"]), (th["wakeups"], r.text)
            assert _close(th["median_wake_to_run_ms"], m[4]), (th["median_wake_to_run_ms"], r.text)
        for calm in r.claims(rf"; while no other thread ran, it woke (\d+) times and ran "
                             rf"within a median {NUM} ms"):
            phase = next(p for p in th["phases"] if p["beside_tid"] is None)
            assert phase["wakeups"] == int(calm[1]), (phase, r.text)
            assert _close(phase["median_wake_to_run_ms"], calm[2]), (phase, r.text)
    for m in r.claims(rf"(?P<who>WHO) woke (?P<n>\d+) times and ran within a median {NUM} ms"
                      rf"(?P<nothing>: nothing held the GIL against it)?"):
        th = r.thread(m["who"])
        assert th["wakeups"] == int(m["n"]) and _close(th["median_wake_to_run_ms"], m[3]), (
            th["wakeups"], th["median_wake_to_run_ms"], r.text)
        if m["nothing"]:
            # The contradiction: the table showed this thread waiting 29 %.
            assert th["shares"]["gil_wait"] < 0.05, (th["shares"], r.text)
            assert not any(p["median_wake_to_run_ms"] >= 1.0 and p["wakeups"] >= 3
                           for p in th["phases"]), (th["phases"], r.text)
    for m in r.claims(rf"waited for the GIL (\d+)% of the time \(a median {NUM} ms\)"):
        assert any(_close(th["shares"]["gil_wait"] * 100, m[1])
                   and _close(th["median_gil_wait_ms"], m[2]) for th in r.threads), r.text


def _check_shares(r: Reading) -> None:
    for m in r.claims(r"together (\d+)%"):
        assert _close(r.data["together_on_cpu"] * 100, m[1]), (r.data["together_on_cpu"], r.text)
    for key, pattern in (("gil_wait", r"waited for the GIL (\d+)%"),
                         ("futex", r"waited on a futex (\d+)%"),
                         ("queued", r"queued the threads (\d+)%"),
                         ("short", r"lost (\d+)% of the time"),
                         ("cpu", r"one thread, on CPU (\d+)%")):
        for m in r.claims(pattern):
            assert _within(r.shares(key), m[1]), (key, r.shares(key), r.text)


def _check_turns(r: Reading) -> None:
    si = r.data["switch_interval"]
    si_ms = si * 1e3 if si else 5.0  # a program's: Python's default
    for m in r.claims(rf"(?:the switch interval \(|the ){NUM} ms(?:, Python's default)?"
                      r"(?:\)| switch interval)"):
        assert _close(si_ms, m[1]), (si_ms, r.text)
    for m in r.claims(rf"the (\d+) threads took turns(?: holding the GIL)? every {NUM} ms"):
        assert int(m[1]) <= len(r.threads), r.text
        assert _within([th["median_hold_ms"] for th in r.threads if th["handoffs"]], m[2]), (
            [th["median_hold_ms"] for th in r.threads], r.text)
    for m in r.claims(rf"the (\d+) threads took turns, running {NUM} ms at a time"):
        assert int(m[1]) <= len(r.threads), r.text
        assert _within([th["median_run_ms"] for th in r.threads], m[2]), r.text
