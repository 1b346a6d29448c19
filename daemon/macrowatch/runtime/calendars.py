"""When each scheduled release comes out: its day from FRED's calendar, the BLS schedule or `dates:`, and its time
from the BLS schedule when that has the day (BLS publishes at the second it names), else the release's `time:`.

The daemon's schedule is saved in the store (state "schedule": `releases` {id: [days]}, `times` {id: {day: time}}
for the days the BLS schedule timed, `unschedulable` {id: since}); `status`, the prints' moments (history.py) and
the charts read it back with `saved_times` and `moment`. The times of past days are kept for good: a print's
moment must not change once the engine has applied it. The BLS schedule itself (bls.ics, keyless) is fetched at
most once a day and kept in the store (state "bls-schedule"); while it cannot be read the last copy stands.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from macrowatch.config.types import Config
from macrowatch.sources.base import BlsError
from macrowatch.sources.bls import BlsClient
from macrowatch.sources.schedule import Event, matches
from macrowatch.store import Store

log = logging.getLogger("macrowatch.app")

SCHEDULE_STATE = "schedule"
BLS_STATE = "bls-schedule"
BLS_REFRESH = dt.timedelta(days=1)  # the BLS schedule changes a few times a year: once a day is plenty

Times = dict[str, dict[dt.date, dt.time]]  # release -> {day: time of day (config timezone)} from the BLS schedule


def moment(config: Config, release_id: str, day: dt.date,
           times: Mapping[str, Mapping[dt.date, dt.time]]) -> dt.datetime:
    """When the release comes out on `day`: the BLS schedule's time for that day, else the release's `time:`."""
    release = config.releases[release_id]
    at = times.get(release_id, {}).get(day, release.time)
    return dt.datetime.combine(day, at, zoneinfo.ZoneInfo(config.timezone))


def saved_times(store: Store) -> Times:
    """The release times the daemon saved with its schedule (none from a store without them)."""
    return times_from_data((store.load_state(SCHEDULE_STATE) or {}).get("times") or {})


def times_from_data(data: Mapping[str, Mapping[str, str]]) -> Times:
    return {rid: {dt.date.fromisoformat(d): dt.time.fromisoformat(t) for d, t in days.items()}
            for rid, days in data.items()}


def times_to_data(times: Times) -> dict[str, dict[str, str]]:
    return {rid: {d.isoformat(): t.isoformat() for d, t in sorted(days.items())} for rid, days in times.items()}


def bls_days(config: Config, title: str, events: Sequence[Event], start: dt.date,
             end: dt.date) -> dict[dt.date, dt.time]:
    """{day: time} of the BLS schedule's releases of `title` from `start` to `end`, in the config's timezone."""
    tz = zoneinfo.ZoneInfo(config.timezone)
    local = [e.at.astimezone(tz) for e in events if matches(e.summary, title)]
    return {at.date(): at.time() for at in sorted(local) if start <= at.date() <= end}


def uses_bls_schedule(config: Config) -> bool:
    """Whether a release of the config takes its days from the BLS schedule."""
    return any(r.bls for r in config.releases.values())


class BlsEvents(NamedTuple):
    """The BLS schedule as the daemon has it: `events` (None: no copy at all), why it could not be read now
    (`error`; a kept copy may stand meanwhile), and whether it was read from BLS just now (`fetched`)."""

    events: list[Event] | None
    error: str | None = None
    fetched: bool = False


class BlsSchedule:
    """The BLS schedule for the daemon: fetched at most once a day, kept in the store, the last copy standing while
    it cannot be read."""

    def __init__(self, store: Store, client: BlsClient | None):
        self.store = store
        self.client = client

    def events(self, now: dt.datetime) -> BlsEvents:
        """The schedule's events: the store's copy when under a day old, else BLS's (the copy kept on a failure)."""
        saved = self.store.load_state(BLS_STATE) or {}
        kept = [Event(s, dt.datetime.fromisoformat(at)) for s, at in saved.get("events") or []] or None
        fetched = saved.get("fetched")
        if kept is not None and fetched and now - dt.datetime.fromisoformat(fetched) < BLS_REFRESH:
            return BlsEvents(kept)
        if self.client is None:
            return BlsEvents(kept, None if kept is not None else "no BLS client")
        try:
            events = self.client.schedule()
        except BlsError as exc:
            log.warning("BLS schedule: %s; %s", exc.reason,
                        f"keeping the copy of {fetched[:10]}" if kept is not None and fetched else "no copy kept")
            return BlsEvents(kept, exc.reason)
        self.store.save_state(BLS_STATE, {"fetched": now.isoformat(),
                                          "events": [[e.summary, e.at.isoformat()] for e in events]})
        return BlsEvents(events, None, True)
