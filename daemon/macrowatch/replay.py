"""Replay: history into events in time order, through the same Engine the daemon runs.

`macrowatch replay` loads CSV history with `load_history`; `macrowatch test` builds a History from its own
notation; both call `run`, so there is one code path from events to alerts.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from macrowatch.config.types import Config, Macro
from macrowatch.engine.evaluator import Engine
from macrowatch.engine.outcomes import SeriesHistory, prints
from macrowatch.model import Alert, Bar, Print, Vintage
from macrowatch.sources import files
from macrowatch.sources.calendar import close_times


@dataclass
class History:
    """Everything a replay feeds the engine: daily bars per instrument and every release print."""

    bars: dict[str, list[Bar]] = field(default_factory=dict)
    prints: list[Print] = field(default_factory=list)


def load_history(config: Config, data_dir: Path) -> History:
    """Read DIR/prices/<SYMBOL>.csv per instrument and DIR/macro/<SERIES>.csv per macro series.

    Raises files.DataError naming the file and row of anything missing or malformed.
    """
    tz = zoneinfo.ZoneInfo(config.timezone)
    raw = {iid: files.read_prices(files.price_file(data_dir, inst.symbol))
           for iid, inst in config.instruments.items()}
    bars = {}
    for iid, rows in raw.items():
        if not rows:
            raise files.DataError(f"{files.price_file(data_dir, config.instruments[iid].symbol)}: no bars")
        code = config.instruments[iid].calendar or config.calendar
        closes = close_times(code, rows[0][0], rows[-1][0])
        bars[iid] = [Bar(d, closes.get(d) or dt.datetime.combine(d, dt.time(16), tz), o, h, lo, c, v)
                     for d, o, h, lo, c, v in rows]
    consensus_file = data_dir / "macro" / "consensus.csv"
    overrides = files.read_consensus(consensus_file) if consensus_file.is_file() else {}
    vintages: dict[str, list[Vintage]] = {}
    all_prints = []
    for macro in config.macro.values():
        if macro.series not in vintages:
            vintages[macro.series] = files.read_vintages(data_dir / "macro" / f"{macro.series}.csv")
        all_prints.extend(macro_prints(config, macro, vintages[macro.series], overrides.get(macro.series)))
    return History(bars, sorted(all_prints, key=lambda p: (p.at, p.macro)))


def macro_prints(config: Config, macro: Macro, vintages: list[Vintage],
                 override: dict[dt.date, float] | None) -> list[Print]:
    """A series' prints, published on each realtime_start day at its release's time."""
    tz = zoneinfo.ZoneInfo(config.timezone)
    release = config.releases[macro.release]
    history = SeriesHistory.from_vintages(vintages)
    release_at = {d: dt.datetime.combine(d, release.time, tz) for d in history.release_days()}
    if override is not None:
        consensus, label = override, "consensus (data)"
    elif macro.consensus_file is not None:
        consensus, label = files.read_consensus(macro.consensus_file).get(macro.series, {}), "consensus (file)"
    else:
        consensus, label = dict(macro.consensus), "consensus (config)"
    return prints(macro, history, release_at, consensus, label)


def events(history: History) -> Iterator[tuple[dt.datetime, str, object]]:
    """("release", [Print]) and ("close", {instrument: Bar}) in time order; a release first at a tie."""
    timeline: dict[tuple[dt.datetime, int], object] = {}
    for p in history.prints:
        timeline.setdefault((p.at, 0), []).append(p)
    for iid, bars in history.bars.items():
        for bar in bars:
            timeline.setdefault((bar.at, 1), {})[iid] = bar
    for at, kind in sorted(timeline):
        yield at, ("release" if kind == 0 else "close"), timeline[(at, kind)]


def run(engine: Engine, history: History, start: dt.date | None = None, end: dt.date | None = None,
        tz: str = "America/New_York") -> list[Alert]:
    """Feed the history to the engine; the alerts from `start` to `end` (local dates, inclusive).

    Events before `start` warm the state up; their alerts are dropped. Events after `end` are not fed.
    """
    zone = zoneinfo.ZoneInfo(tz)
    out: list[Alert] = []
    for at, kind, payload in events(history):
        day = at.astimezone(zone).date()
        if end is not None and day > end:
            break
        alerts = engine.on_release(at, payload) if kind == "release" else engine.on_close(at, payload)
        if start is None or day >= start:
            out.extend(alerts)
    return out
