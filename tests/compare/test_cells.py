"""One cell's figures, verdict and record from hand-made repeats: no clocks, no kernels run."""
from __future__ import annotations

import pytest

from gillab import kernels
from gillab.compare.cells import (Subject, adopt_baseline, build_cell, figures, settled_for,
                                  verdict_of)
from gillab.measure.clocks import TaskClock
from gillab.measure.cell import CellMeasurement, RepeatResult, measure_cell
from gillab.measure.outcome import CellFailure

ANSWER = 42


def subject(**kw) -> Subject:
    args = dict(name="py", task=kernels.Task("py", (1000, 7)), io_bound=False, n=1000,
                expected=ANSWER, serial_s=0.3,
                serial_tasks=(TaskClock(ANSWER, None, 0.3, 0.3),), serial_spread=0.0)
    args.update(kw)
    return Subject(**args)


def repeat(wall, cpu, k=2, task_cpu=None, task_wall=None, before=None, value=ANSWER,
           error=None) -> RepeatResult:
    """k tasks that each used ``task_cpu`` of ``task_wall``; ``before``: a paired serial run."""
    task = TaskClock(value, error, task_wall or wall,
                     task_cpu if task_cpu is not None else cpu / k)
    return RepeatResult(wall, cpu, 0.0, (task,) * k, None, None, before)


def measured(*repeats) -> CellMeasurement:
    return CellMeasurement(tuple(repeats), tries=1)


class TestFigures:
    """Speedup, cores and waits from the repeats."""

    def test_unpaired_speedup_divides_the_subject_baseline(self):
        fig = figures(subject(), "processes", 2, [repeat(0.3, 0.6)], n_cpus=2)
        assert fig.speedup == pytest.approx(2.0)
        assert fig.cores == pytest.approx(2.0)
        assert fig.speedup_all == ()

    def test_paired_speedup_is_the_median_of_its_pairs_not_the_subject_baseline(self):
        # The machine slowed down by half between the first and the last pair: each
        # pair's serial run slowed alike, so every pair still reads 2x.
        reps = [repeat(0.3, 0.6, before=0.3), repeat(0.45, 0.9, before=0.45),
                repeat(0.6, 1.2, before=0.6)]
        fig = figures(subject(serial_s=0.2), "processes", 2, reps, n_cpus=2)
        assert fig.speedup_all == pytest.approx((2.0, 2.0, 2.0))
        assert fig.speedup == pytest.approx(2.0)

    def test_a_repeat_without_its_pair_falls_back_to_the_baseline(self):
        reps = [repeat(0.3, 0.6, before=0.3), repeat(0.3, 0.6)]
        fig = figures(subject(serial_s=0.15), "processes", 2, reps, n_cpus=2)
        assert fig.speedup_all == ()
        assert fig.speedup == pytest.approx(1.0)

    def test_gil_wait_is_the_longest_off_cpu_share(self):
        fig = figures(subject(), "threads", 2, [repeat(0.6, 0.6, task_cpu=0.3,
                                                       task_wall=0.6)], n_cpus=2)
        assert fig.gil_wait == pytest.approx(0.5)


class TestVerdictOf:
    def test_nudge_moves_a_figure_across_a_boundary(self):
        # 1.55 cores on 2 CPUs sits just under the 1.6 a parallel cell needs.
        fig = figures(subject(), "processes", 2, [repeat(0.39, 0.6045)], n_cpus=2)
        assert verdict_of(subject(), "processes", 2, fig, 0.1, 2).verdict != "parallel"
        assert verdict_of(subject(), "processes", 2, fig, 0.1, 2,
                          nudge=0.05).verdict == "parallel"


class TestTheGilFact:
    """The run's measured GIL reaches the verdict through the subject."""

    def test_the_same_repeats_are_contended_only_with_the_gil_off(self):
        # Two threads busy on 1.9 cores that took as long as two serial tasks in a row.
        reps = [repeat(0.6, 1.14, task_cpu=0.57, task_wall=0.6, before=0.3)]
        with_gil = build_cell(subject(), "threads", 2, measured(*reps), 0.1, 2)
        without = build_cell(subject(gil_enabled=False), "threads", 2, measured(*reps), 0.1, 2)
        assert with_gil.verdict == "overhead-bound"
        assert without.verdict == "contended"
        assert "1.90 cores busy yet 1.00x" in without.reason


class TestSettled:
    """When measure_cell may stop adding repeats."""

    def test_a_steady_baseline_is_settled_a_spread_one_is_not(self):
        settled = settled_for(subject(), "serial", 1, 0.1, 2)
        assert settled(measured(repeat(0.30, 0.3, k=1), repeat(0.31, 0.31, k=1)))
        assert not settled(measured(repeat(0.30, 0.3, k=1), repeat(0.40, 0.4, k=1)))

    def test_a_lone_repeat_on_a_boundary_is_not_settled(self):
        settled = settled_for(subject(), "processes", 2, 0.1, 2)
        assert not settled(measured(repeat(0.39, 0.6045)))
        assert settled(measured(repeat(0.3, 0.6)))

    def test_repeats_leading_to_different_words_are_not_settled(self):
        settled = settled_for(subject(), "processes", 2, 0.1, 2)
        assert not settled(measured(repeat(0.3, 0.6), repeat(0.6, 0.6)))


