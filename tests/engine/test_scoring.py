"""engine/scoring.py on its own: which instrument a rule is scored on, and the entries the replay's tests cannot
reach (a session missing from the bars, bars older than the exchange calendar)."""

from __future__ import annotations

import numpy as np
import pytest

from macrowatch.config.types import (
    AllOf,
    Direction,
    Level,
    LevelIn,
    LevelKind,
    NewExtreme,
    Not,
    ReleaseOutcome,
    Rule,
    Score,
    Side,
)
from macrowatch.engine import scoring
from macrowatch.engine.scoring import Prices

LEVELS = {"rut-1400": Level("rut-1400", "rut", LevelKind.PRICE, Side.RESISTANCE, None, 1400.0)}
JOBS = ReleaseOutcome("payrolls", "beat")


@pytest.mark.parametrize("rule, instrument", [
    (Rule("r", AllOf((JOBS, LevelIn("rut-1400", ("breakout",)))), chart="spx", score=Score("ndx")), "ndx"),
    (Rule("r", AllOf((JOBS, LevelIn("rut-1400", ("breakout",)))), chart="spx", score=Score()), "spx"),
    (Rule("r", AllOf((JOBS, Not(NewExtreme("ndx", 5)), LevelIn("rut-1400", ("breakout",))))), "ndx"),
    (Rule("r", AllOf((JOBS, LevelIn("rut-1400", ("breakout",)), NewExtreme("ndx", 5)))), "rut"),
    (Rule("r", JOBS, score=Score(direction=Direction.SHORT)), None),
], ids=["score", "chart", "first-atom-under-not", "first-atom-level", "none"])
def test_the_scored_instrument(rule, instrument):
    assert scoring.instrument_of(rule, LEVELS) == instrument


def ns(text: str) -> np.datetime64:
    return np.datetime64(text, "ns")


def day(text: str) -> np.datetime64:
    return np.datetime64(text, "D")


def test_an_alert_whose_session_the_bars_lack_enters_nowhere():
    """2021-03-09 is a session of the calendar but not of the data: its alert does not take 03-10's open."""
    calendar = (np.array([day("2021-03-08"), day("2021-03-09"), day("2021-03-10")]),
                np.array([ns("2021-03-08T14:30"), ns("2021-03-09T14:30"), ns("2021-03-10T14:30")]),
                np.array([ns("2021-03-08T21:00"), ns("2021-03-09T21:00"), ns("2021-03-10T21:00")]))
    p = Prices.of(np.array([day("2021-03-08"), day("2021-03-10")]),
                  np.array([ns("2021-03-08T21:00"), ns("2021-03-10T21:00")]),
                  np.array([10.0, 20.0]), np.array([11.0, 21.0]), calendar)
    entry = scoring.entries(p, np.array([ns("2021-03-09T13:30"), ns("2021-03-08T21:00"), ns("2021-03-10T13:30")]),
                            calendar)
    assert entry.index.tolist() == [-1, 0, 1] and entry.at_open.tolist() == [False, False, True]
    returns = scoring.forward_returns(p, entry, (1,), Direction.LONG)
    assert np.isnan(returns[0, 0]) and returns[1:, 0].tolist() == pytest.approx([21 / 11 - 1, 21 / 20 - 1])


def test_bars_before_the_calendar_open_at_0930():
    """Without the calendar (before 1990) a session closes at 16:00 (runtime/history.py) and opens 6.5 h before."""
    empty = (np.array([], dtype="datetime64[D]"), np.array([], dtype="datetime64[ns]"),
             np.array([], dtype="datetime64[ns]"))
    p = Prices.of(np.array([day("1985-03-08"), day("1985-03-11")]),
                  np.array([ns("1985-03-08T21:00"), ns("1985-03-11T21:00")]),
                  np.array([10.0, 20.0]), np.array([11.0, 22.0]), empty)
    assert list(p.opens_at) == [ns("1985-03-08T14:30"), ns("1985-03-11T14:30")]
    entry = scoring.entries(p, np.array([ns("1985-03-08T13:30"), ns("1985-03-09T13:30"), ns("1985-03-12T13:30")]),
                            empty)
    assert entry.index.tolist() == [0, 1, -1] and entry.at_open.tolist() == [True, True, False]


def test_the_baseline_and_a_short():
    p = Prices(np.array([day("2021-03-08"), day("2021-03-09"), day("2021-03-10")]), np.zeros(3, "datetime64[ns]"),
               np.zeros(3, "datetime64[ns]"), np.ones(3), np.array([10.0, 11.0, 9.9]))
    base = scoring.baseline(p, np.array([True, True, True]), (1, 2), Direction.SHORT)
    assert base[:, 0].tolist() == pytest.approx([-0.1, 0.1, np.nan], nan_ok=True)
    assert base[:, 1].tolist() == pytest.approx([0.01, np.nan, np.nan], nan_ok=True)
    (one, two) = scoring.summarize(base[:1], base, (1, 2))
    assert (one.n, one.mean, one.hit_rate, one.baseline_mean, one.baseline_hit_rate) == (
        1, pytest.approx(-0.1), 0.0, pytest.approx(0.0), 0.5)
    assert (two.n, two.worst, two.excess) == (1, pytest.approx(0.01), pytest.approx(0.0))
