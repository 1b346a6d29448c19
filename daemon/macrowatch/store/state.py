"""Engine state at rest: one JSON document per name, replaced whole."""

from __future__ import annotations

import json
from typing import Any

from .base import Db, StoreError
from .outbox import Writer, fence


def save_state(db: Db, name: str, data: dict[str, Any], writer: Writer | None = None) -> None:
    """Replace the saved state `name` with `data` in one write."""
    # Serialised before the transaction, so that data that is not JSON fails without touching the store.
    try:
        text = json.dumps(data, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise StoreError(f"store {db.name}: state {name!r} is not plain JSON data ({e})") from e
    with db.transaction() as tx:
        fence(tx, db, writer)
        tx.execute("INSERT INTO state (name, data) VALUES (?, ?) "
                   "ON CONFLICT (name) DO UPDATE SET data = excluded.data", (name, text))


def load_state(db: Db, name: str) -> dict[str, Any] | None:
    """The saved state `name`, or None when there is none."""
    rows = db.query("SELECT data FROM state WHERE name = ?", (name,))
    return json.loads(rows[0][0]) if rows else None
