"""`macrowatch demo --data DIR`: the demo's scenario as a data directory that `replay --data` and rule tests read.

A user without API keys gets history to write a first thesis against: the scenario's bars as Yahoo daily CSV
(DIR/prices/<SYMBOL>.csv), its payrolls vintages in ALFRED's long format (DIR/macro/<SERIES>.csv), the consensus
its config writes inline as DIR/macro/consensus.csv, and the demo's config beside them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import click

from macrowatch.commands import missing
from macrowatch.commands.demo.scenario import CONFIG_NAME, CONFIG_YAML, REPORT_FROM, Scenario, scenario
from macrowatch.model import Bar, Vintage
from macrowatch.sources.files import PRICE_COLUMNS, consensus_file, price_file, series_file


def number(value: float) -> str:
    """A value as a data file writes it: whole numbers without a decimal point, others exact (repr)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def price_rows(bars: Iterable[Bar]) -> list[str]:
    """Yahoo's daily CSV: `Date,Open,High,Low,Close,Adj Close,Volume`, the close as the adjusted close."""
    rows = [",".join(PRICE_COLUMNS)]
    rows += [",".join([b.session.isoformat(), *(number(v) for v in (b.open, b.high, b.low, b.close, b.close)),
                       number(b.volume)]) for b in bars]
    return rows


def vintage_rows(vintages: Iterable[Vintage]) -> list[str]:
    """ALFRED's long format: `date,realtime_start,value`, one row per period and vintage."""
    return ["date,realtime_start,value"] + [f"{v.date},{v.realtime_start},{number(v.value)}" for v in vintages]


def consensus_rows(s: Scenario) -> list[str]:
    """The config's inline consensus as `series,date,consensus,measure` rows (only the header when it has none)."""
    rows = ["series,date,consensus,measure"]
    for macro in s.config.macro.values():
        rows += [f"{macro.series},{day},{number(value)},{macro.measure.value}"
                 for day, value in sorted(macro.consensus.items())]
    return rows


def write_data(target: Path, s: Scenario | None = None) -> list[tuple[Path, int]]:
    """Write the scenario's data directory into `target`; (file, rows of data) for each file written.

    Files of the same names are replaced (the scenario is deterministic: the same bytes each time); nothing else
    in `target` is touched.
    """
    s = s or scenario()
    out: list[tuple[Path, int]] = []

    def put(path: Path, rows: Sequence[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        out.append((path, len(rows) - 1))

    for inst in s.config.instruments.values():
        put(price_file(target, inst.symbol), price_rows(s.bars[inst.symbol]))
    for series in missing.config_series(s.config):
        put(series_file(target, series), vintage_rows(s.vintages[series]))
    consensus = consensus_rows(s)
    if len(consensus) > 1:
        put(consensus_file(target), consensus)
    config_path = target / CONFIG_NAME
    config_path.write_text(CONFIG_YAML, encoding="utf-8")
    out.append((config_path, 0))
    return out


def command(target: Path, echo: Callable[[str], None] = click.echo) -> None:
    """Write the data directory and say what is in it and how to replay it; exit 1 when it cannot be written."""
    s = scenario()
    try:
        written = write_data(target, s)
    except OSError as exc:
        click.echo(f"macrowatch demo: cannot write {exc.filename or target}: {exc.strerror}", err=True)
        sys.exit(1)
    first, last = (min(b[0].session for b in s.bars.values()), max(b[-1].session for b in s.bars.values()))
    echo(f"The demo's scenario (made-up prices around spring 2017, {first} .. {last}) as replay data in {target}:")
    for path, rows in written:
        what = f"{rows} rows" if path.suffix == ".csv" else "the demo's config"
        echo(f"  {path}  ({what})")
    echo("Replay it with the demo's config (or your own: -c FILE):")
    echo(f"  macrowatch replay -c {target / CONFIG_NAME} --data {target} --from {REPORT_FROM}")
