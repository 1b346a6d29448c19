"""Leadership: on a shared PostgreSQL store exactly one instance schedules, evaluates and sends (issue [8]).

    lease = lease_for(config)                        # SingleInstance on SQLite: a lock on the store file
    supervisor = Supervisor(lease, store, make_runner)
    supervisor.start()                               # leads when it holds the lease, stands by otherwise

Instances compete for one lease row (store/lease.py): holder `hostname:pid`, a fencing token that grows at
each takeover, and an expiry on the database's clock. The leader renews it on a connection and a thread of
its own; a standby polls it and takes it once it has expired (or was released at a clean stop). Each
leadership is a fresh `scheduler.Runner` over a fresh `Daemon`, which loads the engine state from the store
and catches up; the outbox's alert keys make that catch-up exactly once.

For a lease of L seconds (`ha: {lease: L}`), with POLL = min(1 s, L/10):
- the row is written to expire TTL = L - POLL after each renewal, so a standby polling every POLL takes over
  within L of the leader's last renewal;
- the leader renews every min(2 s, L/5), a call cut after max(1 s, that), so several renewals fit in a TTL;
- the leader trusts its lease until the start of its last successful renewal + TTL - MARGIN, by its own
  monotonic clock: earlier than the database's expiry, which counts from when the statement ran. From then
  on `token()` raises Fenced, so nothing is sent and no evaluation is written, and the Supervisor stops the
  jobs; a write that was already on its way carries the old token and the store refuses it.

A delivery is claimed before its send (store.claim) and the claim cleared when the result is recorded. A
new leader finds the claims its predecessor left — a crash between a send and its record — and counts each
as a possible repeat (`repeats` in the store, `macrowatch_possible_repeats_total`, `macrowatch status`)
before sending it again: at most one repeat per such crash.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from macrowatch.config import ConfigError
from macrowatch.runtime.health import Family
from macrowatch.runtime.reloads import Load, Reloads, log_refused
from macrowatch.store import Fenced, Store, StoreError

log = logging.getLogger("macrowatch.ha")

DEFAULT_LEASE_S = 10.0
LOCK_POLL_S = 0.5  # SQLite: how often a standby tries the store's lock
HOLDER = f"{socket.gethostname()}:{os.getpid()}"
FAMILIES = (
    Family("macrowatch_leader", "gauge", "1 while this instance holds the lease and runs the jobs, else 0."),
    Family("macrowatch_possible_repeats_total", "counter",
           "Deliveries that may reach a receiver twice: found claimed but not recorded at a takeover, or sent "
           "with no answer in time."),
)


@dataclass(frozen=True)
class Timing:
    """The lease's periods, derived from its length (see the module's doc)."""

    lease: float = DEFAULT_LEASE_S

    @property
    def poll(self) -> float:
        return min(1.0, self.lease / 10)

    @property
    def ttl(self) -> float:
        return self.lease - self.poll

    @property
    def renew(self) -> float:
        return min(2.0, self.lease / 5)

    @property
    def margin(self) -> float:
        return min(0.5, self.lease / 20)


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


class SingleInstance:
    """SQLite: one leader per store file, by an exclusive lock on `<store>.lock` held as long as it leads.

    The lock is `flock`: the kernel drops it when its process ends, however it ends (a SIGKILL leaves no
    stale lock), so a restart takes it at once. A second `macrowatch run` on the same file finds it held,
    logs that it stands by (naming the holder, `hostname:pid`, which the lock file holds), polls it, and
    leads once the first has gone: a fresh Runner, whose catch-up makes its leadership exactly once. Once
    taken, the lock is held until `stop`. Deliveries are still claimed, so that a crash between a send and its
    record is counted as a possible repeat by the next leader. Without a path (an in-memory store, which no
    other process can share, or a test), the instance leads from start to stop.
    """

    enabled = False  # no lease row and no fencing token; a store that fails at the takeover is fatal

    def __init__(self, holder: str = HOLDER, path: Path | None = None, poll: float = LOCK_POLL_S):
        self.holder, self.path, self.poll = holder, path, poll
        self.waits_for = f"the lock {path}"
        self._held = path is None
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: str | None = None  # the other holder last named in the log

    def term(self) -> int | None:
        return 0 if self._held else None

    def token(self) -> int | None:
        if not self._held:
            raise Fenced(f"{self.holder} does not lead: another process holds {self.path}")
        return None

    def remaining(self) -> float:
        return float("inf") if self._held else 0.0

    def start(self) -> None:
        """Take the lock, or stand by and poll it in the background; StoreError when there can be no lock file."""
        if self.path is None:
            return
        self._fd = _open_lock(self.path)
        if not self._try():
            self._thread = threading.Thread(target=self._run, name="store-lock", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop polling and let the lock go (closing its file drops it): a standby takes over at its next poll."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll + 5)
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None:
                self._held = False
                os.close(fd)

    def step_down(self, term: int) -> None:
        """Nothing: on SQLite a leadership ends only with `stop` (or the process)."""

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            if self._try():
                return

    def _try(self) -> bool:
        """One attempt at the lock; True when this instance holds it now."""
        with self._lock:
            if self._fd is None or self._stop.is_set():
                return False
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = _read_holder(self._fd) or "another process"
                if other != self._seen:
                    self._seen = other
                    log.warning("standing by: %s waits for the lock %s, held by %s (another macrowatch run on "
                                "this store); it leads when that one stops", self.holder, self.path, other)
                return False
            except OSError as exc:  # a file system without locks: say so once, and keep trying
                if self._seen != str(exc):
                    self._seen = str(exc)
                    log.error("cannot lock %s (%s); standing by", self.path, exc.strerror or exc)
                return False
            try:  # who holds it, for a standby's log line; a read-only lock file is still a lock
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, f"{self.holder}\n".encode(), 0)
            except OSError:
                pass
            self._held = True
        log.info("leading: %s holds the lock %s", self.holder, self.path)
        return True


def _open_lock(path: Path) -> int:
    """The lock file's descriptor (created beside the store; opened read-only when it exists but is not writable)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            raise StoreError(f"store lock {path}: cannot create it ({exc.strerror}); "
                             "`macrowatch run` needs it so that only one instance runs this store") from None


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


