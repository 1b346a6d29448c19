"""Which alerts were worth acting on: forward returns of alerts and their summary against a baseline.

Pure numpy over one instrument's bars (`macrowatch replay --score`, commands/score.py), so that scoring years of
alerts costs a few array operations beside the replay. The definitions are DESIGN.md's (Scoring):

- An alert belongs to the first session whose close is at or after it. Before that session's open (a pre-market
  release, or a day without a session) it enters at the session's open; at or after the open, at its close.
- The exit after N sessions is the close N sessions after an entry at a close, N - 1 after an entry at an open
  (the entry session counts as the first). Return = exit / entry - 1, negated for a short; NaN where the data ends
  first.
- The baseline is the same horizon's close-to-close return from every session of the window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from macrowatch.config.types import (
    AllOf,
    AnyOf,
    Condition,
    Direction,
    Level,
    LevelEntered,
    LevelIn,
    NarrowRange,
    NewExtreme,
    Not,
    Rule,
)

# Before the calendar's first day (calendar.py) a session's close is taken at 16:00 local (runtime/history.py);
# its open then is the regular session's length before it, 09:30.
REGULAR_SESSION = np.timedelta64(390, "m")


def instrument_of(rule: Rule, levels: Mapping[str, Level]) -> str | None:
    """The instrument a rule's alerts are scored on: `score.instrument`, else `chart`, else the first level or
    instrument atom of its condition (as written); None when it names none (a rule on releases alone)."""
    if rule.score is not None and rule.score.instrument:
        return rule.score.instrument
    return rule.chart or first_instrument(rule.when, levels)


def direction_of(rule: Rule) -> Direction:
    return rule.score.direction if rule.score is not None else Direction.LONG


def first_instrument(c: Condition, levels: Mapping[str, Level]) -> str | None:
    """The instrument of the first level or instrument atom of a condition, depth first in written order."""
    match c:
        case LevelIn() | LevelEntered():
            return levels[c.level].instrument if c.level in levels else None
        case NarrowRange() | NewExtreme():
            return c.instrument
        case AllOf() | AnyOf():
            return next((i for i in (first_instrument(x, levels) for x in c.items) if i), None)
        case Not():
            return first_instrument(c.item, levels)
    return None


@dataclass(frozen=True)
class Prices:
    """One instrument's bars as scoring reads them, with each bar's session open (UTC)."""

    session: np.ndarray   # datetime64[D]
    at: np.ndarray        # datetime64[ns]: the session's close
    opens_at: np.ndarray  # datetime64[ns]
    open: np.ndarray
    close: np.ndarray

    @classmethod
    def of(cls, session: np.ndarray, at: np.ndarray, open_: np.ndarray, close: np.ndarray,
           calendar: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Prices:
        """Bars with their opens from `calendar` (sessions, opens, closes: sources/calendar.session_columns); a
        session the calendar does not hold opens REGULAR_SESSION before its close."""
        cal_session, cal_open, _ = calendar
        opens = at - REGULAR_SESSION
        if len(cal_session):
            j = np.clip(np.searchsorted(cal_session, session), 0, len(cal_session) - 1)
            known = cal_session[j] == session
            opens[known] = cal_open[j[known]]
        return cls(session, at, opens, open_, close)


@dataclass(frozen=True)
class Entries:
    """Where each alert enters: a bar index (-1: nowhere) and whether at that bar's open (else its close)."""

    index: np.ndarray
    at_open: np.ndarray


def entries(prices: Prices, alert_at: np.ndarray, calendar: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Entries:
    """Each alert's entry (`alert_at`: datetime64[ns] UTC). An alert whose session (by the calendar) the bars lack,
    or after the last bar, enters nowhere: the price it could have been acted on is not in the data."""
    n = len(prices.at)
    if not n:
        return Entries(np.full(len(alert_at), -1), np.zeros(len(alert_at), dtype=bool))
    i = np.searchsorted(prices.at, alert_at, side="left")
    inside = i < n
    k = np.minimum(i, n - 1)
    cal_session, cal_open, cal_close = calendar
    if len(cal_session):
        j = np.searchsorted(cal_close, alert_at, side="left")
        # The calendar knows the alert's session from its first session's open on (before: the bars decide).
        covered = (j < len(cal_close)) & ((j > 0) | (alert_at >= cal_open[0]))
        inside &= ~covered | (cal_session[np.minimum(j, len(cal_session) - 1)] == prices.session[k])
    return Entries(np.where(inside, i, -1), inside & (alert_at < prices.opens_at[k]))


def forward_returns(prices: Prices, entry: Entries, horizons: Sequence[int], direction: Direction) -> np.ndarray:
    """Returns per alert (rows) and horizon (columns); NaN where there is no entry or the data ends first."""
    n, h = len(prices.close), np.asarray(horizons, dtype=np.int64)
    if not len(entry.index) or not n:
        return np.full((len(entry.index), len(h)), np.nan)
    i = np.maximum(entry.index, 0)
    price = np.where(entry.at_open, prices.open[i], prices.close[i])
    exit_i = i[:, None] + h[None, :] - entry.at_open[:, None]
    ok = (entry.index >= 0)[:, None] & (exit_i < n) & (price > 0)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = prices.close[np.minimum(exit_i, n - 1)] / price[:, None] - 1.0
    out = np.where(ok, out, np.nan)
    return -out if direction is Direction.SHORT else out


def baseline(prices: Prices, window: np.ndarray, horizons: Sequence[int], direction: Direction) -> np.ndarray:
    """Close-to-close returns from every session where `window` (a bool per bar) holds, per horizon (columns);
    NaN where the data ends first."""
    start = np.flatnonzero(window)
    n = len(prices.close)
    out = np.full((len(start), len(horizons)), np.nan)
    for col, h in enumerate(horizons):
        has = start + h < n
        with np.errstate(invalid="ignore", divide="ignore"):
            out[has, col] = prices.close[start[has] + h] / prices.close[start[has]] - 1.0
    return -out if direction is Direction.SHORT else out


@dataclass(frozen=True)
class Summary:
    """A rule's returns at one horizon against the baseline (None: no return to summarise)."""

    horizon: int
    n: int
    mean: float | None
    median: float | None
    hit_rate: float | None
    worst: float | None
    baseline_mean: float | None
    baseline_hit_rate: float | None
    excess: float | None


def summarize(returns: np.ndarray, base: np.ndarray, horizons: Sequence[int]) -> list[Summary]:
    """One Summary per horizon from the columns of `returns` (the rule's) and `base` (the baseline's)."""
    out = []
    for col, h in enumerate(horizons):
        r = returns[:, col][~np.isnan(returns[:, col])]
        b = base[:, col][~np.isnan(base[:, col])]
        mean, bmean = _stat(np.mean, r), _stat(np.mean, b)
        out.append(Summary(h, len(r), mean, _stat(np.median, r), _stat(_hits, r), _stat(np.min, r), bmean,
                           _stat(_hits, b), None if mean is None or bmean is None else mean - bmean))
    return out


def _hits(x: np.ndarray) -> float:
    return np.count_nonzero(x > 0) / len(x)


def _stat(f, x: np.ndarray) -> float | None:
    return float(f(x)) if len(x) else None


@dataclass(frozen=True)
class RuleScore:
    """One rule's scores: its alerts' returns (rows, in alert order) and the baseline's, per horizon (columns)."""

    rule: str
    instrument: str | None       # None: not scorable (`why`)
    direction: Direction
    returns: np.ndarray
    baseline: np.ndarray
    summaries: tuple[Summary, ...]
    why: str = ""
