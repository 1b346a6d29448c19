"""What the daemon needs of a price feed and a macro feed, and the results they hand back.

The real adapters are `prices.PriceSource` (yfinance) and `fred.FredClient` (fredapi); the demo passes a
bundled scenario that speaks the same protocols, so both run the same daemon code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from macrowatch.config.types import Config, Instrument, Release
from macrowatch.model import Bar, Vintage

CalendarFor = Callable[[Instrument], str]


def calendar_for(config: Config) -> CalendarFor:
    """The exchange calendar code of each instrument of `config`: its own `calendar`, else the config's."""
    def code(inst: Instrument) -> str:
        return inst.calendar or config.calendar
    return code


@dataclass(frozen=True)
class PriceFetch:
    """One poll's daily bars: every instrument is in `bars` or in `errors`, never both."""

    bars: dict[str, list[Bar]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)   # why each dropped bar was dropped


class Quote(NamedTuple):
    """A latest price and when it was last known (the end of its intraday bar, never after `now`)."""

    price: float
    at: dt.datetime


@dataclass(frozen=True)
class LatestFetch:
    """One poll's latest intraday prices: every instrument is in `prices` or in `errors`."""

    prices: dict[str, Quote] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)


class FredError(Exception):
    """A FRED request that gave no usable data; `reason` says why, never with the API key."""

    def __init__(self, subject: str, reason: str):
        super().__init__(f"FRED {subject}: {reason}")
        self.subject = subject
        self.reason = reason


class BlsError(Exception):
    """A BLS request (schedule or API) that gave no usable answer; `reason` says why, never with the API key."""

    def __init__(self, subject: str, reason: str):
        super().__init__(f"BLS {subject}: {reason}")
        self.subject = subject
        self.reason = reason


class ConsensusError(Exception):
    """A consensus feed (ForexFactory, Nasdaq) that gave no usable forecast; `reason` says why."""

    def __init__(self, feed: str, subject: str, reason: str):
        super().__init__(f"{feed} {subject}: {reason}")
        self.feed = feed
        self.subject = subject
        self.reason = reason


class PriceFeed(Protocol):
    """Daily bars and latest prices; never raises: failures come back in `errors`."""

    def daily(self, instruments: Mapping[str, Instrument], start: dt.date, now: dt.datetime,
              calendar_for: CalendarFor) -> PriceFetch: ...

    def latest(self, instruments: Mapping[str, Instrument], now: dt.datetime,
               calendar_for: CalendarFor) -> LatestFetch: ...


class MacroFeed(Protocol):
    """Vintages of series and release calendars; failures raise FredError."""

    def vintages(self, series: str, since: dt.date | None = None, *,
                 today: dt.date | None = None) -> list[Vintage]: ...

    def release_schedule(self, release: Release, start: dt.date, end: dt.date) -> list[dt.date]: ...
