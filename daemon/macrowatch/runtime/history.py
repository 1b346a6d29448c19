"""History through the engine: what replay, `macrowatch test` and the daemon's rebuild from the store all feed.

`macrowatch replay` loads CSV history into a History (commands/replay.py); `macrowatch test` builds one from its own
notation; the daemon builds one from its store (`unseen`); all feed `Engine.feed`, so there is one code path from
events to alerts.
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
import zoneinfo
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from macrowatch.config.types import Config, ConsensusFeed, Macro
from macrowatch.engine.evaluator import Engine
from macrowatch.engine.outcomes import SeriesHistory, prints
from macrowatch.engine.timeline import ns
from macrowatch.model import Alert, Bar, Bars, Print, Vintage
from macrowatch.runtime.calendars import Times, moment, saved_times
from macrowatch.runtime.inputs import instrument_key, macro_key
from macrowatch.sources import files
from macrowatch.sources.calendar import CALENDAR_START, close_columns
from macrowatch.store import ForecastRow, Store


@dataclass
class History:
    """Everything a replay feeds the engine: daily bars per instrument (columns, or a list of Bars) and
    every release print."""

    bars: dict[str, Bars | list[Bar]] = field(default_factory=dict)
    prints: list[Print] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # data that reads but says nothing (`FILE: what`)

    def columns(self) -> dict[str, Bars]:
        """The bars as columns."""
        return {i: b if isinstance(b, Bars) else Bars.from_list(b) for i, b in self.bars.items()}

    def bar_list(self, instrument: str) -> list[Bar]:
        """One instrument's bars as Bar objects (charts want them)."""
        b = self.bars.get(instrument, [])
        return b.to_list() if isinstance(b, Bars) else list(b)


def macro_prints(config: Config, macro: Macro, vintages: list[Vintage],
                 override: dict[dt.date, float] | None, times: Times | None = None,
                 seen: files.Seen | None = None) -> list[Print]:
    """A series' prints, published on each realtime_start day at its release's time (that day's time from the BLS
    schedule, as the daemon saved it in `times`, else the release's `time:`), each judged against its consensus
    (`files.consensus_for`: `override`, the config's, then the feeds' forecasts as `seen` kept them).

    The daemon asks this every minute of every series' whole history: the prints are kept (`_MEMO`) and given
    again while all they are made of is the same - the vintages, the macro, the release times and the
    consensus found for each release - and made anew when any of these differs.
    """
    memo = _series_memo(macro.series, vintages)
    release_at = {d: moment(config, macro.release, d, times or {}) for d in memo.release_days}
    consensus, label = files.consensus_for(macro, None if override is None else (override, "consensus (data)"),
                                           memo.history.printed(release_at), seen)
    key = (macro, config.timezone, release_at, dict(consensus), label if isinstance(label, str) else dict(label))
    with _LOCK:
        kept = memo.prints.get(macro.id)
    if kept is not None and kept[0] == key:
        return list(kept[1])
    made = prints(macro, memo.history, release_at, consensus, label)
    with _LOCK:
        memo.prints[macro.id] = (key, tuple(made))
    return made


@dataclass
class _SeriesMemo:
    """One series' vintages as last seen, indexed, and the prints of its macros made from them (macro id ->
    (what they were made of, the prints)). Immutable once made, but for `prints`."""

    vintages: tuple[Vintage, ...]
    history: SeriesHistory
    release_days: list[dt.date]
    prints: dict[str, tuple[tuple[Any, ...], tuple[Print, ...]]] = field(default_factory=dict)


_MEMO: OrderedDict[str, _SeriesMemo] = OrderedDict()  # series -> its memo, the least recently used first
_MEMO_SERIES = 64
_LOCK = threading.Lock()  # jobs run on several threads (the close check, a burst, a briefing)


def _series_memo(series: str, vintages: list[Vintage]) -> _SeriesMemo:
    """The memo of a series for these vintages: the one kept when the vintages are the same, else a new one (a new
    vintage, a revision: the prints made from the old ones are dropped with it)."""
    rows = tuple(vintages)
    with _LOCK:
        memo = _MEMO.get(series)
        if memo is not None:
            _MEMO.move_to_end(series)
    if memo is not None and memo.vintages == rows:
        return memo
    history = SeriesHistory.from_vintages(rows)
    memo = _SeriesMemo(rows, history, history.release_days())
    with _LOCK:
        _MEMO[series] = memo
        _MEMO.move_to_end(series)
        while len(_MEMO) > _MEMO_SERIES:
            _MEMO.popitem(last=False)
    return memo


def forecasts_seen(rows: Iterable[ForecastRow]) -> files.Seen:
    """`Store.forecast_before` over rows read at once (`Store.forecasts()`): for a feed entry and a release time,
    the newest (value, seen_at) seen strictly before that time, or None."""
    sightings: dict[tuple[str, str, str, dt.datetime], list[tuple[dt.datetime, float | None]]] = {}
    for r in rows:
        sightings.setdefault((r.feed, r.event, r.country, r.release_at), []).append((r.seen_at, r.value))
    for found in sightings.values():
        found.sort(key=lambda s: s[0])

    def seen(entry: ConsensusFeed, release_at: dt.datetime) -> tuple[float | None, dt.datetime] | None:
        found = sightings.get((entry.feed.value, entry.event, entry.in_country, release_at), [])
        i = bisect.bisect_left([at for at, _value in found], release_at)
        return (found[i - 1][1], found[i - 1][0]) if i else None

    return seen


