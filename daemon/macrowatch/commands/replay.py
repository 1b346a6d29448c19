"""`macrowatch replay`: a data directory of CSV history (DIR/prices, DIR/macro) into a History for the engine."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

import numpy as np

from macrowatch.config.types import Config
from macrowatch.model import Bars, Vintage
from macrowatch.runtime.history import History, close_array, macro_prints
from macrowatch.sources import files
from macrowatch.sources.base import calendar_for


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
