"""`outcomes.prints` grows the periods known release by release (not sorted again at each): the same prints as
reading `SeriesHistory.periods_known` at each release, on random histories with revisions, late first prints,
several periods first published on one day and release days missing from the release times."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo

import pytest

from macrowatch.config.types import Macro, Measure
from macrowatch.engine.outcomes import SeriesHistory, assess, measure_at, prints
from macrowatch.model import Print, Vintage

NY = zoneinfo.ZoneInfo("America/New_York")


def by_periods_known(macro: Macro, history: SeriesHistory, release_at, consensus, label) -> list[Print]:
    """The prints as made before: the periods known sorted anew at each release."""
    out, firsts = [], []
    for period, at in history.printed(release_at).items():
        day = history.first_seen[period]
        periods = history.periods_known(day)
        actual = measure_at(history, macro.measure, period, day, periods)
        if actual is None:
            continue
        i = periods.index(period)
        prior = measure_at(history, macro.measure, periods[i - 1], day, periods) if i else None
        out.append(assess(macro, at, period, actual, prior, consensus, label, firsts))
        firsts.append(actual)
    return out


def random_history(rng: random.Random) -> SeriesHistory:
    rows = []
    for m in range(rng.randint(1, 80)):
        period = dt.date(2000 + m // 12, m % 12 + 1, 1)
        if rng.random() < 0.1:
            continue  # a month never published
        first = period + dt.timedelta(days=rng.choice([35, 35, 35, 40, 70, 400]))  # now and then late
        rows.append(Vintage(period, first, rng.choice([0.0, rng.uniform(-50, 50), rng.uniform(90, 110)])))
        for _ in range(rng.randint(0, 3)):  # revisions
            rows.append(Vintage(period, first + dt.timedelta(days=rng.randint(1, 900)), rng.uniform(90, 110)))
    rng.shuffle(rows)
    return SeriesHistory.from_vintages(rows)


@pytest.mark.parametrize("seed", range(60))
def test_the_same_prints_as_reading_the_periods_known_at_each_release(seed):
    rng = random.Random(seed)
    history = random_history(rng)
    release_at = {d: dt.datetime.combine(d, dt.time(8, 30), NY) for d in history.release_days() if rng.random() < 0.9}
    consensus = {p: rng.uniform(90, 110) for p in history.by_period if rng.random() < 0.3}
    for measure in Measure:
        macro = Macro("m", "S", "r", measure, beat_by=rng.choice([0.0, 0.5, 5.0]))
        got = prints(macro, history, release_at, consensus, "consensus (file)")
        assert got == by_periods_known(macro, history, release_at, consensus, "consensus (file)")
