"""Hard stops: workers that die with their parent, Ctrl-C that always ends the run, and
threads that cannot be killed.

A leaf: imports nothing of gillab's, reads no clock, prints nothing of its own.

- Every worker process gillab starts asks Linux to kill it when its parent dies
  (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) and ignores SIGINT: Ctrl-C reaches the whole
  process group, and it is the parent's to handle (it stops its workers itself). A
  worker printing its own KeyboardInterrupt traceback, or dying inside a lock it shares
  with the parent, is what made ``demo pool-lock`` hang.
- The parent-death signal fires when the *thread* that created the child ends, not
  the process. So it is asked for only by children forked from the parent's main
  thread (a before-fork hook records which thread forks). Any other worker (one a
  Pool's handler thread forks to replace a dead one, a spawned one) watches its parent
  instead: a daemon thread that exits the process within 0.2 s of being orphaned. A
  Pool worker killed when the handler thread ends at terminate() would die holding
  the pool's queue lock and hang terminate() for good. The child also checks, after
  asking, that its parent is still the one that started it.
- The CLI's SIGINT handler raises KeyboardInterrupt as usual, and arms a watchdog: if
  the clean-up has not ended the process 0.5 s later, it kills the children and exits
  130 at once. A second Ctrl-C does the same without waiting.
- A thread that never returns cannot be killed: executors register it here
  (``abandon``) and the CLI ends the process with ``os._exit`` after writing its
  output, instead of waiting for it at interpreter exit.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

__all__ = ["stdout_to_stderr", "forking", "set_parent_death_signal", "worker_setup",
           "child_preexec", "install_fork_hook",
           "kill_descendants", "install_sigint_watchdog", "abandon", "abandoned",
           "hard_exit", "EXIT_INTERRUPTED"]

EXIT_INTERRUPTED = 130
_PR_SET_PDEATHSIG = 1
_GRACE_S = 0.5


def set_parent_death_signal(expected_parent: int | None = None,
                            sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies (no-op elsewhere).

    With ``expected_parent``, exit at once if the parent is already gone (re-parented
    before the request took effect). Returns whether the request was made.
    """
    libc = _libc()
    if libc is None:
        return False
    try:
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)  # the parent died before we asked: nobody is waiting for us
    return True


_LIBC: list = []


def _libc():
    """The C library (Linux only), loaded once: a forked child inherits it ready."""
    if not _LIBC:
        libc = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                libc = ctypes.CDLL(None, use_errno=True)
            except OSError:
                libc = None
        _LIBC.append(libc)
    return _LIBC[0]


#: In a forked child: whether the parent forked it from its main thread (set by the
#: before-fork hook in the parent, copied into the child by the fork). None: unknown.
_forked_from_main: bool | None = None


def _before_fork() -> None:
    global _forked_from_main
    _forked_from_main = threading.current_thread() is threading.main_thread()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork)

_WATCH_S = 0.2


def _watch_parent(parent: int) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(_WATCH_S)
    os._exit(1)  # orphaned: nobody is waiting for what we would compute


