"""The shared backend: PostgreSQL through psycopg 3, so that several instances can use one store (issue [8]).

The SQL above the seam is portable (`?` parameters, `ON CONFLICT`, TEXT/INTEGER/REAL); this module turns
`?` into psycopg's `%s` and maps the few DDL types that differ (`DIALECT_TYPES`). One connection per Db,
in autocommit mode; `transaction()` says BEGIN and COMMIT itself. A lost connection (a restarted server, a
network cut) is replaced by a new one: a read, or a transaction whose BEGIN found it lost, is retried at once
on the new one, as nothing can be written twice then; a write under way fails with StoreError, and the next
call reconnects.

A network that silently drops packets would leave a call waiting until TCP gives up, many minutes later,
while the caller holds the store's lock — and a leader that cannot learn it lost its lease. So every call
has a deadline: a watchdog thread shuts the socket down when a call outlives it, which fails the call at
once. The server, for its part, ends a session left idle inside a transaction (`IDLE_IN_TX_MS`), so that a
client cut off mid-write does not keep its row locks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from macrowatch.secrets import store_name

from .base import Row, StoreError

CONNECT_TIMEOUT_S = 5      # libpq's own minimum is 2
CALL_TIMEOUT_S = 30.0      # one statement, BEGIN or COMMIT; ours take milliseconds
IDLE_IN_TX_MS = 2000     # our transactions never wait on the client for more than milliseconds
SCHEMA_LOCK = 0x6D6163726F  # pg_advisory_lock key held while migrating ("macro")
DIALECT_TYPES = {
    "REAL": "DOUBLE PRECISION",  # PostgreSQL's REAL is 4 bytes: 7 digits, too few for prices and epochs
    "TEXT": 'TEXT COLLATE "C"',  # byte order, as SQLite compares: ISO times and keys sort the same on both
}
_DDL = re.compile(r"^\s*(CREATE\s+TABLE|ALTER\s+TABLE)\b", re.IGNORECASE)
_TYPE = re.compile(r"\b(" + "|".join(DIALECT_TYPES) + r")\b")
_TABLES = ("SELECT table_name FROM information_schema.tables "
           "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError("a postgresql:// store needs the PostgreSQL driver psycopg 3, which is not installed: "
                         "pip install 'macrowatch[postgres]'") from None
    return psycopg


def masked(url: str) -> str:
    """The URL with its password replaced by ***, for messages and logs (secrets.store_name)."""
    return store_name(url)


@functools.lru_cache(maxsize=512)
def to_postgres(sql: str) -> str:
    """Portable SQL as psycopg takes it: `?` -> `%s`, a literal `%` doubled, DDL types mapped."""
    out, quoted = [], False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if ch == "%":
            out.append("%%")
        elif ch == "?" and not quoted:
            out.append("%s")
        else:
            out.append(ch)
    text = "".join(out)
    return _TYPE.sub(lambda m: DIALECT_TYPES[m.group(1)], text) if _DDL.match(text) else text


def _cut(fd: int) -> None:
    """Shut a socket down under libpq's feet: its wait wakes up with an error at once."""
    try:
        s = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        s.close()


class _Watchdog:
    """Cuts the connection of a call that outlives its deadline (one thread per Db, idle when no call runs)."""

    def __init__(self, timeout: float, name: str):
        self.timeout = timeout
        self.name = name
        self.fired = False
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._fd = -1
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextmanager
    def watch(self, fd: int) -> Iterator[None]:
        with self._cond:
            self._deadline, self._fd, self.fired = time.monotonic() + self.timeout, fd, False
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"store-watchdog {self.name}", daemon=True)
                self._thread.start()
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._deadline = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                _cut(self._fd)  # under the condition: the call is still under way
                self.fired, self._deadline = True, None


