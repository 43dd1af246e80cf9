"""The convoy's probes and its run: what to time, in which order, with which background.

The main thread times one small IO operation at a time (a 1 ms sleep, a 1-byte
socketpair round trip, a request to the lab's own TCP echo server) while one
background thread computes. Every GIL hand-off the main thread needs shows up as
latency. The loop probe runs an asyncio event loop in the main thread instead and times
its 1 ms timer while the work runs on a thread (asyncio.to_thread), inline in the loop,
or in a one-process pool (loop.run_in_executor). The clocks are gillab.measure.latency's (the background thread's calls, each
operation, the noise); this module reads none. It returns plain records
(gillab.convoy.records) and never prints.
"""
from __future__ import annotations

import socket
import sys
import threading
import time

from gillab import kernels
from gillab.measure import latency
from gillab.measure.latency import BackgroundThread
from gillab.convoy.records import (CALL_S, GAP_S, LOOP_PROBE, PROBES, SLEEP_S,
                                   SMALL_SWITCH_INTERVAL, TICK_S, WARMUP, WHERES, Reading)
from gillab.core.errors import UserError

__all__ = ["TIMEOUT_S", "calibrate_call", "BackgroundThread", "SleepProbe", "SocketpairProbe",
           "EchoServer", "EchoProbe", "open_probe", "run_readings", "run_loop_readings",
           "loop_row_plan", "measure_run"]

#: Any socket wait or thread join longer than this is a failure, not a latency.
TIMEOUT_S = 10.0


# --- the background thread (its clocks are gillab.measure.latency's) --------------------


def calibrate_call(name: str, target_s: float = CALL_S, p: int = kernels.DEFAULT_P) -> int:
    """n such that one call of kernel ``name`` takes about ``target_s`` on this machine."""
    return latency.calibrate_call(name, target_s, p)


# --- the probes ------------------------------------------------------------------------


class SleepProbe:
    """A 1 ms sleep: the GIL is released for it and must be taken back after it."""

    name = "sleep"
    gap_s = 0.0

    def once(self) -> None:
        time.sleep(SLEEP_S)

    def close(self) -> None:
        pass


class SocketpairProbe:
    """A 1-byte round trip over a socketpair, both ends in the main thread.

    Four system calls (send, recv, send, recv); each releases the GIL and takes it
    back. The data is always there, so no call blocks: any wait is for the GIL.
    """

    name = "socketpair"
    gap_s = GAP_S

    def __init__(self):
        self._a, self._b = socket.socketpair()

    def once(self) -> None:
        self._a.sendall(b"x")
        got = self._b.recv(1)
        self._b.sendall(got)
        if self._a.recv(1) != b"x":
            raise UserError("socketpair probe: the byte came back wrong")

    def close(self) -> None:
        self._a.close()
        self._b.close()


