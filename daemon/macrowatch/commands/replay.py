"""`macrowatch replay`: history through the rules, the alerts each past day would have fired.

A data directory of CSV history (DIR/prices, DIR/macro) becomes a History for the engine (`load_history`);
`--send` delivers the alerts once through a throwaway outbox.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import tempfile
import zoneinfo
from collections import Counter
from pathlib import Path

import click
import numpy as np

from macrowatch.clock import Clock
from macrowatch.commands.common import load_or_exit, quiet
from macrowatch.config.types import Config
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Alert, Bars, Vintage
from macrowatch.notify.chart import chart_source
from macrowatch.notify.outbox import Dispatcher
from macrowatch.notify.render import Context
from macrowatch.runtime.history import History, close_array, macro_prints, run
from macrowatch.sources import files
from macrowatch.sources.base import calendar_for
from macrowatch.store import open_store


def command(config_path: Path, data_dir: Path, start: dt.datetime | None, end: dt.datetime | None, fmt: str,
            send_alerts: bool) -> None:
    """Print the alerts of `start`..`end` as text lines or JSON; with `send_alerts`, deliver them (exit 1 when a
    channel failed). Exit 2 for bad data."""
    config = load_or_exit(config_path, channels=False)  # --send says per channel what it could not deliver
    start_d, end_d = (start.date() if start else None), (end.date() if end else None)
    if start_d and end_d and start_d > end_d:
        raise click.BadParameter("--from is after --to", param_hint="--from")
    try:
        history = load_history(config, data_dir)
    except files.DataError as exc:
        click.echo(f"macrowatch replay: {exc}", err=True)
        sys.exit(2)
    for warning in history.warnings:
        click.echo(f"macrowatch replay: warning: {warning}", err=True)
    zone = zoneinfo.ZoneInfo(config.timezone)
    alerts = run(Engine(config), history, start_d, end_d, config.timezone)
    for alert in alerts:
        alert = dataclasses.replace(alert, at=alert.at.astimezone(zone))
        click.echo(json.dumps(alert.to_json()) if fmt == "jsonl" else alert_line(alert))
    if fmt == "text":
        click.echo(f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}", err=True)
    if send_alerts and not send_replayed(config, history, alerts):
        sys.exit(1)


def alert_line(alert: Alert) -> str:
    """The text line of an alert: local time [severity] rule labels: message."""
    labels = "".join(f" {k}={v}" for k, v in alert.labels.items())
    return f"{alert.at.strftime('%Y-%m-%d %H:%M %z')} [{alert.severity}] {alert.rule}{labels}: {alert.message}"


def send_replayed(config: Config, history: History, alerts: list[Alert]) -> bool:
    """Deliver replayed alerts once through a throwaway outbox; print each channel's result; True if all sent."""
    releases = [p.at for p in history.prints]
    chart_for = chart_source(config, history.bar_list, lambda _alert: releases)
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="macrowatch-replay-") as tmp, \
            open_store(Path(tmp) / "outbox.sqlite") as store:
        dispatcher = Dispatcher(store, config.channels, clock, chart_for=chart_for,
                                context=Context.from_config(config))
        now = clock.now()
        dispatcher.submit(alerts, now)
        with quiet("macrowatch.notify.send", "macrowatch.notify.outbox"):  # the lines below say it, once
            outcomes = dispatcher.deliver_due(now)
    wanted = Counter(ch for a in alerts for ch in dict.fromkeys(a.notify))
    sent = Counter(o.channel for o in outcomes if o.ok)
    reasons = {o.channel: o.reason for o in outcomes if not o.ok}
    for ch, n in wanted.items():
        line = f"send: channel {ch}: {sent[ch]} of {n} sent"
        # After a channel's first failure its other alerts are not tried (one probe per pass).
        click.echo(line + (f"; failed: {reasons[ch]}" if ch in reasons else ""), err=True)
    silent = sum(1 for a in alerts if not a.notify)
    if silent:
        click.echo(f"send: {silent} alert{'s' if silent != 1 else ''} notify no channel (printed only)", err=True)
    return all(sent[ch] == n for ch, n in wanted.items())


def load_history(config: Config, data_dir: Path) -> History:
    """Read DIR/prices/<SYMBOL>.csv per instrument and DIR/macro/<SERIES>.csv per macro series.

    Raises files.DataError naming the file and row of anything missing or malformed (a bar on a day the
    instrument's exchange has no session included); a file that holds no row to use is a warning in the History.
    """
    bars = {}
    for iid, inst in config.instruments.items():
        path = files.price_file(data_dir, inst.symbol)
        cols = files.read_prices(path)
        if not len(cols):
            raise files.DataError(f"{path}: no bars")
        code = calendar_for(config)(inst)
        at = close_array(code, cols.session, zoneinfo.ZoneInfo(config.timezone))
        if np.isnat(at).any():
            i = int(np.argmax(np.isnat(at)))
            line = (cols.line if cols.line is not None else files.bar_lines(path))[i]
            day = cols.session[i].astype(dt.date)
            raise files.DataError(f"{path}:{line}: {day} is not a session of {code} (a {day:%A})")
        bars[iid] = Bars(cols.session, at, cols.open, cols.high, cols.low, cols.close, cols.volume)
    warnings = []
    consensus_file = data_dir / "macro" / "consensus.csv"
    overrides = files.read_consensus(consensus_file) if consensus_file.exists() else {}
    if consensus_file.exists() and not overrides:
        warnings.append(f"{consensus_file}: no rows: the consensus of the config (or the mean of the last 12 first "
                        "prints) is used")
    vintages: dict[str, list[Vintage]] = {}
    all_prints = []
    for macro in config.macro.values():
        if macro.series not in vintages:
            path = data_dir / "macro" / f"{macro.series}.csv"
            vintages[macro.series] = files.read_vintages(path)
            if not vintages[macro.series]:
                users = [m.id for m in config.macro.values() if m.series == macro.series]
                warnings.append(f"{path}: no values: {', '.join(users)} "
                                f"{'has' if len(users) == 1 else 'have'} no release to replay")
        all_prints.extend(macro_prints(config, macro, vintages[macro.series], overrides.get(macro.series)))
    return History(bars, sorted(all_prints, key=lambda p: (p.at, p.macro)), warnings)
