"""`macrowatch briefing`: a release's briefing, now (from the store) or at a past moment (from a data directory).

The same briefing the daemon sends `before` a release (runtime/briefings.py): the engine's own answer, on a copy of
its state, to a beat, an inline print and a miss. From the store, the engine is the daemon's saved one with what
the store holds since; with `--data DIR --at TIME`, the data's history up to TIME, and the next release after it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import zoneinfo
from pathlib import Path
from typing import NoReturn

import click
import numpy as np

from macrowatch.clock import system_clock
from macrowatch.commands.common import load_or_exit
from macrowatch.commands.replay import load_history, send_replayed
from macrowatch.config.types import Config
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Alert, Bars
from macrowatch.notify import briefing as brief_text
from macrowatch.notify.render import Context
from macrowatch.runtime import briefings
from macrowatch.runtime.history import History
from macrowatch.runtime.wiring import open_store_for
from macrowatch.sources import files
from macrowatch.store import StoreError


def command(config_path: Path, release: str | None, data_dir: Path | None, at: dt.datetime | None, fmt: str,
            send: bool) -> None:
    """Print the briefing of the next release (of `release`, else of any) as text or JSON; with `send`, deliver it
    through its `briefing.notify` channels (exit 1 when one failed). Exit 2 for bad arguments or data."""
    config = load_or_exit(config_path, channels=False)  # --send says per channel what it could not deliver
    if release is not None and release not in config.releases:
        _fail(f"unknown release {release!r} (known: {', '.join(config.releases) or 'none'})")
    if (data_dir is None) != (at is None):
        _fail("--at needs --data DIR: without them, the briefing is the store's, now" if data_dir is None
              else "--data and --at go together: the briefing at TIME of the data's next release after it")
    zone = zoneinfo.ZoneInfo(config.timezone)
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=zone)  # a time without an offset is the config's local time
    try:
        alert, history = from_data(config, data_dir, at, release) if data_dir is not None \
            else from_store(config, release, charts=send)
    except (files.DataError, StoreError, NoRelease) as exc:
        _fail(str(exc))
    for warning in history.warnings:
        click.echo(f"macrowatch briefing: warning: {warning}", err=True)
    alert = plain(alert)
    if fmt == "json":
        click.echo(json.dumps(alert.evidence | {"key": alert.key, "notify": list(alert.notify)}, indent=2))
    else:
        click.echo(brief_text.text(alert.evidence, Context.from_config(config)))
    if send and not send_replayed(config, history, [alert]):
        sys.exit(1)


class NoRelease(Exception):
    """No release ahead to brief: none after TIME in the data, none in the store's schedule."""


def _fail(message: str) -> NoReturn:
    click.echo(f"macrowatch briefing: {message}", err=True)
    sys.exit(2)


def plain(alert: Alert) -> Alert:
    """The alert as the outbox keeps it: its evidence as JSON data (times and dates as ISO text)."""
    return dataclasses.replace(alert, evidence=alert.to_json()["evidence"])


def from_data(config: Config, data_dir: Path, at: dt.datetime, release: str | None) -> tuple[Alert, History]:
    """The briefing at `at` of the next release after it in the data: the engine fed the history up to `at`."""
    history = load_history(config, data_dir)
    coming = [p for p in history.prints if p.at > at and (release is None or config.macro[p.macro].release == release)]
    if not coming:
        raise NoRelease(f"{data_dir} has no release{f' of {release}' if release else ''} after {at.isoformat()}")
    release_id, release_at = config.macro[coming[0].macro].release, coming[0].at
    engine = Engine(config)
    engine.feed(until(history.columns(), at), [p for p in history.prints if p.at <= at])
    csv = files.consensus_file(data_dir).exists()  # replay's consensus file: it comes first
    expected = briefings.from_prints(config, history.prints, release_id, release_at, csv)
    return briefings.briefing(config, engine, release_id, release_at, expected, at), history


def until(bars: dict[str, Bars], at: dt.datetime) -> dict[str, Bars]:
    """Each instrument's bars that closed at or before `at`."""
    cut = np.datetime64(at.astimezone(dt.UTC).replace(tzinfo=None), "ns")
    out = {}
    for iid, b in bars.items():
        n = int(np.searchsorted(b.at, cut, side="right"))
        out[iid] = Bars(b.session[:n], b.at[:n], b.open[:n], b.high[:n], b.low[:n], b.close[:n], b.volume[:n])
    return out


def from_store(config: Config, release: str | None, charts: bool = False) -> tuple[Alert, History]:
    """The briefing now of the next release the store's schedule knows (`macrowatch run` keeps it); with `charts`
    (for --send), the History holds the bars of its chart's instrument."""
    now = system_clock().now()
    try:
        store = open_store_for(config, read_only=True)
    except StoreError as exc:
        raise StoreError(f"{exc}: `macrowatch run` (or `macrowatch fetch`) fills it; or give --data DIR --at TIME") \
            from None
    with store:
        coming = [(at, rid) for at, rid in briefings.upcoming(config, store, now) if release in (None, rid)]
        if not coming:
            raise NoRelease(f"no coming release{f' of {release}' if release else ''} in the store's schedule "
                              "(`macrowatch run` keeps it) or the config's dates")
        release_at, release_id = coming[0]
        engine = briefings.engine_now(config, store, now)
        expected = briefings.from_store(config, store, release_id, release_at)
        alert = briefings.briefing(config, engine, release_id, release_at, expected, now)
        shown = [alert.chart] if charts and alert.chart in config.instruments else []
        history = History({iid: store.bars(iid) for iid in shown})
    return alert, history
