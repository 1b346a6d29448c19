"""What a config names, built in one place: its store and the sources that feed it.

`run` (service.py), `fetch`, `status` and `calendar` open the config's store and build its sources here, so
that they agree on where a store is and where this host's caches go: beside a SQLite store, or in the local
state directory for a `postgresql://` store (never a local directory named after the URL). `replay` and `test`
read CSV files and their own notation instead; what all of them share of a config is in `sources.base.
calendar_for` (an instrument's exchange calendar) and `sources.files.consensus_for` (which consensus counts).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from macrowatch.config.types import Config
from macrowatch.store import Store, default_path, open_reader, open_store

if TYPE_CHECKING:
    from macrowatch.sources.bls import BlsClient
    from macrowatch.sources.fred import FredClient
    from macrowatch.sources.prices import PriceSource

YF_CACHE = "yfinance-cache"


def store_target(config: Config, target: str | Path | None = None) -> str | Path | None:
    """The store to open: `target` (a path or URL given on the command line), else the config's (None: the
    default place, `default_path()`)."""
    return target if target is not None else config.store


def open_store_for(config: Config, target: str | Path | None = None, *, read_only: bool = False) -> Store:
    """Open the config's store (or `target`), creating or upgrading it; `read_only`: an existing store to read
    (`open_reader`: StoreError when there is none)."""
    where = store_target(config, target)
    return open_reader(where) if read_only else open_store(where)


def local_dir(store: Store) -> Path:
    """This host's directory for caches: the SQLite store's, else (a PostgreSQL store, shared by several hosts)
    the local state directory."""
    return Path(store.name).parent if store.dialect == "sqlite" else default_path().parent


@dataclass
class Sources:
    """The real sources of a config: yfinance for prices, fredapi for macro series, BLS when the config uses it."""

    prices: PriceSource
    fred: FredClient
    bls: BlsClient | None = None


def sources_for(config: Config, store: Store, stopping: threading.Event | None = None) -> Sources:
    """The config's sources, yfinance's disk cache in `local_dir(store)`.

    `stopping`: their retry backoff and FRED's rate limit sleep until it is set, not longer (the daemon's stop);
    without it they sleep out every delay (a command).
    """
    from macrowatch.sources.prices import PriceSource

    prices = PriceSource(config.yahoo.url, local_dir(store) / YF_CACHE, **_sleep(stopping))
    return Sources(prices, fred_for(config, stopping), bls_for(config))


def fred_for(config: Config, stopping: threading.Event | None = None) -> FredClient:
    """The config's FRED client alone (`calendar` reads its release dates); `stopping` as for `sources_for`."""
    from macrowatch.sources.fred import FredClient

    return FredClient.from_config(config.fred, **_sleep(stopping))


def bls_for(config: Config) -> BlsClient:
    """The config's BLS client (`sources.bls`: its key, none for keyless, and its url). It sends nothing until
    a release names a `bls:` title or a macro a `bls_series` (a reload may add one)."""
    from macrowatch.sources.bls import BlsClient

    return BlsClient.from_config(config.bls)


def _sleep(stopping: threading.Event | None) -> dict:
    from macrowatch.clock import stop_aware_sleep

    return {"sleep": stop_aware_sleep(stopping)} if stopping is not None else {}
