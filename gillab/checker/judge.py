"""The verdict of `gillab check`: a pure function of a CheckResult's figures. No clocks.

Two kinds of evidence, and they must agree (the CPU evidence leads):

- the GIL probe beside one thread running the call alone: the share of the call's
  time the GIL was free (``released_share``);
- the threads' own clocks and the CPU: cores used by k threads, each task's GIL wait
  (blocked off-CPU from the start signal, beyond what the call blocks alone, with
  the OS queue taken out), and speedup, which is believed only as far as the cores
  account for it.

The thresholds and the measurements behind them are in docs/check.md.
"""
from __future__ import annotations

import dataclasses

from gillab.checker.record import CheckResult
from gillab.checker.report import format_time
# Other processes took more than this share of the machine: cores used cannot be trusted.
from gillab.measure.noise import NOISE_LIMIT

__all__ = ["judge", "find_threshold", "gil_off", "RELEASES_AT", "HOLDS_AT", "WAITS_BELOW",
           "CONTENDS_SHARE", "NO_GAIN", "OWN_THREADS_AT", "NOISE_LIMIT", "VERDICTS",
           "PRACTICAL"]

#: GIL free for at least this share of the call: "releases the GIL". Measured: calls
#: that release read 0.95-1.00, calls that hold read 0.00-0.10 (docs/check.md).
RELEASES_AT = 0.75
#: GIL free for at most this share: "holds the GIL". Between the two: part of the call.
HOLDS_AT = 0.25
#: The lone thread on a CPU less than this share of the call (OS queue taken out): "waits".
WAITS_BELOW = 0.5
#: Threads help when the gain the cores can account for, min(speedup, cores used),
#: reaches this share of the way from 1 to the ideal (1.5 on 2 CPUs).
SCALES_SHARE = 0.5
#: At most this share of the way from 1 to the ideal (1.25 on 2 CPUs): "about one core".
FLAT_SHARE = 0.25
#: GIL wait of k threads that take turns is 1 - 1/k; at half of that they clearly did.
TURNS_SHARE = 0.5
#: GIL wait at most this: the threads did not wait for each other.
FREE_WAIT = 0.15
#: On a busy machine a thread woken to take the GIL then queues for a CPU, and that
#: time is the OS's, so turns read lower: holders measured 0.14-0.31 there, calls that
#: release 0.00-0.01 (docs/check.md). Above this, the threads clearly blocked.
NOISY_TURNS = 0.08

#: Free-threaded, GIL off: the threads used the cores (at least this share of the way
#: from 1 to the ideal: 1.75 on 2 CPUs) yet did not scale: they contend.
CONTENDS_SHARE = 0.75
#: At most this speedup, k threads bought nothing (CPython's Tools/ftscalingbench
#: colours <= 1.1x as not scaling): said in the reason.
NO_GAIN = 1.1
#: One thread alone used this many cores or more: the call runs threads of its own.
OWN_THREADS_AT = 1.5
#: CPUs left free below this: the call alone fills the machine.
FILLED_BELOW = 0.5
#: A call that releases the GIL yet serializes, shorter than this: handing the GIL
#: over between calls may be what serializes it. Measured quietly (docs/check.md):
#: sha256 of 2 KiB (1.4 us a call, GIL free 98%) ran 2 threads on 1.14 cores, zlib of
#: 64 bytes (4.4 us, 95%) on 1.40; zlib of 1 KiB (17 us) already on 1.91.
SHORT_CALL_S = 10e-6

VERDICTS = ("releases the GIL", "holds the GIL", "releases it for part of the call",
            "waits", "waits, holding the GIL", "failed",
            "scales", "contends", "does not scale", "too busy to tell", "parallel by itself")
PRACTICAL = ("threads help", "use processes", "threads help only for waits",
             "threads help with objects of their own", "already parallel")


def _pct(share: float) -> str:
    return f"{share * 100:.0f}%"


def _ideal(workers: int, cpus: int | None) -> int:
    return max(1, min(workers, cpus or workers))


@dataclasses.dataclass(frozen=True)
class _Evidence:
    """The figures a check's verdict is drawn from, read once from its record."""

    share: float       # GIL free, share of the call alone
    on_cpu: float      # the lone thread on a CPU, share of the call
    k: int             # threads in the largest run
    cores: float
    speedup: float
    gil_wait: float
    scales: bool       # the gain the cores back reaches halfway to the ideal
    flat: bool         # about one core
    took_turns: bool   # the threads waited for each other's GIL
    no_wait: bool
    noisy: bool
    figures: str
    call_s: float | None = None  # one call, on one thread alone


