"""When the daemon's jobs run: one APScheduler 3.11 BackgroundScheduler, DST-safe by construction.

No cron trigger is used. Session closes are found by a level-triggered check every minute ("is there a closed
session whose bars are not evaluated?"), which exchange_calendars answers in UTC, so early closes, holidays
and DST nights need no special case and a missed check is simply made up by the next one. Release bursts
are one-shot DateTriggers at the release's local time converted to an absolute moment (zoneinfo), so an
08:30 release stays 08:30 across DST and no 01:xx job can run twice on the autumn night. APScheduler's
defaults skip a job late by more than 1 s: here a late job runs however late (misfire_grace_time=None),
coalesced, one instance at a time.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED

from macrowatch.config import ConfigError
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.reloads import Load, Reloads, log_refused
from macrowatch.store.base import Fenced, StoreError

log = logging.getLogger("macrowatch.scheduler")

JOB_DEFAULTS = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
STARTUP_RETRY_FIRST = 1.0    # seconds after a failed catch-up at the start, doubling
STARTUP_RETRY_MAX = 60.0     # at most: a store locked or full is used again within a minute of its release
SCHEDULE_RETRY_FIRST = 10.0   # seconds after a failed release calendar refresh, doubling
SCHEDULE_RETRY_MAX = 300.0    # at most; the 6-hourly refresh goes on as usual


class _Scheduler(BackgroundScheduler):
    """BackgroundScheduler, but a stop while its loop submits a one-off job leaves no traceback.

    APScheduler's shutdown marks the scheduler stopped before it takes the job store lock; its loop, having
    just submitted a one-off job (the startup, a release burst, a reload), then removes the job from a
    stopped scheduler, gets JobLookupError, and its thread dies with a traceback on stderr. At that moment
    the job stores are being shut anyway: the removal has nothing left to do.
    """

    def remove_job(self, job_id, jobstore=None):
        try:
            super().remove_job(job_id, jobstore)
        except JobLookupError:
            if self.state != STATE_STOPPED:
                raise


def make_scheduler() -> BackgroundScheduler:
    """The daemon's scheduler: UTC, a late job runs however late, coalesced, one at a time; 4 threads."""
    return _Scheduler(timezone=dt.UTC, job_defaults=JOB_DEFAULTS, executors={"default": ThreadPoolExecutor(4)})


