"""The daemon's work, one method per job: fetch what is new, advance the engine, hand alerts to the outbox.

`scheduler.py` decides when each job runs (APScheduler); this module decides what it does. Every job reads
`now` from the injected clock and serialises engine access behind one lock, so jobs on several worker
threads never interleave an evaluation. `advance` reads from the store every event the engine has not
applied (bars and release prints up to `now`, of the inputs with their whole history: inputs.py) and feeds
them through `Engine.feed`, the call `macrowatch replay` makes, so a close or a release missed while the
daemon was down is evaluated once on the next pass (the engine ignores what it has applied; the outbox
ignores an alert key it has seen), never skipped and never twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from macrowatch.config.types import Config, Instrument
from macrowatch.engine.evaluator import Engine
from macrowatch.engine.outcomes import SeriesHistory
from macrowatch.model import Alert, Bar, Print
from macrowatch.notify.chart import chart_source
from macrowatch.notify.outbox import Dispatcher, Outcome
from macrowatch.notify.render import Context
from macrowatch.runtime.history import History, macro_prints
from macrowatch.runtime.inputs import INSTRUMENT, MACRO, Inputs, instrument_key, macro_key
from macrowatch.sources import calendar
from macrowatch.sources.base import CalendarFor, FredError, MacroFeed, PriceFeed, calendar_for
from macrowatch.store import StoreError

log = logging.getLogger("macrowatch.app")

HISTORY_YEARS = 5                          # how far back a first start fetches (dynamic levels need it)
BURST_FAST = dt.timedelta(minutes=3)       # poll every second this long after the release time
BURST_SLOW = dt.timedelta(minutes=30)      # then every 15 s this long
BURST_GIVE_UP = dt.timedelta(hours=6)      # then every 2 min, until this
RELEASE_LATE = dt.timedelta(minutes=10)    # an ops alert when a release is not seen by then
SOURCE_DOWN = dt.timedelta(minutes=15)     # an ops alert when a source has failed this long
CLOSE_LATE = dt.timedelta(minutes=60)      # an ops alert when a session's bar is missing this long
SCHEDULE_DAYS = 60                         # how far ahead release dates are scheduled


@dataclass
class SourceHealth:
    """A source's last success and the failure under way, for ops alerts, status and metrics."""

    last_ok: dt.datetime | None = None
    failing_since: dt.datetime | None = None
    error: str | None = None
    alerted: bool = False

    def ok(self, now: dt.datetime) -> None:
        self.last_ok, self.failing_since, self.error, self.alerted = now, None, None, False

    def fail(self, now: dt.datetime, error: str) -> None:
        self.failing_since = self.failing_since or now
        self.error = error

    def to_data(self) -> dict:
        return {"last_ok": _iso(self.last_ok), "failing_since": _iso(self.failing_since), "error": self.error}


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t else None


