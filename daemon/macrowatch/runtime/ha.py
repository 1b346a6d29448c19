"""Leadership: on a shared PostgreSQL store exactly one instance schedules, evaluates and sends (issue [8]).

    lease = lease_for(config)                        # SingleInstance on SQLite: a lock on the store file
    supervisor = Supervisor(lease, store, make_runner)
    supervisor.start()                               # leads when it holds the lease, stands by otherwise

The lease is a `Lease` on PostgreSQL (leaseholder.py: the lease row, its renewals and their timings) and a
`SingleInstance` on SQLite (storelock.py: a lock on the store file). Each leadership is a fresh
`scheduler.Runner` over a fresh `Daemon`, which loads the engine state from the store and catches up; the
outbox's alert keys make that catch-up exactly once.

A delivery is claimed before its send (store.claim) and the claim cleared when the result is recorded. A
new leader finds the claims its predecessor left — a crash between a send and its record — and counts each
as a possible repeat (`repeats` in the store, `macrowatch_possible_repeats_total`, `macrowatch status`)
before sending it again: at most one repeat per such crash.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from macrowatch.config import ConfigError
from macrowatch.runtime.health import Family, MetricsRegistry
from macrowatch.runtime.leaseholder import DEFAULT_LEASE_S, Lease, Timing
from macrowatch.runtime.reloads import Load, Reloads, log_refused
from macrowatch.runtime.storelock import SingleInstance
from macrowatch.store import Fenced, Store, StoreError

log = logging.getLogger("macrowatch.ha")

HOLDER = f"{socket.gethostname()}:{os.getpid()}"
FAMILIES = (
    Family("macrowatch_leader", "gauge", "1 while this instance holds the lease and runs the jobs, else 0."),
    Family("macrowatch_possible_repeats_total", "counter",
           "Deliveries that may reach a receiver twice: found claimed but not recorded at a takeover, or sent "
           "with no answer in time."),
)


class Leadership(Protocol):
    """What the Supervisor and the store need of a lease (store.Fence, plus its life cycle)."""

    holder: str
    enabled: bool
    waits_for: str  # what a standby waits for, for /healthz and systemd's status line

    def term(self) -> int | None:
        """The token of the leadership under way, None while standing by."""
        ...

    def token(self) -> int | None:
        """For fenced writes: the token, None when nothing is checked; raises Fenced while standing by."""
        ...

    def remaining(self) -> float:
        """Seconds the lease is still trusted."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def step_down(self, term: int) -> None: ...


class TermFence:
    """The fence of one leadership (store.Fence): its writes pass only while the lease is held with its token.

    A leadership that ended may leave a job behind (stuck on a cut connection); if this instance leads again
    later, with a new token, that job's writes are still refused.
    """

    def __init__(self, lease: Leadership, term: int):
        self.lease, self.term, self.holder = lease, term, lease.holder

    def token(self) -> int | None:
        if self.lease.term() != self.term:
            raise Fenced(f"{self.holder}: the leadership with token {self.term} has ended")
        return self.lease.token()


def lease_for(store_target: Any, lease: float | None, holder: str = HOLDER) -> SingleInstance | Lease:
    """The leadership for a store: a Lease on its own connection for PostgreSQL, for SQLite a SingleInstance
    locking `<store>.lock` beside the file that `open_store` opens for the same target."""
    from macrowatch.store import default_path, is_url, open_store

    if not is_url(store_target):
        path = Path(store_target).expanduser() if store_target is not None else default_path()
        in_memory = str(store_target) == ":memory:"  # no file, no other process: nothing to lock
        return SingleInstance(holder, None if in_memory else path.with_name(path.name + ".lock"))
    timing = Timing(lease or DEFAULT_LEASE_S)
    # Cut a renewal that hangs (a partitioned network) after one renewal period: the leader must learn in
    # time that it cannot renew.
    return Lease(open_store(store_target, call_timeout=max(1.0, timing.renew)), timing.lease, holder)


