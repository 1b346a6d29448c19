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
from macrowatch.commands import missing, score
from macrowatch.commands.common import load_or_exit, quiet
from macrowatch.config.types import Config
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Alert, Bars, Vintage
from macrowatch.notify.chart import chart_source
from macrowatch.notify.outbox import Dispatcher
from macrowatch.notify.render import Context
from macrowatch.runtime.calendars import Times, saved_times
from macrowatch.runtime.history import History, close_array, forecasts_seen, macro_prints, run, unseen
from macrowatch.runtime.wiring import open_store_for
from macrowatch.sources import files
from macrowatch.sources.base import calendar_for
from macrowatch.store import StoreError, open_store


def command(config_path: Path, data_dir: Path, start: dt.datetime | None, end: dt.datetime | None, fmt: str,
            send_alerts: bool, skip_missing: bool = False, scoring: score.Options | None = None) -> None:
    """Print the alerts of `start`..`end` as text lines or JSON; with `send_alerts`, deliver them (exit 1 when a
    channel failed). Exit 2 for bad data, or for missing data without `skip_missing` (with it, the rules that read
    the missing inputs are left out, each named)."""
    config = load_or_exit(config_path, channels=False)  # --send says per channel what it could not deliver
    start_d, end_d = (start.date() if start else None), (end.date() if end else None)
    if start_d and end_d and start_d > end_d:
        raise click.BadParameter("--from is after --to", param_hint="--from")
    full = config
    try:
        config, history, left_out = (data_history(config, config_path, data_dir, skip_missing) if data_dir is not None
                                     else store_history(config, config_path, skip_missing))
    except (files.DataError, StoreError) as exc:
        click.echo(f"macrowatch replay: {exc}", err=True)
        sys.exit(2)
    for warning in [*left_out, *history.warnings]:
        click.echo(f"macrowatch replay: warning: {warning}", err=True)
    if full.rules and not config.rules:
        click.echo("macrowatch replay: every rule is left out (above): nothing to replay; "
                   f"{get(config_path, data_dir)}", err=True)
        sys.exit(2)
    zone = zoneinfo.ZoneInfo(config.timezone)
    last = data_end(config, history)
    if start_d and last and start_d > last[0]:
        click.echo(f"macrowatch replay: warning: --from {start_d} is past the end of the data: its last day is "
                   f"{last[0]} ({last[1]}); nothing to replay", err=True)
    alerts = run(Engine(config), history, start_d, end_d, config.timezone)
    scores = score.score(config, history, alerts, start_d, end_d, scoring.horizons) if scoring else None
    for k, alert in enumerate(alerts):
        alert = dataclasses.replace(alert, at=alert.at.astimezone(zone))
        if fmt == "jsonl":
            click.echo(json.dumps(alert.to_json() | (scores.alert_json(k) if scores else {})))
        else:
            click.echo(alert_line(alert) + (scores.alert_text(k) if scores else ""))
    if fmt == "text":
        click.echo(f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}", err=True)
    if scores:
        score.show(scores, fmt, scoring.report)
    if send_alerts and not send_replayed(config, history, alerts):
        sys.exit(1)


def data_history(config: Config, config_path: Path, data_dir: Path,
                 skip_missing: bool = False) -> tuple[Config, History, list[str]]:
    """The config to replay, the data directory's history and the lines of the rules left out. A price or vintage
    file the directory lacks is one DataError naming every missing one and the ways to get them; with
    `skip_missing`, the rules that read them are left out instead (missing.leave_out)."""
    lacking = missing.in_directory(config, data_dir)
    lines: list[str] = []
    if lacking and not skip_missing:
        raise files.DataError(f"{data_dir} lacks the history of {lacking.listing(config)}: "
                              f"{get(config_path, data_dir)}; {missing.SKIP_HINT}")
    if lacking:
        config, lines = missing.leave_out(config, lacking.instruments, lacking.series, str(data_dir))
    return config, load_history(config, data_dir), lines


