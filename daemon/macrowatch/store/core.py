"""The Store: one narrow interface over a backend, and where a store lives by default."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from ..model import Alert, Bar, Vintage
from . import forecasts, lease, market, outbox, publishers, schema, state
from .base import Db, Fence, StoreError
from .forecasts import ForecastRow
from .lease import LeaseRow
from .market import Summary
from .outbox import Delivery, StoredAlert, Writer
from .publishers import PrintKey, PrintSeen
from .sqlite import SqliteDb

FILE_NAME = "macrowatch.sqlite"


class Part:
    """What each part of the Store works on: its database, and the fence its acting writes are checked against."""

    _db: Db
    _fence: Fence | None

    def _writer(self) -> Writer | None:
        # token() raises Fenced at once when this instance knows it no longer leads: no round trip needed.
        return None if self._fence is None else (self._fence.holder, self._fence.token())


class MarketData(Part):
    """Bars per instrument and vintages per series: written by anyone, unfenced (the same data whoever fetches it)."""

    def put_bars(self, instrument: str, bars: Iterable[Bar]) -> int:
        """Upsert bars by (instrument, session): a re-fetched session replaces the old one; return rows written."""
        return market.put_bars(self._db, instrument, bars)

    def bars(self, instrument: str, since: dt.date | None = None) -> list[Bar]:
        """An instrument's bars from `since` on, in session order; `at` comes back in UTC."""
        return market.bars(self._db, instrument, since)

    def put_vintages(self, series: str, vintages: Iterable[Vintage]) -> int:
        """Insert vintages not yet known; return how many were new."""
        return market.put_vintages(self._db, series, vintages)

    def vintages(self, series: str) -> list[Vintage]:
        """A series' vintages ordered by (date, realtime_start)."""
        return market.vintages(self._db, series)

    def summary(self) -> list[Summary]:
        """(kind "instrument" or "series", id, rows, first, last) for `fetch` and `status`."""
        return market.summary(self._db)


class EngineState(Part):
    """The engine's saved state, one JSON document per name; a fenced write."""

    def save_state(self, name: str, data: dict[str, Any]) -> None:
        """Replace the saved state `name` (an engine's `to_data()`) atomically."""
        state.save_state(self._db, name, data, self._writer())

    def load_state(self, name: str) -> dict[str, Any] | None:
        """The saved state `name`, or None."""
        return state.load_state(self._db, name)


class Deliveries(Part):
    """The outbox at rest (notify/outbox.py's Dispatcher works it): alerts, their deliveries per channel, claims,
    possible repeats and the sent log."""

    def enqueue(self, alert: Alert, channels: list[str], now: dt.datetime) -> bool:
        """Write the alert and its deliveries at once; False, changing nothing, when its key is known."""
        return outbox.enqueue(self._db, alert, channels, now, self._writer())

    def due(self, now: dt.datetime, latest: dt.datetime | None = None) -> list[Delivery]:
        """Unsent deliveries whose next attempt is at or before `now` (or, a clock stepped back, after
        `latest`), the longest waiting first."""
        return outbox.due(self._db, now, latest)

    def claim(self, key: str, channel: str, at: dt.datetime) -> bool:
        """Before a send: mark the delivery as ours (with a fence; without one, nothing to do); False when it
        is sent already. Raises Fenced when this instance does not lead."""
        writer = self._writer()
        return True if writer is None else outbox.claim(self._db, key, channel, at, writer)

    def mark_sent(self, key: str, channel: str, at: dt.datetime) -> None:
        """Record that the alert reached the channel (Fenced: the next leader took the delivery over)."""
        outbox.mark_sent(self._db, key, channel, at, self._writer())

    def mark_failed(self, key: str, channel: str, at: dt.datetime, error: str, next_at: dt.datetime,
                    reached: Iterable[str] = (), unsure: Iterable[str] = (), repeats: int = 0) -> None:
        """Record a failed try (attempts + 1), its short masked error and the next attempt time; `reached`:
        fingerprints of the channel's URLs that have the alert (kept: a retry sends to the others only);
        `unsure`: those whose send's outcome was unknown, `repeats` the possible repeats this try adds."""
        outbox.mark_failed(self._db, key, channel, at, error, next_at, self._writer(), reached, unsure, repeats)

    def take_over(self) -> list[tuple[str, str, str, dt.datetime]]:
        """At the start of a leadership: clear the claims left unrecorded and count each as a possible
        repeat; returns (key, channel, claimed_by, claimed_at) of each."""
        writer = self._writer()
        return [] if writer is None else outbox.take_over(self._db, writer)

    def repeats(self, limit: int = 5) -> tuple[int, list[tuple[str, str, int]]]:
        """The possible repeats counted so far, and the latest deliveries that had one."""
        return outbox.repeats(self._db, limit)

    def pending(self) -> int:
        """How many deliveries are not sent yet."""
        return outbox.pending(self._db)

    def sent_log(self, limit: int = 50) -> list[tuple[str, str, dt.datetime]]:
        """The latest successful sends as (key, channel, sent_at), newest first."""
        return outbox.sent_log(self._db, limit)

    def recent_alerts(self, limit: int = 50) -> list[StoredAlert]:
        """The latest alerts by their time, newest first, each with its delivery per channel (the dashboard)."""
        return outbox.recent(self._db, limit)


