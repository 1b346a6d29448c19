"""When the daemon's jobs run: one APScheduler 3.11 BackgroundScheduler, DST-safe by construction.

No cron trigger is used. Session closes are found by a level-triggered check every minute ("is there a closed
session whose bars are not evaluated?"), which exchange_calendars answers in UTC, so early closes, holidays
and DST nights need no special case and a missed check is simply made up by the next one. Release bursts
are one-shot DateTriggers at the release's local time converted to an absolute moment (zoneinfo), so an
08:30 release stays 08:30 across DST and no 01:xx job can run twice on the autumn night. APScheduler's
defaults skip a job late by more than 1 s: here a late job runs however late (misfire_grace_time=None),
coalesced, one instance at a time.

The Runner starts a leadership's jobs: first the catch-up alone (catchup.py), then the recurring jobs and a burst
job per release (jobs.py); it reloads the config and stops.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED

from macrowatch.config import ConfigError
from macrowatch.runtime.catchup import CatchUp
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.jobs import Jobs, ReleaseJobs
from macrowatch.runtime.reloads import Load, Reloads, log_refused
from macrowatch.store.base import Fenced, StoreError

log = logging.getLogger("macrowatch.scheduler")

JOB_DEFAULTS = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}


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


def close_clients(daemon: Daemon) -> None:
    """Close the HTTP clients of a leadership's sources: prices, FRED, BLS, the consensus feeds.

    A new leadership (service.py) builds a new Daemon with new sources, so the old ones' kept-alive connections
    would stay open until garbage collection. Each close is tried even if another fails (logged, never raised:
    the stop goes on); a source that is not ours (a test's fake feed) may have no close().
    """
    clients = (("prices", daemon.polls.prices), ("FRED", daemon.polls.macro), ("BLS", daemon.publisher.client),
               ("consensus feeds", daemon.forecasts))
    for name, client in clients:
        close = getattr(client, "close", None)
        if close is None:
            continue
        try:
            close()
        except Exception as exc:
            log.warning("could not close the %s client: %s: %s", name, type(exc).__name__, exc)


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
        self.scheduler = make_scheduler()
        self.scheduler.add_listener(self._on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        self.catch_up = CatchUp(daemon, heartbeat_every)
        self.jobs = Jobs(daemon, self.scheduler, self.every, on_heartbeat)
        self.releases = ReleaseJobs(self.jobs)
        self.stopped = threading.Event()
        self.errors = 0
        self._reloads = Reloads(self.reload_when_ready)  # SIGHUPs: queued, never dropped (reloads.py)

    # ---- life cycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the scheduler's thread with one job: catch up, then schedule every other job.

        Returns at once, so that the process is ready for systemd while the catch-up (which may fetch years
        of history on a first start) runs; no other job runs before it has finished.
        """
        self.scheduler.add_job(self._startup, id="startup", name="startup")
        self.scheduler.start()
        self._reloads.start()

    def _startup(self) -> None:
        """The first job: the catch-up (retried until it succeeds), then every other job is added."""
        if not self.catch_up.run():
            return
        self.jobs.start(self.releases.refresh)
        self.releases.schedule()
        self.catch_up.done.set()

    def run(self) -> None:
        """Start, then block until `stop()` (a signal handler calls it); finish in-flight jobs and return."""
        self.start()
        while not self.stopped.wait(1.0):
            pass
        self.shutdown()

    def run_until(self, when: dt.datetime) -> None:
        """Start, run until the daemon's clock reads `when`, make the last checks and deliveries, stop."""
        self.start()
        while not self.catch_up.done.wait(0.1) and not self.stopped.is_set():
            pass
        clock = self.daemon.clock
        while not self.stopped.is_set() and clock.now() < when:
            self.stopped.wait(0.02)
        self.shutdown()
        self.daemon.stopping.clear()
        self.daemon.check_closes(clock.now())
        self.daemon.alerts.deliver(clock.now())

    def stop(self) -> None:
        """Ask the runner to stop; safe from a signal handler."""
        self.daemon.stopping.set()
        self.stopped.set()

    def shutdown(self, wait: bool = True) -> None:
        """Stop the scheduler, waiting for running jobs (an in-flight send finishes) unless `wait` is False."""
        self.daemon.stopping.set()
        with self.jobs.adding:
            pass  # a job adding a job finishes that first; none adds one after
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        self._reloads.close(wait=wait)  # a reload under way finishes, as a job does
        close_clients(self.daemon)  # the sources' HTTP sessions, their polls finished (or abandoned)
        if wait:  # a clean stop, its jobs finished: recorded for `status` (a lost leadership's is not one)
            self._record_stop()
        log.info("stopped")

    def _record_stop(self) -> None:
        try:
            self.daemon.liveness.record_stop(self.daemon.clock.now(), self.every["heartbeat"])
        except StoreError as exc:  # Fenced too: the lease was lost meanwhile, and the next leader's record stands
            log.warning("could not record the stop in the store: %s", exc)

    # ---- reload ---------------------------------------------------------------------------------------
    def request_reload(self, load: Load) -> None:
        """Queue a reload (safe from a signal handler): none is dropped, the waiting ones are applied as one."""
        self._reloads.put(load)

    def reload_when_ready(self, load: Load) -> bool | None:
        """`reload` once the catch-up has finished (no job runs before it); None if the runner stops first."""
        while not self.catch_up.done.wait(0.1):
            if self.daemon.stopping.is_set():
                return None
        if self.daemon.stopping.is_set():
            return None
        return self.reload(load)

    def reload(self, load: Load) -> bool:
        """Load and validate the config, all or nothing: on any problem, or a setting changed that only a restart
        can change (the store...), keep the running one and log every error."""
        try:
            self.daemon.reload(load(), self.daemon.clock.now())
        except ConfigError as exc:
            log_refused(exc, log)
            return False
        self.releases.refresh()
        return True

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