class EchoServer:
    """A thread-per-connection TCP echo server on 127.0.0.1 at a free port.

    One thread accepts; each connection gets a thread of its own that echoes what it
    reads. A context manager: stop() wakes the accepting thread with a connection of
    its own, shuts every connection down, joins every thread and closes every socket.
    """

    def __init__(self):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = self._listener.getsockname()
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # guards _conns and _handlers against stop()
        self._conns: list[socket.socket] = []
        self._handlers: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="gillab-echo-accept",
                                          daemon=True)

    def start(self) -> None:
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stopping.is_set():
                    conn.close()
                    return
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                handler = threading.Thread(target=self._serve, args=(conn,),
                                           name="gillab-echo-handler", daemon=True)
                self._conns.append(conn)
                self._handlers.append(handler)
                handler.start()

    @staticmethod
    def _serve(conn: socket.socket) -> None:
        # The connection is closed by stop(), after this thread has been joined.
        try:
            while data := conn.recv(4096):
                conn.sendall(data)
        except OSError:
            pass  # shut down by stop(), or reset by the client: either way, done

    def stop(self) -> None:
        self._stopping.set()
        if self._acceptor.ident is not None:
            try:  # accept() does not return when its socket is closed: wake it
                socket.create_connection(self.address, timeout=TIMEOUT_S).close()
            except OSError:
                pass
            self._acceptor.join(TIMEOUT_S)
        self._listener.close()
        with self._lock:
            conns, handlers = list(self._conns), list(self._handlers)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client went first
        for handler in handlers:
            handler.join(TIMEOUT_S)
        for conn in conns:
            conn.close()
        alive = [t.name for t in (self._acceptor, *handlers) if t.is_alive()]
        if alive:
            raise UserError(f"echo server: {', '.join(alive)} did not stop")

    def __enter__(self) -> "EchoServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class EchoProbe:
    """One small request to the echo server over a kept-open connection, and its reply."""

    name = "echo"
    gap_s = GAP_S
    REQUEST = b"ping gillab\n"

    def __init__(self, address):
        self._sock = socket.create_connection(address, timeout=TIMEOUT_S)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def once(self) -> None:
        self._sock.sendall(self.REQUEST)
        got = b""
        try:
            while len(got) < len(self.REQUEST):
                chunk = self._sock.recv(len(self.REQUEST) - len(got))
                if not chunk:
                    raise UserError("echo probe: the server closed the connection")
                got += chunk
        except TimeoutError:
            raise UserError(f"echo probe: no reply within {TIMEOUT_S:g} s") from None
        if got != self.REQUEST:
            raise UserError(f"echo probe: sent {self.REQUEST!r}, got back {got!r}")

    def close(self) -> None:
        self._sock.close()


def open_probe(name: str, echo_address=None):
    if name == "sleep":
        return SleepProbe()
    if name == "socketpair":
        return SocketpairProbe()
    if name == "echo":
        return EchoProbe(echo_address)
    raise ValueError(f"unknown probe {name!r}; choose from {', '.join(PROBES)}")


# --- the rows ---------------------------------------------------------------------------


def run_readings(backgrounds, probes, intervals, n_samples: int, sizes: dict,
                 on_step=None, total: int = 0) -> list[Reading]:
    """Measure every (background, probe, switch interval) and return a Reading for each.

    ``sizes`` maps each CPU background to the n of one call (calibrate_call). One
    background thread runs per background, across its probes and intervals; one echo
    server and one connection to it serve the whole run. ``on_step(i, total, label)`` is
    called before each row (progress). The switch interval is restored, and every thread,
    server and socket stopped or closed, whatever happens, Ctrl-C included.
    """
    previous_interval = sys.getswitchinterval()
    total = total or len(backgrounds) * len(probes) * len(intervals)
    readings: list[Reading] = []
    opened: dict = {}
    server = None
    try:
        if "echo" in probes:
            server = EchoServer()
            server.start()
        for probe_name in probes:
            opened[probe_name] = open_probe(probe_name, server and server.address)
        for background in backgrounds:
            thread = None if background == "none" else BackgroundThread(
                background, sizes[background], timeout_s=TIMEOUT_S)
            rows = []
            try:
                if thread is not None:
                    thread.start()
                for probe_name in probes:
                    for interval in intervals:
                        if on_step is not None:
                            on_step(len(readings) + len(rows) + 1, total,
                                    f"{background} / {probe_name} @ {interval * 1000:g} ms")
                        sys.setswitchinterval(interval)
                        try:
                            samples = latency.measure_latencies(opened[probe_name],
                                                                n_samples, WARMUP)
                        finally:
                            sys.setswitchinterval(previous_interval)
                        if thread is not None:
                            thread.check()
                        rows.append((probe_name, interval, samples))
            finally:
                if thread is not None:
                    thread.stop()
            call_s = thread.call_s if thread is not None else None
            where = None if thread is None else "thread"
            readings += [Reading(background, probe_name, interval, samples.latencies,
                                 samples.noise, call_s, where)
                         for probe_name, interval, samples in rows]
    finally:
        sys.setswitchinterval(previous_interval)
        for probe in opened.values():
            probe.close()
        if server is not None:
            server.stop()
    return readings


