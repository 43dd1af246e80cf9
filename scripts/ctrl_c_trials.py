"""Ctrl-C trials: the contract's promise (exit 130 within about a second, one line, no
traceback, nothing left running, no half-written output) measured at chosen moments.

Each trial starts ``python -m gillab ARGS`` in a session of its own, sends SIGINT to its
process group ``moment`` seconds after the start (a terminal's Ctrl-C), waits for it to
exit, then lists every process of that session 1 s later (orphans keep the session id
when re-parented, so none can hide from the list).

    python scripts/ctrl_c_trials.py --from 1.5 --to 36 -n 20 -- compare --json /tmp/x.json
    python scripts/ctrl_c_trials.py --from 0 --to 0.1 -n 11 -- compare --quick

Run it from a checkout root (it runs that checkout's gillab). Not a test: a measurement
for a human, with a summary line at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time


def session_members(sid: int) -> list[str]:
    """'pid cmdline' of every live, non-zombie process whose session is ``sid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            # Fields after the command's closing parenthesis: state ppid pgrp session ...
            state, _ppid, _pgrp, session = stat.rsplit(")", 1)[1].split()[:4]
            if int(session) != sid or state == "Z":
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):
            continue  # gone meanwhile
        found.append(f"{entry} {cmd[:100]}")
    return found


def output_state(path: str | None) -> str:
    """'absent', 'valid' or 'HALF-WRITTEN' for the --json file of the run."""
    if not path or not os.path.exists(path):
        return "absent"
    try:
        with open(path) as f:
            json.load(f)
    except ValueError:
        return "HALF-WRITTEN"
    return "valid"


def trial(args: list[str], moment: float, json_path: str | None) -> dict:
    if json_path and os.path.exists(json_path):
        os.unlink(json_path)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "gillab", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(max(0.0, started + moment - time.monotonic()))
    sent = time.monotonic()
    if proc.poll() is not None:
        out, err = proc.communicate()
        return {"moment": moment, "finished": True, "status": proc.returncode, "took": 0.0,
                "stderr": err, "left": [], "output": output_state(json_path)}
    os.killpg(proc.pid, signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        out, err = "", "(no exit within 15 s)"
    took = time.monotonic() - sent
    time.sleep(1.0)
    left = session_members(proc.pid)
    for line in left:  # leave the machine clean for the next trial
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    return {"moment": moment, "finished": False, "status": proc.returncode, "took": took,
            "stderr": err, "left": left, "output": output_state(json_path)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="first", type=float, default=1.5, metavar="S")
    parser.add_argument("--to", dest="last", type=float, default=36.0, metavar="S")
    parser.add_argument("-n", type=int, default=20, help="trials, moments evenly spread")
    parser.add_argument("--show-stderr", type=float, default=None, metavar="S",
                        help="print the whole stderr of trials that took over S seconds")
    parser.add_argument("gillab_args", nargs="+", metavar="-- ARGS")
    opts = parser.parse_args()
    args = opts.gillab_args
    json_path = args[args.index("--json") + 1] if "--json" in args else None
    step = (opts.last - opts.first) / max(1, opts.n - 1)
    results = []
    for i in range(opts.n):
        r = trial(args, opts.first + i * step, json_path)
        results.append(r)
        err_lines = [ln for ln in r["stderr"].splitlines() if "interrupted" in ln or
                     "Traceback" in ln or "Error" in ln]
        print(f"t={r['moment']:6.3f}s status={r['status']} took={r['took']:.2f}s "
              f"left={len(r['left'])} output={r['output']} "
              f"traceback={'Traceback' in r['stderr']} "
              f"{'(finished before the signal) ' if r['finished'] else ''}"
              f"stderr-tail={err_lines[-1:] if err_lines else ''}", flush=True)
        for line in r["left"]:
            print(f"    LEFT: {line}", flush=True)
        if opts.show_stderr is not None and (r["took"] > opts.show_stderr or r["left"]):
            print("    " + r["stderr"].replace("\n", "\n    "), flush=True)
    signalled = [r for r in results if not r["finished"]]
    print(f"SUMMARY trials={len(results)} signalled={len(signalled)} "
          f"left={sum(len(r['left']) for r in results)} "
          f"statuses={sorted({r['status'] for r in results})} "
          f"max_took={max((r['took'] for r in signalled), default=0):.2f}s "
          f"tracebacks={sum('Traceback' in r['stderr'] for r in results)} "
          f"half_written={sum(r['output'] == 'HALF-WRITTEN' for r in results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
