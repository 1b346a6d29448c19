"""The daemon's polls: daily bars and macro vintages into the store, intraday quotes for the engine.

A first start (or an input new in the config) fetches the input's whole history (`HISTORY_YEARS` of bars, every
vintage of a series: inputs.py); after that a poll asks only what the store lacks. A source that fails is marked
in its health (ops.py) and tried again at the next poll, never an exception out of the job.
"""

from __future__ import annotations

import datetime as dt
import logging

from macrowatch.config.types import Instrument
from macrowatch.runtime.alerts import Alerts
from macrowatch.runtime.core import Core
from macrowatch.runtime.inputs import INSTRUMENT, MACRO, instrument_key, macro_key
from macrowatch.runtime.ops import Outages
from macrowatch.sources import calendar
from macrowatch.sources.base import CalendarFor, FredError, MacroFeed, PriceFeed, calendar_for

log = logging.getLogger("macrowatch.app")

HISTORY_YEARS = 5                          # how far back a first start fetches (dynamic levels need it)
CLOSE_LATE = dt.timedelta(minutes=60)      # an ops alert when a session's bar is missing this long


class Polls:
    """Fetching into the store: the price feed's bars and quotes, the macro feed's vintages."""

    def __init__(self, core: Core, prices: PriceFeed, macro: MacroFeed, outages: Outages, alerts: Alerts):
        self.core = core
        self.prices = prices
        self.macro = macro
        self.outages = outages
        self.alerts = alerts
        self._late_closes: set[tuple[str, dt.date]] = set()

    @property
    def calendar_for(self) -> CalendarFor:
        """Each instrument's exchange calendar code, by the running config."""
        return calendar_for(self.core.config)

    def _by_calendar(self) -> dict[str, dict[str, Instrument]]:
        out: dict[str, dict[str, Instrument]] = {}
        for iid, inst in self.core.config.instruments.items():
            out.setdefault(self.calendar_for(inst), {})[iid] = inst
        return out

    def refresh_prices(self, now: dt.datetime, days_back: int, only: dict[str, Instrument] | None = None) -> None:
        """Fetch daily bars into the store: what the store lacks since each instrument's last bar (one batched
        poll), and the whole history (`HISTORY_YEARS`) of an instrument that does not have it yet (another)."""
        inputs = self.core.inputs
        instruments = only if only is not None else dict(self.core.config.instruments)
        if not instruments:
            return
        history = {i: inst for i, inst in instruments.items() if not inputs.complete(instrument_key(i))}
        recent = {i: inst for i, inst in instruments.items() if i not in history}
        errors: dict[str, str] = {}
        if recent:
            last = self.last_sessions()
            known = [last[i] for i in recent if i in last]
            start = min(known) - dt.timedelta(days=5) if len(known) == len(recent) \
                else now.date() - dt.timedelta(days=days_back)
            errors |= self._poll_daily(recent, start, now)
        if history:
            failed = self._poll_daily(history, now.date() - dt.timedelta(days=HISTORY_YEARS * 366), now)
            for iid in history:
                if iid in failed:
                    self.outages.history_failed([instrument_key(iid)], self.core.config.instruments[iid].symbol, now,
                                                failed[iid])
                else:
                    inputs.completed(instrument_key(iid))
            errors |= failed
        if errors:
            self.core.count("source_errors", len(errors), source="prices")
            reason = "; ".join(f"{i}: {e}" for i, e in sorted(errors.items()))
            self.outages.source_failed("prices", now, reason)
        else:
            self.outages.source_ok("prices", now)

    def _poll_daily(self, instruments: dict[str, Instrument], start: dt.date, now: dt.datetime) -> dict[str, str]:
        """One batched poll of daily bars from `start` into the store; the errors by instrument."""
        result = self.prices.daily(instruments, start, now, self.calendar_for)
        for iid, bars in result.bars.items():
            self.core.store.put_bars(iid, bars)
        self.core.count("polls", source="prices")
        return dict(result.errors)

    def fill_history(self, now: dt.datetime) -> None:
        """Fetch the history still missing: a source down at the first start, an instrument or a series new
        in the config. The engine is rebuilt with it at the next evaluation (inputs.py)."""
        config, inputs = self.core.config, self.core.inputs
        inputs.sync(config, now)
        instruments = {i: config.instruments[i] for i in inputs.missing(INSTRUMENT) if i in config.instruments}
        if instruments:
            self.refresh_prices(now, 10, instruments)
        series = sorted({config.macro[m].series for m in inputs.missing(MACRO) if m in config.macro})
        if series:
            self.refresh_vintages(now, series)

    def refresh_vintages(self, now: dt.datetime, series: list[str] | None = None,
                         since: dt.date | None = None) -> int:
        """Fetch vintages of the macro series into the store; returns how many rows were new.

        A series whose history is not complete yet gets all its vintages, whatever `since` says.
        """
        macros = self.core.config.macro.values()
        new = 0
        for s in series if series is not None else sorted({m.series for m in macros}):
            keys = [macro_key(m.id) for m in macros if m.series == s]
            full = not all(self.core.inputs.complete(k) for k in keys)
            try:
                rows = self.macro.vintages(s, None if full else since, today=now.date())
            except FredError as exc:
                self.core.count("source_errors", source="fred")
                self.outages.source_failed("fred", now, exc.reason)
                if full:
                    self.outages.history_failed(keys, s, now, exc.reason)
                continue
            finally:
                self.core.count("polls", source="fred")
            new += self.core.store.put_vintages(s, rows)
            for key in keys if full else ():
                self.core.inputs.completed(key)
            self.outages.source_ok("fred", now)
        return new

    def last_sessions(self) -> dict[str, dt.date]:
        """Each instrument's last session in the store."""
        return {ident: dt.date.fromisoformat(last[:10]) for kind, ident, _n, _first, last
                in self.core.store.summary() if kind == "instrument" and last}

    def _has_session(self, iid: str, session: dt.date) -> bool:
        """Whether the store has a bar of `session` or a later one: the instrument's last session is not before it.
        A lookup on the bars' key, where `last_sessions` counts every bar of the store, every minute."""
        return bool(self.core.store.bars(iid, session))

    def closes(self, now: dt.datetime) -> None:
        """After an exchange's close: fetch the bars still missing for its last closed session (one missing
        CLOSE_LATE after the close: an ops alert). First the history still missing (fill_history): a source
        that was down at the first start, or an instrument or series new in the config, is tried again here.
        """
        self.fill_history(now)
        for code, insts in self._by_calendar().items():
            session = calendar.last_closed_session(code, now)
            if session is None:
                continue
            missing = {i: inst for i, inst in insts.items() if self.core.inputs.complete(instrument_key(i))
                       and not self._has_session(i, session)}
            if not missing:
                continue
            self.refresh_prices(now, 10, missing)
            still = [i for i in missing if not self._has_session(i, session)]
            close_at = calendar.close_times(code, session, session)[session]
            for iid in still:
                if now - close_at > CLOSE_LATE and (iid, session) not in self._late_closes:
                    symbol = self.core.config.instruments[iid].symbol
                    self.alerts.ops("close-late", f"no {session} bar of {symbol} "
                                                  f"{int((now - close_at).total_seconds() // 60)} min after the close",
                                    f"{iid}:{session}", now)
                    self._late_closes.add((iid, session))  # once raised: an ops alert the store refused comes again

    def quotes(self, now: dt.datetime) -> dict[str, float]:
        """The latest prices of the instruments whose exchange is open now (none open: nothing asked)."""
        open_now = {iid: inst for code, insts in self._by_calendar().items() if calendar.is_open(code, now)
                    for iid, inst in insts.items()}
        if not open_now:
            return {}
        result = self.prices.latest(open_now, now, self.calendar_for)
        self.core.count("polls", source="prices")
        for iid, quote in result.prices.items():
            self.core.gauge("data_age_seconds", (now - quote.at).total_seconds(), instrument=iid)
        if result.errors:
            reason = "; ".join(f"{i}: {e}" for i, e in sorted(result.errors.items()))
            self.outages.source_failed("prices", now, reason)
        return {i: q.price for i, q in result.prices.items()}