class Lease:
    """This instance's hold on the lease row, taken and renewed on a thread (and a store connection) of its own."""

    enabled = True
    waits_for = "the lease"

    def __init__(self, store: Store, lease: float = DEFAULT_LEASE_S, holder: str = HOLDER,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store  # its own connection: a busy or stuck daemon connection must not delay a renewal
        self.timing = Timing(lease)
        self.holder = holder
        self._clock = clock
        self._lock = threading.Lock()
        self._token: int | None = None
        self._valid_until = 0.0
        self._retired: set[int] = set()  # tokens of ended leaderships: never led with again
        self._to_release: list[int] = []  # ended while still held: released by the lease thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing: str | None = None

    # ---- what others ask ------------------------------------------------------------------------------
    def term(self) -> int | None:
        """The fencing token while the lease is held and trusted, else None."""
        with self._lock:
            if self._token is not None and self._clock() < self._valid_until:
                return self._token
            return None

    def token(self) -> int:
        """The fencing token for a write; Fenced when this instance does not lead (or no longer trusts its lease)."""
        token = self.term()
        if token is None:
            raise Fenced(f"{self.holder} does not lead: it holds no lease, or could not renew it in time")
        return token

    def remaining(self) -> float:
        """Seconds the lease is still trusted (0 when not held)."""
        with self._lock:
            return max(0.0, self._valid_until - self._clock()) if self._token is not None else 0.0

    # ---- life cycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start taking and renewing the lease in the background."""
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and give the lease up, so that a standby takes over at its next poll."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.timing.renew + 5)
        with self._lock:
            held = [*self._to_release, *([self._token] if self._token is not None else [])]
            self._token, self._to_release = None, []
        for token in held:
            self._release(token)
        self.store.close()

    def step_down(self, term: int) -> None:
        """Forget the leadership `term` (the Supervisor saw it end); the lease thread releases it if it can."""
        with self._lock:
            self._retired.add(term)
            if self._token == term:
                self._token = None
                self._to_release.append(term)

    # ---- the thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.timing.renew if self._token is not None else self.timing.poll)

    def tick(self) -> None:
        """One renewal, or one attempt to take the lease."""
        with self._lock:
            token, release, self._to_release = self._token, self._to_release, []
        for ended in release:
            self._release(ended)
        if self._stop.is_set():
            return
        started = self._clock()
        try:
            if token is None:
                new = self.store.acquire_lease(self.holder, self.timing.ttl)
                if new is None or new in self._retired:
                    self._recovered()
                    return
                # Renewed at once: the lease's end is then known from this side, also for a row that already
                # named this instance (a takeover whose answer was lost with its connection).
                started = self._clock()
                if self.store.renew_lease(self.holder, new, self.timing.ttl):
                    with self._lock:
                        self._token, self._valid_until = new, started + self.timing.ttl - self.timing.margin
                    log.info("lease taken: %s leads with token %d", self.holder, new)
            else:
                renewed = self.store.renew_lease(self.holder, token, self.timing.ttl)
                with self._lock:
                    if self._token != token:
                        return  # stepped down meanwhile
                    if renewed:
                        self._valid_until = started + self.timing.ttl - self.timing.margin
                    else:
                        self._token = None
                if not renewed:
                    log.error("lease lost: token %d has expired or another instance has taken it", token)
            self._recovered()
        except StoreError as exc:
            self._failed(exc, token)

    def _failed(self, exc: StoreError, token: int | None) -> None:
        reason = str(exc)
        if reason != self._failing:
            self._failing = reason
            if token is not None:
                log.warning("cannot renew the lease (%s); leading for %.1f s more at most", reason, self.remaining())
            else:
                log.warning("cannot reach the lease (%s); standing by", reason)

    def _recovered(self) -> None:
        if self._failing is not None:
            self._failing = None
            log.info("lease: the database answers again")

    def _release(self, token: int) -> None:
        try:
            if self.store.release_lease(self.holder, token):
                log.info("lease released (token %d)", token)
        except StoreError as exc:
            log.warning("could not release the lease (%s); it expires by itself", exc)


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
                 metrics: Any = None, check_every: float = 0.1):
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