class Leadership(Part):
    """The lease one instance of several holds on a shared store (runtime/ha.py)."""

    def lease(self) -> LeaseRow | None:
        """Who leads, with the database's clock; None when no instance has led on this store."""
        return lease.read(self._db)

    def acquire_lease(self, holder: str, ttl: float) -> int | None:
        """Take the lease when it is free or expired: the new fencing token (or the current one when the row
        already names `holder`), or None when another instance holds it."""
        return lease.acquire(self._db, holder, ttl)

    def renew_lease(self, holder: str, token: int, ttl: float) -> bool:
        """Extend the lease held with `token`; False when it expired or was taken."""
        return lease.renew(self._db, holder, token, ttl)

    def release_lease(self, holder: str, token: int) -> bool:
        """Give the lease up at a clean stop."""
        return lease.release(self._db, holder, token)


class Forecasts(Part):
    """Consensus forecasts from the feeds, each with when it was first seen (point in time); a fenced write."""

    def put_forecast(self, feed: str, event: str, country: str, release_at: dt.datetime, value: float | None,
                     seen_at: dt.datetime, note: str = "") -> bool:
        """Record what the feed shows for the release at `seen_at` (None: listed without a forecast); True when
        stored, False when the value is the one seen last (polling the same number all week keeps one row)."""
        row = ForecastRow(feed, event, country, release_at, value, seen_at, note)
        return forecasts.put_forecast(self._db, row, self._writer())

    def forecast_before(self, feed: str, event: str, country: str, release_at: dt.datetime,
                        before: dt.datetime) -> tuple[float | None, dt.datetime] | None:
        """The newest (value, seen_at) seen strictly before `before` (the release time: a forecast first seen
        after it never counts); None when the feed had shown nothing for the release by then."""
        return forecasts.forecast_before(self._db, feed, event, country, release_at, before)

    def forecasts(self, since: dt.datetime | None = None) -> list[ForecastRow]:
        """Every stored forecast, or those of releases at or after `since`, oldest sighting first."""
        return forecasts.forecasts(self._db, since)


class Publishers(Part):
    """The publishers' APIs at release time: queries per source and day against their quotas, and which source
    showed each first print first; fenced writes."""

    def count_queries(self, source: str, day: dt.date, n: int = 1) -> int:
        """Count `n` queries to `source` on `day` (before making them: an instance that no longer leads is
        refused with Fenced and spends nothing); the day's new total. Atomic across threads and instances."""
        return publishers.count_queries(self._db, source, day, n, self._writer())

    def queries(self, source: str, day: dt.date) -> int:
        """The queries counted for `source` on `day`."""
        return publishers.queries(self._db, source, day)

    def put_print_source(self, series: str, day: dt.date, source: str, seen_at: dt.datetime) -> None:
        """Record that `source` showed the first print of `series` released on `day` (the release day: the new
        month's realtime_start, one print per release and series) at `seen_at`; the earliest sighting stays (a
        later FRED sighting does not replace BLS's)."""
        publishers.put_print_source(self._db, series, day, source, seen_at, self._writer())

    def print_sources(self, series: str | None = None) -> dict[PrintKey, PrintSeen]:
        """{(series, day): (source, seen_at)} of every first print recorded, or of one series'."""
        return publishers.print_sources(self._db, series)


