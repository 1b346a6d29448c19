"""The daemon's jobs on the scheduler: each reads the clock once and hands the daemon that `now`.

    closes     the bars of each closed session, evaluated (level-triggered, every minute: scheduler.py)
    intraday   the intraday poll, when the config has one
    deliver    what the outbox has due
    heartbeat  the daemon's record in the store, then `on_heartbeat` (systemd's watchdog and status)
    schedule   the release calendar; a one-shot burst job per release (ReleaseJobs), tried again soon after a failure,
               and a one-shot briefing job `before` each release of a release with `briefing:` (briefings.py)
    consensus  the feeds' forecasts of the coming releases (forecasts.py): daily when a macro names a feed, and
               one-shot jobs 60 and 15 minutes before each of its releases (ReleaseJobs)

They are added once the catch-up has succeeded (catchup.py); none is added once the runner stops.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from apscheduler.schedulers.base import BaseScheduler

from macrowatch.runtime.briefings import Briefings
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.forecasts import LEADS

log = logging.getLogger("macrowatch.scheduler")

SCHEDULE_RETRY_FIRST = 10.0   # seconds after a failed release calendar refresh, doubling
SCHEDULE_RETRY_MAX = 300.0    # at most; the 6-hourly refresh goes on as usual


class Jobs:
    """The recurring jobs: added to the scheduler, and run with the clock's `now`."""

    def __init__(self, daemon: Daemon, scheduler: BaseScheduler, every: dict[str, float],
                 on_heartbeat: Callable[[], None] | None = None):
        self.daemon = daemon
        self.scheduler = scheduler
        self.every = every  # seconds between two runs of each job, by its id
        self.on_heartbeat = on_heartbeat
        self.adding = threading.Lock()  # a job adding jobs, or the shutdown: see add

    def add(self, *args, **kwargs) -> None:
        """add_job from a running job (the catch-up, a schedule refresh), unless the runner is stopping.

        APScheduler's shutdown holds its job store lock while it waits for the running jobs, and add_job takes
        that lock: a job adding a job during a shutdown would wait for ever, and the daemon with it (SIGTERM
        during the catch-up hung). Such a job skips its adds once the shutdown has begun.
        """
        with self.adding:
            if not self.daemon.stopping.is_set():
                self.scheduler.add_job(*args, **kwargs)

    def start(self, refresh_schedule: Callable[[], None]) -> None:
        """Add every recurring job, each to run at once and then at its interval."""
        jobs = {"closes": self.closes, "deliver": self.deliver, "heartbeat": self.heartbeat,
                "schedule": refresh_schedule, "intraday": self.intraday}
        now = self.wall(self.daemon.clock.now())
        for name, seconds in self.every.items():
            # A second delivery run may start beside a slow one, and returns at once (deliver): with one
            # instance, APScheduler would warn "skipped: maximum number of running instances" every 2 s.
            extra = {"max_instances": 2} if name == "deliver" else {}
            self.add(jobs[name], "interval", seconds=seconds, id=name, name=name, next_run_time=now, **extra)
        # The forecasts, daily from the start (after the schedule job above, whose releases they are asked for).
        self.add(self.consensus, "interval", days=1, id="consensus", name="consensus", next_run_time=now)

    def closes(self) -> None:
        self.daemon.check_closes(self.daemon.clock.now())

    def consensus(self) -> None:
        """Poll the consensus feeds for the coming releases of the macros that name one (none: nothing to do)."""
        if self.daemon.forecasts.releases():
            now = self.daemon.clock.now()
            self.daemon.forecasts.poll(now, self.daemon.bursts.release_times(now))

    def intraday(self) -> None:
        self.daemon.intraday(self.daemon.clock.now())

    def deliver(self) -> None:
        """The delivery job: a pass, or nothing at once while one is under way (a slow receiver)."""
        self.daemon.alerts.deliver(self.daemon.clock.now(), wait=False)

    def heartbeat(self) -> None:
        self.daemon.liveness.heartbeat(self.daemon.clock.now(), self.every["heartbeat"])
        if self.on_heartbeat is not None:
            self.on_heartbeat()

    def wall(self, when: dt.datetime) -> dt.datetime:
        """The wall-clock moment at which the daemon's clock reads `when` (the scheduler waits on the wall clock)."""
        return self.daemon.clock.to_wall(when)