class Runner:
    """Starts the daemon, runs its jobs on a scheduler, reloads and stops it."""

    def __init__(self, daemon: Daemon, *, closes_every: float = 60.0, deliver_every: float = 2.0,
                 heartbeat_every: float = 10.0, schedule_every: float = 6 * 3600.0,
                 intraday_every: float | None = None, on_heartbeat: Callable[[], None] | None = None):
        self.daemon = daemon
        self.every = {"closes": closes_every, "deliver": deliver_every, "heartbeat": heartbeat_every,
                      "schedule": schedule_every}
        if intraday_every is None:
            intraday_every = daemon.config.poll_intraday.as_timedelta().total_seconds()
        if intraday_every > 0:
            self.every["intraday"] = intraday_every
        self.on_heartbeat = on_heartbeat
        self.scheduler = make_scheduler()
        self.scheduler.add_listener(self._on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        self.stopped = threading.Event()
        self.caught_up = threading.Event()
        self.errors = 0
        self._adding = threading.Lock()  # a job adding jobs, or the shutdown: see _add_job
        self._bursts: set[tuple[str, dt.date]] = set()  # (release, day) of the bursts started
        self._startup_failure: tuple[str, dt.datetime] | None = None  # (reason, next try) while catching up fails
        self._reloads = Reloads(self.reload_when_ready)  # SIGHUPs: queued, never dropped (reloads.py)

    # ---- life cycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the scheduler's thread with one job: catch up, then schedule every other job.

        Returns at once, so that the process is ready for systemd while the catch-up (which may fetch years
        of history on a first start) runs; no other job runs before it has finished.
        """
        self.caught_up = threading.Event()
        self.scheduler.add_job(self._startup, id="startup", name="startup")
        self.scheduler.start()
        self._reloads.start()

    def _startup(self) -> None:
        """The first job: the catch-up (retried until it succeeds), then every other job is added."""
        if not self._catch_up():
            return
        jobs = {"closes": self.daemon.check_closes, "deliver": self._deliver,
                "heartbeat": self._heartbeat, "schedule": self._refresh_schedule,
                "intraday": self.daemon.intraday}
        now = self._wall(self.daemon.clock.now())
        for name, seconds in self.every.items():
            # A second delivery run may start beside a slow one, and returns at once (_deliver): with one
            # instance, APScheduler would warn "skipped: maximum number of running instances" every 2 s.
            extra = {"max_instances": 2} if name == "deliver" else {}
            self._add_job(jobs[name], "interval", seconds=seconds, id=name, name=name, next_run_time=now, **extra)
        self._schedule_releases()
        self.caught_up.set()

    def _catch_up(self) -> bool:
        """`daemon.start()`, tried again after a failure (a store locked or full, a bug) with a backoff from
        STARTUP_RETRY_FIRST doubling to STARTUP_RETRY_MAX, until it succeeds (True) or the runner stops (False).

        The catch-up is idempotent (the engine skips what it has applied, the outbox what it has seen), so a
        try cut short is simply made again; until one succeeds no other job runs, and /healthz says why.
        """
        wait = STARTUP_RETRY_FIRST
        while not self.daemon.stopping.is_set():
            try:
                self.daemon.record_start(self.every["heartbeat"])
                self.daemon.start()
                self._startup_failure = None
                return True
            except Fenced:
                raise  # the leadership has ended: the Supervisor stops this runner
            except Exception as exc:  # noqa: BLE001 - any failure: logged with its reason, tried again
                reason = f"{type(exc).__name__}: {exc}"
                self._startup_failure = (reason, self.daemon.clock.now() + dt.timedelta(seconds=wait))
                log.error("catch-up failed: %s; next try in %.0f s (no other job runs until it succeeds)", reason,
                          wait, exc_info=not isinstance(exc, StoreError))
            if self.daemon.clock.wait(wait, self.daemon.stopping):
                break
            wait = min(STARTUP_RETRY_MAX, wait * 2)
        return False

    def startup_status(self) -> str | None:
        """Why the runner has not caught up yet (for /healthz and systemd's status); None once it has."""
        if self.caught_up.is_set():
            return None
        failure = self._startup_failure
        if failure is None:
            return "starting: catching up"
        reason, next_try = failure
        left = max(0.0, (next_try - self.daemon.clock.now()).total_seconds())
        return f"starting: catch-up failed: {reason}; next try in {left:.0f} s"

    def retrying(self) -> bool:
        """Whether the catch-up failed and waits for its next try (alive, not stuck: see service.run)."""
        return not self.caught_up.is_set() and self._startup_failure is not None

    def catching_up(self, stall: float) -> bool:
        """Whether the catch-up is under way and has polled or evaluated within `stall` seconds: working (a first
        start fetches years of history), not stuck (see service.run)."""
        return not self.caught_up.is_set() and time.monotonic() - self.daemon.progress < stall

    def run(self) -> None:
        """Start, then block until `stop()` (a signal handler calls it); finish in-flight jobs and return."""
        self.start()
        while not self.stopped.wait(1.0):
            pass
        self.shutdown()

    def run_until(self, when: dt.datetime) -> None:
        """Start, run until the daemon's clock reads `when`, make the last checks and deliveries, stop."""
        self.start()
        while not self.caught_up.wait(0.1) and not self.stopped.is_set():
            pass
        while not self.stopped.is_set() and self.daemon.clock.now() < when:
            self.stopped.wait(0.02)
        self.shutdown()
        self.daemon.stopping.clear()
        self.daemon.check_closes()
        self.daemon.deliver()

    def stop(self) -> None:
        """Ask the runner to stop; safe from a signal handler."""
        self.daemon.stopping.set()
        self.stopped.set()

    def shutdown(self, wait: bool = True) -> None:
        """Stop the scheduler, waiting for running jobs (an in-flight send finishes) unless `wait` is False."""
        self.daemon.stopping.set()
        with self._adding:
            pass  # a job adding a job finishes that first; none adds one after
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        self._reloads.close(wait=wait)  # a reload under way finishes, as a job does
        if wait:  # a clean stop, its jobs finished: recorded for `status` (a lost leadership's is not one)
            self._record_stop()
        log.info("stopped")

    def _record_stop(self) -> None:
        try:
            self.daemon.record_stop(self.every["heartbeat"])
        except StoreError as exc:  # Fenced too: the lease was lost meanwhile, and the next leader's record stands
            log.warning("could not record the stop in the store: %s", exc)

    def _add_job(self, *args, **kwargs) -> None:
        """add_job from a running job (the catch-up, a schedule refresh), unless the runner is stopping.

        APScheduler's shutdown holds its job store lock while it waits for the running jobs, and add_job takes
        that lock: a job adding a job during a shutdown would wait for ever, and the daemon with it (SIGTERM
        during the catch-up hung). Such a job skips its adds once the shutdown has begun.
        """
        with self._adding:
            if not self.daemon.stopping.is_set():
                self.scheduler.add_job(*args, **kwargs)

    # ---- reload ---------------------------------------------------------------------------------------
    def request_reload(self, load: Load) -> None:
        """Queue a reload (safe from a signal handler): none is dropped, the waiting ones are applied as one."""
        self._reloads.put(load)

    def reload_when_ready(self, load: Load) -> bool | None:
        """`reload` once the catch-up has finished (no job runs before it); None if the runner stops first."""
        while not self.caught_up.wait(0.1):
            if self.daemon.stopping.is_set():
                return None
        if self.daemon.stopping.is_set():
            return None
        return self.reload(load)

    def reload(self, load: Load) -> bool:
        """Load and validate the config, all or nothing: on any problem, or a setting changed that only a restart
        can change (the store...), keep the running one and log every error."""
        try:
            self.daemon.reload(load())
        except ConfigError as exc:
            log_refused(exc, log)
            return False
        self._refresh_schedule()
        return True

    # ---- jobs -----------------------------------------------------------------------------------------
    def _deliver(self) -> None:
        """The delivery job: a pass, or nothing at once while one is under way (a slow receiver)."""
        self.daemon.deliver(wait=False)

    def _heartbeat(self) -> None:
        self.daemon.heartbeat(self.every["heartbeat"])
        if self.on_heartbeat is not None:
            self.on_heartbeat()

    def _refresh_schedule(self) -> None:
        self.daemon.refresh_schedule(self.daemon.clock.now())
        self._schedule_releases()

    def _schedule_releases(self) -> None:
        """A one-shot burst job per scheduled release (one still under way runs at once).

        A burst this runner has started is not added again: a schedule refresh while it polls (or after it)
        would run it a second time, or be turned away as a second instance with a warning.
        """
        now = self.daemon.clock.now()
        for rid, day, at in self.daemon.release_times(now):
            if (rid, day) in self._bursts:
                continue
            self._add_job(self._burst, "date", args=[rid, day], id=f"release:{rid}:{day}",
                          name=f"release {rid} {day}", run_date=self._wall(max(at, now)), replace_existing=True)
        failures = self.daemon.schedule_failures
        if failures:  # the calendar could not be read: the last known schedule runs, and it is asked again soon
            wait = min(SCHEDULE_RETRY_MAX, SCHEDULE_RETRY_FIRST * 2 ** min(failures - 1, 16))
            log.warning("release calendar: refresh failed %d time(s) in a row; next try in %.0f s", failures, wait)
            self._add_job(self._refresh_schedule, "date", id="schedule-retry", name="schedule retry",
                          run_date=self._wall(now + dt.timedelta(seconds=wait)), replace_existing=True)

    def _burst(self, release_id: str, day: dt.date) -> None:
        self._bursts.add((release_id, day))
        self.daemon.burst(release_id, day)

    def _wall(self, when: dt.datetime) -> dt.datetime:
        return self.daemon.clock.to_wall(when)

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning("job %s missed its time %s", event.job_id, event.scheduled_run_time)
            return
        if isinstance(event.exception, Fenced):  # another instance leads now (ha.py): not a bug
            log.warning("job %s stopped: %s", event.job_id, event.exception)
            return
        self.errors += 1
        exc = event.exception
        # The exception's own traceback when it has one; APScheduler's event carries only a formatted copy.
        log.error("job %s failed: %s: %s", event.job_id, type(exc).__name__, exc,
                  exc_info=(type(exc), exc, exc.__traceback__ or event.traceback))
