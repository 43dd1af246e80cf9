"""``gillab.check``: prepare a statement, measure it in rounds, judge it. No printing."""
from __future__ import annotations

import dataclasses

from gillab.core import stats
from gillab.checker import judge as judging
from gillab.checker.answers import hex_digest, same_answer
from gillab.core.errors import one_line
from gillab.measure import bounded, loops
from gillab.measure.noise import NOISE_LIMIT
from gillab.checker.record import CheckResult, CheckSweep, Workers
from gillab.checker.statement import (DEFAULT_TIMEOUT_S, Prepared, looks_like_target,
                                      parse_sweep, prepare, prepare_callable)
from gillab.core.errors import UsageError, UserError
from gillab.core.gilstate import watch_gil

__all__ = ["check", "prepare_check", "measure_prepared", "StatementFailed",
           "DEFAULT_TIMEOUT_S"]

#: Rounds of (one thread alone + each thread count) for short tasks; long ones get fewer,
#: so a check stays within seconds.
ROUNDS = 3
#: A noisy round is run again, at most this many times in all per check, and only
#: while the check has run less than RETRY_BUDGET_S (a check stays within ~5 s).
EXTRA_ROUNDS = 2
RETRY_BUDGET_S = 3.0


class StatementFailed(UserError):
    """The statement (or SETUP) raised, exited or never returned: exit 1."""


def prepare_check(statement, setup="", globals=None, args=(), kwargs=None) -> Prepared:
    """A Prepared statement from a string, "MODULE:FUNC", or a callable (with its args)."""
    if callable(statement):
        return prepare_callable(statement, args=args, kwargs=kwargs)
    if not isinstance(statement, str):
        raise UsageError(f"a statement is a string or a callable, not {type(statement).__name__}")
    if isinstance(setup, (list, tuple)):
        setup = "\n".join(setup)
    if looks_like_target(statement):
        if setup.strip():
            raise UsageError(f"{statement.strip()} is MODULE:FUNC: it takes no SETUP (-s)")
        return prepare_callable(statement.strip())
    return prepare(statement, setup, globals)


def check(statement, setup="", globals=None, *, args=(), kwargs=None, sweep=None,
          processes: bool = False, timeout: float = DEFAULT_TIMEOUT_S, max_threads: int = 4,
          min_task_s: float = 0.1):
    """Does ``statement`` release the GIL, and would threads help it? Measured here.

    ``statement`` is Python source (run in the namespace ``setup`` built, on top of a
    copy of ``globals``, like timeit), "MODULE:FUNC", or a callable called with
    ``args``/``kwargs``. ``sweep`` ("n=1,2" or {"n": [1, 2]}) checks once per value and
    returns a CheckSweep. Raises UsageError for what cannot run, StatementFailed when
    the statement raises, exits or outlives ``timeout`` seconds (its thread then goes
    on in the background: a daemon thread that Python cannot stop).
    """
    prepared = prepare_check(statement, setup, globals, args, kwargs)
    if sweep is None:
        return measure_prepared(prepared, None, processes=processes, timeout=timeout,
                                max_threads=max_threads, min_task_s=min_task_s)
    name, values = _sweep_values(sweep, prepared)
    rows = tuple(measure_prepared(prepared, {name: v}, processes=processes, timeout=timeout,
                                  max_threads=max_threads, min_task_s=min_task_s)
                 for v in values)
    return CheckSweep(prepared.statement, prepared.setup, rows[0].env, name, rows,
                      judging.find_threshold(name, rows))


def _sweep_values(sweep, prepared: Prepared) -> tuple[str, tuple]:
    if isinstance(sweep, str):
        return parse_sweep(sweep, prepared)
    if isinstance(sweep, dict) and len(sweep) == 1:
        (name, values), = sweep.items()
        if name not in prepared.names:
            raise UsageError(f"--sweep name {name!r} is not used by the statement or SETUP")
        values = tuple(values)
        if values:
            return name, values
    raise UsageError("sweep takes 'NAME=V1,V2' or {NAME: [V1, V2]}")


def _cpus() -> int:
    from gillab.core.environment import cpu_count

    return cpu_count()