class ReleaseJobs:
    """The schedule job: the release calendar refreshed, and a one-shot burst job added per scheduled release."""

    def __init__(self, jobs: Jobs):
        self.jobs = jobs
        self.daemon = jobs.daemon
        self._bursts: set[tuple[str, dt.date]] = set()  # (release, day) of the bursts started
        self._briefed: set[tuple[str, dt.date]] = set()  # (release, day) of the briefings started
        self.briefings = Briefings(self.daemon)

    def refresh(self) -> None:
        """Refresh the release calendar, then schedule its releases."""
        self.daemon.bursts.refresh_schedule(self.daemon.clock.now())
        self.schedule()

    def schedule(self) -> None:
        """A one-shot burst job per scheduled release (one still under way runs at once).

        A burst this runner has started is not added again: a schedule refresh while it polls (or after it)
        would run it a second time, or be turned away as a second instance with a warning.
        """
        bursts, jobs = self.daemon.bursts, self.jobs
        now = self.daemon.clock.now()
        for rid, day, at in bursts.release_times(now):
            self._briefing_job(rid, day, at, now)
            if (rid, day) in self._bursts:
                continue
            jobs.add(self._burst, "date", args=[rid, day], id=f"release:{rid}:{day}", name=f"release {rid} {day}",
                     run_date=jobs.wall(max(at, now)), replace_existing=True)
            for lead in LEADS if rid in self.daemon.forecasts.releases() else ():
                if at - lead > now:
                    minutes = int(lead.total_seconds() // 60)
                    jobs.add(jobs.consensus, "date", id=f"consensus:{rid}:{day}:{minutes}",
                             name=f"consensus {rid} {day} -{minutes}m", run_date=jobs.wall(at - lead),
                             replace_existing=True)
        failures = bursts.schedule_failures
        if failures:  # the calendar could not be read: the last known schedule runs, and it is asked again soon
            wait = min(SCHEDULE_RETRY_MAX, SCHEDULE_RETRY_FIRST * 2 ** min(failures - 1, 16))
            log.warning("release calendar: refresh failed %d time(s) in a row; next try in %.0f s", failures, wait)
            jobs.add(self.refresh, "date", id="schedule-retry", name="schedule retry",
                     run_date=jobs.wall(now + dt.timedelta(seconds=wait)), replace_existing=True)

    def _briefing_job(self, rid: str, day: dt.date, at: dt.datetime, now: dt.datetime) -> None:
        """A one-shot briefing job `before` the release (at once when that moment has passed and the release has
        not come yet: a start or a takeover in between); one this runner has started is not added again."""
        brief = self.daemon.config.releases[rid].briefing
        if brief is None or now >= at or (rid, day) in self._briefed:
            return
        self.jobs.add(self._briefing, "date", args=[rid, day], id=f"briefing:{rid}:{day}",
                      name=f"briefing {rid} {day}", replace_existing=True,
                      # In UTC: `before` is elapsed time, also across a DST change (local arithmetic is not).
                      run_date=self.jobs.wall(max(at.astimezone(dt.UTC) - brief.before.as_timedelta(), now)))

    def _briefing(self, release_id: str, day: dt.date) -> None:
        self._briefed.add((release_id, day))
        self.briefings.send(release_id, day, self.daemon.clock.now())

    def _burst(self, release_id: str, day: dt.date) -> None:
        self._bursts.add((release_id, day))
        self.daemon.bursts.burst(release_id, day, self.daemon.clock.now())
