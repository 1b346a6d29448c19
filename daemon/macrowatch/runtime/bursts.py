"""Release bursts and the release schedule they run on.

The schedule is the macro feed's release calendar with the config's own `dates:`, SCHEDULE_DAYS ahead, kept in
the store (the last good one stands while the calendar cannot be read). At each scheduled release the scheduler
starts a burst (scheduler.py): from the release time it polls the release's series, every second for BURST_FAST,
then more slowly until BURST_GIVE_UP, and evaluates each new observation as soon as it is seen. A release not seen
RELEASE_LATE after its time raises one ops alert.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections.abc import Callable

from macrowatch.model import Alert
from macrowatch.runtime.alerts import Alerts
from macrowatch.runtime.core import Core
from macrowatch.runtime.polls import Polls
from macrowatch.sources.base import FredError
from macrowatch.store import StoreError

log = logging.getLogger("macrowatch.app")

BURST_FAST = dt.timedelta(minutes=3)       # poll every second this long after the release time
BURST_SLOW = dt.timedelta(minutes=30)      # then every 15 s this long
BURST_GIVE_UP = dt.timedelta(hours=6)      # then every 2 min, until this
RELEASE_LATE = dt.timedelta(minutes=10)    # an ops alert when a release is not seen by then
SCHEDULE_DAYS = 60                         # how far ahead release dates are scheduled

Advance = Callable[[dt.datetime], list[Alert]]  # evaluate what is in the store up to `now` (Daemon.advance)


class Bursts:
    """The release schedule, and the burst of polls at each release."""

    def __init__(self, core: Core, polls: Polls, alerts: Alerts, advance: Advance):
        self.core = core
        self.polls = polls
        self.alerts = alerts
        self.advance = advance
        self.schedule: dict[str, list[dt.date]] = self._saved_schedule()
        self.schedule_failures = 0  # release calendar refreshes failed in a row (retried: scheduler.py)

    def burst(self, release_id: str, day: dt.date, now: dt.datetime) -> list[Alert]:
        """From a release's time, poll its series until each shows the day's new observation; evaluate each.

        `now` is the burst's start; it reads the clock again for each poll of its own loop.
        """
        log.info("release burst started", extra={"fields": {"release": release_id, "day": day}})
        config, clock = self.core.config, self.core.clock
        release = config.releases[release_id]
        at = dt.datetime.combine(day, release.time, zoneinfo.ZoneInfo(config.timezone))
        series = sorted({m.series for m in config.macro.values() if m.release == release_id})
        pending = [s for s in series if not self.published(s, day)]  # a restart may find it already in
        fired: list[Alert] = []
        late = recheck = False
        if len(pending) < len(series):
            # In the store already, but perhaps not evaluated: a catch-up (a start, a takeover) evaluates only
            # what is due by its own `now`, and stores a value FRED published before this clock read the release
            # time (FRED's clock ahead of this host's, a slow start). Evaluated now that the time has come.
            try:
                fired += self.advance(now)
            except StoreError as exc:  # the series still pending are polled all the same; the close job retries
                log.error("release %s of %s: %s", release_id, day, exc)
        while pending and not self.core.stopping.is_set():
            since = day - dt.timedelta(days=800)  # enough for the prior period, a year back and 12 first prints
            waited = now - at
            try:
                if self.polls.refresh_vintages(now, pending, since) or recheck:
                    recheck = False
                    seen = [s for s in pending if self.published(s, day)]
                    if seen:
                        fired += self.advance(clock.now())
                        pending = [s for s in pending if s not in seen]
                if pending and waited > RELEASE_LATE and not late:
                    self.alerts.ops("release-late", f"{release_id} of {day}: no new observation of "
                                                    f"{', '.join(pending)} {int(waited.total_seconds() // 60)} min "
                                                    f"after {release.time:%H:%M}", f"{release_id}:{day}", now)
                    late = True
            except StoreError as exc:  # a full disk: the burst is the release's only poll, so it polls on
                recheck = True        # and looks again at what the store may hold already
                log.error("release %s of %s: %s", release_id, day, exc)
            if pending and waited > BURST_GIVE_UP:
                log.error("release %s of %s: gave up waiting for %s", release_id, day, ", ".join(pending))
                break
            if pending:
                clock.wait(1.0 if waited < BURST_FAST else 15.0 if waited < BURST_SLOW else 120.0, self.core.stopping)
                now = clock.now()
        return fired

    def published(self, series: str, day: dt.date) -> bool:
        """Whether the store has an observation of `series` first published on `day`."""
        return any(v.realtime_start == day for v in self.core.store.vintages(series))

    def refresh_schedule(self, now: dt.datetime) -> dict[str, list[dt.date]]:
        """Release dates from the macro feed's calendar and the config's `dates:`; kept in the store.

        A calendar that cannot be read keeps the last good schedule (in memory, else the store's), with the
        config's own dates added; `schedule_failures` counts the failed refreshes in a row, and the scheduler
        tries again within seconds while it is above 0 (jobs.Releases.schedule).
        """
        today = now.date()
        failed = False
        for rid, release in self.core.config.releases.items():
            try:
                self.schedule[rid] = self.polls.macro.release_schedule(release, today - dt.timedelta(days=7),
                                                                       today + dt.timedelta(days=SCHEDULE_DAYS))
            except FredError as exc:
                failed = True
                self.polls.outages.source_failed("fred", now, exc.reason)
                kept = set(self.schedule.get(rid, ())) | set(release.dates)
                self.schedule[rid] = sorted(kept)
                log.warning("release calendar of %s: %s; keeping the last known %d date(s)", rid, exc.reason,
                            len(kept))
        for rid in set(self.schedule) - set(self.core.config.releases):
            del self.schedule[rid]
        self.schedule_failures = self.schedule_failures + 1 if failed else 0
        store = self.core.store
        saved = store.load_state("schedule") or {}
        store.save_state("schedule", {"updated": now.isoformat() if not failed else saved.get("updated"),
                                      "failing_since": None if not failed else
                                      saved.get("failing_since") or now.isoformat(),
                                      "releases": {r: [d.isoformat() for d in ds] for r, ds in self.schedule.items()}})
        return self.schedule

    def _saved_schedule(self) -> dict[str, list[dt.date]]:
        """The schedule the store kept (the last good one), for the releases of the config."""
        saved = (self.core.store.load_state("schedule") or {}).get("releases", {})
        return {rid: sorted(dt.date.fromisoformat(d) for d in days) for rid, days in saved.items()
                if rid in self.core.config.releases}

    def release_times(self, now: dt.datetime) -> list[tuple[str, dt.date, dt.datetime]]:
        """(release, day, moment) of every scheduled release still ahead of `now`, or under way today."""
        tz = zoneinfo.ZoneInfo(self.core.config.timezone)
        out = []
        for rid, days in self.schedule.items():
            release = self.core.config.releases.get(rid)
            for day in days if release else ():
                at = dt.datetime.combine(day, release.time, tz)
                if now - at < BURST_GIVE_UP:
                    out.append((rid, day, at))
        return sorted(out, key=lambda t: t[2])