def measure_prepared(prepared: Prepared, bindings: dict | None, processes: bool = False,
                     timeout: float = DEFAULT_TIMEOUT_S, max_threads: int = 4,
                     min_task_s: float = 0.1) -> CheckResult:
    """One check of one statement (one sweep row): measured, then judged.

    The GIL is watched throughout (gillab.core.gilstate): a free-threaded build turns it
    on for good when SETUP or the statement imports a module that never declared it can
    run without it, and the record says so (env ``gil_enabled``, ``gil_enabled_by``)."""
    from gillab.core.environment import collect_env

    deadline = bounded.deadline_in(timeout)
    with watch_gil() as gil:
        env = collect_env()
        base = CheckResult(statement=prepared.statement, setup=prepared.setup, env=env,
                           params=dict(bindings) if bindings is not None else None,
                           cpus=env["cpu_count"])
        ns = prepared.new_namespace(bindings)
        _run_setup(prepared, ns, bindings, deadline, timeout)
        gil.mark("setup")
        loop = prepared.make_loop(ns)
        try:
            measured, reference = _measure(loop, base, deadline, processes, max_threads,
                                           min_task_s)
            if measured.answers in ("same", "not compared"):
                measured = _answers_pass(prepared.make_checker(ns), reference, measured,
                                         deadline)
        except bounded.CallTimeout as exc:
            raise StatementFailed(f"{exc} within --timeout {timeout:g} s "
                                  f"(statement: {prepared.statement.strip()!r})") from None
    measured = dataclasses.replace(
        measured, env={**env, **gil.env_fields()},
        gil_states={"start": gil.before, "setup": gil.marks["setup"], "end": gil.after})
    result = judging.judge(measured)
    if judging.gil_off(result) and result.scales is False and prepared.setup.strip():
        result = judging.judge(_private_pass(prepared, bindings, result, deadline, timeout))
    return result


def _run_setup(prepared: Prepared, ns: dict, bindings, deadline: float, timeout: float):
    try:
        bounded.call_bounded(lambda: prepared.run_setup(ns, bindings), deadline, "SETUP",
                             name="gillab-check")
    except bounded.CallTimeout:
        raise StatementFailed(f"SETUP did not return within --timeout {timeout:g} s") from None
    except BaseException as exc:  # SystemExit in SETUP fails the check, not gillab
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise StatementFailed(f"SETUP failed: {one_line(exc)}") from None


#: Rounds of (one thread alone, k threads) with SETUP run once per thread, kept when
#: quiet (other processes took at most NOISE_LIMIT of the machine); at most
#: PRIVATE_TRIES rounds are run to find them.
PRIVATE_ROUNDS = 2
PRIVATE_TRIES = 4


def _private_pass(prepared: Prepared, bindings, result: CheckResult, deadline: float,
                  timeout: float) -> CheckResult:
    """The same loops with SETUP run once in each thread (each thread its own objects):
    the threads contend on SETUP's objects if these scale where the shared ones did not."""
    def own(i):
        ns = prepared.new_namespace(bindings)
        prepared.run_setup(ns, bindings)
        return prepared.make_loop(ns)

    k, calls = result.largest_threads().workers, result.calls_per_task
    alone, runs, noises = [], [], []
    try:
        for _ in range(PRIVATE_TRIES):
            pair = (loops.run_threads(None, calls, 1, deadline, own=own),
                    loops.run_threads(None, calls, k, deadline, own=own))
            if any(t.error for run in pair for t in run.tasks):
                # SETUP or the statement failed on its own objects: nothing to compare
                return result
            noise = max((r.noise for r in pair if r.noise is not None), default=None)
            noises.append(noise or 0.0)
            if noise is None or noise <= NOISE_LIMIT:
                alone.append(pair[0])
                runs.append(pair[1])
            if len(runs) == PRIVATE_ROUNDS:
                break
    except bounded.CallTimeout as exc:
        raise StatementFailed(f"{exc} within --timeout {timeout:g} s (each thread its own "
                              f"SETUP; statement: {prepared.statement.strip()!r})") from None
    if not runs:  # other processes took the CPUs in every round: no figure to believe
        return dataclasses.replace(result, noise=max([result.noise or 0.0, *noises]))
    wall = stats.median([r.wall_s for r in runs])
    speedup = k * stats.median([r.wall_s for r in alone]) / wall if wall > 0 else None
    return dataclasses.replace(
        result, private_speedup=None if speedup is None else round(speedup, 4),
        private_cores=round(stats.median([r.cores_used for r in runs]), 4))


def _measure(loop, base: CheckResult, deadline: float, processes: bool, max_threads: int,
             min_task_s: float) -> tuple[CheckResult, object]:
    """Autorange, then rounds of (probed lone run, lone run, each k, processes).

    Returns the summarised record and the lone thread's answer (the reference)."""
    try:
        calls, first_s, first_value = loops.autorange_loop(loop, deadline, min_task_s)
    except bounded.CallTimeout:
        raise
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise StatementFailed(f"the statement failed: {one_line(exc)}") from None
    cpus = base.cpus or 1
    counts = tuple(range(2, max(2, min(max_threads, cpus)) + 1))
    n_rounds = ROUNDS if first_s <= 0.3 else (2 if first_s <= 1.0 else 1)
    kept, noisy_rounds, tries = [], [], 0
    retry_until = bounded.deadline_in(RETRY_BUDGET_S)
    while len(kept) < n_rounds and tries < n_rounds + EXTRA_ROUNDS:
        if tries >= n_rounds and bounded.past(retry_until):
            break
        tries += 1
        # The probe wakes every 0.1 ms: it has a lone run of its own, so the baseline
        # (the lone run without it) is not slowed by it.
        rnd = {"probed": loops.run_threads(loop, calls, 1, deadline, probe=True),
               "alone": loops.run_threads(loop, calls, 1, deadline)}
        for k in counts:
            rnd[k] = loops.run_threads(loop, calls, k, deadline)
        if processes:
            rnd["processes"] = loops.run_processes(loop, calls, counts[-1], deadline)
        failed = [t.error for run in rnd.values() for t in run.tasks if t.error]
        for key in ("probed", "alone"):
            if failed and rnd[key].tasks[0].error:
                raise StatementFailed(f"the statement failed: {rnd[key].tasks[0].error}")
        noise = max((r.noise for r in rnd.values() if r.noise is not None), default=None)
        (noisy_rounds if noise is not None and noise > NOISE_LIMIT else kept).append(
            (rnd, noise))
    noisy = not kept
    if noisy:  # every round was noisy: keep the quietest ones and say so
        kept = sorted(noisy_rounds, key=lambda rn: rn[1])[:n_rounds]
    rounds = [rn[0] for rn in kept]
    return _summarise(base, rounds, calls, first_value, noisy, tries,
                      max((rn[1] or 0.0) for rn in kept)), first_value