class _Tx:
    """A transaction's statements on the Db's connection."""

    def __init__(self, db: PostgresDb, conn: Any):
        self._db, self._conn = db, conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        return self._conn.execute(to_postgres(sql), tuple(params)).rowcount

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one SELECT (or a statement with RETURNING) inside the transaction."""
        cur = self._conn.execute(to_postgres(sql), tuple(params))
        return [tuple(r) for r in cur.fetchall()] if cur.description else []

    def tables(self) -> set[str]:
        """The user tables of the current schema, as this transaction sees them."""
        return {r[0] for r in self.query(_TABLES)}


class PostgresDb:
    """One connection to a PostgreSQL database, shared by the daemon's threads under a lock."""

    dialect = "postgresql"

    def __init__(self, url: str, *, connect_timeout: float = CONNECT_TIMEOUT_S,
                 call_timeout: float = CALL_TIMEOUT_S, application_name: str = "macrowatch"):
        self._psycopg = _driver()
        self.name = masked(url)
        self._conninfo = self._with_defaults(url, connect_timeout, application_name)
        self._lock = threading.RLock()
        self._conn: Any = None
        self._closed = False
        self._watchdog = _Watchdog(call_timeout, self.name)
        with self._lock, self._errors():
            self._connection()  # fail now, with the reason, rather than at the first write

    def _with_defaults(self, url: str, connect_timeout: float, application_name: str) -> str:
        conninfo = self._psycopg.conninfo
        try:
            params = conninfo.conninfo_to_dict(url)
        except self._psycopg.Error as e:
            raise StoreError(f"store {self.name}: not a valid PostgreSQL URL ({e})") from None
        # The URL's own settings win: an operator may need a longer connect timeout over a slow link.
        params.setdefault("connect_timeout", str(max(2, int(connect_timeout))))
        params.setdefault("application_name", application_name)
        for key, value in (("keepalives", "1"), ("keepalives_idle", "10"), ("keepalives_interval", "5"),
                           ("keepalives_count", "3")):
            params.setdefault(key, value)
        return conninfo.make_conninfo("", **params)

    # ---- the Db seam ------------------------------------------------------------------------------------
    def tables(self) -> set[str]:
        """The user tables of the current schema (a database of another application shows its own)."""
        return {r[0] for r in self.query(_TABLES)}

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one SELECT outside any write; retried once on a fresh connection when the old one was lost."""
        with self._lock:
            for attempt in (1, 2):
                conn = None
                try:
                    with self._errors():
                        conn = self._connection()
                        with self._watchdog.watch(conn.pgconn.socket):
                            cur = conn.execute(to_postgres(sql), tuple(params))
                            return [tuple(r) for r in cur.fetchall()] if cur.description else []
                except StoreError:
                    stale = conn is not None and conn.broken and not self._watchdog.fired
                    if attempt == 2 or not stale:
                        raise
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        """A write transaction: committed on exit, rolled back on any exception (never retried)."""
        with self._lock, self._errors():
            conn = self._begin()
            fd = conn.pgconn.socket
            try:
                with self._watchdog.watch(fd):
                    yield _Tx(self, conn)
            except BaseException:
                self._rollback(conn, fd)
                raise
            with self._watchdog.watch(fd):
                conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            self._closed = True
            self._watchdog.close()
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ---- PostgreSQL only --------------------------------------------------------------------------------
    @contextmanager
    def schema_lock(self) -> Iterator[None]:
        """Hold the migration lock: instances starting together migrate one after the other."""
        self.query("SELECT pg_advisory_lock(?)", (SCHEMA_LOCK,))
        try:
            yield
        finally:
            with contextlib.suppress(StoreError):  # when the connection is gone, its session lock is too
                self.query("SELECT pg_advisory_unlock(?)", (SCHEMA_LOCK,))

    # ---- the connection ---------------------------------------------------------------------------------
    def _begin(self) -> Any:
        """BEGIN on the connection; once more on a fresh one when the old one turns out lost (nothing was
        written yet, so nothing can be written twice)."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                with self._watchdog.watch(conn.pgconn.socket):
                    conn.execute("BEGIN")
                return conn
            except self._psycopg.Error:
                if attempt == 2 or not conn.broken or self._watchdog.fired:
                    raise
        raise AssertionError("unreachable")

    def _rollback(self, conn: Any, fd: int) -> None:
        if conn.broken:
            return  # the server rolls back a transaction whose session is gone
        try:
            with self._watchdog.watch(fd):
                conn.execute("ROLLBACK")
        except self._psycopg.Error:
            pass  # the error that brought us here is the one to report

    def _connection(self) -> Any:
        if self._closed:
            raise StoreError(f"store {self.name}: the store is closed")
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            conn.close()
            self._conn = None
        conn = self._psycopg.connect(self._conninfo, autocommit=True)
        try:
            conn.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TX_MS}")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        # Callers handle one exception type, and the message names the store (its password masked).
        try:
            yield
        except self._psycopg.Error as e:
            if self._watchdog.fired:
                raise StoreError(f"store {self.name}: no answer from the server within "
                                 f"{self._watchdog.timeout:g} s; the connection was dropped") from e
            reason = " ".join(str(e).split()) or type(e).__name__
            raise StoreError(f"store {self.name}: {reason}") from e
