"""The scenario as a price feed and a macro feed: the daemon reads it as it would read Yahoo and FRED.

Both feeds answer from the clock they are given (the demo's accelerated clock), never the wall clock, and
never show what has not happened yet by that clock: a daily bar appears at its session's close, an intraday
price is the session's path up to now, a vintage appears at its release time plus FRED's small lag.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping, Sequence

from macrowatch.clock import Clock
from macrowatch.config.types import Config, Instrument, Release
from macrowatch.model import Bar, Vintage
from macrowatch.sources.base import CalendarFor, FredError, LatestFetch, PriceFetch, Quote
from macrowatch.sources.calendar import session_times

# ALFRED shows a release's vintages a minute or so after the release time; the daemon's release burst polls
# until it sees them, so the demo makes it wait the same way.
FRED_LAG = dt.timedelta(minutes=1)


class ScenarioPrices:
    """A PriceFeed over fixed daily bars (by symbol), revealed as the clock passes each session's close."""

    def __init__(self, bars: Mapping[str, Sequence[Bar]], clock: Clock):
        self._bars = {symbol: tuple(series) for symbol, series in bars.items()}
        self._clock = clock
        self._opens: dict[str, dict[dt.date, dt.datetime]] = {}  # calendar code -> session -> open

    def _cutoff(self, now: dt.datetime) -> dt.datetime:
        # The caller's `now` may be ahead of the scenario's time (a job scheduled for later); the clock decides.
        return min(now, self._clock.now())

    def daily(self, instruments: Mapping[str, Instrument], start: dt.date, now: dt.datetime,
              calendar_for: CalendarFor) -> PriceFetch:
        """The bars from `start` whose session has closed by now; the forming session's bar never."""
        cutoff = self._cutoff(now)
        bars, errors = {}, {}
        for iid, inst in instruments.items():
            series = self._bars.get(inst.symbol)
            if series is None:
                errors[iid] = f"{inst.symbol}: not in the demo scenario"
            else:
                bars[iid] = [b for b in series if b.session >= start and b.at <= cutoff]
        return PriceFetch(bars, errors)

    def latest(self, instruments: Mapping[str, Instrument], now: dt.datetime,
               calendar_for: CalendarFor) -> LatestFetch:
        """Each instrument's price now: on the line from its session's open to its close, else the last close."""
        cutoff = self._cutoff(now)
        prices, errors = {}, {}
        for iid, inst in instruments.items():
            series = self._bars.get(inst.symbol)
            quote = self._quote(series, calendar_for(inst), cutoff) if series is not None else None
            if quote is None:
                errors[iid] = f"{inst.symbol}: " + ("not in the demo scenario" if series is None else "no price yet")
            else:
                prices[iid] = quote
        return LatestFetch(prices, errors)

    def _quote(self, series: Sequence[Bar], code: str, now: dt.datetime) -> Quote | None:
        last = None
        for bar in series:
            if bar.at <= now:
                last = Quote(bar.close, bar.at)
                continue
            opened = self._open_of(code, bar)
            if opened <= now:  # the forming session: its price moves from the open towards the close
                part = (now - opened) / (bar.at - opened)
                return Quote(round(bar.open + (bar.close - bar.open) * part, 2), now)
            break
        return last

    def _open_of(self, code: str, bar: Bar) -> dt.datetime:
        opens = self._opens.get(code)
        if opens is None:
            days = [b.session for series in self._bars.values() for b in series]
            opens = {d: o for d, (o, _c) in session_times(code, min(days), max(days)).items()}
            self._opens[code] = opens
        return opens.get(bar.session, bar.at)


class ScenarioMacro:
    """A MacroFeed over fixed ALFRED-style vintages, each published on its realtime_start at the release time."""

    def __init__(self, vintages: Mapping[str, Sequence[Vintage]], clock: Clock, release_times: Mapping[str, dt.time],
                 timezone: str, lag: dt.timedelta = FRED_LAG):
        """`release_times`: series -> the time of day (in `timezone`) its release comes out."""
        self._vintages = {series: tuple(vs) for series, vs in vintages.items()}
        self._clock = clock
        self._times = dict(release_times)
        self._zone = zoneinfo.ZoneInfo(timezone)
        self._lag = lag

    @classmethod
    def for_config(cls, config: Config, vintages: Mapping[str, Sequence[Vintage]], clock: Clock,
                   lag: dt.timedelta = FRED_LAG) -> ScenarioMacro:
        """The feed with each series published at the time of its macro's release in `config`."""
        times = {m.series: config.releases[m.release].time for m in config.macro.values()}
        return cls(vintages, clock, times, config.timezone, lag)

    def published(self, series: str, day: dt.date) -> dt.datetime:
        """When a vintage of `series` dated `day` can first be read."""
        return dt.datetime.combine(day, self._times.get(series, dt.time(0)), self._zone) + self._lag

    def vintages(self, series: str, since: dt.date | None = None, *,
                 today: dt.date | None = None) -> list[Vintage]:
        """The vintages of periods from `since` that are published by now (and by `today`, when given)."""
        if series not in self._vintages:
            raise FredError(series, "not in the demo scenario")
        now = self._clock.now()
        out = [v for v in self._vintages[series]
               if (since is None or v.date >= since) and (today is None or v.realtime_start <= today)
               and self.published(series, v.realtime_start) <= now]
        if not out:
            raise FredError(series, "no observations" + (f" dated {since.isoformat()} or later" if since else ""))
        return out

    def release_schedule(self, release: Release, start: dt.date, end: dt.date) -> list[dt.date]:
        """The release's explicit dates from `start` to `end` (the scenario has no FRED calendar)."""
        return sorted(d for d in release.dates if start <= d <= end)