def stored_forecasts(config: Config, store: Store) -> files.Seen | None:
    """The store's forecasts as a `files.Seen`, when a macro of the config names a feed (None otherwise)."""
    return forecasts_seen(store.forecasts()) if any(m.feeds for m in config.macro.values()) else None


def coming_period(vintages: list[Vintage], at: dt.date | dt.datetime) -> dt.date:
    """The reference period of a coming release at `at`: the one after the newest the vintages have, by the step
    between their last two (else the month before the release's)."""
    periods = sorted({v.date for v in vintages})
    if len(periods) >= 2:
        step = (periods[-1].year - periods[-2].year) * 12 + periods[-1].month - periods[-2].month
        months = periods[-1].year * 12 + periods[-1].month - 1 + step
    else:
        months = at.year * 12 + at.month - 2
    return dt.date(months // 12, months % 12 + 1, 1)


def coming_consensus(macro: Macro, at: dt.datetime, vintages: list[Vintage], seen: files.Seen | None
                     ) -> tuple[dt.date, float, str] | None:
    """(reference period, value, source) of the consensus a coming release at `at` would be judged against now,
    by the same precedence as its print (`status` and `calendar` show it); None when there is none yet (the
    mean of the last 12 first prints will be used). The period is the one after the newest the store has, by
    the step between its last two (else the month before the release's).

    Raises DataError for a consensus file that does not read.
    """
    period = coming_period(vintages, at)
    values, labels = files.consensus_for(macro, None, {period: at}, seen)
    if period not in values:
        return None
    return period, values[period], labels if isinstance(labels, str) else labels[period]


def unseen(config: Config, store: Store, engine: Engine, now: dt.datetime, fed: Callable[[str], bool]) -> History:
    """The store's events up to `now` that `engine` has not applied, of the inputs `fed` admits (by input key)."""
    bars: dict[str, Bars | list[Bar]] = {}
    for iid in config.instruments:
        if not fed(instrument_key(iid)):
            continue
        after = engine.sessions.get(iid)
        since = after + dt.timedelta(days=1) if after else None
        new = [b for b in store.bars(iid, since) if b.at <= now]
        if new:
            bars[iid] = new
    prints_: list[Print] = []
    times = saved_times(store)
    forecasts = stored_forecasts(config, store)
    read: dict[str, list[Vintage]] = {}  # two macros of one series read it once
    for macro in config.macro.values():
        if not fed(macro_key(macro.id)):
            continue
        seen = engine.prints.get(macro.id)
        if macro.series not in read:
            read[macro.series] = store.vintages(macro.series)
        vintages = read[macro.series]
        if not vintages:
            continue
        prints_ += [p for p in macro_prints(config, macro, vintages, None, times, forecasts)
                    if p.at <= now and (seen is None or p.at > seen[0].at)]
    return History(bars, sorted(prints_, key=lambda p: (p.at, p.macro)))


def close_array(code: str, sessions: np.ndarray, tz: zoneinfo.ZoneInfo) -> np.ndarray:
    """Each session's close (datetime64[ns] UTC) from the exchange calendar; NaT on a day the calendar knows to have
    no session (a weekend, a holiday); 16:00 local before the calendar's first day (1990: see calendar.py)."""
    keys, values = close_columns(code, sessions[0].astype(dt.date), sessions[-1].astype(dt.date))
    if len(keys):
        i = np.clip(np.searchsorted(keys, sessions), 0, len(keys) - 1)
        out, off = values[i].copy(), keys[i] != sessions
    else:  # every day before the calendar's first
        out, off = np.full(len(sessions), np.datetime64("NaT", "ns")), np.ones(len(sessions), dtype=bool)
    known = np.datetime64(CALENDAR_START)  # from here on, a day that is not a session is not a day for a bar
    for j in np.flatnonzero(off):  # rare: a row on a day the calendar has no session
        d = sessions[j].astype(dt.date)
        out[j] = np.datetime64("NaT", "ns") if sessions[j] >= known else \
            np.datetime64(dt.datetime.combine(d, dt.time(16), tz).astimezone(dt.UTC).replace(tzinfo=None), "ns")
    return out


def run(engine: Engine, history: History, start: dt.date | None = None, end: dt.date | None = None,
        tz: str = "America/New_York") -> list[Alert]:
    """Feed the history to the engine; the alerts from `start` to `end` (local dates, inclusive).

    Events before `start` warm the state up; their alerts are dropped. Events after `end` are not fed.
    """
    zone = zoneinfo.ZoneInfo(tz)
    bars, prints_ = history.columns(), list(history.prints)
    if end is not None:
        limit = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone)
        cut = np.datetime64(limit.astimezone(dt.UTC).replace(tzinfo=None), "ns")
        bars = {i: _until(b, cut) for i, b in bars.items()}
        prints_ = [p for p in prints_ if p.at < limit]
    # A bar given as an object keeps its moment's time zone in the alerts; columns are UTC.
    stamps = {ns(b.at): b.at for v in history.bars.values() if not isinstance(v, Bars) for b in v}
    alerts = engine.feed(bars, prints_, stamps)
    return [a for a in alerts if start is None or a.at.astimezone(zone).date() >= start]


def _until(b: Bars, cut: np.datetime64) -> Bars:
    n = int(np.searchsorted(b.at, cut, side="left"))
    return Bars(b.session[:n], b.at[:n], b.open[:n], b.high[:n], b.low[:n], b.close[:n], b.volume[:n])
