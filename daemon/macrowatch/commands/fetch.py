"""`macrowatch fetch`: every configured instrument and series once into the store, and what it holds."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from macrowatch.clock import system_clock
from macrowatch.commands.common import load_or_exit
from macrowatch.config.types import Config
from macrowatch.runtime.wiring import open_store_for, sources_for
from macrowatch.sources.base import calendar_for
from macrowatch.sources.fred import FredClient, FredError
from macrowatch.sources.prices import PriceSource
from macrowatch.store import Store, StoreError

log = logging.getLogger("macrowatch.fetch")


@dataclass
class FetchReport:
    """What the store holds for this config after a fetch, and the sources that failed."""

    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def fetch_prices(config: Config, store: Store, prices: PriceSource, since: dt.date, now: dt.datetime) -> list[str]:
    """Daily bars of every instrument in one batched poll; returns the failures, one line per instrument."""
    if not config.instruments:
        return []
    result = prices.daily(config.instruments, since, now, calendar_for(config))
    for iid, bars in result.bars.items():
        store.put_bars(iid, bars)
    for reason in result.rejected:
        log.warning("rejected bar: %s", reason)
    return [f"instrument {iid} ({config.instruments[iid].symbol}): {reason}" for iid, reason in
            sorted(result.errors.items())]


def fetch_series(config: Config, store: Store, fred: FredClient, since: dt.date, today: dt.date) -> list[str]:
    """Every vintage of each distinct macro series; returns the failures, one line per series."""
    failures = []
    for series in sorted({m.series for m in config.macro.values()}):
        try:
            store.put_vintages(series, fred.vintages(series, since, today=today))
        except FredError as exc:
            failures.append(f"series {series}: {exc.reason}")
    return failures


def summary_lines(config: Config, store: Store) -> list[str]:
    """A line per configured instrument (id and symbol) and per series: rows, first and last timestamp."""
    held = {(kind, ident): (rows, first, last) for kind, ident, rows, first, last in store.summary()}
    lines = []
    for iid, inst in config.instruments.items():
        rows, first, last = held.get(("instrument", iid), (0, None, None))
        lines.append(f"instrument {iid} {inst.symbol}: {_span(rows, first, last)}")
    for series in sorted({m.series for m in config.macro.values()}):
        rows, first, last = held.get(("series", series), (0, None, None))
        lines.append(f"series {series}: {_span(rows, first, last)}")
    return lines


def _span(rows: int, first: str | None, last: str | None) -> str:
    return f"{rows} rows, {first} .. {last}" if rows else "no rows"


def fetch(config: Config, store: Store, prices: PriceSource, fred: FredClient, since: dt.date,
          now: dt.datetime) -> FetchReport:
    """Fetch everything once; a failing source is reported and the others are still stored."""
    failures = fetch_prices(config, store, prices, since, now)
    failures += fetch_series(config, store, fred, since, now.date())
    return FetchReport(summary_lines(config, store), failures)


def command(config_path: Path, since: dt.datetime | None) -> None:
    """Fetch from `since` (default five years back) into the config's store; print what it holds, exit 1 when
    a source failed or the store cannot be opened."""
    config = load_or_exit(config_path)
    now = system_clock().now()
    start = since.date() if since else now.date().replace(year=now.year - 5)
    try:
        store = open_store_for(config)
    except StoreError as exc:
        click.echo(f"macrowatch fetch: {exc}", err=True)
        sys.exit(1)
    with store:
        sources = sources_for(config, store)
        report = fetch(config, store, sources.prices, sources.fred, start, now)
    for line in report.lines:
        click.echo(line)
    for failure in report.failures:
        click.echo(f"macrowatch fetch: failed: {failure}", err=True)
    if report.failures:
        sys.exit(1)
