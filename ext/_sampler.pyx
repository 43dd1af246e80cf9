# Directives are set once, in setup.py's cythonize() call (house style).
"""The timeline's sampler: reads /proc/PID/task/TID/{schedstat,syscall} on a fixed
period, from kept-open files, without holding the GIL.

It only reads counters and returns them raw; gillab.timeline.rebuild turns them into
intervals afterwards (the counters are stale while a thread runs, so nothing can be
concluded sample by sample).

One round is RECORD_HEAD + RECORD_PER_THREAD * n int64 values:
    t_ns, then per thread: cpu_ns, queue_ns, switch_ins, state, arg0
with state = the syscall number the thread is blocked in, or one of the STATE_*
values below; arg0 is that syscall's first argument (a futex's address).
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free, strtoll, strtoull
from libc.string cimport memcpy, strstr

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int CLOCK_MONOTONIC
    int TIMER_ABSTIME
    int clock_gettime(int clk, timespec *ts)
    int clock_nanosleep(int clk, int flags, const timespec *req, timespec *rem)

cdef extern from "<unistd.h>" nogil:
    ssize_t pread(int fd, void *buf, size_t count, long offset)

cdef extern from "<sys/prctl.h>" nogil:
    int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4,
              unsigned long arg5)
    int PR_SET_TIMERSLACK
    int PR_GET_TIMERSLACK

cdef enum:
    #: How long the sampler stays at its fine period after a thread changed state:
    #: two default switch intervals, so threads taking turns keep it there throughout.
    FAST_HOLD_NS = 10000000
    HEAD = 1
    PER_THREAD = 5
    #: runnable: on a CPU or waiting in the run queue (the syscall file says "running")
    RUNNING = -100
    #: the thread is gone (exited) or its file could not be read
    GONE = -200
    #: wchan mode (no permission for the syscall file): blocked in a futex, which
    #: may be the GIL or any other lock; or blocked in something else
    WCHAN_FUTEX = -10
    WCHAN_OTHER = -11

RECORD_HEAD = HEAD
FAST_HOLD = FAST_HOLD_NS
RECORD_PER_THREAD = PER_THREAD
STATE_RUNNING = RUNNING
STATE_GONE = GONE
STATE_WCHAN_FUTEX = WCHAN_FUTEX
STATE_WCHAN_OTHER = WCHAN_OTHER


cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef int read_schedstat(int fd, char *buf, int64_t *out) noexcept nogil:
    """Three numbers: ns on CPU, ns waiting in the run queue, switch-ins. 0 if gone."""
    cdef ssize_t got = pread(fd, buf, 127, 0)
    cdef char *end
    if got <= 0:
        return 0
    buf[got] = 0
    out[0] = strtoll(buf, &end, 10)
    out[1] = strtoll(end, &end, 10)
    out[2] = strtoll(end, &end, 10)
    return 1


cdef int read_syscall(int fd, char *buf, int64_t *state, int64_t *arg0,
                      int wchan) noexcept nogil:
    """'running', or 'NR ARG0 ... SP PC', or '-1 SP PC' (blocked outside a syscall).
    With ``wchan``, the file is wchan instead: '0' when runnable, else a kernel
    function's name, of which only 'futex' is told apart."""
    cdef ssize_t got = pread(fd, buf, 255, 0)
    cdef char *end
    if got <= 0:
        return 0
    buf[got] = 0
    if wchan:
        arg0[0] = 0
        if got == 1 and buf[0] == b'0':
            state[0] = RUNNING
        elif strstr(buf, "futex") != NULL:
            state[0] = WCHAN_FUTEX
        else:
            state[0] = WCHAN_OTHER
        return 1
    if buf[0] == b'r':
        state[0] = RUNNING
        arg0[0] = 0
        return 1
    state[0] = strtoll(buf, &end, 10)
    arg0[0] = <int64_t>strtoull(end, &end, 16) if state[0] >= 0 else 0
    return 1


