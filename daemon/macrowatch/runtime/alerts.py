"""The daemon's alerts on their way out: into the outbox, announced, delivered.

Every alert the daemon raises, a rule's or an ops alert, is submitted here: recorded in the outbox before any
send (notify/outbox.py, which drops an alert key it has seen), then announced once (a log line, the alerts
metric, a chart file with `charts_dir`, `on_alert`). The delivery passes send what is due: the delivery job's,
and one at once after an evaluation that fired (daemon.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from macrowatch.config.types import Config
from macrowatch.engine.outcomes import SeriesHistory
from macrowatch.model import Alert
from macrowatch.notify.chart import chart_source
from macrowatch.notify.outbox import Dispatcher, Outcome
from macrowatch.notify.render import Context
from macrowatch.runtime.calendars import moment, saved_times
from macrowatch.runtime.core import Core

log = logging.getLogger("macrowatch.app")


class Alerts:
    """The outbox's dispatcher for the running config, and what becomes of each alert the daemon fires."""

    def __init__(self, core: Core, send: Callable | None = None, on_alert: Callable[[Alert], None] | None = None,
                 charts_dir: Path | None = None):
        self.core = core
        self.send = send
        self.on_alert = on_alert
        self.charts_dir = charts_dir
        self._delivering = threading.Lock()  # one delivery pass at a time
        self.wire(core.config)

    def wire(self, config: Config) -> None:
        """The dispatcher, and the charts it attaches, for `config` (at the start, and at each reload)."""
        self._chart_for = chart_source(config, lambda iid: self.core.store.bars(iid),
                                       lambda alert: self._release_times(config, alert.at))
        kwargs = {"send": self.send} if self.send is not None else {}
        self.dispatcher = Dispatcher(self.core.store, config.channels, self.core.clock, chart_for=self._chart_for,
                                     context=Context.from_config(config), **kwargs)

    def _release_times(self, config: Config, until: dt.datetime) -> list[dt.datetime]:
        """Every release of the config's macro series up to `until`, from the store (a chart marks those in its
        window; the engine keeps only the latest print of each)."""
        times = saved_times(self.core.store)
        out = set()
        for release, series in {(m.release, m.series) for m in config.macro.values()}:
            days = SeriesHistory.from_vintages(self.core.store.vintages(series)).release_days()
            out |= {at for d in days if (at := moment(config, release, d, times)) <= until}
        return sorted(out)

    def submit(self, alerts: list[Alert], now: dt.datetime) -> list[Alert]:
        """Record the alerts in the outbox; those it had not seen before."""
        return self.dispatcher.submit(alerts, now)

    def announce(self, alerts: list[Alert]) -> None:
        """Tell of new alerts: a log line and the alerts metric each, a chart file, `on_alert`."""
        for a in alerts:
            self.core.count("alerts", rule=a.rule)
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

    def ops(self, kind: str, message: str, episode: str, now: dt.datetime) -> None:
        """An operational alert (to the `ops` channel when there is one), once per episode."""
        log.error("ops %s: %s", kind, message)
        notify = ("ops",) if "ops" in self.core.config.channels else ()
        alert = Alert(f"ops-{kind}", now, "critical" if kind == "source-down" else "warning", {}, message,
                      {}, f"ops-{kind}|{episode}", notify, None, "ops")
        self.announce(self.submit([alert], now))

    def deliver(self, now: dt.datetime, wait: bool = True) -> list[Outcome]:
        """Deliver what the outbox has due at `now` (one pass at a time: two at once could send an alert twice).

        `wait=False` (the delivery job): with a pass under way, return at once; that pass, or the next run of
        the job, delivers what is due.
        """
        if not self._delivering.acquire(blocking=wait):
            return []
        try:
            outcomes = self.dispatcher.deliver_due(now)
        finally:
            self._delivering.release()
        metrics = self.core.metrics
        for o in outcomes:
            self.core.count("deliveries", channel=o.channel, result="ok" if o.ok else "failed")
            if o.repeats and metrics is not None:
                # A send with no answer in time, counted as ha.py counts a claim found at a takeover (its
                # Supervisor defines the family; a daemon run without one defines it here).
                from macrowatch.runtime import ha

                metrics.define(next(f for f in ha.FAMILIES if f.name == "macrowatch_possible_repeats_total"))
                metrics.inc("macrowatch_possible_repeats_total", o.repeats)
            if not o.ok and o.attempts + 1 == 5:  # one ops alert per channel and day, not one per alert
                self.ops("delivery-failing", f"channel {o.channel}: 5 failed attempts ({o.reason})",
                         f"{o.channel}:{now:%Y-%m-%d}", now)
        self.core.gauge("outbox_depth", self.dispatcher.pending())
        return outcomes
