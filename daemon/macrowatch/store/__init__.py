"""The store: bars, vintages, engine state, the outbox and the sent log; SQLite now, PostgreSQL with [8].

    with open_store(config.store) as store:
        store.put_bars("spx", bars)
"""

from .base import StoreError
from .core import Store, default_path, open_store
from .outbox import ERROR_MAX, Delivery
from .schema import SCHEMA_VERSION

__all__ = ["ERROR_MAX", "SCHEMA_VERSION", "Delivery", "Store", "StoreError", "default_path", "open_store"]
