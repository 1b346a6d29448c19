"""Release outcomes (DESIGN.md, the `macro:` part of "Config"): point-in-time prints, measures, judging."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from macrowatch.config.types import Macro, Measure
from macrowatch.engine.outcomes import SeriesHistory, judge, measure_at, prints
from macrowatch.model import Vintage

NY = zoneinfo.ZoneInfo("America/New_York")
D = dt.date


def history(*rows: tuple[dt.date, dt.date, float]) -> SeriesHistory:
    """Vintages as (period, realtime_start, value)."""
    return SeriesHistory.from_vintages(Vintage(p, rt, v) for p, rt, v in rows)


def release_times(h: SeriesHistory) -> dict[dt.date, dt.datetime]:
    return {d: dt.datetime.combine(d, dt.time(8, 30), NY) for d in h.release_days()}


def macro(measure: Measure = Measure.CHANGE, beat_by: float = 25.0, higher_is: str = "better") -> Macro:
    return Macro("payrolls", "PAYEMS", "employment-situation", measure, beat_by=beat_by, higher_is=higher_is)


# A payrolls-like series (thousands) whose months are revised in later releases.
PAYEMS = history(
    (D(2023, 11, 1), D(2023, 12, 8), 850),
    (D(2023, 12, 1), D(2024, 1, 5), 900),
    (D(2023, 12, 1), D(2024, 2, 2), 920),    # December revised in January's release
    (D(2024, 1, 1), D(2024, 2, 2), 1000),
    (D(2024, 1, 1), D(2024, 3, 8), 1030),    # January revised twice later
    (D(2024, 1, 1), D(2024, 4, 5), 1040),
    (D(2024, 2, 1), D(2024, 3, 8), 1100),
    (D(2024, 2, 1), D(2024, 4, 5), 1120),
    (D(2024, 3, 1), D(2024, 4, 5), 1150),
)


def payrolls_prints(measure: Measure = Measure.CHANGE):
    return {p.ref_period: p for p in prints(macro(measure), PAYEMS, release_times(PAYEMS), {})}


# ---- point in time ----------------------------------------------------------------------------------------

def test_as_of_reads_the_value_known_on_the_day():
    jan = D(2024, 1, 1)
    assert PAYEMS.as_of(jan, D(2024, 2, 1)) is None       # not yet published
    assert PAYEMS.as_of(jan, D(2024, 2, 2)) == 1000       # first print
    assert PAYEMS.as_of(jan, D(2024, 3, 7)) == 1000       # the revision is not known yet
    assert PAYEMS.as_of(jan, D(2024, 3, 8)) == 1030
    assert PAYEMS.as_of(jan, D(2030, 1, 1)) == 1040


def test_a_later_revision_never_leaks_into_an_earlier_release():
    jan = payrolls_prints()[D(2024, 1, 1)]
    # January as first printed (1000) minus December as revised on that day (920); the later 1030 and 1040
    # for January would make it 110 or 120
    assert jan.actual == 80
    assert jan.at == dt.datetime(2024, 2, 2, 8, 30, tzinfo=NY)


def test_prior_is_the_previous_period_as_revised_in_the_same_release():
    p = payrolls_prints()
    assert p[D(2023, 12, 1)].actual == 50                 # December's first print: 900 - 850
    assert p[D(2024, 1, 1)].prior == 70                   # December revised to 920 in January's release
    assert p[D(2024, 2, 1)].prior == 110                  # January revised to 1030 in February's release
    assert p[D(2024, 3, 1)].prior == 80                   # February 1120 - January 1040, both as of April 5


def test_every_release_prints_its_newest_period_with_the_level_measure():
    p = payrolls_prints(Measure.LEVEL)
    assert [(k, v.actual, v.prior) for k, v in sorted(p.items())] == [
        (D(2023, 11, 1), 850, None),
        (D(2023, 12, 1), 900, 850),
        (D(2024, 1, 1), 1000, 920),
        (D(2024, 2, 1), 1100, 1030),
        (D(2024, 3, 1), 1150, 1120),
    ]


def test_a_change_needs_a_previous_period():
    assert D(2023, 11, 1) not in payrolls_prints(Measure.CHANGE)


def test_days_without_a_release_time_give_no_print():
    h = PAYEMS
    at = release_times(h)
    del at[D(2024, 3, 8)]
    periods = [p.ref_period for p in prints(macro(), h, at, {})]
    assert D(2024, 2, 1) not in periods and D(2024, 3, 1) in periods


# ---- measures --------------------------------------------------------------------------------------------

CPI = history(
    (D(2023, 3, 1), D(2023, 4, 12), 250.0),
    (D(2023, 3, 1), D(2024, 4, 20), 255.0),   # a later revision of the base month
    (D(2024, 2, 1), D(2024, 3, 12), 300.0),
    (D(2024, 3, 1), D(2024, 4, 10), 306.0),
)


@pytest.mark.parametrize(("measure", "day", "expected"), [
    pytest.param(Measure.LEVEL, D(2024, 4, 10), 306.0, id="level"),
    pytest.param(Measure.CHANGE, D(2024, 4, 10), 6.0, id="change: 306 - 300"),
    pytest.param(Measure.PCT_CHANGE, D(2024, 4, 10), 2.0, id="pct_change: 306 / 300 - 1"),
    pytest.param(Measure.YOY_PCT, D(2024, 4, 10), 22.4, id="yoy_pct: 306 / 250 - 1"),
    pytest.param(Measure.YOY_PCT, D(2024, 4, 20), 20.0, id="yoy_pct with the base as revised: 306 / 255 - 1"),
])
def test_measure(measure, day, expected):
    got = measure_at(CPI, measure, D(2024, 3, 1), day, CPI.periods_known(day))
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("measure", [Measure.CHANGE, Measure.PCT_CHANGE, Measure.YOY_PCT])
def test_measure_without_a_base_is_none(measure):
    day = D(2024, 3, 12)  # February 2024: no January 2024, no February 2023
    cpi = history((D(2024, 2, 1), day, 300.0))
    assert measure_at(cpi, measure, D(2024, 2, 1), day, cpi.periods_known(day)) is None


def test_measure_of_an_unpublished_period_is_none():
    assert measure_at(CPI, Measure.LEVEL, D(2024, 3, 1), D(2024, 4, 9), CPI.periods_known(D(2024, 4, 9))) is None


# ---- judging ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("actual", "consensus", "beat_by", "higher_is", "outcome"), [
    pytest.param(125, 100, 25, "better", "beat", id="beat exactly at beat_by"),
    pytest.param(160, 100, 25, "better", "beat", id="beat well past beat_by"),
    pytest.param(124, 100, 25, "better", "inline", id="inline just under beat_by"),
    pytest.param(100, 100, 25, "better", "inline", id="inline at consensus"),
    pytest.param(76, 100, 25, "better", "inline", id="inline just above -beat_by"),
    pytest.param(75, 100, 25, "better", "miss", id="miss exactly at -beat_by"),
    pytest.param(3.8, 3.7, 0.1, "better", "beat", id="float: 3.8 - 3.7 counts as 0.1"),
    pytest.param(3.6, 3.7, 0.1, "better", "miss", id="float: 3.6 - 3.7 counts as -0.1"),
    pytest.param(0.4, 0.1, 0.3, "better", "beat", id="float: 0.4 - 0.1 counts as 0.3"),
    pytest.param(3.79, 3.7, 0.1, "better", "inline", id="float: 0.09 is inline"),
    pytest.param(100.1, 100, 0, "better", "beat", id="beat_by 0: any surprise up is a beat"),
    pytest.param(99.9, 100, 0, "better", "miss", id="beat_by 0: any surprise down is a miss"),
    # DESIGN's ">= consensus + beat_by -> beat; <= consensus - beat_by -> miss" would make an exact match both
    # with beat_by 0; a trader reads hitting consensus exactly as inline, and so does the engine.
    pytest.param(100, 100, 0, "better", "inline", id="beat_by 0: exactly consensus is inline"),
    pytest.param(3.8, 3.7, 0.1, "worse", "miss", id="higher_is worse: above consensus is a miss"),
    pytest.param(3.6, 3.7, 0.1, "worse", "beat", id="higher_is worse: below consensus is a beat"),
    pytest.param(3.75, 3.7, 0.1, "worse", "inline", id="higher_is worse: inline stays inline"),
])
def test_judge(actual, consensus, beat_by, higher_is, outcome):
    surprise, got = judge(actual, consensus, beat_by, higher_is)
    assert got == outcome
    assert surprise == pytest.approx(actual - consensus)


def test_judge_rounds_the_surprise_it_reports():
    assert judge(3.8, 3.7, 0.1, "better")[0] == 0.1


def test_judge_without_consensus_is_unknown():
    assert judge(187.0, None, 25, "better") == (None, "unknown")


# ---- consensus: the mapping, else the mean of the last 12 first prints ------------------------------------

def monthly_series(n: int) -> SeriesHistory:
    """Month i (from January 2023) first prints 10 * (i + 1), and is revised up by 1000 a month later."""
    rows = []
    for i in range(n):
        period = D(2023 + i // 12, i % 12 + 1, 1)
        first = D(2023 + (i + 1) // 12, (i + 1) % 12 + 1, 5)
        later = D(2023 + (i + 2) // 12, (i + 2) % 12 + 1, 5)
        rows += [(period, first, 10.0 * (i + 1)), (period, later, 10.0 * (i + 1) + 1000)]
    return history(*rows)


def level_prints(consensus: dict[dt.date, float], n: int = 14, beat_by: float = 5.0):
    h = monthly_series(n)
    return prints(macro(Measure.LEVEL, beat_by), h, release_times(h), consensus, "consensus (file)")


def test_no_consensus_before_twelve_first_prints():
    out = level_prints({})
    assert len(out) == 14
    for p in out[:12]:
        assert (p.consensus, p.consensus_source, p.surprise, p.outcome) == (None, "none", None, "unknown")


def test_baseline_is_the_mean_of_the_last_twelve_first_prints_not_their_revisions():
    out = level_prints({})
    assert out[12].actual == 130
    assert out[12].consensus == pytest.approx(65.0)       # mean of 10..120 as first printed
    assert out[13].consensus == pytest.approx(75.0)       # mean of 20..130: the window moves
    assert out[12].consensus_source.startswith("baseline")
    assert (out[12].surprise, out[12].outcome) == (pytest.approx(65.0), "beat")


def test_consensus_from_the_mapping_wins_over_the_baseline():
    out = level_prints({D(2024, 2, 1): 150.0})
    assert (out[13].consensus, out[13].consensus_source) == (150.0, "consensus (file)")
    assert (out[13].surprise, out[13].outcome) == (-10.0, "miss")
    assert out[12].consensus_source.startswith("baseline")  # no entry for that month: the fallback


def test_consensus_from_the_mapping_needs_no_history():
    out = level_prints({D(2023, 1, 1): 8.0})
    assert (out[0].consensus, out[0].surprise, out[0].outcome) == (8.0, 2.0, "inline")


def test_higher_is_worse_swaps_the_outcome_of_a_print():
    h = monthly_series(2)
    m = macro(Measure.LEVEL, beat_by=5.0, higher_is="worse")
    out = prints(m, h, release_times(h), {D(2023, 2, 1): 10.0}, "consensus (config)")
    assert (out[1].actual, out[1].outcome) == (20.0, "miss")