def sample(schedstat_fds, syscall_fds, long long period_ns, long long until_ns,
           long long first_deadline_ns, previous=None, bint wchan=False,
           long long steady_ns=0, long long fast_until_ns=0):
    """Sample every thread each period until ``until_ns`` (CLOCK_MONOTONIC) or until
    every thread is gone. Returns (bytes of int64 rounds, next deadline, all_gone,
    the last round's per-thread values, fast_until_ns).

    ``steady_ns`` (0: never): the step while every thread stays put. A round in which
    a thread changed state (ran, blocked, or woke and blocked again between two
    rounds) keeps the sampler at ``period_ns`` until FAST_HOLD_NS after it
    (``fast_until_ns``, carried from call to call); otherwise it steps ``steady_ns``.
    Each wake-up costs tens of microseconds of CPU in a VM, and when every core is
    busy the watched program pays for it; threads that only run, or only wait,
    change nothing a finer period would show. A thread preempted and resumed (the
    sampler's own wake-up does that) is no change: it stays runnable.

    ``previous`` is the last round's per-thread values (a bytes of 5*n int64, or
    None), so the skip-unchanged rule holds across calls. ``wchan``: the second fd of
    each thread is its wchan file (the fallback without permission for syscall).
    """
    cdef int n = len(schedstat_fds)
    if n != len(syscall_fds) or n == 0:
        raise ValueError("need one schedstat and one syscall fd per thread, at least one")
    if period_ns <= 0:
        raise ValueError("period must be > 0")
    cdef int width = HEAD + PER_THREAD * n
    cdef long long max_rounds = (until_ns - first_deadline_ns) // period_ns + 2
    if max_rounds < 1:
        max_rounds = 1
    cdef int *fd_stat = <int *>malloc(n * sizeof(int))
    cdef int *fd_call = <int *>malloc(n * sizeof(int))
    cdef int64_t *last = <int64_t *>malloc(PER_THREAD * n * sizeof(int64_t))
    cdef int64_t *rounds = <int64_t *>malloc(max_rounds * width * sizeof(int64_t))
    if not fd_stat or not fd_call or not last or not rounds:
        free(fd_stat); free(fd_call); free(last); free(rounds)
        raise MemoryError()
    cdef int i
    for i in range(n):
        fd_stat[i] = schedstat_fds[i]
        fd_call[i] = syscall_fds[i]
    cdef const char *prev_bytes
    if previous is not None and len(previous) == PER_THREAD * n * 8:
        prev_bytes = previous
        memcpy(last, prev_bytes, PER_THREAD * n * 8)
    else:
        for i in range(PER_THREAD * n):
            last[i] = -1
        for i in range(n):
            last[i * PER_THREAD + 3] = RUNNING
    cdef long long count = 0
    cdef long long deadline = first_deadline_ns
    cdef int alive, changed
    cdef int64_t *row
    cdef int64_t *slot
    cdef int64_t *was
    cdef char buf[256]
    cdef timespec ts
    cdef unsigned long old_slack
    cdef int moved
    cdef long long fast_until = fast_until_ns
    with nogil:
        # A 1 us timer slack: the default 50 us would smear a 500 us period.
        old_slack = <unsigned long>prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)
        prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0)
        while count < max_rounds and deadline <= until_ns:
            ts.tv_sec = deadline // 1000000000
            ts.tv_nsec = deadline % 1000000000
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)
            row = rounds + count * width
            row[0] = now_ns()
            alive = 0
            moved = 0
            for i in range(n):
                slot = row + HEAD + i * PER_THREAD
                was = last + i * PER_THREAD
                if was[3] == GONE or not read_schedstat(fd_stat[i], buf, slot):
                    slot[0] = was[0]; slot[1] = was[1]; slot[2] = was[2]
                    slot[3] = GONE; slot[4] = 0
                else:
                    changed = slot[0] != was[0] or slot[1] != was[1] or slot[2] != was[2]
                    if not changed:
                        # Unchanged counters: nothing was switched out or in since
                        # the last round (a switch-out adds the ns run to the CPU
                        # counter; a switch-in adds one to switch-ins), so the
                        # thread is where it was: still blocked in the same call, or
                        # still runnable. A busy thread's counters move only at
                        # scheduler ticks, so most rounds skip its second read.
                        slot[3] = was[3]; slot[4] = was[4]
                    elif not read_syscall(fd_call[i], buf, &slot[3], &slot[4], wchan):
                        slot[3] = GONE; slot[4] = 0
                    elif slot[3] != RUNNING and changed:
                        # It blocked since the counters were read: read them again, now
                        # flushed at the switch-out, so this sample's CPU time is exact.
                        read_schedstat(fd_stat[i], buf, slot)
                    if slot[3] != GONE:
                        alive += 1
                if slot[3] != was[3] or (slot[3] != RUNNING and slot[2] != was[2]):
                    moved = 1
                memcpy(was, slot, PER_THREAD * sizeof(int64_t))
            count += 1
            if moved:
                fast_until = row[0] + FAST_HOLD_NS
            if steady_ns > period_ns and row[0] >= fast_until:
                deadline += steady_ns
            else:
                deadline += period_ns
            # A late wake-up (the machine was busy) skips missed deadlines instead of
            # bursting to catch up.
            while deadline < row[0]:
                deadline += period_ns
            if alive == 0:
                break
        prctl(PR_SET_TIMERSLACK, old_slack, 0, 0, 0)
    try:
        data = PyBytes_FromStringAndSize(<char *>rounds, count * width * sizeof(int64_t))
        tail = PyBytes_FromStringAndSize(<char *>last, PER_THREAD * n * sizeof(int64_t))
    finally:
        free(fd_stat); free(fd_call); free(last); free(rounds)
    return data, deadline, alive == 0, tail, fast_until


def clock_ns():
    """CLOCK_MONOTONIC in ns: the sampler's clock (time.monotonic_ns reads the same)."""
    return now_ns()
