"""What the tests ask of a store beyond what the daemon does, written on its public queries."""

from __future__ import annotations

from pathlib import Path

from macrowatch.store import Store
from macrowatch.store.base import Db
from macrowatch.store.sqlite import SqliteDb


def was_sent(store: Store, key: str, channel: str) -> bool:
    """Whether the alert has been delivered to the channel: it is in the store's sent log."""
    return any((k, c) == (key, channel) for k, c, _at in store.sent_log(limit=1_000_000))


def raw_db(target: str) -> Db:
    """The store's database without the Store: nothing created or migrated."""
    if target.startswith("postgresql://"):
        from macrowatch.store.postgres import PostgresDb

        return PostgresDb(target)
    return SqliteDb(Path(target))
