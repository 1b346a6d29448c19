"""Release bursts and the release schedule they run on.

The schedule is each release's days from FRED's release calendar (with a key), the BLS schedule (`bls:`) and the
config's own `dates:`, SCHEDULE_DAYS ahead, and the time of each day: the BLS schedule's when it has the day, else
the release's `time:` (calendars.py). It is kept in the store (the last good one stands while a calendar cannot be
read). A release with no usable calendar at all (`fred_release_id` without a FRED key, a `bls:` title the schedule
does not have) raises an ops alert at the start and at each refresh while it lasts: its release rules could never
fire. At each scheduled release the scheduler starts a burst (scheduler.py): from the release time it polls the
release's series, the publisher (BLS, publisher.py) and FRED side by side, every second for BURST_FAST, then more
slowly until BURST_GIVE_UP, and evaluates each new observation as soon as either shows it. A release not seen
RELEASE_LATE after its time raises one ops alert.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from macrowatch.model import Alert
from macrowatch.runtime import calendars
from macrowatch.runtime.alerts import Alerts
from macrowatch.runtime.calendars import BlsEvents, Times, moment
from macrowatch.runtime.core import Core
from macrowatch.runtime.polls import Polls
from macrowatch.runtime.publisher import Publisher, bls_series
from macrowatch.sources.base import FredError
from macrowatch.sources.schedule import unschedulable
from macrowatch.store import StoreError
from macrowatch.store.base import Fenced

log = logging.getLogger("macrowatch.app")

BURST_FAST = dt.timedelta(minutes=3)       # poll every second this long after the release time
BURST_SLOW = dt.timedelta(minutes=30)      # then every 15 s this long
BURST_GIVE_UP = dt.timedelta(hours=6)      # then every 2 min, until this
RELEASE_LATE = dt.timedelta(minutes=10)    # an ops alert when a release is not seen by then
SCHEDULE_DAYS = 60                         # how far ahead release dates are scheduled

Advance = Callable[[dt.datetime], list[Alert]]  # evaluate what is in the store up to `now` (Daemon.advance)


class Bursts:
    """The release schedule, and the burst of polls at each release."""

    def __init__(self, core: Core, polls: Polls, alerts: Alerts, advance: Advance, publisher: Publisher):
        self.core = core
        self.polls = polls
        self.alerts = alerts
        self.advance = advance
        self.publisher = publisher
        self.bls_schedule = calendars.BlsSchedule(core.store, publisher.client)
        self.schedule: dict[str, list[dt.date]] = self._saved_schedule()
        self.times: Times = calendars.saved_times(core.store)  # {release: {day: time}} from the BLS schedule
        self.schedule_failures = 0  # release calendar refreshes failed in a row (retried: scheduler.py)

    def burst(self, release_id: str, day: dt.date, now: dt.datetime) -> list[Alert]:
        """From a release's time, poll its series until each shows the day's new observation; evaluate each.

        `now` is the burst's start; it reads the clock again for each poll of its own loop.
        """
        log.info("release burst started", extra={"fields": {"release": release_id, "day": day}})
        clock, store = self.core.clock, self.core.store
        at = moment(self.core.config, release_id, day, self.times)
        series = sorted({m.series for m in self.core.config.macro.values() if m.release == release_id})
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
        watch = self.publisher.watch(release_id, day, self._bls_due(day, at), now) if pending else None
        while pending and not self.core.stopping.is_set():
            since = day - dt.timedelta(days=800)  # enough for the prior period, a year back and 12 first prints
            waited = now - at
            try:
                seen = self.publisher.poll(watch, pending, now)  # the publisher first: it has the release second
                if (pending := [s for s in pending if s not in seen]) and \
                        (self.polls.refresh_vintages(now, pending, since) or recheck):
                    recheck = False
                    fred = [s for s in pending if self.published(s, day)]
                    for s in fred:
                        store.put_print_source(s, day, "fred", clock.now())
                    seen += fred
                if seen:
                    fired += self.advance(clock.now())
                    pending = [s for s in pending if s not in seen]
                if pending and waited > RELEASE_LATE and not late:
                    self.alerts.ops("release-late", f"{release_id} of {day}: no new observation of "
                                                    f"{', '.join(pending)} {int(waited.total_seconds() // 60)} min "
                                                    f"after {at:%H:%M}", f"{release_id}:{day}", now)
                    late = True
            except Fenced:  # another instance leads now: its own burst polls
                raise
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

    def _bls_due(self, day: dt.date, at: dt.datetime) -> int:
        """The releases with BLS series scheduled on `day` from `at` on: they share what is left of BLS's day."""
        config = self.core.config
        return sum(1 for rid, days in self.schedule.items() if rid in config.releases and bls_series(config, rid)
                   and day in days and moment(config, rid, day, self.times) >= at)

    def published(self, series: str, day: dt.date) -> bool:
        """Whether the store has an observation of `series` first published on `day`."""
        return any(v.realtime_start == day for v in self.core.store.vintages(series))

    def refresh_schedule(self, now: dt.datetime) -> dict[str, list[dt.date]]:
        """Release days from FRED's calendar, the BLS schedule and the config's `dates:`, and their times; kept in
        the store. A release with no usable calendar raises an ops alert (one per episode) at each refresh.

        A calendar that cannot be read keeps the last good schedule (in memory, else the store's), with the
        config's own dates added; `schedule_failures` counts the failed refreshes in a row, and the scheduler
        tries again within seconds while it is above 0 (jobs.Releases.schedule).
        """
        config, today = self.core.config, now.date()
        start, end = today - dt.timedelta(days=7), today + dt.timedelta(days=SCHEDULE_DAYS)
        bls = self.bls_schedule.events(now) if calendars.uses_bls_schedule(config) else None
        failed = bls is not None and bls.error is not None
        if failed:
            self.polls.outages.source_failed("bls", now, f"schedule: {bls.error}")
        elif bls is not None and bls.fetched:
            self.polls.outages.source_ok("bls", now)
        for rid, release in config.releases.items():
            days = set(self.schedule.get(rid, ())) if bls is not None and bls.events is None else set()
            try:
                days |= set(self.polls.macro.release_schedule(release, start, end))
            except FredError as exc:
                failed = True
                self.polls.outages.source_failed("fred", now, exc.reason)
                days |= set(self.schedule.get(rid, ())) | set(release.dates)
                log.warning("release calendar of %s: %s; keeping the last known %d date(s)", rid, exc.reason,
                            len(days))
            # The times of days gone by stay as they were: a print's moment must not move once it was evaluated.
            times = {d: t for d, t in self.times.get(rid, {}).items() if d < today}
            if release.bls and bls is not None and bls.events is not None:
                timed = calendars.bls_days(config, release.bls, bls.events, start, end)
                days |= timed.keys()
                times |= {d: t for d, t in timed.items() if d >= today}
            self.schedule[rid] = sorted(days)
            self.times[rid] = times
        for rid in set(self.schedule) - set(config.releases):
            del self.schedule[rid]
        self.schedule_failures = self.schedule_failures + 1 if failed else 0
        self._save(now, failed, self._unschedulable(now, bls))
        self.publisher.report(today)
        return self.schedule

    def _unschedulable(self, now: dt.datetime, bls: BlsEvents | None) -> dict[str, dict[str, str]]:
        """An ops alert for each release with no usable calendar (schedule.unschedulable), one per episode: from
        when it became unschedulable for that reason. {release: {since, why}}."""
        config = self.core.config
        events, error = (bls.events, bls.error if bls.events is None else None) if bls is not None else (None, None)
        before = (self.core.store.load_state(calendars.SCHEDULE_STATE) or {}).get("unschedulable") or {}
        out = {}
        for rid, why in unschedulable(config, bool(config.fred.api_key), events, error):
            kept = before.get(rid)
            out[rid] = kept if isinstance(kept, dict) and kept.get("why") == why else \
                {"since": now.isoformat(), "why": why}
            self.alerts.ops("release-unschedulable", f"release {rid} cannot be scheduled, its release rules cannot "
                                                     f"fire: {why}", f"{rid}:{out[rid]['since']}", now)
        return out

    def _save(self, now: dt.datetime, failed: bool, unscheduled: dict[str, dict[str, str]]) -> None:
        store = self.core.store
        saved = store.load_state(calendars.SCHEDULE_STATE) or {}
        store.save_state(calendars.SCHEDULE_STATE, {
            "updated": now.isoformat() if not failed else saved.get("updated"),
            "failing_since": None if not failed else saved.get("failing_since") or now.isoformat(),
            "releases": {r: [d.isoformat() for d in ds] for r, ds in self.schedule.items()},
            "times": calendars.times_to_data({r: t for r, t in self.times.items() if r in self.schedule}),
            "unschedulable": unscheduled})

    def _saved_schedule(self) -> dict[str, list[dt.date]]:
        """The schedule the store kept (the last good one), for the releases of the config."""
        saved = (self.core.store.load_state("schedule") or {}).get("releases", {})
        return {rid: sorted(dt.date.fromisoformat(d) for d in days) for rid, days in saved.items()
                if rid in self.core.config.releases}

    def release_times(self, now: dt.datetime) -> list[tuple[str, dt.date, dt.datetime]]:
        """(release, day, moment) of every scheduled release still ahead of `now`, or under way today."""
        out = []
        for rid, days in self.schedule.items():
            for day in days if rid in self.core.config.releases else ():
                at = moment(self.core.config, rid, day, self.times)
                if now - at < BURST_GIVE_UP:
                    out.append((rid, day, at))
        return sorted(out, key=lambda t: t[2])
