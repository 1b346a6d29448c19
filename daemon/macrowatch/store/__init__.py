"""The store: bars, vintages, engine state, the outbox and the sent log, consensus forecasts and the publishers'
query counts and first-print sources, in SQLite or PostgreSQL.

    with open_store(config.store) as store:          # a path, or postgresql://user@host/db
        store.put_bars("spx", bars)
"""

from .base import Fence, Fenced, StoreError
from .core import Store, default_path, is_url, open_reader, open_store
from .forecasts import ForecastRow
from .lease import LeaseRow
from .outbox import ERROR_MAX, ChannelState, Delivery, StoredAlert
from .schema import SCHEMA_VERSION

__all__ = ["ERROR_MAX", "SCHEMA_VERSION", "ChannelState", "Delivery", "Fence", "Fenced", "ForecastRow", "LeaseRow",
           "Store", "StoreError", "StoredAlert", "default_path", "is_url", "open_reader", "open_store"]
