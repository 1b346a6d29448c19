"""The embedded backend: one SQLite file, WAL journal, one short transaction per write."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .base import Row, StoreError

# Another process (a `macrowatch status` beside the daemon) may hold the write lock for a moment; wait for it
# rather than fail. Writes are a few rows each, so 10 s is a very long time.
BUSY_TIMEOUT_S = 10.0
WAL_RETRY_S = 0.02
_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"


class _Tx:
    """A transaction's statements on the connection's cursor."""

    def __init__(self, cur: sqlite3.Cursor):
        self._cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        return self._cur.execute(sql, params).rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one SELECT inside the transaction."""
        return [tuple(r) for r in self._cur.execute(sql, params).fetchall()]

    def tables(self) -> set[str]:
        """The user tables, as this transaction sees them."""
        return {r[0] for r in self.query(_TABLES)}


def _read_only_uri(path: Path) -> str:
    """A URI that reads the file without writing or creating anything, even where the reader may not write.

    A WAL store is read through its `-wal` and `-shm` files. While they exist (a daemon has the store open, or
    died with it open) `mode=ro` reads through them. Without them every commit is in the file itself, and
    `mode=ro` alone would create them (left behind, owned by the reader) or fail where it cannot; `immutable=1`
    reads the file as it is instead. A writer starting meanwhile writes to a new `-wal`, not to the file, so
    the read is of the store as it was a moment before.
    """
    uri = f"{path.resolve().as_uri()}?mode=ro"
    return uri if Path(f"{path}-wal").exists() else f"{uri}&immutable=1"


class SqliteDb:
    """One connection to a SQLite file, shared by the daemon's threads under a lock."""

    dialect = "sqlite"

    def __init__(self, path: Path, read_only: bool = False):
        self.name = str(path)
        self._lock = threading.RLock()
        try:
            # isolation_level=None: no implicit transactions; `transaction()` says BEGIN and COMMIT itself.
            # check_same_thread=False: scheduler jobs run in threads; the lock serialises them.
            self._conn = sqlite3.connect(_read_only_uri(path) if read_only else path, timeout=BUSY_TIMEOUT_S,
                                         isolation_level=None, check_same_thread=False, uri=read_only)
        except sqlite3.Error as e:
            raise StoreError(f"store {self.name}: cannot open it ({e})") from e

    def tables(self) -> set[str]:
        """The user tables; a file that is not SQLite raises StoreError here, before anything is written."""
        try:
            rows = self.query(_TABLES)
        except StoreError as e:
            if isinstance(e.__cause__, sqlite3.DatabaseError) and "not a database" in str(e.__cause__):
                raise StoreError(f"store {self.name} is not a macrowatch store: the file is not "
                                 "an SQLite database") from None
            raise
        return {r[0] for r in rows}

    def tune(self) -> None:
        """Per-file and per-connection settings; called only once the file is known to be ours."""
        mode = self._wal()
        if str(mode).lower() != "wal":
            raise StoreError(f"store {self.name}: cannot use the WAL journal (got {mode!r}); "
                             "is it on a network file system?")
        # NORMAL in WAL mode: the last commits can be lost on a power cut or OS crash (never on a process
        # crash), whole, and the file is never corrupted. Bars and vintages are re-fetched; a lost
        # mark_sent repeats one send, which the delivery contract allows anyway. FULL would fsync every commit.
        self._pragma("PRAGMA synchronous = NORMAL")
        self._pragma("PRAGMA foreign_keys = ON")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one SELECT outside any write."""
        with self._lock, self._errors():
            return [tuple(r) for r in self._conn.execute(sql, params).fetchall()]

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        """A write transaction: committed on exit, rolled back on any exception."""
        with self._lock, self._errors():
            # IMMEDIATE takes the write lock up front: a read-then-write transaction never deadlocks
            # against another writer, it waits (busy timeout) and then sees the other's result.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Tx(self._conn.cursor())
            except BaseException:
                self._conn.rollback()
                raise
            self._conn.commit()

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            self._conn.close()

    def _wal(self) -> Any:
        # Switching a new file to WAL needs a moment's exclusive lock, for which SQLite does not wait (the busy
        # handler is not called): several processes opening a new store at once retry here.
        for _ in range(int(BUSY_TIMEOUT_S / WAL_RETRY_S)):
            try:
                return self._pragma("PRAGMA journal_mode = WAL")
            except StoreError as e:
                if not isinstance(e.__cause__, sqlite3.OperationalError) or "locked" not in str(e.__cause__):
                    raise
            time.sleep(WAL_RETRY_S)
        return self._pragma("PRAGMA journal_mode = WAL")

    def _pragma(self, sql: str) -> Any:
        rows = self.query(sql)
        return rows[0][0] if rows else None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        # Callers handle one exception type, and the message names the file.
        try:
            yield
        except sqlite3.Error as e:
            raise StoreError(f"store {self.name}: {e}") from e