def _evidence(result: CheckResult, w) -> _Evidence:
    k = w.workers
    ideal = _ideal(k, result.cpus)
    cores, speedup = w.cores_used or 0.0, w.speedup or 0.0
    gil_wait = w.gil_wait if w.gil_wait is not None else 0.0
    gain = min(speedup, cores)
    share = result.released_share
    return _Evidence(
        share, result.on_cpu, k, cores, speedup, gil_wait,
        scales=ideal > 1 and gain >= 1 + SCALES_SHARE * (ideal - 1),
        flat=cores <= 1 + FLAT_SHARE * (ideal - 1),
        took_turns=gil_wait >= (NOISY_TURNS if result.noisy else TURNS_SHARE * (1 - 1 / k)),
        no_wait=gil_wait <= FREE_WAIT, noisy=result.noisy,
        figures=(f"GIL free {_pct(share)} of the call; {k} threads: {speedup:.2f}x, "
                 f"{cores:.2f} cores used, GIL wait {gil_wait:.2f}"),
        call_s=result.call_s)


def _notes(result: CheckResult, e: _Evidence) -> list[str]:
    notes = []
    if e.speedup > e.cores * 1.15 + 0.1 and e.on_cpu >= WAITS_BELOW and not e.noisy:
        notes.append(f"a {e.speedup:.2f}x speedup on {e.cores:.2f} cores is a slow baseline, "
                     "not parallelism: the cores lead")
    if e.noisy:
        notes.append(f"machine busy (other processes took {_pct(result.noise or 0)} of the "
                     "CPUs): cores used is not conclusive"
                     + ("" if gil_off(result) else ", the GIL wait is"))
    if result.answers == "differ":
        notes.append(f"answers differed between threads ({result.answers_detail}): "
                     "not thread-safe")
    return notes


def judge(result: CheckResult) -> CheckResult:
    """The same record with ``verdict`` (and its ``verdict_word``), ``practical``,
    ``reason`` and ``releases_gil`` set."""
    if result.error is not None:
        return dataclasses.replace(result, verdict="failed", verdict_word="failed",
                                   practical="", releases_gil=None, reason=result.error)
    w = result.largest_threads()
    if result.released_share is None or result.on_cpu is None or w is None:
        return dataclasses.replace(
            result, verdict="unknown", verdict_word="unknown", practical="",
            releases_gil=None, reason="no GIL probe reading or no thread run: nothing to judge")
    e = _evidence(result, w)
    notes = _notes(result, e) + _gil_notes(result)
    if (result.cores_alone or 0.0) >= OWN_THREADS_AT:
        return _judge_own_threads(result, e, notes)
    if gil_off(result):
        return _judge_free_threaded(result, e, notes)
    if e.on_cpu < WAITS_BELOW:
        word, practical, releases, reason = _judge_waits(e, notes)
    elif e.share >= RELEASES_AT:
        word, practical, releases, reason = _judge_releases(e)
    elif e.share <= HOLDS_AT:
        word, practical, releases, reason = _judge_holds(e)
    else:
        word, practical, releases, reason = _judge_part(e)
    verdict = f"{word} ({_pct(e.share)})" if word == PART else word
    return _done(result, verdict, word, practical, releases, reason, notes)


def gil_off(result: CheckResult) -> bool:
    """A free-threaded build that ran the check with its GIL off (as measured)."""
    return bool(result.env.get("free_threaded_build")) and result.env.get("gil_enabled") is False


def _gil_notes(result: CheckResult) -> list:
    """A free-threaded build whose GIL was on: the figures are the GIL's; say why."""
    env = result.env
    if not env.get("free_threaded_build") or env.get("gil_enabled") is not True:
        return []
    by = env.get("gil_enabled_by") or []
    if by:
        return [f"the GIL was turned on by importing {', '.join(by)} (no Py_mod_gil "
                "declaration): these figures are the GIL's; to measure without it run with "
                "PYTHON_GIL=0 (or -X gil=0), at your own risk: the module never said it is "
                "safe without the GIL"]
    return ["the GIL was on (forced: -X gil=1 or PYTHON_GIL=1): these figures are the GIL's"]


