"""The statistics helper and the executor registry: the facts every module reads."""
import pytest

from gillab.core import registry
from gillab.core import stats


class TestStats:
    """One statistic per column: what each helper returns on plain numbers."""

    def test_median_skips_none(self):
        assert stats.median([3, None, 1, 2]) == 2

    def test_percentile_interpolates(self):
        assert stats.percentile([0, 10], 0.5) == 5
        assert stats.percentile(range(101), 0.99) == pytest.approx(99)

    def test_nearest_rank_percentile_is_a_measured_value(self):
        values = [i / 10 for i in range(1, 101)]  # 0.1 .. 10.0
        assert stats.percentile(values, 0.99, "nearest") == 9.9
        assert stats.percentile(values, 0.995, "nearest") == 10.0
        assert stats.percentile([5.0, 1.0], 0.0, "nearest") == 1.0
        with pytest.raises(ValueError, match="method"):
            stats.percentile(values, 0.5, "midpoint")

    def test_spread_is_relative_to_the_median(self):
        assert stats.spread([0.9, 1.0, 1.1]) == pytest.approx(0.2)
        assert stats.spread([1.0]) == 0.0

    def test_empty_is_an_error_not_a_zero(self):
        with pytest.raises(ValueError):
            stats.median([None])


class TestRegistry:
    """Every executor appears once, with traits the verdicts can rely on."""

    def test_default_matrix_excludes_by_name_only_executors(self):
        assert "dask" not in registry.DEFAULT_EXECUTORS
        assert set(registry.ALL_EXECUTORS) == set(registry.SPECS)

    def test_traits_select_names(self):
        assert registry.names_where(shares_gil=True) == {"serial", "threads", "thread_pool",
                                                         "asyncio", "to_thread"}
        assert registry.names_where(one_os_thread=True) == {"gevent", "asyncio"}
        assert registry.names_where(event_loop=True) == {"asyncio", "to_thread"}
        assert registry.names_where(start_method=True) == {"processes", "mp_pool",
                                                          "process_pool"}

    def test_unknown_name_is_one_line(self):
        with pytest.raises(ValueError, match="unknown executor 'nope'"):
            registry.spec("nope")
