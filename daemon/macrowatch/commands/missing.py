"""Inputs a replay or a rule test has no history of, and the config without them (issue [14]).

A data directory lacks an instrument's or a series' file, or the store has never fetched it. Without
`--skip-missing` that is one error naming each of them and the way to get it: a replay of part of the inputs says
alerts the full rule set would not. With it, the rules that read a missing input (in a condition, a message field
or as their chart) are left out, each named with what it reads, and the rest run on: a rule that reads none of the
missing inputs sees the same closes and releases it would see with the full data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from macrowatch.config.types import Config
from macrowatch.runtime.history import History
from macrowatch.runtime.inputs import instrument_key, level_key, macro_key, rule_inputs
from macrowatch.sources import files
from macrowatch.store import Store

SKIP_HINT = "--skip-missing replays the rest"


@dataclass(frozen=True)
class Missing:
    """The instruments (by id) and macro series (by series id) without history, each with the file expected (None
    for the store)."""

    instruments: dict[str, Path | None] = field(default_factory=dict)
    series: dict[str, Path | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.instruments or self.series)

    def listing(self, config: Config) -> str:
        """"instrument spx (^GSPC): DIR/prices/GSPC.csv, series PAYEMS (macro payrolls): ..." for an error."""
        items = [f"instrument {iid} ({config.instruments[iid].symbol})" + (f": {path}" if path else "")
                 for iid, path in self.instruments.items()]
        items += [f"series {s} ({_macros(config, s)})" + (f": {path}" if path else "")
                  for s, path in self.series.items()]
        return ", ".join(items)


def config_series(config: Config) -> list[str]:
    """The macro series of a config, each once, in config order."""
    return list(dict.fromkeys(m.series for m in config.macro.values()))


def in_directory(config: Config, data_dir: Path, instruments: Iterable[str] | None = None,
                 series: bool = True) -> Missing:
    """The price and vintage files a data directory has not (by existence: a file there that does not read is an
    error where it is read, not a missing input). `instruments`: only these; `series`: False to look at none."""
    wanted = config.instruments if instruments is None else instruments
    paths = {iid: files.price_file(data_dir, config.instruments[iid].symbol) for iid in wanted}
    lacking = {iid: path for iid, path in paths.items() if not path.exists()}
    vintages = {s: files.series_file(data_dir, s) for s in (config_series(config) if series else [])}
    return Missing(lacking, {s: path for s, path in vintages.items() if not path.exists()})


def in_store(config: Config, history: History, store: Store) -> Missing:
    """What a store's whole history (`history`, read from `store` for `config`) has nothing of. A series with a
    print in `history` has vintages; only one without is asked of the store again (its vintages may give no print)."""
    printed = {config.macro[p.macro].series for p in history.prints}
    return Missing({iid: None for iid in config.instruments if iid not in history.bars},
                   {s: None for s in config_series(config) if s not in printed and not store.vintages(s)})


def leave_out(config: Config, instruments: Iterable[str], series: Iterable[str],
              lacks: str = "the data") -> tuple[Config, list[str]]:
    """The config without these instruments (and their levels), the macros of these series, and every rule that
    reads any of them or charts a left-out instrument; and a line per rule left out saying what it reads that
    `lacks` lacks (then a line per missing input no rule reads)."""
    gone_inst, gone_series = set(instruments), set(series)
    gone_macros = {mid for mid, m in config.macro.items() if m.series in gone_series}
    gone = {instrument_key(i) for i in gone_inst} | {macro_key(m) for m in gone_macros}
    kept, lines, named = [], [], set()
    for rule in config.rules:
        reads = rule_inputs(config, rule)
        chart = rule.chart if rule.chart in gone_inst else None
        if not reads & gone and chart is None:
            kept.append(rule)
            continue
        why, seen = _why(config, reads, reads & gone, chart)
        named |= seen
        lines.append(f"rule {rule.name} left out: {why}, which {lacks} lacks")
    lines += [f"instrument {iid} ({config.instruments[iid].symbol}) left out: {lacks} lacks it; no rule reads it"
              for iid in config.instruments if iid in gone_inst and f"instrument {iid}" not in named]
    lines += [f"series {s} ({_macros(config, s)}) left out: {lacks} lacks it; no rule reads it"
              for s in config_series(config) if s in gone_series and f"series {s}" not in named]
    reduced = dataclasses.replace(
        config,
        instruments={k: v for k, v in config.instruments.items() if k not in gone_inst},
        levels={k: v for k, v in config.levels.items() if v.instrument not in gone_inst},
        macro={k: v for k, v in config.macro.items() if k not in gone_macros},
        rules=tuple(kept))
    return reduced, lines


def _why(config: Config, inputs: frozenset[str], gone: frozenset[str], chart: str | None) -> tuple[str, set[str]]:
    """"it reads instrument spx (^GSPC) through level spx-100 and series PAYEMS (macro payrolls)", with the inputs
    it names ("instrument spx", "series PAYEMS"). `inputs`: all the rule reads; `gone`: those left out."""
    reads, named = [], set()
    levels = [lid for lid in config.levels if level_key(lid) in inputs]
    for iid in config.instruments:
        if instrument_key(iid) in gone:
            through = [lid for lid in levels if config.levels[lid].instrument == iid]
            reads.append(f"instrument {iid} ({config.instruments[iid].symbol})"
                         + (f" through level {', '.join(through)}" if through else ""))
            named.add(f"instrument {iid}")
    for s in config_series(config):
        mids = [mid for mid, m in config.macro.items() if m.series == s and macro_key(mid) in gone]
        if mids:
            reads.append(f"series {s} (macro {', '.join(mids)})")
            named.add(f"series {s}")
    parts = [f"it reads {' and '.join(reads)}"] if reads else []
    if chart is not None:
        parts.append(f"its chart is instrument {chart} ({config.instruments[chart].symbol})")
        named.add(f"instrument {chart}")
    return " and ".join(parts), named


def _macros(config: Config, series: str) -> str:
    mids = [mid for mid, m in config.macro.items() if m.series == series]
    return f"macro {', '.join(mids)}"
