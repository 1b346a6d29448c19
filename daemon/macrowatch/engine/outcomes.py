"""Release outcomes: what a release printed, point in time, judged against consensus.

A release on day D is read from the vintages known on D (realtime_start <= D): a later revision never leaks
into an earlier release. The newest period is the one first published on D.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from macrowatch.config.types import Macro, Measure, Outcome
from macrowatch.model import Print, Vintage

BASELINE_PRINTS = 12


def _year_before(d: dt.date) -> dt.date:
    try:
        return d.replace(year=d.year - 1)
    except ValueError:  # 29 February
        return d.replace(year=d.year - 1, day=28)


@dataclass
class SeriesHistory:
    """Every vintage of one series, indexed for point-in-time reads."""

    by_period: dict[dt.date, list[tuple[dt.date, float]]]  # period -> [(realtime_start, value)] sorted
    first_seen: dict[dt.date, dt.date]                      # period -> its first realtime_start

    @classmethod
    def from_vintages(cls, vintages: Iterable[Vintage]) -> SeriesHistory:
        by_period: dict[dt.date, list[tuple[dt.date, float]]] = {}
        for v in vintages:
            by_period.setdefault(v.date, []).append((v.realtime_start, v.value))
        for rows in by_period.values():
            rows.sort()
        return cls(by_period, {p: rows[0][0] for p, rows in by_period.items()})

    def release_days(self) -> list[dt.date]:
        """The days on which a new period was first published."""
        return sorted(set(self.first_seen.values()))

    def as_of(self, period: dt.date, day: dt.date) -> float | None:
        """The value of `period` as known on `day`, or None if not yet published."""
        rows = self.by_period.get(period)
        if not rows:
            return None
        i = bisect.bisect_right(rows, (day, float("inf")))
        return rows[i - 1][1] if i else None

    def periods_known(self, day: dt.date) -> list[dt.date]:
        return sorted(p for p, first in self.first_seen.items() if first <= day)

    def printed(self, release_at: Mapping[dt.date, dt.datetime]) -> dict[dt.date, dt.datetime]:
        """Reference period -> release time of each release (a day in `release_at`): the newest period first
        published that day, the one its print is about (what a consensus is given for)."""
        newest: dict[dt.date, dt.date] = {}
        for period, first in self.first_seen.items():
            newest[first] = max(period, newest.get(first, period))
        return {newest[day]: release_at[day] for day in sorted(newest) if day in release_at}


def measure_at(history: SeriesHistory, measure: Measure, period: dt.date, day: dt.date,
               periods: list[dt.date]) -> float | None:
    """The measure for `period` from the values known on `day` (`periods`: the periods known then, sorted)."""
    value = history.as_of(period, day)
    if value is None:
        return None
    if measure is Measure.LEVEL:
        return value
    if measure is Measure.YOY_PCT:
        base = history.as_of(_year_before(period), day)
        return None if not base else 100.0 * (value / base - 1.0)
    i = bisect.bisect_left(periods, period)
    if i == 0:
        return None
    before = history.as_of(periods[i - 1], day)
    if before is None:
        return None
    if measure is Measure.CHANGE:
        return value - before
    return None if before == 0 else 100.0 * (value / before - 1.0)


def judge(actual: float, consensus: float | None, beat_by: float, higher_is: str) -> tuple[float | None, Outcome]:
    """(surprise, outcome): beat at `beat_by` or more above consensus, miss at as much below, else inline."""
    if consensus is None:
        return None, Outcome.UNKNOWN
    surprise = round(actual - consensus, 9)  # 3.8 - 3.7 is 0.0999..., and must count as 0.1
    if surprise > 0 and surprise >= beat_by:
        outcome = Outcome.BEAT
    elif surprise < 0 and -surprise >= beat_by:
        outcome = Outcome.MISS
    else:
        outcome = Outcome.INLINE
    if higher_is == "worse" and outcome is not Outcome.INLINE:
        outcome = Outcome.MISS if outcome is Outcome.BEAT else Outcome.BEAT
    return surprise, outcome


def baseline(firsts: list[float]) -> tuple[float | None, str]:
    """(consensus, source) of a release no consensus was given for: the mean of the last 12 first prints, or
    (None, "none") with fewer."""
    if len(firsts) < BASELINE_PRINTS:
        return None, "none"
    mean = sum(firsts[-BASELINE_PRINTS:]) / BASELINE_PRINTS
    return mean, f"baseline: mean of the last {BASELINE_PRINTS} first prints"


def assess(macro: Macro, at: dt.datetime, period: dt.date, actual: float, prior: float | None,
           consensus: Mapping[dt.date, float], consensus_label: str | Mapping[dt.date, str],
           firsts: list[float]) -> Print:
    """Judge one release: consensus for the period if given (labelled by `consensus_label`, one for all or one
    per period), else the mean of the last 12 first prints."""
    if period in consensus:
        cons = consensus[period]
        source = consensus_label if isinstance(consensus_label, str) else consensus_label[period]
    else:
        cons, source = baseline(firsts)
    surprise, outcome = judge(actual, cons, macro.beat_by, macro.higher_is)
    return Print(macro.id, at, period, actual, prior, cons, source, surprise, outcome)


def prints(macro: Macro, history: SeriesHistory, release_at: Mapping[dt.date, dt.datetime],
           consensus: Mapping[dt.date, float], consensus_label: str | Mapping[dt.date, str] = "consensus"
           ) -> list[Print]:
    """Every release of the series as printed on its day, oldest first.

    `release_at`: release day -> publication time (days not in it get no print).
    `consensus`: reference period -> consensus of the measure (file or inline; else the baseline is used);
    `consensus_label` says which, in the print (one for all, or one per period).
    """
    out: list[Print] = []
    firsts: list[float] = []  # the measure's first prints, for the baseline
    # The periods known on each release day, grown day by day (the releases come oldest first): sorting all the
    # periods again at each release made a series of decades quadratic.
    arrivals = sorted((first, period) for period, first in history.first_seen.items())
    periods: list[dt.date] = []
    j = 0
    for period, at in history.printed(release_at).items():
        day = history.first_seen[period]
        while j < len(arrivals) and arrivals[j][0] <= day:
            bisect.insort(periods, arrivals[j][1])
            j += 1
        actual = measure_at(history, macro.measure, period, day, periods)
        if actual is None:
            continue
        i = bisect.bisect_left(periods, period)
        prior = measure_at(history, macro.measure, periods[i - 1], day, periods) if i else None
        out.append(assess(macro, at, period, actual, prior, consensus, consensus_label, firsts))
        firsts.append(actual)
    return out
