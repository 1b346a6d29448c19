"""What every store backend shares: the error type, the small database seam, and value codecs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

Row = tuple[Any, ...]


class StoreError(Exception):
    """The store cannot be opened or used; the message says which store and why, for the user."""


class Fenced(StoreError):
    """A write refused because this instance does not lead (any more): another holds the lease."""


class Fence(Protocol):
    """Who writes: the leadership a store checks each of its acting writes against (see ha.py)."""

    holder: str  # hostname:pid

    def token(self) -> int | None:
        """The fencing token while this instance leads, None when nothing is to be checked (one instance on
        SQLite); raises Fenced when it does not lead."""
        ...


class Tx(Protocol):
    """One open transaction: statements take `?` parameters, never formatted values."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one SELECT inside the transaction."""
        ...

    def tables(self) -> set[str]:
        """The names of the user tables, as this transaction sees them."""
        ...


class Db(Protocol):
    """The seam a backend fills: SQLite now, PostgreSQL with issue [8]. SQL above it is portable."""

    name: str  # for messages: a path, or a URL with its password masked
    dialect: str  # "sqlite" or "postgresql", for the few statements that differ (store/lease.py)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one SELECT outside any write."""
        ...

    def transaction(self) -> AbstractContextManager[Tx]:
        """A write transaction: committed on exit, rolled back on an exception."""
        ...

    def tables(self) -> set[str]:
        """The names of the user tables; raises StoreError when the target is not a database."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def utc_text(t: dt.datetime) -> str:
    """A tz-aware datetime as fixed-width UTC ISO text, so that text order is time order."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime {t.isoformat()}: the store takes tz-aware times only")
    return t.astimezone(dt.UTC).isoformat(timespec="microseconds")


def from_utc_text(text: str) -> dt.datetime:
    """The tz-aware (UTC) datetime written by `utc_text`."""
    return dt.datetime.fromisoformat(text)


def date_text(d: dt.date) -> str:
    """A date as ISO text (YYYY-MM-DD), which sorts in date order."""
    return d.isoformat()