class Store(MarketData, EngineState, Deliveries, Leadership, Forecasts, Publishers):
    """Bars, vintages, engine state, the outbox and the sent log, forecasts and the publishers' use. Every write is
    its own transaction.

    Through a fenced view (`with_fence`), the writes that act — the outbox, saved state, forecasts, query counts
    and print sources — are checked against a leadership in the same transaction (ha.py), and deliveries are
    claimed before their send; market data is written by anyone (it is the same data whoever fetches it). Its
    methods live in its parts, one per concern, each over its own module's SQL (market.py, state.py, outbox.py,
    lease.py, forecasts.py, publishers.py).
    """

    def __init__(self, db: Db, fence: Fence | None = None):
        self._db = db
        self.name = db.name
        self.dialect = db.dialect
        self._fence = fence

    def with_fence(self, fence: Fence | None) -> Store:
        """A view of this store (the same connection) whose acting writes are checked against `fence`."""
        return Store(self._db, fence)

    def close(self) -> None:
        """Close the store."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def default_path() -> Path:
    """$STATE_DIRECTORY/macrowatch.sqlite under systemd, else ~/.local/state/macrowatch/macrowatch.sqlite."""
    state_dir = os.environ.get("STATE_DIRECTORY", "")
    if state_dir:
        # systemd joins several StateDirectory= entries with ':'; the first is ours.
        return Path(state_dir.split(":")[0]) / FILE_NAME
    return Path.home() / ".local" / "state" / "macrowatch" / FILE_NAME


def is_url(target: str | Path | None) -> bool:
    """Whether the store target is a PostgreSQL URL rather than a file path."""
    return isinstance(target, str) and target.lower().startswith(("postgresql://", "postgres://"))


def open_store(target: str | Path | None = None, *, call_timeout: float | None = None) -> Store:
    """Open (creating or migrating) the store at a path or a postgresql:// URL, or at `default_path()`.

    `call_timeout` (PostgreSQL): the longest a statement may wait for the server before its connection is
    dropped.
    """
    if is_url(target):
        return Store(_open_postgres(str(target), call_timeout))
    path = Path(target).expanduser() if target is not None else default_path()
    return Store(_open_sqlite(path))


def open_reader(target: str | Path | None = None) -> Store:
    """Open an existing store to read it (`macrowatch status`): nothing is created or written, so that a store the
    reader may not write (another user's, a read-only mount) can be read, and is left as it was.

    A store with an empty or older schema is upgraded first, as `open_store` does (this needs write access).
    StoreError when there is no store at a path.
    """
    if is_url(target):
        from .postgres import PostgresDb

        db: Db = PostgresDb(str(target))
    else:
        path = Path(target).expanduser() if target is not None else default_path()
        if not os.path.exists(path):  # False, not PermissionError, for a directory the reader cannot enter
            raise StoreError(f"no store at {path}")
        if not path.is_file():
            raise StoreError(f"store {path} is not a file")
        db = SqliteDb(path, read_only=True)
    try:
        version = schema.read_version(db)
        schema.refuse_newer(db, version)
    except BaseException:
        db.close()
        raise
    if version == schema.SCHEMA_VERSION:
        return Store(db)
    db.close()
    try:
        return open_store(target)
    except StoreError as exc:
        raise StoreError(f"{exc} (its schema, version {version}, is older than this macrowatch's "
                         f"{schema.SCHEMA_VERSION} and must be upgraded first: the next `macrowatch run` does it)") \
            from exc


def _open_postgres(url: str, call_timeout: float | None) -> Db:
    from .postgres import PostgresDb  # psycopg is imported only for a PostgreSQL store

    db = PostgresDb(url, **({"call_timeout": call_timeout} if call_timeout else {}))
    try:
        schema.refuse_newer(db, schema.read_version(db))
        with db.schema_lock():
            schema.migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def _open_sqlite(path: Path) -> SqliteDb:
    if path.exists() and not path.is_file():
        raise StoreError(f"store {path} is not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"store {path}: cannot create its directory ({e.strerror})") from e
    db = SqliteDb(path)
    try:
        # Read before any write, so that a foreign or newer file is refused unchanged.
        schema.refuse_newer(db, schema.read_version(db))
        db.tune()
        schema.migrate(db)
    except BaseException:
        db.close()
        raise
    return db
