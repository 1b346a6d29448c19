"""PostgreSQL's leadership: this instance's hold on the shared lease row (store/lease.py; ha.py runs the rest).

Instances compete for one lease row: holder `hostname:pid`, a fencing token that grows at each takeover, and an
expiry on the database's clock. The leader renews it on a connection and a thread of its own; a standby polls it
and takes it once it has expired (or was released at a clean stop).

For a lease of L seconds (`ha: {lease: L}`), with POLL = min(1 s, L/10):
- the row is written to expire TTL = L - POLL after each renewal, so a standby polling every POLL takes over
  within L of the leader's last renewal;
- the leader renews every min(2 s, L/5), a call cut after max(1 s, that), so several renewals fit in a TTL;
- the leader trusts its lease until the start of its last successful renewal + TTL - MARGIN, by its own
  monotonic clock: earlier than the database's expiry, which counts from when the statement ran. From then
  on `token()` raises Fenced, so nothing is sent and no evaluation is written, and the Supervisor stops the
  jobs; a write that was already on its way carries the old token and the store refuses it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from macrowatch.store import Fenced, Store, StoreError

log = logging.getLogger("macrowatch.ha")

DEFAULT_LEASE_S = 10.0


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


class Lease:
    """This instance's hold on the lease row, taken and renewed on a thread (and a store connection) of its own."""

    enabled = True
    waits_for = "the lease"

    def __init__(self, store: Store, lease: float, holder: str, clock: Callable[[], float] = time.monotonic):
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
