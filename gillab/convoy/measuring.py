"""Latency of small IO operations beside one busy thread: the measuring half of ``convoy``.

The main thread times one small IO operation at a time (a 1 ms sleep, a 1-byte
socketpair round trip, a request to the lab's own TCP echo server) while one
background thread computes. Every GIL hand-off the main thread needs shows up as
latency. A measuring module beside gillab.measure.clocks (whose noise guard it uses): it
reads clocks, returns plain records (gillab.convoy.records) and never prints.
"""
from __future__ import annotations

import socket
import sys
import threading
import time

from gillab import kernels
from gillab.measure import clocks as measure
from gillab.core import stats
from gillab.convoy.records import (CALL_S, GAP_S, PROBES, SLEEP_S, SMALL_SWITCH_INTERVAL,
                                   WARMUP, Reading)
from gillab.core.errors import UserError

__all__ = ["TIMEOUT_S", "calibrate_call", "BackgroundThread", "SleepProbe", "SocketpairProbe",
           "EchoServer", "EchoProbe", "open_probe", "sample", "run_readings", "measure_run"]

#: Any socket wait or thread join longer than this is a failure, not a latency.
TIMEOUT_S = 10.0


# --- the background thread -----------------------------------------------------------


def calibrate_call(name: str, target_s: float = CALL_S, p: int = kernels.DEFAULT_P) -> int:
    """n such that one call of kernel ``name`` takes about ``target_s`` on this machine.

    calibrate_n finds the size; the best of three timed calls then fixes the rate,
    so one slow call on a busy machine does not halve the calls.
    """
    kernel = kernels.get(name)
    n = measure.calibrate_n(kernel, target_s, p)
    ns = measure.ns_per_iter(kernel, n, p, repeat=3)
    return max(1, round(target_s * 1e9 / ns))


class BackgroundThread:
    """One thread calling a CPU kernel in calls of fixed size until stopped.

    Use as a context manager: the thread runs inside the ``with`` block and is
    stopped (within about one call) and joined on the way out, also on Ctrl-C.
    Call lengths are kept by the thread and read only after it has been joined.
    """

    def __init__(self, name: str, n: int, p: int = kernels.DEFAULT_P):
        self.name = name
        self._kernel = kernels.get(name)
        self._args = (n, p)
        self._stop = threading.Event()
        self._running = threading.Event()
        self._call_s: list[float] = []
        self._error: str | None = None
        self._reported = False
        self._thread = threading.Thread(target=self._run, name=f"gillab-convoy-{name}",
                                        daemon=True)

    def _run(self) -> None:
        try:
            self._running.set()
            while not self._stop.is_set():
                t0 = time.perf_counter()
                self._kernel(*self._args)
                self._call_s.append(time.perf_counter() - t0)
        except Exception as exc:  # reported by stop(), in the main thread, as one line
            self._error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        finally:
            self._running.set()  # never leave start() waiting

    def start(self) -> None:
        self._thread.start()
        if not self._running.wait(TIMEOUT_S):
            raise UserError(f"the {self.name} background thread did not start")

    def check(self) -> None:
        """Raise UserError if the thread has died: a row without it would lie."""
        if not self._thread.is_alive():
            self._reported = True
            raise UserError(f"the {self.name} background thread stopped early"
                            + (f": {self._error}" if self._error else ""))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is None:
            return
        self._thread.join(TIMEOUT_S)
        if self._thread.is_alive():
            raise UserError(f"the {self.name} background thread did not stop "
                            f"within {TIMEOUT_S:g} s")
        if self._error and not self._reported:
            self._reported = True
            raise UserError(f"the {self.name} background thread failed: {self._error}")

    @property
    def call_s(self) -> float | None:
        """Median seconds per kernel call; read it after stop()."""
        if self._thread.is_alive():
            raise RuntimeError("read call_s after stop()")
        return stats.median(self._call_s) if self._call_s else None

    def __enter__(self) -> "BackgroundThread":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


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


# --- sampling --------------------------------------------------------------------------


def sample(probe, n_samples: int, warmup: int = WARMUP) -> tuple:
    """Seconds of each of ``n_samples`` operations, each after the probe's untimed gap."""
    latencies = []
    for i in range(warmup + n_samples):
        if probe.gap_s:
            time.sleep(probe.gap_s)
        t0 = time.perf_counter()
        probe.once()
        elapsed = time.perf_counter() - t0
        if i >= warmup:
            latencies.append(elapsed)
    return tuple(latencies)


def _sample_with_noise(probe, n_samples: int) -> tuple[tuple, float | None]:
    result = measure.measure_once(lambda: sample(probe, n_samples))
    return result.tasks, result.noise


def run_readings(backgrounds, probes, intervals, n_samples: int, sizes: dict,
                 on_step=None) -> list[Reading]:
    """Measure every (background, probe, switch interval) and return a Reading for each.

    ``sizes`` maps each CPU background to the n of one call (calibrate_call). One
    background thread runs per background, across its probes and intervals; one echo
    server and one connection to it serve the whole run. ``on_step(i, total, label)`` is
    called before each row (progress). The switch interval is restored, and every thread,
    server and socket stopped or closed, whatever happens, Ctrl-C included.
    """
    previous_interval = sys.getswitchinterval()
    total = len(backgrounds) * len(probes) * len(intervals)
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
            thread = None if background == "none" else BackgroundThread(background,
                                                                        sizes[background])
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
                            latencies, noise = _sample_with_noise(opened[probe_name],
                                                                  n_samples)
                        finally:
                            sys.setswitchinterval(previous_interval)
                        if thread is not None:
                            thread.check()
                        rows.append((probe_name, interval, latencies, noise))
            finally:
                if thread is not None:
                    thread.stop()
            call_s = thread.call_s if thread is not None else None
            readings += [Reading(background, probe_name, interval, latencies, noise, call_s)
                         for probe_name, interval, latencies, noise in rows]
    finally:
        sys.setswitchinterval(previous_interval)
        for probe in opened.values():
            probe.close()
        if server is not None:
            server.stop()
    return readings


def measure_run(backgrounds, probes, samples: int, on_step=None) -> tuple[list[Reading], dict]:
    """Calibrate each background's call, then measure every row at the default and the
    small switch interval. Returns the readings and the run's settings (for the JSON)."""
    default = sys.getswitchinterval()
    intervals = tuple(dict.fromkeys((default, SMALL_SWITCH_INTERVAL)))
    sizes = {}
    for name in backgrounds:
        if name != "none":
            if on_step is not None:
                on_step(0, 0, f"calibrating {name}: calls of ~{CALL_S * 1000:g} ms")
            sizes[name] = calibrate_call(name)
    readings = run_readings(backgrounds, probes, intervals, samples, sizes, on_step)
    settings = {"samples": samples, "switch_intervals": list(intervals),
                "call_ms": CALL_S * 1000, "sizes": sizes, "sleep_ms": SLEEP_S * 1000,
                "gap_ms": GAP_S * 1000, "warmup": WARMUP}
    return readings, settings