def _summarise(base, rounds, calls, first_value, noisy, tries, noise) -> CheckResult:
    alone = [r["alone"] for r in rounds]
    alone_walls = [r.wall_s for r in alone]
    alone_wall = stats.median(alone_walls)
    alone_wait = stats.median(r.tasks[0].waited for r in alone)
    held = [r["probed"].gil_held for r in rounds if r["probed"].gil_held is not None]
    released = 1.0 - stats.median(held) if held else None

    def workers(key, n) -> Workers:
        runs = [r[key] for r in rounds]
        walls = [r.wall_s for r in runs]
        wall = stats.median(walls)
        return Workers(
            workers=n,
            speedup=round(n * alone_wall / wall, 4) if wall > 0 else None,
            cores_used=round(stats.median(r.cores_used for r in runs), 4),
            gil_wait=round(stats.median(
                stats.mean(max(0.0, t.waited - alone_wait) for t in r.tasks) for r in runs), 4),
            off_cpu=round(stats.median(stats.mean(t.off_cpu for t in r.tasks) for r in runs), 4),
            wall_s=wall, wall_s_all=tuple(walls))

    thread_keys = sorted(k for k in rounds[0] if isinstance(k, int))
    answers, detail = _compare_answers(first_value, rounds)
    errors = sorted({t.error for r in rounds for run in r.values() for t in run.tasks
                     if t.error})
    if errors:
        answers, detail = "differ", f"raised in workers: {errors[0]}"
    return dataclasses.replace(
        base, calls_per_task=calls, task_s=alone_wall, call_s=alone_wall / calls,
        released_share=None if released is None else round(released, 4),
        on_cpu=round(1.0 - alone_wait, 4),
        cores_alone=round(stats.median(r.cores_used for r in alone), 4),
        threads=tuple(workers(k, k) for k in thread_keys),
        processes=(workers("processes", rounds[0]["processes"].workers),)
        if "processes" in rounds[0] else (),
        answers=answers, answers_detail=detail,
        noise=round(noise, 4), noisy=noisy, rounds=len(rounds), tries=tries)


def _answers_pass(checker, reference, result: CheckResult, deadline: float) -> CheckResult:
    """An untimed run of k threads comparing *every* call's answer with the lone
    thread's: a race shows in any call, not only in each task's last one."""
    k = result.largest_threads().workers
    run = loops.run_threads(lambda calls: checker(calls, reference), result.calls_per_task,
                              k, deadline)
    for task in run.tasks:
        if task.error:
            return dataclasses.replace(result, answers="differ",
                                       answers_detail=f"raised in {k} threads: {task.error}")
        same, answer = task.value
        if same is False:
            return dataclasses.replace(
                result, answers="differ",
                answers_detail=f"{_short(answer)} in one of {k} threads' calls, "
                               f"{_short(reference)} alone")
    return result


def _compare_answers(first, rounds) -> tuple[str, str]:
    """Same answer in every thread? Only asked when the lone thread always agrees."""
    alone = [first] + [r[key].tasks[0].value for r in rounds for key in ("alone", "probed")]
    alike = [same_answer(first, v) for v in alone[1:]]
    if False in alike:
        return "varies alone", "the answer differs between calls on one thread: not compared"
    if None in alike:
        return "not compared", (f"a {type(first).__name__} has no truth value for == and "
                                "no buffer: its answers cannot be compared")
    others = [(key, t.value) for r in rounds for key, run in r.items()
              if key not in ("alone", "probed")
              for t in run.tasks if t.value is not loops.NOT_SENT]
    for key, value in others:
        if same_answer(first, value) is False:
            where = "processes" if key == "processes" else f"{key} threads"
            return "differ", f"{_short(value)} on {where}, {_short(first)} alone"
    if not others:
        return "not compared", ""
    return "same", f"{_short(first)} in every worker"


def _short(value) -> str:
    digest = hex_digest(value)
    text = f"<{digest[0]} {digest[1]}>" if digest else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