def worker_setup(parent_pid: int | None = None) -> None:
    """First thing in a worker process: ignore Ctrl-C, and end when the parent dies
    (the parent-death signal if the parent's main thread forked us, else a watcher)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _forked_from_main:
        set_parent_death_signal(parent_pid)
        return
    parent = os.getppid()
    if parent_pid is not None and parent != parent_pid:
        os._exit(1)  # the parent is gone already
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="gillab-parent-watch").start()


def child_preexec() -> None:
    """``preexec_fn`` for subprocess children: the same, kept across exec (SIG_IGN for
    SIGINT is inherited, so the child's Python installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_parent_death_signal()


_fork_hook_installed = False


def install_fork_hook() -> None:
    """Make every fork() of this process a quiet worker that dies with its parent.

    For code that starts processes in many ways (the demos: Pool, Process, Manager),
    rather than an initializer at each place. Forks only: spawned children run
    ``worker_setup`` themselves. Installed once; it cannot be removed.
    """
    global _fork_hook_installed
    if _fork_hook_installed or not hasattr(os, "register_at_fork"):
        return
    _libc()  # loaded here, so a forked child pays a prctl call and nothing more
    # A Ctrl-C landing between fork() and this hook reaches the child's copy of the
    # CLI's handler, which knows it is not in the CLI's process and does nothing.
    os.register_at_fork(after_in_child=worker_setup)
    # In the parent, a KeyboardInterrupt raised inside another module's at-fork hook
    # (logging registers some) is printed as "Exception ignored" and lost: while a fork
    # runs, the handler defers, and the fork's caller gets the KeyboardInterrupt.
    real_fork = os.fork

    def fork():
        with forking():
            return real_fork()

    fork.__doc__ = real_fork.__doc__
    os.fork = fork
    _fork_hook_installed = True


def kill_descendants() -> int:
    """SIGKILL every live descendant of this process; return how many were signalled."""
    try:
        import psutil

        children = psutil.Process().children(recursive=True)
    except Exception:  # psutil missing or /proc unreadable: nothing more to do here
        return 0
    killed = 0
    for child in children:
        try:
            child.kill()
            killed += 1
        except Exception:  # already gone
            pass
    return killed


def _flush_quietly() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe: nothing left to say
            pass


def hard_exit(code: int, kill: bool = True) -> None:
    """Flush, kill the children (with ``kill``) and end the process now, without
    interpreter clean-up (which would wait for abandoned threads and pool threads)."""
    _flush_quietly()
    if kill:
        kill_descendants()
    os._exit(code)


_watchdog: threading.Timer | None = None
_owner_pid = 0
_forking = 0        # forks (or Popen with a preexec_fn) under way in this process
_deferred = False   # a Ctrl-C arrived meanwhile: raised when the fork is done


class forking:
    """While inside, Python at-fork hooks may run in this process: Ctrl-C is deferred
    to the end of the block (then raised there), never raised inside a hook."""

    def __enter__(self):
        global _forking
        _forking += 1
        return self

    def __exit__(self, *exc):
        global _forking, _deferred
        if os.getpid() != _owner_pid:  # the child of a fork: none of this is its own
            _forking, _deferred = 0, False
            return False
        _forking -= 1
        if _deferred and not _forking:
            _deferred = False
            raise KeyboardInterrupt
        return False


def _arm_watchdog() -> None:
    global _watchdog
    _watchdog = threading.Timer(_GRACE_S, _too_slow)
    _watchdog.daemon = True
    _watchdog.start()


def _quiet_unraisable(unraisable) -> None:
    """After Ctrl-C, objects the interrupt left half-built (multiprocessing's Finalize,
    stopped between its weakref and its key) fail in their callbacks as they are
    collected; the run is ending with 130, and Python's "Exception ignored in" report
    of them is noise, not the user's traceback (seen once in a clean-clone CI run)."""


def _on_sigint(signum, frame):
    global _deferred
    if os.getpid() != _owner_pid:  # a forked child, before it ignores SIGINT: not ours
        return
    sys.unraisablehook = _quiet_unraisable
    if _forking and not _deferred:
        _deferred = True
        if _watchdog is None:
            _arm_watchdog()
        return
    if _watchdog is not None:  # a second Ctrl-C: the user will not wait
        hard_exit(EXIT_INTERRUPTED)
    _arm_watchdog()
    raise KeyboardInterrupt


def _too_slow() -> None:
    try:
        print("gillab: interrupted", file=sys.stderr)
    except Exception:  # stderr gone: exit all the same
        pass
    hard_exit(EXIT_INTERRUPTED)


def install_sigint_watchdog() -> None:
    """Ctrl-C raises KeyboardInterrupt, and the process ends with 130 within ~1 s
    even if clean-up hangs (main thread only)."""
    global _owner_pid
    if threading.current_thread() is threading.main_thread():
        _owner_pid = os.getpid()
        signal.signal(signal.SIGINT, _on_sigint)


_abandoned: list = []


def abandon(thread: threading.Thread, why: str) -> None:
    """Record a thread that will not return: the process must not wait for it at exit."""
    _abandoned.append((thread, why))


def abandoned() -> list:
    """(thread, why) for every abandoned thread still alive."""
    return [(t, why) for t, why in _abandoned if t.is_alive()]


class stdout_to_stderr:
    """While inside, file descriptor 1 and sys.stdout point at stderr; on exit both are
    put back. Worker processes started meanwhile inherit the redirection, so what user
    code prints never mixes with the results written to stdout afterwards."""

    def __enter__(self):
        sys.stdout.flush()
        self._saved_fd = os.dup(1)
        self._saved = sys.stdout
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        return self

    def __exit__(self, *exc):
        try:
            sys.stderr.flush()
        except Exception:  # stderr gone: stdout still goes back
            pass
        os.dup2(self._saved_fd, 1)
        os.close(self._saved_fd)
        sys.stdout = self._saved
        return False


def exit_on_early_sigint() -> None:
    """Until the CLI's own handler is in place (while its modules import), Ctrl-C ends
    the process with 130 at once: nothing has started that needs stopping."""
    def early(signum, frame):
        try:
            os.write(2, b"gillab: interrupted\n")
        except OSError:
            pass
        os._exit(EXIT_INTERRUPTED)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, early)
