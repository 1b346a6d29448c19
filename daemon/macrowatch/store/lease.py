"""The lease row at rest: which instance leads, with which fencing token, until when.

One row, `name = 'leader'`. Times are epoch seconds read from the database's own clock, so that two hosts
whose clocks disagree still agree on when a lease ends. The token grows by one at each takeover: a write
carrying an older token comes from a leader that has been replaced, and `check` refuses it.

Lease statements are single statements, each committed on its own (autocommit): a lock taken by one never
outlives it, even when the client is cut off right after sending it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Db, Fenced, Tx

NAME = "leader"
# The dialect map of this module: the database's clock, and a read that holds takeovers off until commit.
NOW = {"sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
       "postgresql": "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"}
SHARE = {"sqlite": "", "postgresql": " FOR SHARE"}


@dataclass(frozen=True)
class LeaseRow:
    """The lease as stored, with the database's `now` read in the same statement."""

    holder: str | None
    token: int
    since: float
    renewed_at: float
    expires_at: float
    now: float

    @property
    def held(self) -> bool:
        """Someone holds it and it has not expired."""
        return self.holder is not None and self.expires_at > self.now


def read(db: Db) -> LeaseRow | None:
    """The lease row, or None when no instance has ever led on this store."""
    rows = db.query(f"SELECT holder, token, since, renewed_at, expires_at, {NOW[db.dialect]} FROM lease "
                    "WHERE name = ?", (NAME,))
    if not rows:
        return None
    holder, token, since, renewed, expires, now = rows[0]
    return LeaseRow(holder, int(token), float(since), float(renewed), float(expires), float(now))


def acquire(db: Db, holder: str, ttl: float) -> int | None:
    """Take the lease when nobody holds it or it has expired: the new token; None when another holds it.

    When the row already names `holder` (a takeover whose answer was lost with the connection), its token is
    returned: the caller decides whether it may use it.
    """
    current = read(db)
    if current is not None and current.held:
        # The usual answer to a standby's poll, found without taking the row's lock.
        return current.token if current.holder == holder else None
    now = NOW[db.dialect]
    rows = db.query(
        f"INSERT INTO lease (name, holder, token, since, renewed_at, expires_at) VALUES (?, ?, 1, {now}, {now}, "
        f"{now} + ?) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, token = lease.token + 1, "
        "since = excluded.since, renewed_at = excluded.renewed_at, expires_at = excluded.expires_at "
        "WHERE lease.holder IS NULL OR lease.expires_at <= excluded.since RETURNING token",
        (NAME, holder, float(ttl)))
    return int(rows[0][0]) if rows else None


def renew(db: Db, holder: str, token: int, ttl: float) -> bool:
    """Extend the lease by `ttl` from now; False when it expired or another instance has taken it."""
    now = NOW[db.dialect]
    rows = db.query(f"UPDATE lease SET renewed_at = {now}, expires_at = {now} + ? "
                    f"WHERE name = ? AND holder = ? AND token = ? AND expires_at > {now} RETURNING token",
                    (float(ttl), NAME, holder, token))
    return bool(rows)


def release(db: Db, holder: str, token: int) -> bool:
    """Give the lease up (a clean stop): a standby takes it at its next poll instead of at expiry."""
    now = NOW[db.dialect]
    rows = db.query(f"UPDATE lease SET holder = NULL, expires_at = {now} "
                    "WHERE name = ? AND holder = ? AND token = ? RETURNING token", (NAME, holder, token))
    return bool(rows)


def check(tx: Tx, db: Db, holder: str, token: int) -> None:
    """Refuse the transaction's writes unless `holder` still leads with `token`.

    On PostgreSQL the lease row is read FOR SHARE: a takeover waits until this transaction ends, so every
    write it lets through is ordered before the next leader's first act.
    """
    rows = tx.query(f"SELECT holder, token FROM lease WHERE name = ?{SHARE[db.dialect]}", (NAME,))
    if not rows or (rows[0][0], int(rows[0][1])) != (holder, token):
        now = f"{rows[0][0] or 'nobody'} with token {rows[0][1]}" if rows else "nobody"
        raise Fenced(f"store {db.name}: write refused: {holder} (token {token}) no longer leads; the lease is "
                     f"held by {now}")
