"""Shared data types that cross module boundaries: bars (one by one, and as numpy columns), vintages, release
prints, alerts."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Bar:
    """One session's daily bar of an instrument; `at` is the session's close (tz-aware)."""

    session: dt.date
    at: dt.datetime
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


@dataclass(frozen=True)
class Vintage:
    """One published value of a series: the value for period `date` as known from `realtime_start` on."""

    date: dt.date
    realtime_start: dt.date
    value: float


@dataclass(frozen=True)
class Print:
    """What a release said about one macro series, judged against consensus."""

    macro: str
    at: dt.datetime                 # when it was published (release date at the release time)
    ref_period: dt.date             # the newest period the release brought
    actual: float                   # the measure as first printed
    prior: float | None             # the period before, as revised in the same release
    consensus: float | None
    consensus_source: str           # "file", "inline", "baseline (mean of the last N first prints)" or "none"
    surprise: float | None
    # An Outcome of config/types.py (beat | miss | inline | unknown), a str enum: typed `str` here because this
    # module sits below config and imports none of it (tests/test_layers.py).
    outcome: str


@dataclass(frozen=True)
class Alert:
    """A rule's firing, with the evidence every condition saw."""

    rule: str
    at: dt.datetime
    severity: str
    labels: Mapping[str, str]
    message: str
    evidence: Mapping[str, Any]
    key: str                        # identity: rule + labels + the evaluation's bar or release
    notify: tuple[str, ...] = ()
    chart: str | None = None
    trigger: str = "close"

    def to_json(self) -> dict[str, Any]:
        """The replay --format jsonl line."""
        return {"rule": self.rule, "at": self.at.isoformat(), "severity": self.severity,
                "labels": dict(self.labels), "message": self.message, "evidence": _plain(self.evidence)}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return number(value)
    return value


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def number(x: float) -> float | None:
    """A float as the data had it, for JSON (which has no Infinity or NaN: None).

    A 32-bit float widened to 64 bits (Yahoo sends prices so: 293.58 arrives as 293.5799865722656) is its
    32-bit float's shortest decimal, 293.58; any other value is cut to 15 significant digits, which every
    decimal of at most 15 digits survives exactly while arithmetic noise goes (0.30000000000000004 is 0.3).
    A value of at most 9 digits is never taken for a widened 32-bit float: 2410.25 and 123456792 stay as they are.
    """
    if not math.isfinite(x):
        return None
    if abs(x) <= _FLOAT32_MAX and float(np.float32(x)) == x and float(f"{x:.9g}") != x:
        return float(str(np.float32(x)))
    return float(f"{x:.15g}")


@dataclass(frozen=True)
class Bars:
    """An instrument's daily bars as columns, in session order (replay feeds years of them at once)."""

    session: np.ndarray   # datetime64[D]
    at: np.ndarray        # datetime64[ns], the session's close in UTC
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.close)

    @classmethod
    def from_list(cls, bars: list[Bar]) -> Bars:
        """Columns from Bar objects."""
        return cls(np.array([b.session for b in bars], dtype="datetime64[D]"),
                   np.array([b.at.astimezone(dt.UTC).replace(tzinfo=None) for b in bars], dtype="datetime64[ns]"),
                   *(np.array([getattr(b, f) for b in bars], dtype=float)
                     for f in ("open", "high", "low", "close", "volume")))

    def after(self, session: dt.date | None) -> Bars:
        """The bars of sessions after `session` (all of them for None)."""
        if session is None:
            return self
        i = int(np.searchsorted(self.session, np.datetime64(session, "D"), side="right"))
        return Bars(*(getattr(self, f)[i:] for f in _COLUMNS))

    def bar(self, i: int) -> Bar:
        """Row i as a Bar."""
        return Bar(self.session[i].astype(dt.date), _utc(self.at[i]), float(self.open[i]), float(self.high[i]),
                   float(self.low[i]), float(self.close[i]), float(self.volume[i]))

    def to_list(self) -> list[Bar]:
        return [self.bar(i) for i in range(len(self))]


_COLUMNS = ("session", "at", "open", "high", "low", "close", "volume")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _utc(ns: np.datetime64) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=int(ns.astype("datetime64[ns]").astype(np.int64)) // 1000)
