"""SIGHUP reloads: queued, never dropped, and refused whole when they change what only a restart can change.

    reloads = Reloads(apply)        # apply(load) loads the config and swaps it in, or refuses it
    reloads.start()
    reloads.put(load)               # from a signal handler: a put on a SimpleQueue, reentrant
    reloads.close()                 # at the stop: the reload under way finishes, the waiting ones are dropped

One thread applies the requests in turn. The requests that arrive while a reload is under way become one
reload after it, which reads the file as it is by then: a burst of SIGHUPs, each after an edit, ends with
the config of the last edit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from macrowatch.config import Config, ConfigError
from macrowatch.config.problems import Loc, Problem

log = logging.getLogger("macrowatch.reload")

Load = Callable[[], Config]

# What the process reads once, at its start (service.run: the store, its lock or lease, the /healthz server)
# or at each leadership's start (service.build: the sources; Runner: the intraday poll's interval).
RESTART_ONLY = (
    ("store", lambda c: c.store, "use another store"),
    ("health", lambda c: c.health, "serve /healthz and /metrics on another address"),
    ("ha", lambda c: c.ha, "take the lease with other timings"),
    ("sources.fred", lambda c: c.fred, "use other FRED settings"),
    ("sources.bls", lambda c: c.bls, "use other BLS settings"),
    ("sources.yahoo", lambda c: c.yahoo, "use other Yahoo settings"),
    ("poll.intraday", lambda c: c.poll_intraday, "poll intraday prices at another interval"),
)


def check_reloadable(running: Config, new: Config) -> None:
    """ConfigError naming every setting `new` changes that a running daemon cannot take (values never shown)."""
    where = Loc(str(new.files[0]) if new.files else "config")
    problems = [Problem(where, f"{key} changed: a restart is needed to {why}")
                for key, value, why in RESTART_ONLY if value(running) != value(new)]
    if problems:
        raise ConfigError(problems)


def log_refused(exc: ConfigError, logger: logging.Logger = log) -> None:
    """Log every problem of a refused reload, then that the running config stays."""
    for problem in exc.problems:
        logger.error("reload refused: %s", problem)
    logger.error("reload refused: %d problem(s); the previous config keeps running", len(exc.problems))


class Reloads:
    """Reload requests, applied one at a time on a thread of their own, the waiting ones as one."""

    def __init__(self, apply: Callable[[Load], Any], name: str = "reload"):
        self._apply = apply
        self._queue: queue.SimpleQueue[Load | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, load: Load) -> None:
        """Ask for a reload; safe from a signal handler. Requests made before `start` wait for it."""
        self._queue.put(load)

    def close(self, wait: bool = True) -> None:
        """Stop after the reload under way (waited for unless `wait` is False); the waiting ones are dropped."""
        self._queue.put(None)
        if wait and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while (load := self._queue.get()) is not None:
            while not self._queue.empty():  # several waiting: one reload, of the file as it is now
                if (load := self._queue.get_nowait()) is None:
                    return
            try:
                self._apply(load)
            except Exception as exc:  # noqa: BLE001 - the next SIGHUP must still be served
                log.error("reload failed: %s: %s", type(exc).__name__, exc, exc_info=True)