def _judge_own_threads(result: CheckResult, e: _Evidence, notes: list) -> CheckResult:
    """One thread alone already ran on several cores: the call starts threads of its own.
    More workers are judged against the CPUs it leaves free, never against one core."""
    alone = result.cores_alone
    cpus = result.cpus or e.k
    free = max(0.0, cpus - alone)
    lead = (f"one call alone ran on {alone:.2f} cores by itself (threads of its own) of "
            f"{cpus} CPUs")
    releases = None if gil_off(result) else True
    if free < FILLED_BELOW:
        return _done(result, f"parallel by itself ({alone:.2f} cores)", "parallel by itself",
                     "already parallel", releases,
                     lead + f": {free:.2f} CPUs left, so neither more threads nor processes "
                     f"can help ({e.k} threads: {e.speedup:.2f}x, {e.cores:.2f} cores used)",
                     notes)
    ideal = min(e.k * alone, cpus) / alone
    gain = min(e.speedup, e.cores / alone)
    helps = ideal > 1 and gain >= 1 + SCALES_SHARE * (ideal - 1)
    return _done(result, f"parallel by itself ({alone:.2f} cores)", "parallel by itself",
                 "threads help" if helps else "use processes", releases,
                 lead + f"; {free:.2f} CPUs left, at most {ideal:.2f}x from more workers; "
                 f"{e.k} threads: {e.speedup:.2f}x, {e.cores:.2f} cores used", notes)


def _private(result: CheckResult, ideal: int) -> tuple[str, bool | None]:
    """What the run with SETUP once per thread says about where the contention is: the
    sentence, and whether each thread's own objects scaled (None: not measured)."""
    if result.private_speedup is None:
        if not result.setup.strip():
            return ("no SETUP to give each thread its own objects: what the call shares "
                    "(module globals, a shared callable, the allocator) contends"), None
        if (result.noise or 0.0) > NOISE_LIMIT and not result.noisy:
            # The shared run was quiet; every round with objects of their own was not.
            return (f"each thread's own objects: too busy to measure (other processes "
                    f"took {_pct(result.noise)} of the CPUs)"), None
        return "each thread's own objects not measured", None
    own = min(result.private_speedup, result.private_cores or result.private_speedup)
    figures = f"shared {_shared_speedup(result):.2f}x, each thread its own " \
              f"{result.private_speedup:.2f}x"
    if ideal > 1 and own >= 1 + SCALES_SHARE * (ideal - 1):
        return f"contends on objects SETUP made: {figures}", True
    return (f"{figures}: the contention lies elsewhere, not in SETUP's objects (module "
            "globals, a shared callable, the allocator)"), False


def _shared_speedup(result: CheckResult) -> float:
    w = result.largest_threads()
    return (w.speedup or 0.0) if w else 0.0


def _judge_free_threaded(result: CheckResult, e: _Evidence, notes: list) -> CheckResult:
    """No GIL to release: do k threads scale, or contend on what they share?"""
    ideal = _ideal(e.k, result.cpus)
    figures = f"no GIL (free-threaded build); {e.k} threads: {e.speedup:.2f}x, " \
              f"{e.cores:.2f} cores used"
    if e.speedup <= NO_GAIN:
        figures += f" (no faster than one thread: <= {NO_GAIN}x)"
    if e.on_cpu < WAITS_BELOW:
        return _done(result, "waits", "waits", "threads help only for waits", None,
                     f"on a CPU {_pct(e.on_cpu)} of the call alone (IO or sleep); " + figures,
                     notes, scales=e.scales, contends=None)
    if e.scales:
        return _done(result, "scales", "scales", "threads help", None, figures, notes,
                     scales=True, contends=False)
    if e.noisy:
        return _done(result, "too busy to tell", "too busy to tell", "", None, figures,
                     notes, scales=None, contends=None)
    private, own_scales = _private(result, ideal)
    practical = "threads help with objects of their own" if own_scales else "use processes"
    if e.cores >= 1 + CONTENDS_SHARE * (ideal - 1):
        return _done(result, "contends", "contends", practical, None,
                     figures + f": the threads used the cores yet ran no faster: they "
                     f"contend on what they share; {private}", notes,
                     scales=False, contends=True)
    if own_scales:
        # Measured, not guessed: the same call scales on objects of its own, so what
        # held the shared run back is SETUP's objects, whether the threads spun on the
        # cores or parked on those objects' locks (3.13t's dicts: 1.35 cores, 0.46x).
        return _done(result, "contends", "contends", practical, None,
                     figures + f": the threads waited on what they share (its locks, "
                     f"not a GIL); {private}", notes, scales=False, contends=True)
    return _done(result, "does not scale", "does not scale", practical, None,
                 figures + f": the threads did not use the cores: they waited for each "
                 f"other (a lock); {private}", notes, scales=False, contends=False)