class TestBuildCell:
    def test_a_failure_is_a_wrong_cell_carrying_its_message(self):
        cell = build_cell(subject(), "threads", 2, CellFailure("a worker died"), 0.1, 2)
        assert (cell.verdict, cell.reason, cell.error, cell.wall_s) == (
            "wrong", "a worker died", "a worker died", None)

    def test_a_wrong_answer_is_wrong(self):
        cell = build_cell(subject(), "processes", 2, measured(repeat(0.3, 0.6, value=1)),
                          0.1, 2)
        assert cell.verdict == "wrong" and not cell.correct

    def test_repeats_that_disagree_make_the_verdict_uncertain(self):
        cell = build_cell(subject(), "processes", 2,
                          measured(repeat(0.3, 0.6), repeat(0.6, 0.6)), 0.1, 2)
        assert cell.uncertain and "uncertain" in cell.reason
        steady = build_cell(subject(), "processes", 2,
                            measured(repeat(0.3, 0.6), repeat(0.3, 0.6)), 0.1, 2)
        assert not steady.uncertain

    def test_an_unbacked_speedup_is_a_field(self):
        # 2.4x on 1.9 cores: above the ideal of 2, the baseline was slow.
        cell = build_cell(subject(serial_s=0.36), "processes", 2, measured(repeat(0.3, 0.57)),
                          0.1, 2)
        assert cell.unbacked

    def test_a_paired_cell_records_its_pairs_and_their_serial_runs(self):
        reps = (repeat(0.3, 0.6, before=0.3), repeat(0.33, 0.66, before=0.3))
        cell = build_cell(subject(serial_s=0.5), "processes", 2, measured(*reps), 0.1, 2)
        assert cell.paired and cell.serial_s == pytest.approx(0.3)
        assert cell.speedup_all == pytest.approx((2.0, 2 * 0.3 / 0.33))
        low = 2 * 0.3 / 0.33
        assert cell.speedup_spread == pytest.approx((2.0 - low) / ((2.0 + low) / 2))

    def test_the_explain_clause_joins_the_reason(self):
        cell = build_cell(subject(), "processes", 2, measured(repeat(0.3, 0.6)), 0.1, 2,
                          explain=lambda gil_wait, task_slowdown: "dask's own threads")
        assert cell.reason.endswith("; dask's own threads")

    def test_an_unknown_executor_is_an_error(self):
        with pytest.raises(ValueError, match="unknown executor"):
            build_cell(subject(), "forks", 2, measured(repeat(0.3, 0.6)), 0.1, 2)


class TestAdoptBaseline:
    def test_the_serial_cell_becomes_the_subjects_baseline(self):
        sub = subject(serial_s=None, serial_tasks=())
        m = measured(repeat(0.25, 0.25, k=1), repeat(0.27, 0.27, k=1))
        cell = build_cell(sub, "serial", 1, m, 0.1, 2)
        adopt_baseline(sub, cell, m, 0.1, 2, {})
        assert sub.serial_s == pytest.approx(0.26) and len(sub.serial_tasks) == 2
        assert cell.verdict == "baseline"

    def test_a_wrong_serial_cell_gives_no_baseline(self):
        sub = subject(serial_s=None, serial_tasks=())
        m = measured(repeat(0.25, 0.25, k=1, value=0))
        adopt_baseline(sub, build_cell(sub, "serial", 1, m, 0.1, 2), m, 0.1, 2, {})
        assert sub.serial_s is None

    def test_a_target_takes_serials_answer_and_its_cpu_says_io_bound(self):
        sub = subject(name="t:f", task=kernels.Task(target="t:f"), checked=False,
                      expected=None, serial_s=None, serial_tasks=())
        m = measured(repeat(0.3, 0.01, k=1, task_cpu=0.01, value="pong"))
        cell = adopt_baseline(sub, build_cell(sub, "serial", 1, m, 0.1, 2), m, 0.1, 2, {})
        assert sub.expected == "pong" and sub.io_bound and cell.io_bound


class TestMaxRepeat:
    def test_an_unsettled_cell_gets_repeats_up_to_max_repeat_and_no_more(self):
        calls = []
        got = measure_cell(lambda: calls.append(1) or [], repeat=1, max_repeat=3,
                           noise_limit=1.0, settled=lambda m: False)
        assert len(got.repeats) == 3 and len(calls) == 3

    def test_a_settled_cell_stops_at_repeat(self):
        got = measure_cell(lambda: [], repeat=2, max_repeat=5, noise_limit=1.0,
                           settled=lambda m: True)
        assert len(got.repeats) == 2

    def test_before_each_runs_once_per_repeat_and_is_kept_on_it(self):
        order = []
        got = measure_cell(lambda: order.append("cell") or [], repeat=2, noise_limit=1.0,
                           before_each=lambda: order.append("serial") or len(order))
        assert order == ["serial", "cell", "serial", "cell"]
        assert [r.before for r in got.repeats] == [1, 3]
