"""The daemon: its config, store and engine, the catch-up at a start, the evaluations, a reload.

`scheduler.py` decides when each job runs (APScheduler) and hands it `now`; the Daemon and its parts decide what
it does:

    polls.py     bars and vintages fetched into the store, intraday quotes
    bursts.py    the release schedule (calendars.py), and the burst of polls at each release
    publisher.py the BLS API polled in a burst, within the day's query budget
    forecasts.py the consensus feeds' forecasts into the store, before each release
    alerts.py    alerts into the outbox, announced, delivered
    ops.py       the sources' health and the inputs without their history, and their ops alerts
    liveness.py  the daemon's record in the store: a start, the heartbeat, a clean stop

Jobs on several worker threads serialise engine access behind one lock, so that no two evaluations interleave.
`advance` reads from the store every event the engine has not applied (bars and release prints up to `now`, of
the inputs with their whole history: inputs.py) and feeds them through `Engine.feed`, the call `macrowatch replay`
makes, so a close or a release missed while the daemon was down is evaluated once on the next pass (the engine
ignores what it has applied; the outbox ignores an alert key it has seen), never skipped and never twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from macrowatch.clock import Clock
from macrowatch.config.types import Config
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Alert
from macrowatch.runtime.alerts import Alerts
from macrowatch.runtime.bursts import Bursts
from macrowatch.runtime.core import Core
from macrowatch.runtime.forecasts import ForecastPolls
from macrowatch.runtime.health import MetricsRegistry
from macrowatch.runtime.history import unseen
from macrowatch.runtime.inputs import Inputs, instrument_key, macro_key
from macrowatch.runtime.liveness import Liveness
from macrowatch.runtime.ops import Outages
from macrowatch.runtime.polls import Polls
from macrowatch.runtime.publisher import Publisher
from macrowatch.runtime.reloads import check_reloadable
from macrowatch.sources.base import MacroFeed, PriceFeed
from macrowatch.sources.bls import BlsClient
from macrowatch.store import Store

log = logging.getLogger("macrowatch.app")


class Daemon(Core):
    """The daemon's state and its parts; `scheduler.Runner` runs the jobs."""

    def __init__(self, config: Config, store: Store, clock: Clock, prices: PriceFeed, macro: MacroFeed,
                 send: Callable | None = None, on_alert: Callable[[Alert], None] | None = None,
                 charts_dir: Path | None = None, metrics: MetricsRegistry | None = None,
                 stopping: threading.Event | None = None, bls: BlsClient | None = None):
        super().__init__(config, store, clock, metrics, stopping if stopping is not None else threading.Event())
        self.lock = threading.RLock()  # engine access: one evaluation at a time
        self.engine, saved, readable = self._saved_engine()
        # A state it could not read tells no inputs (for a store from before their record): all new, from now.
        self._inputs_saved = store.load_state("inputs")  # the inputs record as the store has it
        self.inputs = Inputs(config, self._inputs_saved, saved, clock.now())
        if not readable:
            self._rebuild()
        self.alerts = Alerts(self, send, on_alert, charts_dir)
        self.outages = Outages(self, self.alerts)
        self.polls = Polls(self, prices, macro, self.outages, self.alerts)
        self.publisher = Publisher(self, bls, self.outages, self.alerts)
        self.bursts = Bursts(self, self.polls, self.alerts, self.advance, self.publisher)
        self.forecasts = ForecastPolls(self, self.outages, self.alerts)
        self.liveness = Liveness(self, self.outages)

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

    # ---- start ----------------------------------------------------------------------------------------
    def start(self, now: dt.datetime) -> None:
        """Catch up: fetch what is missing, then evaluate what happened while down (a first start warms up).

        An input (instrument or series) is evaluated only once its whole history is in (inputs.py): one whose
        history cannot be fetched now waits, with an ops alert, and is fetched again at the next close check.
        """
        self.liveness.started = now
        self.inputs.sync(self.config, now)
        self._save_inputs()  # when each input began to be watched survives a restart
        fresh = not all(self.inputs.complete(k) for k in self.inputs.items)
        self.polls.refresh_prices(now, 10)
        self.polls.refresh_vintages(now)
        self.advance(now)
        self.bursts.refresh_schedule(now)
        self._report_history(now, fresh)

    def _report_history(self, now: dt.datetime, fresh: bool) -> None:
        """Say plainly what the engine has after the catch-up: a fetch that succeeded with no rows (a symbol Yahoo
        does not know, an empty series) or a store without them is no warm-up."""
        missing = self.inputs.missing_text()
        if missing:
            log.warning("no history yet for %s: their levels and the rules that read them wait until it is "
                        "fetched (tried again every minute)", ", ".join(missing))
        # Inputs still without their history are above.
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
            new = unseen(self.config, self.store, self.engine, now,
                         lambda key: self.inputs.complete(key) and key in settled)
            alerts = [a for a in self.engine.feed(new.columns(), new.prints) if self.inputs.news(a, settled)]
            closes = {t for b in new.bars.values() for t in (x.at for x in b)}
            self.count("evaluations", len(closes), trigger="close")
            self.count("evaluations", len({p.at for p in new.prints}), trigger="release")
            if completed:
                # An engine that has applied nothing yet (a first start) is as good as a new one.
                engine = self.engine if not (self.engine.sessions or self.engine.prints) else Engine(self.config)
                history = unseen(self.config, self.store, engine, now, self.inputs.complete)
                alerts += [a for a in engine.feed(history.columns(), history.prints)
                           if self.inputs.rule_inputs(a.rule) & completed and self.inputs.news(a)]
                alerts.sort(key=lambda a: a.at)
                self.engine = engine
            fresh = self.alerts.submit(alerts, now) if submit else []
            self.store.save_state("engine", self.engine.to_data())  # after the outbox: a crash repeats, never loses
            self.inputs.fresh -= completed
            self._save_inputs()
        self.alerts.announce(fresh)
        if fresh and submit:
            self.alerts.deliver(now)  # at once, on this thread: the 08:30 alert must not wait for the delivery job
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

    def check_closes(self, now: dt.datetime) -> list[Alert]:
        """After an exchange's close: fetch the bars still missing for its last closed session; evaluate."""
        self.polls.closes(now)
        return self.advance(now)

    def intraday(self, now: dt.datetime) -> list[Alert]:
        """Latest prices of the instruments whose exchange is open; intraday rules see provisional states."""
        prices = self.polls.quotes(now)
        if not any("intraday" in r.on for r in self.config.rules) or not prices:
            return []
        with self.lock, self._rewind_on_error():
            # Only rules whose inputs the engine has in full (inputs.py): a level without its history is unknown.
            settled = self.inputs.settled()
            alerts = [a for a in self.engine.on_intraday(now, prices) if self.inputs.news(a, settled)]
            self.count("evaluations", trigger="intraday")
            fresh = self.alerts.submit(alerts, now)
            self.store.save_state("engine", self.engine.to_data())
        self.alerts.announce(fresh)
        if fresh:
            self.alerts.deliver(now)
        return fresh

    # ---- reload and status ----------------------------------------------------------------------------
    def reload(self, config: Config, now: dt.datetime) -> None:
        """Swap in a new, already validated config, carrying the state of the ids it keeps.

        ConfigError, and nothing swapped, when it changes a setting read only at the start (the store...).
        """
        check_reloadable(self.config, config)
        with self.lock:
            engine = Engine(config)
            engine.load(self.engine.to_data())
            self.config, self.engine = config, engine
            self.alerts.wire(config)
            self.store.save_state("engine", engine.to_data())
            self.inputs.sync(config, now)  # a new instrument or series is watched from now
            self._save_inputs()
        log.info("config reloaded: %s", config.summary())

    def status_line(self) -> str:
        """One line for systemd's STATUS=: what it watches and what waits in the outbox."""
        failing = self.outages.failing()
        return (f"{len(self.config.instruments)} instruments, {len(self.config.rules)} rules; "
                f"outbox {self.alerts.dispatcher.pending()}" + (f"; failing: {', '.join(failing)}" if failing else ""))

    def _save_inputs(self) -> None:
        """Write the inputs record when it changed (an evaluation pass runs every minute; it rarely changes)."""
        data = self.inputs.to_data()
        if data != self._inputs_saved:
            self.store.save_state("inputs", data)
            self._inputs_saved = data