def get(config_path: Path, data_dir: Path | None) -> str:
    """How missing history is got: `fetch` into the store (or, for a data directory, the files added)."""
    fetch = f"`macrowatch fetch -c {config_path}` gets it"
    return f"{fetch} into the store (then replay without --data), or add the files" if data_dir else fetch


def store_history(config: Config, config_path: Path,
                  skip_missing: bool = False) -> tuple[Config, History, list[str]]:
    """The config to replay, everything its store holds (bars and vintages saved by `fetch` and `run`, the feeds'
    forecasts as they were seen; read only) and the lines of the rules left out. An instrument or series the store
    lacks is a DataError naming it and the command that gets it: a replay of part of the inputs would say alerts the
    full rule set would not. With `skip_missing`, the rules that read them are left out instead."""
    fetch = f"`macrowatch fetch -c {config_path}`"
    try:
        store = open_store_for(config, read_only=True)
    except StoreError as exc:
        raise StoreError(f"{exc}; {fetch} fills it (or give --data DIR)") from None
    with store:
        history = unseen(config, store, Engine(config), dt.datetime.max.replace(tzinfo=dt.UTC), lambda _key: True)
        lacking = missing.in_store(config, history, store)
    if lacking and not skip_missing:
        raise files.DataError(f"the store has no history of {lacking.listing(config)}: {get(config_path, None)}; "
                              f"{missing.SKIP_HINT}")
    if not lacking:
        return config, history, []
    config, lines = missing.leave_out(config, lacking.instruments, lacking.series, "the store")
    return config, history, lines


def data_end(config: Config, history: History) -> tuple[dt.date, str] | None:
    """The last local day of the data and what is on it (a close, a release), or None without data."""
    zone = zoneinfo.ZoneInfo(config.timezone)
    ends = [(b.bar(len(b) - 1).at.astimezone(zone).date(), f"the last close of {iid}")
            for iid, b in history.columns().items() if len(b)]
    ends += [(p.at.astimezone(zone).date(), f"the last release of {p.macro}") for p in history.prints[-1:]]
    return max(ends, default=None)


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
        # Queued at one moment, they go out in time order, ties in the order printed (the outbox's due order).
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
    seen, times = stored_forecasts(config, warnings)
    consensus_file = files.consensus_file(data_dir)
    overrides = files.read_consensus(consensus_file) if consensus_file.exists() else {}
    if consensus_file.exists() and not overrides:
        warnings.append(f"{consensus_file}: no rows: the consensus of the config (or the mean of the last 12 first "
                        "prints) is used")
    vintages: dict[str, list[Vintage]] = {}
    all_prints = []
    for macro in config.macro.values():
        if macro.series not in vintages:
            path = files.series_file(data_dir, macro.series)
            vintages[macro.series] = files.read_vintages(path)
            if not vintages[macro.series]:
                users = [m.id for m in config.macro.values() if m.series == macro.series]
                warnings.append(f"{path}: no values: {', '.join(users)} "
                                f"{'has' if len(users) == 1 else 'have'} no release to replay")
        all_prints.extend(macro_prints(config, macro, vintages[macro.series], files.consensus_of(overrides, macro),
                                       times, seen))
    return History(bars, sorted(all_prints, key=lambda p: (p.at, p.macro)), warnings)


def stored_forecasts(config: Config, warnings: list[str]) -> tuple[files.Seen | None, Times]:
    """The feeds' forecasts (and the release times) the config's store kept, when a macro names a feed: a past
    release is judged against what the daemon had seen before it, as the daemon judged it. Without a store the
    feeds count for nothing, with a warning."""
    if not any(m.feeds for m in config.macro.values()):
        return None, {}
    try:
        with open_store_for(config, read_only=True) as store:
            return forecasts_seen(store.forecasts()), saved_times(store)
    except StoreError as exc:
        warnings.append(f"no forecasts of the consensus feeds ({exc}): `macrowatch run` keeps them; their "
                        "releases are judged against the consensus file or the mean of the last 12 first prints")
        return None, {}