def loop_row_plan(backgrounds) -> list[tuple]:
    """(background, where) of every loop row: nothing, then each kernel in each place."""
    return [("none", None)] + [(b, where) for b in backgrounds if b != "none"
                               for where in WHERES]


def run_loop_readings(backgrounds, intervals, n_samples: int, sizes: dict, on_step=None,
                      done: int = 0, total: int = 0) -> list[Reading]:
    """The loop probe's rows: an asyncio loop's 1 ms timer beside each background run
    on a thread (asyncio.to_thread), inline in the loop, and in a one-process pool
    (loop.run_in_executor). The pool is started (and warmed) before the first row and
    stopped, like the switch interval restored, whatever happens."""
    from gillab.measure.executors import ProcessPool

    plan = loop_row_plan(backgrounds)
    previous_interval = sys.getswitchinterval()
    got: list[tuple] = []
    pool = None
    try:
        if any(where == "process" for _, where in plan):
            pool = ProcessPool(1, timeout_s=TIMEOUT_S)
        for background, where in plan:
            name = None if background == "none" else background
            for interval in intervals:
                if on_step is not None:
                    place = f" ({where})" if where else ""
                    on_step(done + len(got) + 1, total, f"{background}{place} / loop "
                            f"@ {interval * 1000:g} ms")
                sys.setswitchinterval(interval)
                try:
                    got.append((background, where, interval, latency.measure_loop_lag(
                        name, sizes.get(background, 1), where, n_samples, WARMUP, TICK_S,
                        pool=pool and pool.pool, timeout_s=TIMEOUT_S)))
                finally:
                    sys.setswitchinterval(previous_interval)
    finally:
        sys.setswitchinterval(previous_interval)
        if pool is not None:
            pool.close()
    # A kernel's speed alone: its fastest call anywhere in the run (the process pool's
    # calls share no GIL), not the calibration's, which a busy moment can slow.
    fastest: dict = {}
    for background, _, _, s in got:
        if s.fastest_s:
            fastest[background] = min(s.fastest_s, fastest.get(background, s.fastest_s))
    return [Reading(background, LOOP_PROBE, interval, s.latencies, s.noise, s.call_s, where,
                    s.rate, sizes[background] / fastest[background]
                    if background in fastest else None)
            for background, where, interval, s in got]


def measure_run(backgrounds, probes, samples: int, on_step=None,
                intervals=None) -> tuple[list[Reading], dict]:
    """Calibrate each background's call, then measure every row at each switch interval
    (default: Python's own and the lesson's 0.1 ms). Returns the readings and the run's
    settings (for the JSON)."""
    if not intervals:
        intervals = (sys.getswitchinterval(), SMALL_SWITCH_INTERVAL)
    intervals = tuple(dict.fromkeys(intervals))
    sizes = {}
    for name in backgrounds:
        if name != "none":
            if on_step is not None:
                on_step(0, 0, f"calibrating {name}: calls of ~{CALL_S * 1000:g} ms")
            sizes[name] = calibrate_call(name)
    thread_probes = tuple(p for p in probes if p != LOOP_PROBE)
    total = len(intervals) * (len(backgrounds) * len(thread_probes) + (
        len(loop_row_plan(backgrounds)) if LOOP_PROBE in probes else 0))
    readings = run_readings(backgrounds, thread_probes, intervals, samples, sizes,
                            on_step, total) if thread_probes else []
    if LOOP_PROBE in probes:
        readings += run_loop_readings(backgrounds, intervals, samples, sizes, on_step,
                                      len(readings), total)
    settings = {"samples": samples, "switch_intervals": list(intervals),
                "call_ms": CALL_S * 1000, "sizes": sizes, "sleep_ms": SLEEP_S * 1000,
                "tick_ms": TICK_S * 1000, "gap_ms": GAP_S * 1000, "warmup": WARMUP}
    return readings, settings
