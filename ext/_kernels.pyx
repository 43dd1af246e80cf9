# The lab's CPU kernels: one C loop, n! mod p, run with the GIL held or released.
#
# Directives live in setup.py (language_level, boundscheck, freethreading_compatible).
# cy_gil and cy_nogil share one `noexcept nogil` core; the only difference between
# them is the `with nogil:` block around each chunk. Work is done in chunks so the
# main thread can see Ctrl-C (PyErr_CheckSignals) between them.

from cpython.exc cimport PyErr_CheckSignals

cdef extern from *:
    """
    #include <stdint.h>

    /* (a * b) mod m without overflow: the product needs 128 bits when m is
       up to 2**63.  Cython has no __int128 type, and a ctypedef stand-in was
       seen to truncate the product silently, so this stays verbatim C. */
    static inline uint64_t gillab_mulmod(uint64_t a, uint64_t b, uint64_t m) {
        return (uint64_t)(((unsigned __int128)a * b) % m);
    }

    /* The plain C reference: the same loop written by hand, the physical
       limit that the Cython cores are held against.  unsigned long long, not
       uint64_t (unsigned long on 64-bit Linux): it is passed as a loop_fn,
       and GCC >= 14 refuses the mismatched function pointer as an error. */
    static unsigned long long gillab_c_loop(unsigned long long r, unsigned long long i,
                                            unsigned long long hi, unsigned long long m) {
        while (i <= hi) {
            r = gillab_mulmod(r, i, m);
            i++;
        }
        return r;
    }
    """
    unsigned long long mulmod "gillab_mulmod" (
        unsigned long long a, unsigned long long b, unsigned long long m) noexcept nogil
    unsigned long long c_loop "gillab_c_loop" (
        unsigned long long r, unsigned long long i, unsigned long long hi,
        unsigned long long m) noexcept nogil
    const char *GILLAB_CYTHON_VERSION

#: The Cython version this module was compiled with.
CYTHON_VERSION = GILLAB_CYTHON_VERSION.decode()

ctypedef unsigned long long u64
ctypedef u64 (*loop_fn)(u64 r, u64 i, u64 hi, u64 m) noexcept nogil

# Iterations between two signal checks: ~20 ms at ~5 ns/iter, well inside the
# 0.2 s Ctrl-C budget, and rare enough to cost nothing measurable.
cdef enum:
    CHUNK = 1 << 22

MAX_P = 1 << 63
MAX_N = (1 << 63) - 1


cdef u64 fact_range(u64 r, u64 i, u64 hi, u64 m) noexcept nogil:
    # noexcept nogil: no Python code can slip into the hot loop.  A `while`
    # loop, not `range`: gcc widened a range counter to 128 bits (12% slower).
    while i <= hi:
        r = mulmod(r, i, m)
        i += 1
    return r


def check_args(n, p):
    """Raise TypeError/ValueError (one line) unless 0 <= n < 2**63 and 2 <= p < 2**63."""
    for name, value in (("n", n), ("p", p)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n > MAX_N:
        raise ValueError(f"n must be < 2**63, got {n}")
    if p < 2:
        raise ValueError(f"p must be >= 2, got {p}")
    if p >= MAX_P:
        raise ValueError(f"p must be < 2**63, got {p}")


cdef u64 chunked(n, p, loop_fn loop, bint release_gil) except? 0:
    """Run loop over 1..n in chunks, checking for Ctrl-C between chunks."""
    check_args(n, p)
    cdef u64 hi = n, m = p, r = 1, lo = 1, stop
    while lo <= hi:
        stop = hi if hi - lo < CHUNK else lo + CHUNK - 1
        if release_gil:
            with nogil:
                r = loop(r, lo, stop, m)
        else:
            r = loop(r, lo, stop, m)
        lo = stop + 1
        PyErr_CheckSignals()  # raises KeyboardInterrupt here, in the main thread
    return r


def fact_mod_gil(n, p):
    """n! mod p in C, holding the GIL for the whole call, between chunks too."""
    return chunked(n, p, fact_range, False)


def fact_mod_nogil(n, p):
    """n! mod p in C, releasing the GIL while each chunk runs."""
    return chunked(n, p, fact_range, True)


def c_reference(n, p):
    """n! mod p by the hand-written C loop, GIL released: the speed limit."""
    return chunked(n, p, c_loop, True)


# --- the GIL probe ---------------------------------------------------------------------
# Native, not Python: a Python probe would time its own bytecode too, and would
# have to take the GIL to read the clock; here the clock is read with the GIL
# released, right before asking for it back, so the time measured is the wait alone.

from posix.time cimport CLOCK_MONOTONIC, clock_gettime, nanosleep, timespec


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


def gil_probe(stop, double interval_s=0.001):
    """Sample how long getting the GIL back takes, until ``stop.is_set()``.

    Run it in a thread of its own: it sleeps ``interval_s`` without the GIL, then
    times how long re-acquiring the GIL takes (gilknocker's method). Returns
    (seconds waited for the GIL, seconds probed, samples). Waited / probed is the
    share of time the GIL was found taken: the price a newly woken IO thread pays.
    """
    if not interval_s > 0:
        raise ValueError(f"interval_s must be > 0, got {interval_s}")
    cdef timespec nap
    nap.tv_sec = <long>interval_s
    nap.tv_nsec = <long>((interval_s - nap.tv_sec) * 1e9)
    cdef double start = _now(), waited = 0.0, released
    cdef long samples = 0
    while not stop.is_set():
        with nogil:
            nanosleep(&nap, NULL)
            released = _now()
        waited += _now() - released  # the GIL is ours again here
        samples += 1
    return waited, _now() - start, samples
