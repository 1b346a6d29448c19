"""The versioned schema: recognising a macrowatch store, refusing a newer one, migrating an older one."""

from __future__ import annotations

from .base import Db, StoreError, Tx

APPLICATION = "macrowatch"

# MIGRATIONS[n] takes a store from version n to n + 1, in one transaction. Append only: a released step is
# never edited. Types and syntax are the common ground of SQLite and PostgreSQL: TEXT, INTEGER, REAL
# (DOUBLE PRECISION in PostgreSQL), ISO text for dates and UTC times, ON CONFLICT for upserts.
# The `meta` table (key, value) with 'application' and 'schema_version' keeps this shape in every version,
# so that any macrowatch can read a newer store's version and refuse it.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO meta (key, value) VALUES ('application', 'macrowatch')",
        """CREATE TABLE bars (
            instrument TEXT NOT NULL, session TEXT NOT NULL, at TEXT NOT NULL,
            open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,
            volume REAL NOT NULL,
            PRIMARY KEY (instrument, session))""",
        """CREATE TABLE vintages (
            series TEXT NOT NULL, date TEXT NOT NULL, realtime_start TEXT NOT NULL, value REAL NOT NULL,
            PRIMARY KEY (series, date, realtime_start))""",
        "CREATE TABLE state (name TEXT PRIMARY KEY, data TEXT NOT NULL)",
        """CREATE TABLE alerts (
            key TEXT PRIMARY KEY, rule TEXT NOT NULL, at TEXT NOT NULL, payload TEXT NOT NULL,
            enqueued_at TEXT NOT NULL)""",
        """CREATE TABLE deliveries (
            alert_key TEXT NOT NULL REFERENCES alerts (key), channel TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, next_at TEXT NOT NULL, last_at TEXT, last_error TEXT,
            sent_at TEXT,
            PRIMARY KEY (alert_key, channel))""",
        "CREATE INDEX deliveries_due ON deliveries (sent_at, next_at)",
    ),
    (
        # Issue [8]: several instances, one leader. A delivery is claimed (by holder and fencing token)
        # before its send and the claim cleared when the result is recorded; a claim found by the next
        # leader marks a possible repeat, counted in `repeats`. The lease row names the leader; its times
        # are epoch seconds of the database's clock, so that the hosts' clocks do not matter.
        "ALTER TABLE deliveries ADD COLUMN claimed_by TEXT",
        "ALTER TABLE deliveries ADD COLUMN claimed_at TEXT",
        "ALTER TABLE deliveries ADD COLUMN claim_token INTEGER",
        "ALTER TABLE deliveries ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE lease (
            name TEXT PRIMARY KEY, holder TEXT, token INTEGER NOT NULL,
            since REAL NOT NULL, renewed_at REAL NOT NULL, expires_at REAL NOT NULL)""",
    ),
    (
        # The URLs of a channel that already have the alert (a JSON list of fingerprints, never the URLs,
        # which hold tokens): a retry after one of a channel's URLs failed goes to the others only.
        "ALTER TABLE deliveries ADD COLUMN reached TEXT",
    ),
    (
        # Issue [9]: the URLs of a channel whose send's outcome was unknown (the request written, no answer in
        # time), as fingerprints like `reached`: each counted once in `repeats` and retried once; a second
        # unknown outcome is taken as reached, so that a receiver answering too late gets at most two copies.
        "ALTER TABLE deliveries ADD COLUMN unsure TEXT",
    ),
    (
        # Issues [12] and [13], the live sources. Each consensus forecast a feed showed, with the UTC time it was
        # first seen (a NULL value: listed without a forecast), so that a release is judged against what was
        # known before it; the API queries spent per source and day, against the publishers' daily quotas; and
        # which source showed each first print first (BLS or FRED), and when.
        """CREATE TABLE forecasts (
            feed TEXT NOT NULL, event TEXT NOT NULL, country TEXT NOT NULL, release_at TEXT NOT NULL,
            seen_at TEXT NOT NULL, value REAL, note TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (feed, event, country, release_at, seen_at))""",
        "CREATE INDEX forecasts_release ON forecasts (release_at)",
        """CREATE TABLE queries (
            source TEXT NOT NULL, day TEXT NOT NULL, n INTEGER NOT NULL,
            PRIMARY KEY (source, day))""",
        """CREATE TABLE print_sources (
            series TEXT NOT NULL, day TEXT NOT NULL, source TEXT NOT NULL, seen_at TEXT NOT NULL,
            PRIMARY KEY (series, day))""",
    ),
    (
        # The order the alerts were queued in, 1, 2, 3...: what is due goes out by next try, then by the alert's
        # time, then in this order (the engine's), never by key, which begins with the rule's name. An older
        # store knows only when each was queued: its alerts are numbered by that, then by key (the old order).
        "ALTER TABLE alerts ADD COLUMN seq INTEGER",
        "UPDATE alerts SET seq = n.seq FROM (SELECT key, ROW_NUMBER() OVER (ORDER BY enqueued_at, key) AS seq "
        "FROM alerts) n WHERE n.key = alerts.key",
        "CREATE INDEX alerts_seq ON alerts (seq)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def read_version(db: Db) -> int:
    """The store's schema version, 0 for an empty database; StoreError when it is not a macrowatch store."""
    tables = db.tables()
    if not tables:
        return 0
    if "meta" not in tables:
        raise StoreError(f"store {db.name} is not a macrowatch store: the database has other tables "
                         f"({', '.join(sorted(tables)[:5])}) and no macrowatch meta table")
    meta = dict(db.query("SELECT key, value FROM meta WHERE key IN ('application', 'schema_version')"))
    if meta.get("application") != APPLICATION:
        raise StoreError(f"store {db.name} is not a macrowatch store: its meta table names no macrowatch")
    return _version_of(db.name, meta.get("schema_version"))


def refuse_newer(db: Db, version: int) -> None:
    """Raise StoreError when the store was written by a newer macrowatch than this one."""
    if version > SCHEMA_VERSION:
        raise StoreError(f"store {db.name} has schema version {version}; this macrowatch knows up to "
                         f"{SCHEMA_VERSION}: upgrade macrowatch")


def migrate(db: Db) -> None:
    """Apply the missing steps, each in its own transaction; a concurrent opener's steps are not repeated."""
    for target in range(1, SCHEMA_VERSION + 1):
        with db.transaction() as tx:
            # Re-read under the write lock: another process may have migrated since we looked.
            current = _version_in(tx, db.name)
            refuse_newer(db, current)
            if current >= target:
                continue
            for sql in MIGRATIONS[target - 1]:
                tx.execute(sql)
            _set_version(tx, target)


def _version_in(tx: Tx, name: str) -> int:
    if "meta" not in tx.tables():
        return 0  # an empty database: the first step creates the meta table
    rows = tx.query("SELECT value FROM meta WHERE key = 'schema_version'")
    return _version_of(name, rows[0][0] if rows else None)


def _version_of(name: str, value: str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        raise StoreError(f"store {name} has a bad schema version {value!r} in its meta table") from None


def _set_version(tx: Tx, version: int) -> None:
    tx.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
               "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(version),))