@dataclass
class Daemon:
    """The daemon's state and jobs; `scheduler.Runner` calls the jobs."""

    config: Config
    store: object
    clock: object
    prices: PriceFeed
    macro: MacroFeed
    send: Callable | None = None
    on_alert: Callable[[Alert], None] | None = None
    charts_dir: Path | None = None
    metrics: object | None = None
    engine: Engine = field(init=False)
    dispatcher: Dispatcher = field(init=False)
    health: dict[str, SourceHealth] = field(default_factory=lambda: {"prices": SourceHealth(),
                                                                     "fred": SourceHealth()})
    schedule: dict[str, list[dt.date]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    deliver_lock: threading.Lock = field(default_factory=threading.Lock)  # one delivery pass at a time
    stopping: threading.Event = field(default_factory=threading.Event)
    started: dt.datetime | None = None
    progress: float = field(default_factory=time.monotonic)  # when it last polled or evaluated (monotonic)
    inputs: Inputs = field(init=False)       # which instruments and series have their history (inputs.py)
    schedule_failures: int = 0               # release calendar refreshes failed in a row (retried: scheduler.py)
    _late_closes: set[tuple[str, dt.date]] = field(default_factory=set)
    _inputs_saved: dict | None = None        # the inputs record as the store has it (written only when it changes)

    def __post_init__(self) -> None:
        self.engine, saved, readable = self._saved_engine()
        # A state it could not read tells no inputs (for a store from before their record): all new, from now.
        self._inputs_saved = self.store.load_state("inputs")
        self.inputs = Inputs(self.config, self._inputs_saved, saved, self.clock.now())
        if not readable:
            self._rebuild()
        self.schedule = self.schedule or self._saved_schedule()
        self.dispatcher = self._dispatcher(self.config)

    def _saved_engine(self) -> tuple[Engine, dict | None, bool]:
        """The engine the store saved, that state, and whether it could be read: a new engine (and None) when
        there is none, or when it cannot be read (another version no migration reaches, or garbled: logged)."""
        engine = Engine(self.config)
        try:
            saved = self.store.load_state("engine")
            if saved is not None:
                engine.load(saved)
            return engine, saved, True
        except ValueError as exc:  # StateError, or a state that is not JSON
            log.warning("saved engine state not loaded (%s): the engine is rebuilt from the store's history at the "
                        "next evaluation; only alerts for events after each input began to be watched are sent, "
                        "once", exc)
            return Engine(self.config), None, False

    def _rebuild(self) -> None:
        """The next evaluation rebuilds the engine from the store's whole history, as when inputs complete
        (inputs.py): the alerts of that rebuild are news only after each input's watch began, and the outbox
        drops those it has already."""
        self.inputs.fresh |= {k for k in self.inputs.items if self.inputs.complete(k)}

    # ---- wiring ---------------------------------------------------------------------------------------
    def _dispatcher(self, config: Config) -> Dispatcher:
        self._chart_for = chart_source(config, lambda iid: self.store.bars(iid),
                                       lambda alert: self._release_times(config, alert.at))
        kwargs = {"send": self.send} if self.send is not None else {}
        return Dispatcher(self.store, config.channels, self.clock, chart_for=self._chart_for,
                          context=Context.from_config(config), **kwargs)

    def _release_times(self, config: Config, until: dt.datetime) -> list[dt.datetime]:
        """Every release of the config's macro series up to `until`, from the store (a chart marks those in its
        window; the engine keeps only the latest print of each)."""
        tz = zoneinfo.ZoneInfo(config.timezone)
        out = set()
        for release, series in {(m.release, m.series) for m in config.macro.values()}:
            days = SeriesHistory.from_vintages(self.store.vintages(series)).release_days()
            out |= {at for d in days if (at := dt.datetime.combine(d, config.releases[release].time, tz)) <= until}
        return sorted(out)

    @property
    def calendar_for(self) -> CalendarFor:
        """Each instrument's exchange calendar code, by the running config."""
        return calendar_for(self.config)

    def _by_calendar(self) -> dict[str, dict[str, Instrument]]:
        out: dict[str, dict[str, Instrument]] = {}
        for iid, inst in self.config.instruments.items():
            out.setdefault(self.calendar_for(inst), {})[iid] = inst
        return out

    # ---- start ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Catch up: fetch what is missing, then evaluate what happened while down (a first start warms up).

        An input (instrument or series) is evaluated only once its whole history is in (inputs.py): one whose
        history cannot be fetched now waits, with an ops alert, and is fetched again at the next close check.
        """
        now = self.clock.now()
        self.started = now
        self.inputs.sync(self.config, now)
        self._save_inputs()  # when each input began to be watched survives a restart
        fresh = not all(self.inputs.complete(k) for k in self.inputs.items)
        self.refresh_prices(now, 10)
        self.refresh_vintages(now)
        self.advance(now)
        self.refresh_schedule(now)
        missing = self.inputs.missing_text()
        if missing:
            log.warning("no history yet for %s: their levels and the rules that read them wait until it is "
                        "fetched (tried again every minute)", ", ".join(missing))
        # What the engine has, said plainly: a fetch that succeeded with no rows (a symbol Yahoo does not know, an
        # empty series) or a store without them is no warm-up. Inputs still without their history are above.
        rows = {(kind, ident): n for kind, ident, n, _first, _last in self.store.summary()}
        bars = {i: rows.get(("instrument", i), 0) for i in self.config.instruments
                if self.inputs.complete(instrument_key(i))}
        observations = {m.series: rows.get(("series", m.series), 0) for m in self.config.macro.values()
                        if self.inputs.complete(macro_key(m.id))}
        has = ", ".join([f"{i} {n} bars" for i, n in bars.items() if n]
                        + [f"{s} {n} observations" for s, n in observations.items() if n])
        gaps = [f"{what} {', '.join(ids)}: {unknown} until data arrives" for what, ids, unknown in (
            ("no bars for", [i for i, n in bars.items() if not n], "levels unknown"),
            ("no observations of", [s for s, n in observations.items() if not n], "releases unknown")) if ids]
        if fresh and not missing and has:
            log_start = log.warning if gaps else log.info
            log_start("; ".join([f"warmed up on history: {has}", *gaps,
                                 f"alerts count from {now.isoformat(timespec='seconds')}"]))
        elif gaps:
            log.warning("; ".join(([f"history: {has}"] if has else []) + gaps))

    # ---- data -----------------------------------------------------------------------------------------
    def refresh_prices(self, now: dt.datetime, days_back: int, only: dict[str, Instrument] | None = None) -> None:
        """Fetch daily bars into the store: what the store lacks since each instrument's last bar (one batched
        poll), and the whole history (`HISTORY_YEARS`) of an instrument that does not have it yet (another)."""
        instruments = only if only is not None else dict(self.config.instruments)
        if not instruments:
            return
        history = {i: inst for i, inst in instruments.items() if not self.inputs.complete(instrument_key(i))}
        recent = {i: inst for i, inst in instruments.items() if i not in history}
        errors: dict[str, str] = {}
        if recent:
            last = self._last_sessions()
            known = [last[i] for i in recent if i in last]
            start = min(known) - dt.timedelta(days=5) if len(known) == len(recent) \
                else now.date() - dt.timedelta(days=days_back)
            errors |= self._poll_daily(recent, start, now)
        if history:
            failed = self._poll_daily(history, now.date() - dt.timedelta(days=HISTORY_YEARS * 366), now)
            for iid in history:
                if iid in failed:
                    self._history_failed([instrument_key(iid)], self.config.instruments[iid].symbol, now,
                                         failed[iid])
                else:
                    self.inputs.completed(instrument_key(iid))
            errors |= failed
        if errors:
            self._count("source_errors", len(errors), source="prices")
            reason = "; ".join(f"{i}: {e}" for i, e in sorted(errors.items()))
            self._source_failed("prices", now, reason)
        else:
            self.health["prices"].ok(now)

    def _poll_daily(self, instruments: dict[str, Instrument], start: dt.date, now: dt.datetime) -> dict[str, str]:
        """One batched poll of daily bars from `start` into the store; the errors by instrument."""
        result = self.prices.daily(instruments, start, now, self.calendar_for)
        for iid, bars in result.bars.items():
            self.store.put_bars(iid, bars)
        self._count("polls", source="prices")
        return dict(result.errors)

    def fill_history(self, now: dt.datetime) -> None:
        """Fetch the history still missing: a source down at the first start, an instrument or a series new
        in the config. The engine is rebuilt with it at the next evaluation (inputs.py)."""
        self.inputs.sync(self.config, now)
        instruments = {i: self.config.instruments[i] for i in self.inputs.missing(INSTRUMENT)
                       if i in self.config.instruments}
        if instruments:
            self.refresh_prices(now, 10, instruments)
        series = sorted({self.config.macro[m].series for m in self.inputs.missing(MACRO) if m in self.config.macro})
        if series:
            self.refresh_vintages(now, series)

    def refresh_vintages(self, now: dt.datetime, series: list[str] | None = None,
                         since: dt.date | None = None) -> int:
        """Fetch vintages of the macro series into the store; returns how many rows were new.

        A series whose history is not complete yet gets all its vintages, whatever `since` says.
        """
        new = 0
        for s in series if series is not None else sorted({m.series for m in self.config.macro.values()}):
            keys = [macro_key(m.id) for m in self.config.macro.values() if m.series == s]
            full = not all(self.inputs.complete(k) for k in keys)
            try:
                rows = self.macro.vintages(s, None if full else since, today=now.date())
            except FredError as exc:
                self._count("source_errors", source="fred")
                self._source_failed("fred", now, exc.reason)
                if full:
                    self._history_failed(keys, s, now, exc.reason)
                continue
            finally:
                self._count("polls", source="fred")
            new += self.store.put_vintages(s, rows)
            for key in keys if full else ():
                self.inputs.completed(key)
            self.health["fred"].ok(now)
        return new

    def _last_sessions(self) -> dict[str, dt.date]:
        return {ident: dt.date.fromisoformat(last[:10]) for kind, ident, _n, _first, last in self.store.summary()
                if kind == "instrument" and last}

    # ---- evaluation -----------------------------------------------------------------------------------
    def advance(self, now: dt.datetime, submit: bool = True) -> list[Alert]:
        """Feed the engine every event up to `now` it has not seen, in time order; submit the alerts.

        Only inputs with their whole history are fed, and only alerts for events after their watch began are
        news (inputs.py). Inputs whose history has just come in rebuild the engine from the store's history;
        that rebuild gives the alerts of the rules that read them.
        """
        with self.lock, self._rewind_on_error():
            self.inputs.sync(self.config, now)
            completed = set(self.inputs.fresh)
            settled = self.inputs.settled()
            unseen = self._unseen(now, self.engine, settled)
            alerts = [a for a in self.engine.feed(unseen.columns(), unseen.prints) if self.inputs.news(a, settled)]
            closes = {t for b in unseen.bars.values() for t in (x.at for x in b)}
            self._count("evaluations", len(closes), trigger="close")
            self._count("evaluations", len({p.at for p in unseen.prints}), trigger="release")
            if completed:
                # An engine that has applied nothing yet (a first start) is as good as a new one.
                engine = self.engine if not (self.engine.sessions or self.engine.prints) else Engine(self.config)
                history = self._unseen(now, engine)
                alerts += [a for a in engine.feed(history.columns(), history.prints)
                           if self.inputs.rule_inputs(a.rule) & completed and self.inputs.news(a)]
                alerts.sort(key=lambda a: a.at)
                self.engine = engine
            fresh = self.dispatcher.submit(alerts, now) if submit else []
            self.store.save_state("engine", self.engine.to_data())  # after the outbox: a crash repeats, never loses
            self.inputs.fresh -= completed
            self._save_inputs()
        self._announce(fresh)
        if fresh and submit:
            self.deliver()  # at once, on this thread: the 08:30 alert must not wait for the delivery job
        return fresh

    @contextmanager
    def _rewind_on_error(self) -> Iterator[None]:
        """On an error (a full disk), back to the engine the store has: that pass is evaluated again on the next.

        Else the engine would hold events whose alerts never reached the outbox, and skip them: lost alerts.
        """
        try:
            yield
        except Exception:
            self.engine, _saved, readable = self._saved_engine()
            if not readable:
                self._rebuild()
            raise

    def _unseen(self, now: dt.datetime, engine: Engine, inputs: set[str] | None = None) -> History:
        """The events up to `now` that `engine` has not applied, of the inputs with their whole history (of
        those in `inputs` when given)."""
        def fed(key: str) -> bool:
            return self.inputs.complete(key) and (inputs is None or key in inputs)

        bars: dict[str, list[Bar]] = {}
        for iid in self.config.instruments:
            if not fed(instrument_key(iid)):
                continue
            after = engine.sessions.get(iid)
            since = after + dt.timedelta(days=1) if after else None
            new = [b for b in self.store.bars(iid, since) if b.at <= now]
            if new:
                bars[iid] = new
        prints: list[Print] = []
        for macro in self.config.macro.values():
            if not fed(macro_key(macro.id)):
                continue
            seen = engine.prints.get(macro.id)
            vintages = self.store.vintages(macro.series)
            if not vintages:
                continue
            prints += [p for p in macro_prints(self.config, macro, vintages, None)
                       if p.at <= now and (seen is None or p.at > seen[0].at)]
        return History(bars, sorted(prints, key=lambda p: (p.at, p.macro)))

    def intraday(self) -> list[Alert]:
        """Latest prices of the instruments whose exchange is open; intraday rules see provisional states."""
        now = self.clock.now()
        open_now = {iid: inst for code, insts in self._by_calendar().items() if calendar.is_open(code, now)
                    for iid, inst in insts.items()}
        if not open_now:
            return []
        result = self.prices.latest(open_now, now, self.calendar_for)
        self._count("polls", source="prices")
        for iid, quote in result.prices.items():
            self._gauge("data_age_seconds", (now - quote.at).total_seconds(), instrument=iid)
        if result.errors:
            self._source_failed("prices", now, "; ".join(f"{i}: {e}" for i, e in sorted(result.errors.items())))
        if not any("intraday" in r.on for r in self.config.rules) or not result.prices:
            return []
        with self.lock, self._rewind_on_error():
            # Only rules whose inputs the engine has in full (inputs.py): a level without its history is unknown.
            settled = self.inputs.settled()
            alerts = [a for a in self.engine.on_intraday(now, {i: q.price for i, q in result.prices.items()})
                      if self.inputs.news(a, settled)]
            self._count("evaluations", trigger="intraday")
            fresh = self.dispatcher.submit(alerts, now)
            self.store.save_state("engine", self.engine.to_data())
        self._announce(fresh)
        if fresh:
            self.deliver()
        return fresh

    # ---- jobs -----------------------------------------------------------------------------------------
    def check_closes(self) -> list[Alert]:
        """After an exchange's close: fetch the bars still missing for its last closed session; evaluate.

        First the history still missing (fill_history): a source that was down at the first start, or an
        instrument or series new in the config, is tried again here, every minute.
        """
        now = self.clock.now()
        self.fill_history(now)
        last = self._last_sessions()
        for code, insts in self._by_calendar().items():
            session = calendar.last_closed_session(code, now)
            if session is None:
                continue
            missing = {i: inst for i, inst in insts.items() if self.inputs.complete(instrument_key(i))
                       and (last.get(i) is None or last[i] < session)}
            if not missing:
                continue
            self.refresh_prices(now, 10, missing)
            still = [i for i in missing if self._last_sessions().get(i, dt.date.min) < session]
            close_at = calendar.close_times(code, session, session)[session]
            for iid in still:
                if now - close_at > CLOSE_LATE and (iid, session) not in self._late_closes:
                    self.ops("close-late", f"no {session} bar of {self.config.instruments[iid].symbol} "
                                           f"{int((now - close_at).total_seconds() // 60)} min after the close",
                             f"{iid}:{session}")
                    self._late_closes.add((iid, session))  # once raised: an ops alert the store refused comes again
        return self.advance(now)

    def burst(self, release_id: str, day: dt.date) -> list[Alert]:
        """From a release's time, poll its series until each shows the day's new observation; evaluate each."""
        release = self.config.releases[release_id]
        at = dt.datetime.combine(day, release.time, zoneinfo.ZoneInfo(self.config.timezone))
        series = sorted({m.series for m in self.config.macro.values() if m.release == release_id})
        pending = [s for s in series if not self._published(s, day)]  # a restart may find it already in
        fired: list[Alert] = []
        late = recheck = False
        if len(pending) < len(series):
            # In the store already, but perhaps not evaluated: a catch-up (a start, a takeover) evaluates only
            # what is due by its own `now`, and stores a value FRED published before this clock read the release
            # time (FRED's clock ahead of this host's, a slow start). Evaluated now that the time has come.
            try:
                fired += self.advance(self.clock.now())
            except StoreError as exc:  # the series still pending are polled all the same; the close job retries
                log.error("release %s of %s: %s", release_id, day, exc)
        while pending and not self.stopping.is_set():
            now = self.clock.now()
            since = day - dt.timedelta(days=800)  # enough for the prior period, a year back and 12 first prints
            waited = now - at
            try:
                if self.refresh_vintages(now, pending, since) or recheck:
                    recheck = False
                    seen = [s for s in pending if self._published(s, day)]
                    if seen:
                        fired += self.advance(self.clock.now())
                        pending = [s for s in pending if s not in seen]
                if pending and waited > RELEASE_LATE and not late:
                    self.ops("release-late", f"{release_id} of {day}: no new observation of {', '.join(pending)} "
                                             f"{int(waited.total_seconds() // 60)} min after {release.time:%H:%M}",
                             f"{release_id}:{day}")
                    late = True
            except StoreError as exc:  # a full disk: the burst is the release's only poll, so it polls on
                recheck = True        # and looks again at what the store may hold already
                log.error("release %s of %s: %s", release_id, day, exc)
            if pending and waited > BURST_GIVE_UP:
                log.error("release %s of %s: gave up waiting for %s", release_id, day, ", ".join(pending))
                break
            if pending:
                self.clock.wait(1.0 if waited < BURST_FAST else 15.0 if waited < BURST_SLOW else 120.0, self.stopping)
        return fired

    def _published(self, series: str, day: dt.date) -> bool:
        return any(v.realtime_start == day for v in self.store.vintages(series))

    def refresh_schedule(self, now: dt.datetime) -> dict[str, list[dt.date]]:
        """Release dates from the macro feed's calendar and the config's `dates:`; kept in the store.

        A calendar that cannot be read keeps the last good schedule (in memory, else the store's), with the
        config's own dates added; `schedule_failures` counts the failed refreshes in a row, and the scheduler
        tries again within seconds while it is above 0 (Runner._schedule_releases).
        """
        today = now.date()
        failed = False
        for rid, release in self.config.releases.items():
            try:
                self.schedule[rid] = self.macro.release_schedule(release, today - dt.timedelta(days=7),
                                                                 today + dt.timedelta(days=SCHEDULE_DAYS))
            except FredError as exc:
                failed = True
                self._source_failed("fred", now, exc.reason)
                kept = set(self.schedule.get(rid, ())) | set(release.dates)
                self.schedule[rid] = sorted(kept)
                log.warning("release calendar of %s: %s; keeping the last known %d date(s)", rid, exc.reason,
                            len(kept))
        for rid in set(self.schedule) - set(self.config.releases):
            del self.schedule[rid]
        self.schedule_failures = self.schedule_failures + 1 if failed else 0
        saved = self.store.load_state("schedule") or {}
        self.store.save_state("schedule", {"updated": now.isoformat() if not failed else saved.get("updated"),
                                           "failing_since": None if not failed else
                                           saved.get("failing_since") or now.isoformat(),
                                           "releases": {r: [d.isoformat() for d in ds]
                                                        for r, ds in self.schedule.items()}})
        return self.schedule

    def _saved_schedule(self) -> dict[str, list[dt.date]]:
        """The schedule the store kept (the last good one), for the releases of the config."""
        saved = (self.store.load_state("schedule") or {}).get("releases", {})
        return {rid: sorted(dt.date.fromisoformat(d) for d in days) for rid, days in saved.items()
                if rid in self.config.releases}

    def release_times(self, now: dt.datetime) -> list[tuple[str, dt.date, dt.datetime]]:
        """(release, day, moment) of every scheduled release still ahead of `now`, or under way today."""
        tz = zoneinfo.ZoneInfo(self.config.timezone)
        out = []
        for rid, days in self.schedule.items():
            release = self.config.releases.get(rid)
            for day in days if release else ():
                at = dt.datetime.combine(day, release.time, tz)
                if now - at < BURST_GIVE_UP:
                    out.append((rid, day, at))
        return sorted(out, key=lambda t: t[2])

    def deliver(self, wait: bool = True) -> list[Outcome]:
        """Deliver what the outbox has due (one pass at a time: two at once could send an alert twice).

        `wait=False` (the delivery job): with a pass under way, return at once; that pass, or the next run of
        the job, delivers what is due.
        """
        if not self.deliver_lock.acquire(blocking=wait):
            return []
        try:
            outcomes = self.dispatcher.deliver_due(self.clock.now())
        finally:
            self.deliver_lock.release()
        for o in outcomes:
            self._count("deliveries", channel=o.channel, result="ok" if o.ok else "failed")
            if o.repeats and self.metrics is not None:
                # A send with no answer in time, counted as ha.py counts a claim found at a takeover (its
                # Supervisor defines the family; a daemon run without one defines it here).
                from macrowatch.runtime import ha

                self.metrics.define(next(f for f in ha.FAMILIES if f.name == "macrowatch_possible_repeats_total"))
                self.metrics.inc("macrowatch_possible_repeats_total", o.repeats)
            if not o.ok and o.attempts + 1 == 5:  # one ops alert per channel and day, not one per alert
                self.ops("delivery-failing", f"channel {o.channel}: 5 failed attempts ({o.reason})",
                         f"{o.channel}:{self.clock.now():%Y-%m-%d}")
        self._gauge("outbox_depth", self.dispatcher.pending())
        return outcomes

    def heartbeat(self, every: float | None = None) -> dict:
        """Record liveness and the sources' health in the store (for `macrowatch status`); `every`, the seconds
        between heartbeats, lets `status` tell a silent daemon from a running one."""
        now = self.clock.now()
        for name, h in self.health.items():
            if h.failing_since and now - h.failing_since > SOURCE_DOWN and not h.alerted:
                self.ops("source-down", f"{name} failing since {h.failing_since:%Y-%m-%d %H:%M %Z}: {h.error}",
                         f"{name}:{h.failing_since.isoformat()}")
                h.alerted = True  # once raised: an ops alert the store refused (a full disk) comes again
        data = self._liveness(now, every)
        self.store.save_state("daemon", data)
        self._gauge("last_heartbeat_timestamp_seconds", now.timestamp())
        self._data_ages(now)
        return data

    def record_start(self, every: float | None = None) -> None:
        """Record a start under way, before its catch-up (no heartbeat until that is done): a stop recorded
        earlier is over."""
        self.progress = time.monotonic()
        self.store.save_state("daemon", {**self._liveness(self.clock.now(), every), "catching_up": True})

    def record_stop(self, every: float | None = None) -> None:
        """Record a clean stop, so that `status` says "stopped at ..." instead of reading a recent heartbeat as
        a running daemon. A fenced store refuses it once this instance no longer leads (the leader's stands)."""
        now = self.clock.now()
        self.store.save_state("daemon", {**self._liveness(now, every), "stopped": now.isoformat()})

    def _liveness(self, now: dt.datetime, every: float | None) -> dict:
        return {"started": _iso(self.started or now), "heartbeat": now.isoformat(), "pid": os.getpid(),
                "every": every, "sources": {n: h.to_data() for n, h in self.health.items()},
                "history_missing": self.inputs.missing_text()}

    def _data_ages(self, now: dt.datetime) -> None:
        """The age of each instrument's last bar (from its close) and each series' last release."""
        if self.metrics is None:
            return
        for kind, ident, _rows, _first, last in self.store.summary():
            if kind == "instrument" and last:
                bars = self.store.bars(ident, dt.date.fromisoformat(last[:10]))
                if bars:
                    self._gauge("data_age_seconds", (now - bars[-1].at).total_seconds(), instrument=ident)
        for mid, (p, _bar) in self.engine.prints.items():
            if mid in self.config.macro:
                self._gauge("data_age_seconds", (now - p.at).total_seconds(), series=self.config.macro[mid].series)

    def status_line(self) -> str:
        """One line for systemd's STATUS=: what it watches and what waits in the outbox."""
        failing = [n for n, h in self.health.items() if h.failing_since]
        return (f"{len(self.config.instruments)} instruments, {len(self.config.rules)} rules; "
                f"outbox {self.dispatcher.pending()}" + (f"; failing: {', '.join(failing)}" if failing else ""))

    # ---- reload ---------------------------------------------------------------------------------------
    def reload(self, config: Config) -> None:
        """Swap in a new, already validated config, carrying the state of the ids it keeps.

        ConfigError, and nothing swapped, when it changes a setting read only at the start (the store...).
        """
        from macrowatch.runtime.reloads import check_reloadable

        check_reloadable(self.config, config)
        with self.lock:
            engine = Engine(config)
            engine.load(self.engine.to_data())
            self.config, self.engine = config, engine
            self.dispatcher = self._dispatcher(config)
            self.store.save_state("engine", engine.to_data())
            self.inputs.sync(config, self.clock.now())  # a new instrument or series is watched from now
            self._save_inputs()
        log.info("config reloaded: %s", config.summary())

    # ---- ops alerts and bookkeeping ---------------------------------------------------------------------
    def ops(self, kind: str, message: str, episode: str) -> None:
        """An operational alert (to the `ops` channel when there is one), once per episode."""
        now = self.clock.now()
        log.error("ops %s: %s", kind, message)
        notify = ("ops",) if "ops" in self.config.channels else ()
        alert = Alert(f"ops-{kind}", now, "critical" if kind == "source-down" else "warning", {}, message,
                      {}, f"ops-{kind}|{episode}", notify, None, "ops")
        self._announce(self.dispatcher.submit([alert], now))

    def _announce(self, alerts: list[Alert]) -> None:
        for a in alerts:
            self._count("alerts", rule=a.rule)
            log.info("alert %s [%s] %s: %s", a.key, a.severity, a.rule, a.message)
            if self.charts_dir is not None and a.chart:
                self._save_chart(a)
            if self.on_alert is not None:
                self.on_alert(a)

    def _save_chart(self, alert: Alert) -> None:
        try:
            png = self._chart_for(alert)
        except Exception as exc:  # noqa: BLE001 - a chart that cannot be drawn must not stop the alert
            log.warning("chart for %s failed: %s", alert.key, exc)
            return
        if png:
            self.charts_dir.mkdir(parents=True, exist_ok=True)
            name = f"{alert.at:%Y%m%d-%H%M}-{alert.rule}.png"
            (self.charts_dir / name).write_bytes(png)

    def _history_failed(self, keys: list[str], what: str, now: dt.datetime, reason: str) -> None:
        """Inputs whose history could not be fetched (one instrument, or the macros of one series): logged
        each time, one ops alert while it lasts."""
        items = [item for key in keys if (item := self.inputs.failed(key, now, reason)) is not None]
        if not items:
            return
        log.warning("no history for %s yet (%s): the rules that read it wait", what, reason)
        if not all(item.alerted for item in items):
            since = min(item.failing_since for item in items)
            self.ops("history-missing", f"no history for {what}: {reason}; the rules that read it stay silent "
                                        "until it is fetched (tried again every minute)",
                     f"{what}:{since.isoformat()}")
            for item in items:
                item.alerted = True

    def _save_inputs(self) -> None:
        """Write the inputs record when it changed (an evaluation pass runs every minute; it rarely changes)."""
        data = self.inputs.to_data()
        if data != self._inputs_saved:
            self.store.save_state("inputs", data)
            self._inputs_saved = data

    def _source_failed(self, name: str, now: dt.datetime, reason: str) -> None:
        self.health[name].fail(now, reason)
        log.warning("%s source: %s", name, reason)

    def _count(self, name: str, value: float = 1, **labels: str) -> None:
        self.progress = time.monotonic()  # a poll or an evaluation done: the daemon is working, not stuck
        if self.metrics is not None:
            self.metrics.inc(f"macrowatch_{name}_total", value, **labels)

    def _gauge(self, name: str, value: float, **labels: str) -> None:
        if self.metrics is not None:
            self.metrics.set(f"macrowatch_{name}", value, **labels)
