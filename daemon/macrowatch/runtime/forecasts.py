"""Consensus forecasts polled from the feeds the config's macros name, into the store with when each was seen.

Polled at the start, daily, and 60 and 15 minutes before each release of a macro that names a feed (jobs.py adds
the jobs, the releases' times from the schedule the bursts run on: `Bursts.release_times`). Each poll asks each
feed for each of those releases within HORIZON ahead; the clients keep within the feeds' limits (sources/
consensus.py: ForexFactory's calendar at most twice in five minutes, a Nasdaq page at most once a minute), so
that polls close together cost no extra requests. A value is stored with the time it was seen (`put_forecast`
keeps a row only when it changes); a print's consensus is the newest one seen before its release time
(`files.consensus_for`). A feed's failure is a source failure (ops.py: its health, an ops alert when it lasts);
an event the feed does not list under the configured title (renamed) is one too, with an ops alert naming it, once
per event and release.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from macrowatch.config.types import Feed
from macrowatch.runtime.alerts import Alerts
from macrowatch.runtime.core import Core
from macrowatch.runtime.ops import Outages
from macrowatch.sources.consensus import CLIENTS, ConsensusError, EventNotFound, ForexFactory, Nasdaq, forecast

log = logging.getLogger("macrowatch.app")

LEADS = (dt.timedelta(minutes=60), dt.timedelta(minutes=15))  # polls before each release
HORIZON = dt.timedelta(days=8)  # releases further ahead are not asked for (the feeds list a week or so)

Client = ForexFactory | Nasdaq
Release = tuple[str, dt.date, dt.datetime]  # (release id, day, moment), as Bursts.release_times gives them


class ForecastPolls:
    """The feeds' clients for the running config, and the polls that store their forecasts."""

    def __init__(self, core: Core, outages: Outages, alerts: Alerts):
        self.core = core
        self.outages = outages
        self.alerts = alerts
        # A client per feed and base URL; its rate limit and page cache run on the daemon's clock.
        self.make_client: Callable[[Feed, str | None], Client] = \
            lambda feed, url: CLIENTS[feed](url, clock=core.clock.monotonic)
        self._clients: dict[tuple[Feed, str | None], Client] = {}
        self._renamed: set[tuple[str, str, str, dt.date]] = set()  # (feed, event, country, day) alerted

    def releases(self) -> set[str]:
        """The releases of the macros that name a feed."""
        return {m.release for m in self.core.config.macro.values() if m.feeds}

    def client(self, feed: Feed) -> Client:
        """The feed's client at the running config's URL (one per URL: a reload may change it)."""
        url = self.core.config.consensus.source(feed).url
        if (feed, url) not in self._clients:
            self._clients[(feed, url)] = self.make_client(feed, url)
        return self._clients[(feed, url)]

    def close(self) -> None:
        """Close the feeds' HTTP sessions (the daemon's stop); a poll after it would open a new client."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def poll(self, now: dt.datetime, releases: list[Release]) -> int:
        """Ask each feed for the forecast of each release within HORIZON after `now` of a macro that names it;
        store what it lists. Returns how many values were stored (new or changed)."""
        stored = 0
        failed: dict[Feed, str] = {}  # why each feed failed this poll
        down: set[Feed] = set()       # those that gave no answer: not asked again until the next poll
        asked: set[Feed] = set()
        for rid, day, at in releases:
            if not now < at <= now + HORIZON:
                continue
            for macro in self.core.config.macro.values():
                for entry in macro.feeds if macro.release == rid else ():
                    if entry.feed in down:
                        continue
                    asked.add(entry.feed)
                    try:
                        found = forecast(self.client(entry.feed), entry, at, now)
                    except EventNotFound as exc:
                        failed.setdefault(entry.feed, str(exc))
                        self._not_listed(macro.id, entry.feed, entry.event, entry.in_country, day, exc, now)
                        continue
                    except ConsensusError as exc:
                        failed.setdefault(entry.feed, str(exc))
                        down.add(entry.feed)
                        continue
                    if found.row is not None:
                        stored += self.core.store.put_forecast(entry.feed.value, entry.event, entry.in_country, at,
                                                               found.value, found.row.seen, found.note)
        for feed in asked:
            if feed in failed:
                self.core.count("source_errors", source=feed.value)
                self.outages.source_failed(feed.value, now, failed[feed])
            else:
                self.outages.source_ok(feed.value, now)
        return stored

    def _not_listed(self, macro: str, feed: Feed, event: str, country: str, day: dt.date, exc: EventNotFound,
                    now: dt.datetime) -> None:
        """One ops alert per event and release: the feed lists others at the release's time, not this title."""
        key = (feed.value, event, country, day)
        if key in self._renamed:
            return
        self._renamed.add(key)
        self.alerts.ops("consensus-event", f"macro {macro}: {feed.value} does not list {event!r} ({country}) for "
                                           f"the release of {day}: {exc.reason}; renamed? fix the title in the "
                                           "config (`macrowatch check --show` shows it)",
                        f"{feed.value}:{event}:{country}:{day}", now)
