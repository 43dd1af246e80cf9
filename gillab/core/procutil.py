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

import contextlib
import os
import signal
import sys
import threading

__all__ = ["forking", "set_parent_death_signal", "worker_setup",
           "child_preexec", "install_fork_hook", "remove_fork_hook", "command_guards",
           "kill_descendants", "install_sigint_watchdog", "abandon", "abandoned",
           "hard_exit", "say_interrupted", "EXIT_INTERRUPTED"]

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


#: In a forked child: whether the parent forked it from its main thread, and the pid
#: of that parent (set by the before-fork hook in the parent, copied into the child by
#: the fork). None: unknown (no hook was active, or not a forked child).
_forked_from_main: bool | None = None
_fork_parent: int | None = None

#: Whether the fork hooks act (install_fork_hook .. remove_fork_hook). Python cannot
#: unregister an at-fork hook: they are registered once, by the command that installs
#: them (never at import), and are inert outside it.
_hooks_active = False
_hooks_registered = False
_real_fork = None


def _before_fork() -> None:
    global _forked_from_main, _fork_parent
    if _hooks_active:
        _forked_from_main = threading.current_thread() is threading.main_thread()
        _fork_parent = os.getpid()


def _after_fork_in_child() -> None:
    if _hooks_active:
        worker_setup()


_WATCH_S = 0.2


def _watch_parent(parent: int) -> None:
    import time

    while os.getppid() == parent:
        time.sleep(_WATCH_S)
    os._exit(1)  # orphaned: nobody is waiting for what we would compute


