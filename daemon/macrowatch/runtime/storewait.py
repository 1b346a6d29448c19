"""Waiting for a PostgreSQL store at start: the daemon stays up, says why, and tries again.

    store = wait_for(lambda: open_store_for(config), stopping, on_wait)   # None: stopped while waiting

A daemon that exits when its database cannot be reached at start is restarted by systemd every RestartSec, for
ever: a restart loop, which fills the journal and changes nothing. So `wait_for` tries to open the store and,
after each failure, logs the reason (a warning; an error when it looks like a mistake that waiting will not fix,
such as a wrong password or database name, said so each time), waits 1 s, doubling to 30 s, and tries again,
until the store opens or the daemon is asked to stop. Each attempt runs on a thread of its own, so that a stop
is never stuck behind a connect waiting for its timeout; meanwhile `on_wait(reason)` is called about once a
second (the service feeds systemd's watchdog and /healthz with it).

Only what the database (its driver) raised is waited for. A StoreError with no driver error behind it was raised
before any server was asked (no driver installed, a URL that is not one) or from what the server holds (not a
macrowatch store, a newer schema): waiting cannot change it, and `wait_for` raises it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from macrowatch.store import StoreError

log = logging.getLogger("macrowatch.service")

T = TypeVar("T")
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
TICK_S = 1.0     # how often on_wait is called while waiting
POLL_S = 0.05    # how soon a stop is seen while an attempt runs

# libpq's words for a refusal that is the config's (or the database's set-up), not the network's.
_CONFIG_MISTAKE = re.compile(
    r"password authentication failed|authentication failed|no password supplied|does not exist|"
    r"no pg_hba\.conf entry|pg_hba\.conf rejects|permission denied|certificate|server does not support SSL",
    re.IGNORECASE)
CONFIG_HINT = ("this looks like a mistake in the store's URL or the database's set-up (user, password, database, "
               "pg_hba.conf, permissions) that waiting alone will not fix; still trying")


def waitable(exc: BaseException) -> bool:
    """True for a store error raised by the database driver (unreachable, refused, timed out, not set up yet)."""
    return isinstance(exc, StoreError) and exc.__cause__ is not None


def config_mistake(reason: str) -> bool:
    """Whether a failure's reason names a wrong user, password, database or permission rather than the network."""
    return _CONFIG_MISTAKE.search(reason) is not None


def wait_for(open_: Callable[[], T], stopped: threading.Event, on_wait: Callable[[str], None], *,
             first: float = FIRST_DELAY_S, cap: float = MAX_DELAY_S, tick: float = TICK_S) -> T | None:
    """`open_()`'s result once it succeeds; None when `stopped` is set first. Raises what is not `waitable`."""
    delay, attempt = first, 0
    reason = "connecting"  # the first attempt, before any failure
    while not stopped.is_set():
        attempt += 1
        done, value, error = _attempt(open_, stopped, lambda r=reason: on_wait(r), tick)
        if not done:
            return None
        if error is None:
            if attempt > 1:
                log.info("store opened (attempt %d)", attempt)
            return value
        if not waitable(error):
            raise error
        reason = str(error)
        if config_mistake(reason):
            log.error("waiting for the store (attempt %d): %s; %s; next try in %g s", attempt, reason, CONFIG_HINT,
                      delay)
        else:
            log.warning("waiting for the store (attempt %d): %s; next try in %g s", attempt, reason, delay)
        on_wait(reason)
        deadline = time.monotonic() + delay
        while not stopped.wait(min(tick, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                break
            on_wait(reason)
        delay = min(cap, delay * 2)
    return None


def _attempt(open_: Callable[[], T], stopped: threading.Event, on_tick: Callable[[], None],
             tick: float) -> tuple[bool, T | None, BaseException | None]:
    """One `open_()` on a thread: (done, value, error); done is False when `stopped` came first (the attempt is
    left to finish on its own: the process is on its way out)."""
    box: dict[str, object] = {}
    finished = threading.Event()

    def work() -> None:
        try:
            box["value"] = open_()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, which decides
            box["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=work, name="store-open", daemon=True).start()
    next_tick = time.monotonic() + tick
    while not finished.wait(POLL_S):
        if stopped.is_set():
            return False, None, None
        if time.monotonic() >= next_tick:  # an attempt takes up to the connect timeout, or a statement's
            on_tick()
            next_tick += tick
    error = box.get("error")
    return True, box.get("value"), error if isinstance(error, BaseException) else None  # type: ignore[return-value]
