"""Shared data types that cross module boundaries: bars, vintages, release prints, alerts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


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
    outcome: str                    # beat | miss | inline | unknown (no consensus)


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
        return round(value, 6)
    return value