#: The verdict word whose sentence carries the share: "releases it for part of the call (40%)".
PART = "releases it for part of the call"


def _judge_waits(e: _Evidence, notes: list):
    waits_free = e.share >= 0.5
    reason = (f"on a CPU {_pct(e.on_cpu)} of the call alone (IO or sleep); GIL free "
              f"{_pct(e.share)}; {e.k} threads: {e.speedup:.2f}x on {e.cores:.2f} cores")
    if waits_free and e.speedup < 0.6 * e.k and not e.noisy:
        notes.append(f"yet {e.k} threads overlapped only {e.speedup:.2f}x: the waits "
                     "themselves are shared (one device, one lock)")
    if waits_free:
        return "waits", "threads help only for waits", True, reason
    return "waits, holding the GIL", "use processes", False, reason


def _judge_releases(e: _Evidence):
    releases = (True if e.no_wait else None) if e.noisy else True
    if e.scales:
        return "releases the GIL", "threads help", releases, e.figures
    if e.noisy and e.no_wait:
        return ("releases the GIL", "threads help", releases,
                e.figures + " (blocked for nothing: the CPUs were taken by others)")
    if e.noisy:
        return "releases the GIL", "use processes", None, e.figures
    lead = e.figures + f": the GIL is free, yet {e.k} threads used {e.cores:.2f} cores: "
    if e.call_s is not None and e.call_s < SHORT_CALL_S and not e.no_wait:
        # The threads blocked (GIL wait counts any off-CPU wait, a lock's too), and the
        # call is a few microseconds: the GIL, released and taken back around each
        # call, changes hands more often than a thread can be woken to take it.
        return ("releases the GIL", "use processes", releases,
                lead + f"a call of {format_time(e.call_s)} gives the GIL back and takes "
                "it again so often that handing it over serializes the threads (or a lock "
                "does); fewer, bigger calls would let them overlap")
    return ("releases the GIL", "use processes", releases,
            lead + "something other than the GIL serializes the call (a lock, memory "
            "bandwidth)")


def _judge_holds(e: _Evidence):
    if e.scales:  # the probe and the cores disagree: say so, decide nothing
        return ("holds the GIL", "threads help", None,
                e.figures + f": the probe found the GIL held, yet {e.k} threads used "
                f"{e.cores:.2f} cores: the evidence disagrees")
    if e.noisy:
        return "holds the GIL", "use processes", (False if e.took_turns else None), e.figures
    releases = False if (e.flat or e.took_turns) else None
    lead = e.figures
    if releases is None:
        lead += ": the probe found the GIL held, but the threads did not take turns"
    return "holds the GIL", "use processes", releases, lead


def _judge_part(e: _Evidence):
    most = 1 / max(1e-9, 1 - e.share)
    lead = e.figures + f"; with {_pct(1 - e.share)} under the GIL, at most {most:.1f} cores"
    practical = "threads help" if e.scales else "use processes"
    return PART, practical, (e.share >= 0.5) if not e.noisy else None, lead


def _done(result, verdict, word, practical, releases, reason, notes, **fields) -> CheckResult:
    if result.noisy and releases is None and word != "too busy to tell" \
            and fields.get("scales", False) is not True:
        notes = notes + ["too busy to tell"]
    text = "; ".join([reason, *notes])
    return dataclasses.replace(result, verdict=verdict, verdict_word=word,
                               practical=practical, releases_gil=releases, reason=text,
                               **fields)


def find_threshold(name: str, rows) -> str:
    """Where a sweep's verdict changes: "between n=1024 (holds ...) and n=4096 (...)"."""
    changes = []
    for before, after in zip(rows, rows[1:]):
        # "releases it for part of the call (40%)" and "(60%)" are one verdict for a sweep.
        if before.verdict_word != after.verdict_word:
            changes.append(f"between {name}={before.params[name]!r} ({before.verdict}) and "
                           f"{name}={after.params[name]!r} ({after.verdict})")
    if not changes:
        return f"the verdict does not change over these values of {name}"
    return "the verdict changes " + "; and ".join(changes)