def worker_setup(parent_pid: int | None = None) -> None:
    """First thing in a worker process: ignore Ctrl-C, and end when the parent dies
    (the parent-death signal if the parent's main thread forked us, else a watcher).

    ``parent_pid`` (else the pid the fork hook recorded) is the parent expected: a
    worker whose parent died before it got here exits at once. Without it, a worker
    orphaned in that instant would watch its new parent (init) for good.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    expected = parent_pid if parent_pid is not None else _fork_parent
    if _forked_from_main:
        set_parent_death_signal(expected)
        return
    parent = os.getppid()
    if expected is not None and parent != expected:
        os._exit(1)  # the parent is gone already
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="gillab-parent-watch").start()


def child_preexec(parent_pid: int | None = None) -> None:
    """``preexec_fn`` for subprocess children: the same, kept across exec (SIG_IGN for
    SIGINT is inherited, so the child's Python installs no KeyboardInterrupt handler).
    With ``parent_pid`` (bind it with functools.partial), a child whose parent died
    before the request exits instead of running unwatched."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_parent_death_signal(parent_pid if parent_pid is not None else _fork_parent)


def _fork():
    with forking():
        return _real_fork()


def install_fork_hook() -> None:
    """Make every fork() of this process a quiet worker that dies with its parent, until
    remove_fork_hook().

    For code that starts processes in many ways (the demos: Pool, Process, Manager),
    rather than an initializer at each place. Forks only: spawned children run
    ``worker_setup`` themselves. Installed by the command that needs it (the CLI),
    never at import.
    """
    global _hooks_active, _hooks_registered, _real_fork
    if _hooks_active or not hasattr(os, "register_at_fork"):
        return
    _libc()  # loaded here, so a forked child pays a prctl call and nothing more
    if not _hooks_registered:
        # A Ctrl-C landing between fork() and the child's hook reaches the child's copy
        # of the CLI's handler, which knows it is not in the CLI's process: a no-op.
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
        _hooks_registered = True
    # In the parent, a KeyboardInterrupt raised inside another module's at-fork hook
    # (logging registers some) is printed as "Exception ignored" and lost: while a fork
    # runs, the handler defers, and the fork's caller gets the KeyboardInterrupt.
    _real_fork = os.fork
    _fork.__doc__ = _real_fork.__doc__
    os.fork = _fork
    _hooks_active = True


def remove_fork_hook() -> None:
    """Undo install_fork_hook: os.fork as it was, the at-fork hooks inert again."""
    global _hooks_active
    if not _hooks_active:
        return
    _hooks_active = False
    if os.fork is _fork:
        os.fork = _real_fork


def kill_descendants() -> int:
    """SIGKILL every live descendant of this process; return how many were signalled.

    Each round kills what it finds, parents first, and looks again: a child forking as
    the round ran (a pool thread replacing a worker) is found by the next one.
    """
    killed: set = set()
    for _ in range(3):
        found = [pid for pid in _descendants() if pid not in killed]
        if not found:
            break
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:  # already gone
                pass
    return len(killed)


def _descendants() -> list:
    """Pids of this process's descendants, parents before their children.

    From /proc/PID/task/TID/children (a few reads) where the kernel has it, rather than
    psutil's scan of every process on the machine: after Ctrl-C each read may wait for
    the GIL behind busy threads (~5 ms a read), and a scan of 100 processes took 1.3 s.
    """
    if not os.path.exists(f"/proc/self/task/{threading.get_native_id()}/children"):
        try:
            import psutil

            return [c.pid for c in psutil.Process().children(recursive=True)]
        except Exception:  # psutil missing or /proc unreadable: nothing more to do here
            return []
    found, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop(0)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:  # gone meanwhile
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:  # the thread ended meanwhile
                continue
            found += kids
            todo += kids
    return found


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

    # Only the main thread's forks count: Ctrl-C is raised in the main thread alone. A
    # pool thread forking a replacement worker meanwhile must not defer it, or the
    # KeyboardInterrupt would be raised in that thread when its fork ends.

    def __enter__(self):
        global _forking
        self._counted = threading.current_thread() is threading.main_thread()
        _forking += self._counted
        return self

    def __exit__(self, *exc):
        global _forking, _deferred
        if os.getpid() != _owner_pid:  # the child of a fork: none of this is its own
            _forking, _deferred = 0, False
            return False
        if not self._counted:
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
        say_interrupted()
        hard_exit(EXIT_INTERRUPTED)
    _arm_watchdog()
    raise KeyboardInterrupt


_said = False


def say_interrupted() -> None:
    """Print "gillab: interrupted" once per process: the contract's one line, whether the
    CLI or the watchdog gets there first."""
    global _said
    if _said:
        return
    _said = True
    try:
        print("gillab: interrupted", file=sys.stderr, flush=True)
    except Exception:  # stderr gone: exit all the same
        pass


def _too_slow() -> None:
    say_interrupted()
    hard_exit(EXIT_INTERRUPTED)


def install_sigint_watchdog() -> None:
    """Ctrl-C raises KeyboardInterrupt, and the process ends with 130 within ~1 s
    even if clean-up hangs (main thread only)."""
    global _owner_pid
    if threading.current_thread() is threading.main_thread():
        _owner_pid = os.getpid()
        signal.signal(signal.SIGINT, _on_sigint)


@contextlib.contextmanager
def command_guards():
    """While a command runs: Ctrl-C handled by the watchdog's handler, every fork a quiet
    worker that dies with this process. On the way out, the previous SIGINT handler and
    os.fork are put back and the fork hooks go inert: importing gillab, or running one
    command in-process, leaves the process as it was."""
    global _said
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    _said = False
    install_sigint_watchdog()
    install_fork_hook()
    try:
        yield
    finally:
        remove_fork_hook()
        if main and previous is not None:
            signal.signal(signal.SIGINT, previous)


_abandoned: list = []


def abandon(thread: threading.Thread, why: str) -> None:
    """Record a thread that will not return: the process must not wait for it at exit."""
    _abandoned.append((thread, why))


def abandoned() -> list:
    """(thread, why) for every abandoned thread still alive."""
    return [(t, why) for t, why in _abandoned if t.is_alive()]
