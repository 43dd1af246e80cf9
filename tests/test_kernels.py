"""The kernels agree with math.factorial and reject bad input before any C runs."""
from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gillab import _kernels, kernels

CPU_FUNCS = {name: kernels.get(name) for name in kernels.CPU_KERNELS}
CPU_FUNCS["c_reference"] = _kernels.c_reference
P_MAX = 2**63 - 1


class TestParity:
    """Every CPU kernel and the C reference compute n! mod p exactly."""

    @pytest.mark.parametrize("name", list(CPU_FUNCS))
    @settings(max_examples=60, deadline=None)
    @given(n=st.integers(0, 3000), p=st.integers(2, P_MAX))
    @example(n=0, p=2)
    @example(n=3000, p=2**63 - 25)  # largest prime below 2**63
    @example(n=3000, p=2**61 - 1)   # the product that a 64-bit multiply truncates
    @example(n=10, p=7)             # p divides n!: the answer is 0
    @example(n=6, p=720)            # p == n!
    @example(n=1, p=P_MAX)
    def test_matches_math_factorial(self, name, n, p):
        assert CPU_FUNCS[name](n, p) == math.factorial(n) % p

    def test_all_kernels_agree_on_large_n(self):
        n, p = 200_000, kernels.DEFAULT_P
        expected = _kernels.c_reference(n, p)
        for name in ("py", "py_shared", "cy_gil", "cy_nogil"):
            assert kernels.get(name)(n, p) == expected, name

    def test_raw_functions_importable(self):
        assert _kernels.fact_mod_gil(5, 1000) == 120
        assert _kernels.fact_mod_nogil(5, 1000) == 120
        assert _kernels.c_reference(5, 1000) == 120


class TestBadInput:
    """Every kernel raises a one-line TypeError/ValueError before computing."""

    BAD = [
        ((-1, 7), ValueError, "n must be >= 0"),
        ((2**63, 7), ValueError, "n must be < 2**63"),
        ((5, 1), ValueError, "p must be >= 2"),
        ((5, 0), ValueError, "p must be >= 2"),
        ((5, -3), ValueError, "p must be >= 2"),
        ((5, 2**63), ValueError, "p must be < 2**63"),
        ((5.0, 7), TypeError, "n must be an int, not float"),
        (("5", 7), TypeError, "n must be an int, not str"),
        ((5, 7.5), TypeError, "p must be an int, not float"),
        ((True, 7), TypeError, "n must be an int, not bool"),
        ((None, 7), TypeError, "n must be an int, not NoneType"),
    ]

    @pytest.mark.parametrize("name", list(CPU_FUNCS))
    @pytest.mark.parametrize("args,error,message", BAD)
    def test_rejected(self, name, args, error, message):
        with pytest.raises(error) as info:
            CPU_FUNCS[name](*args)
        assert message in str(info.value)
        assert "\n" not in str(info.value)

    @pytest.mark.parametrize("bad,error", [(-1, ValueError), ("1", TypeError),
                                           (float("nan"), ValueError), (True, TypeError)])
    def test_sleep_rejects(self, bad, error):
        with pytest.raises(error):
            kernels.get("sleep")(bad)


class TestRegistry:
    """The registry names, GIL flags and lookups of DESIGN.md."""

    def test_names(self):
        assert kernels.names() == ["py", "py_shared", "cy_gil", "cy_nogil", "bigint", "sleep"]
        assert kernels.CPU_KERNELS == ("py", "py_shared", "cy_gil", "cy_nogil", "bigint")

    def test_gil_flags(self):
        releases = {name: k.releases_gil for name, k in kernels.KERNELS.items()}
        assert releases == {"py": False, "py_shared": False, "cy_gil": False,
                            "cy_nogil": True, "bigint": False, "sleep": True}

    def test_only_py_shared_shares_state(self):
        shares = [name for name, k in kernels.KERNELS.items() if k.shares_state]
        assert shares == ["py_shared"]

    def test_py_shared_joins_the_default_matrix_on_a_free_threaded_build_only(self):
        assert "py_shared" not in kernels.default_names(free_threaded=False)
        with_it = kernels.default_names(free_threaded=True)
        assert with_it == kernels.names()
        assert with_it.index("py_shared") == with_it.index("py") + 1  # shown beside py

    def test_unknown_kernel_lists_valid_names(self):
        with pytest.raises(KeyError, match="choose from py, py_shared, cy_gil"):
            kernels.get("nope")

    def test_sleep_returns_its_argument(self):
        assert kernels.get("sleep")(0) == 0

    def test_public_api(self):
        import gillab

        assert gillab.get("cy_nogil").releases_gil is True
        assert gillab.get("py")(5, 7) == 120 % 7


class TestSharedState:
    """py_shared is py's loop plus a store into one object every thread of a process
    shares: that store is its lesson, so it must really happen."""

    def test_each_step_is_stored_in_the_shared_dict(self):
        kernels._SHARED.clear()
        answer = kernels.get("py_shared")(1000, kernels.DEFAULT_P)
        assert kernels._SHARED == {"r": answer}

    def test_threads_store_into_one_object(self):
        import threading

        kernels._SHARED.clear()
        seen = []

        def task(n):
            seen.append(kernels.get("py_shared")(n, kernels.DEFAULT_P))

        threads = [threading.Thread(target=task, args=(n,)) for n in (10, 20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(kernels._SHARED) == 1 and kernels._SHARED["r"] in seen
