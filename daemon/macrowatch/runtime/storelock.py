"""SQLite's leadership: one leader per store file, by a lock on `<store>.lock` (ha.py runs the leaderships)."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path

from macrowatch.store import Fenced, StoreError

log = logging.getLogger("macrowatch.ha")

LOCK_POLL_S = 0.5  # how often a standby tries the store's lock


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

    def __init__(self, holder: str, path: Path | None = None, poll: float = LOCK_POLL_S):
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