class Supervisor:
    """Runs the daemon's jobs only while this instance leads: a fresh Runner for each leadership.

    Offers what service.py needs of a Runner: start, stop, shutdown, stopped, request_reload, and `runner`,
    the Runner of the leadership under way (None while standing by).
    """

    def __init__(self, lease: Leadership, store: Store, make_runner: Callable[[Store], Any], *,
                 metrics: MetricsRegistry | None = None, check_every: float = 0.1):
        self.lease = lease
        self.store = store
        self.make_runner = make_runner
        self.metrics = metrics
        self.check_every = check_every
        self.stopped = threading.Event()
        self.runner: Any = None
        self.failed: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._reloads = Reloads(self._reload)  # SIGHUPs: queued, never dropped (reloads.py)
        self._leading = threading.Lock()  # a leadership's start and a standby's reload, one after the other
        if metrics is not None:
            for family in FAMILIES:
                metrics.define(family)
            metrics.set("macrowatch_leader", 0)

    # ---- life cycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start competing for the lease; lead when it is taken. Returns at once."""
        self.lease.start()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()
        self._reloads.start()

    def stop(self) -> None:
        """Ask everything to stop; safe from a signal handler."""
        self.stopped.set()
        runner = self.runner
        if runner is not None:
            runner.stop()

    def shutdown(self) -> None:
        """Stop: the jobs under way finish (an in-flight send is recorded), then the lease is released."""
        self.stop()
        if self._thread is not None:
            self._thread.join()
        self._reloads.close()
        self.lease.stop()

    def request_reload(self, load: Load) -> None:
        """Queue a reload (safe from a signal handler): none is dropped, the waiting ones are applied as one."""
        self._reloads.put(load)

    def _reload(self, load: Load) -> None:
        """Reload the running leadership's config; a standby only validates it (a takeover starts from it)."""
        while not self.stopped.is_set():
            with self._leading:
                runner = self.runner
                if runner is None:
                    try:
                        load()
                    except ConfigError as exc:
                        log_refused(exc, log)
                        return
                    log.info("config reloaded (standing by)")
                    return
            if runner.reload_when_ready(load) is not None:
                return
            self.stopped.wait(self.check_every)  # that leadership ended first: the next one (or the standby) reloads

    # ---- the thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        announced = False
        try:
            while not self.stopped.is_set():
                term = self.lease.term()
                if term is None:
                    if not announced and self.lease.enabled:
                        log.info("standing by: %s waits for the lease", self.lease.holder)
                        announced = True
                    self.stopped.wait(self.check_every)
                    continue
                announced = False
                self._lead(term)
        except Exception as exc:  # noqa: BLE001 - reported by service.run as exit code 1
            self.failed = exc
            log.error("leadership failed: %s: %s", type(exc).__name__, exc, exc_info=True)
            self.stopped.set()

    def _lead(self, term: int) -> None:
        if self.lease.enabled:
            log.info("leading: %s holds the lease with token %d", self.lease.holder, term)
        store = self.store.with_fence(TermFence(self.lease, term))
        try:
            self._take_over(store)
            with self._leading:  # a standby's reload ends before (this leadership starts from its config) or waits
                runner = self.make_runner(store)  # a fresh Daemon: it loads the engine state the last leader saved
                self.runner = runner
        except StoreError as exc:
            if not self.lease.enabled:
                raise  # one instance on SQLite: a store it cannot use is fatal, as at any start
            log.warning("cannot take over (%s); standing by", exc)
            self.lease.step_down(term)
            self.stopped.wait(1.0)
            return
        self._gauge(1)
        runner.start()
        # Woken at the lease's local deadline itself, not up to a check later: the jobs stop at that moment.
        while not self.stopped.wait(min(self.check_every, max(0.001, self.lease.remaining()))):
            if self.lease.term() != term:
                break
        if self.stopped.is_set():
            runner.shutdown()
        else:
            # Lost: the jobs under way are not waited for (one may hang on a cut connection); every send
            # and evaluation write checks the lease first, so none of them acts any more.
            log.error("lost the lease (token %d): stopped scheduling, evaluating and sending; standing by",
                      term)
            runner.stop()
            runner.shutdown(wait=False)
            self.lease.step_down(term)
        self.runner = None
        self._gauge(0)

    def _take_over(self, store: Store) -> None:
        for key, channel, by, at in store.take_over():
            log.warning("possible repeat: alert %s to channel %s was claimed by %s at %s and its send not "
                        "recorded; it is sent again (at most one repeat)", key, channel, by,
                        at.isoformat(timespec="seconds"))
            if self.metrics is not None:
                self.metrics.inc("macrowatch_possible_repeats_total")

    def _gauge(self, value: int) -> None:
        if self.metrics is not None:
            self.metrics.set("macrowatch_leader", value)
