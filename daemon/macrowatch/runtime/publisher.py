"""First prints from the publisher: during a release burst the BLS API is polled beside FRED, within a daily budget.

BLS publishes at the release second; FRED's copy follows minutes later. In a burst (bursts.py) the series of the
release's macros with a `bls_series` are asked for in one POST at each of the burst's polls (about once a second
in its fast phase). The first answer whose newest month comes after the newest month the store knew before the
release day is that release: its months go into the store as vintages first published that day (the new month and
the earlier ones as this release states them), so that change, pct_change and yoy_pct are judged from the one
answer exactly as from FRED's vintages, and the burst evaluates at once. An answer still ending on the month before
(stale) changes nothing: the burst polls on.

Budget: BLS allows DAILY_QUERIES a day (500 with a key, 25 without). Each query is counted in the store before it
goes (`count_queries`, shared by every instance and restart). A burst takes at most its share: what is left today
divided among the BLS releases still due today (itself included), and at most BURST_QUERIES; once its share is
spent it stops asking BLS and FRED goes on alone. A refused quota (REQUEST_NOT_PROCESSED), a 5xx or any other
failure is a source failure (ops.py) with one ops alert per burst; after a refused quota BLS is not asked again in
that burst, after another failure it is asked again after a growing pause.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from macrowatch.config.types import Config
from macrowatch.model import Vintage
from macrowatch.runtime.alerts import Alerts
from macrowatch.runtime.core import Core
from macrowatch.runtime.ops import Outages
from macrowatch.sources.base import BlsError
from macrowatch.sources.bls import BlsClient

log = logging.getLogger("macrowatch.app")

SOURCE = "bls"
DAILY_QUERIES_KEYED, DAILY_QUERIES_KEYLESS = 500, 25  # BLS's daily limits per key, and without one
BURST_QUERIES = 200       # one burst's queries at most, whatever is left of the day
RETRY_MAX = 30.0          # seconds between two tries at most after failures (not the quota: that ends the burst's)
YEARS_BACK = 2            # years asked for before the release's: the month a year before the newest, and the baseline


def daily_limit(config: Config) -> int:
    """How many BLS queries a day the config's key (or none) allows."""
    return DAILY_QUERIES_KEYED if config.bls.api_key else DAILY_QUERIES_KEYLESS


def bls_series(config: Config, release_id: str) -> dict[str, str]:
    """{series: its BLS id} of the release's macros that name a `bls_series` (the first, for a series named twice)."""
    out: dict[str, str] = {}
    for m in config.macro.values():
        if m.release == release_id and m.bls_series:
            out.setdefault(m.series, m.bls_series)
    return out


@dataclass
class Watch:
    """One burst's BLS polling: its series, its share of the day's queries and what it has spent."""

    release_id: str
    day: dt.date
    series: dict[str, str]      # series (the store's name) -> its BLS id
    known: dict[str, dt.date]   # series -> the newest month the store had before the release day
    share: int
    spent: int = 0
    done: bool = False          # the share spent, or the quota refused: FRED alone from here
    failures: int = 0           # failed queries in a row
    next_try: dt.datetime | None = None
    alerted: bool = False


class Publisher:
    """The BLS API at release time: a Watch per burst, polled within the day's budget."""

    def __init__(self, core: Core, client: BlsClient | None, outages: Outages, alerts: Alerts):
        self.core = core
        self.client = client
        self.outages = outages
        self.alerts = alerts

    def watch(self, release_id: str, day: dt.date, still_due: int, now: dt.datetime) -> Watch | None:
        """A burst's BLS polling, or None when it has nothing to ask BLS (no client, no `bls_series`, no history).

        `still_due`: the BLS releases of the day from this one on (this one included), that share the day's rest.
        """
        wanted = bls_series(self.core.config, release_id)
        if self.client is None or not wanted:
            return None
        known = {}
        for series in wanted:
            before = [v.date for v in self.core.store.vintages(series) if v.realtime_start < day]
            if before:  # without history no answer can tell the new month from the last one
                known[series] = max(before)
        if not known:
            log.info("release %s of %s: no history of %s yet: BLS not asked", release_id, day, ", ".join(wanted))
            return None
        used = self.core.store.queries(SOURCE, day)
        share = max(0, min(BURST_QUERIES, (daily_limit(self.core.config) - used) // max(1, still_due)))
        self.report(day)
        log.info("release %s of %s: BLS polled for %s, at most %d queries (%d used today)", release_id, day,
                 ", ".join(known), share, used)
        return Watch(release_id, day, {s: wanted[s] for s in known}, known, share)

    def poll(self, watch: Watch | None, pending: list[str], now: dt.datetime) -> list[str]:
        """Ask BLS once for the pending series of the watch; the series whose new month it stored."""
        ids = {s: b for s, b in watch.series.items() if s in pending} if watch is not None else {}
        if not ids or watch.done or (watch.next_try is not None and now < watch.next_try):
            return []
        store, limit = self.core.store, daily_limit(self.core.config)
        if watch.spent >= watch.share or store.queries(SOURCE, watch.day) >= limit:
            watch.done = True
            log.warning("release %s of %s: BLS budget spent (%d queries by this burst, %d of %d today): FRED "
                        "alone from here", watch.release_id, watch.day, watch.spent, store.queries(SOURCE, watch.day),
                        limit)
            return []
        store.count_queries(SOURCE, watch.day)  # before the query: one that fails may still have reached BLS
        watch.spent += 1
        self.report(watch.day)
        try:
            fetch = self.client.latest(list(ids.values()), watch.day.year - YEARS_BACK, watch.day.year)
        except BlsError as exc:
            self._failed(watch, exc, now)
            return []
        finally:
            self.core.count("polls", source=SOURCE)
        watch.failures, watch.next_try = 0, None
        self.outages.source_ok(SOURCE, now)
        seen_at = self.core.clock.now()
        got = []
        for series, bid in ids.items():
            months = fetch.series.get(bid)
            if not months or months[-1].period <= watch.known[series]:
                continue  # stale: the month before is still the newest
            store.put_vintages(series, [Vintage(o.period, watch.day, o.value) for o in months])
            store.put_print_source(series, watch.day, SOURCE, seen_at)
            log.info("release %s of %s: %s %s from BLS", watch.release_id, watch.day, series,
                     f"{months[-1].period:%Y-%m}")
            got.append(series)
        return got

    def report(self, day: dt.date) -> None:
        """The day's BLS queries and the limit, for /metrics (once a macro has a `bls_series`)."""
        if self.client is None or not any(m.bls_series for m in self.core.config.macro.values()):
            return
        self.core.gauge("source_queries_today", self.core.store.queries(SOURCE, day), source=SOURCE)
        self.core.gauge("source_query_limit", daily_limit(self.core.config), source=SOURCE)

    def _failed(self, watch: Watch, exc: BlsError, now: dt.datetime) -> None:
        """A failed query: the source's health, one ops alert per burst, and when (if at all) to try again."""
        self.core.count("source_errors", source=SOURCE)
        self.outages.source_failed(SOURCE, now, exc.reason)
        if exc.reason.startswith("REQUEST_NOT_PROCESSED"):  # BLS's quota (or key) refusal: no use asking again
            watch.done = True
        else:
            watch.failures += 1
            watch.next_try = now + dt.timedelta(seconds=min(RETRY_MAX, 2.0 ** watch.failures))
        if not watch.alerted:
            watch.alerted = True
            self.alerts.ops("bls-failing", f"BLS API for {watch.release_id} of {watch.day}: {exc.reason}; "
                                           "waiting for FRED's copy", f"{watch.release_id}:{watch.day}", now)
