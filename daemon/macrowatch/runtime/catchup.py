"""The first job of a leadership: the catch-up, tried again with a backoff until it succeeds.

The catch-up (`Daemon.start`: fetch what is missing, evaluate what happened while down; a first start fetches
years of history) is idempotent: the engine skips what it has applied, the outbox what it has seen, so a try cut
short is simply made again. Until one succeeds no other job runs (scheduler.py), and /healthz and systemd's
status say why; systemd's watchdog is fed meanwhile while it works (service.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from macrowatch.runtime.daemon import Daemon
from macrowatch.store.base import Fenced, StoreError

log = logging.getLogger("macrowatch.scheduler")

STARTUP_RETRY_FIRST = 1.0    # seconds after a failed catch-up at the start, doubling
STARTUP_RETRY_MAX = 60.0     # at most: a store locked or full is used again within a minute of its release


class CatchUp:
    """A leadership's catch-up, and how it is going (for /healthz, systemd's status and its watchdog)."""

    def __init__(self, daemon: Daemon, every: float):
        self.daemon = daemon
        self.every = every  # the seconds between heartbeats, recorded with the start
        self.done = threading.Event()  # set by the Runner once the other jobs are added too
        self._failure: tuple[str, dt.datetime] | None = None  # (reason, next try) while catching up fails

    def run(self) -> bool:
        """`daemon.start(now)`, tried again after a failure (a store locked or full, a bug) with a backoff from
        STARTUP_RETRY_FIRST doubling to STARTUP_RETRY_MAX, until it succeeds (True) or the daemon stops (False)."""
        daemon, clock = self.daemon, self.daemon.clock
        wait = STARTUP_RETRY_FIRST
        while not daemon.stopping.is_set():
            try:
                now = clock.now()
                daemon.liveness.record_start(now, self.every)
                daemon.start(now)
                self._failure = None
                return True
            except Fenced:
                raise  # the leadership has ended: the Supervisor stops this runner
            except Exception as exc:  # noqa: BLE001 - any failure: logged with its reason, tried again
                reason = f"{type(exc).__name__}: {exc}"
                self._failure = (reason, clock.now() + dt.timedelta(seconds=wait))
                log.error("catch-up failed: %s; next try in %.0f s (no other job runs until it succeeds)", reason,
                          wait, exc_info=not isinstance(exc, StoreError))
            if clock.wait(wait, daemon.stopping):
                break
            wait = min(STARTUP_RETRY_MAX, wait * 2)
        return False

    def status(self) -> str | None:
        """Why the runner has not caught up yet (for /healthz and systemd's status); None once it has."""
        if self.done.is_set():
            return None
        failure = self._failure
        if failure is None:
            return "starting: catching up"
        reason, next_try = failure
        left = max(0.0, (next_try - self.daemon.clock.now()).total_seconds())
        return f"starting: catch-up failed: {reason}; next try in {left:.0f} s"

    def retrying(self) -> bool:
        """Whether the catch-up failed and waits for its next try (alive, not stuck: see service.run)."""
        return not self.done.is_set() and self._failure is not None

    def working(self, stall: float) -> bool:
        """Whether the catch-up is under way and has polled or evaluated within `stall` seconds: working (a first
        start fetches years of history), not stuck (see service.run)."""
        return not self.done.is_set() and time.monotonic() - self.daemon.progress < stall
