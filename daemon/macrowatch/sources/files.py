"""History from CSV files (for `replay`): Yahoo daily bars, ALFRED vintages, consensus.

Every malformed row is an error that names the file and the row; nothing is guessed.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path

from macrowatch.model import Vintage


class DataError(Exception):
    """A data file that cannot be used: the message names the file and, where it can, the row."""


def _rows(path: Path, required: tuple[str, ...]):
    """(row number, row dict) of a CSV file whose header holds the required columns."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames or []
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a CSV file: {exc}") from None
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}:1: missing column{'s' if len(missing) > 1 else ''} "
                            f"{', '.join(missing)} (header: {','.join(header) or 'empty'})")
        try:
            for row in reader:
                yield reader.line_num, row
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None


def _date(path: Path, line: int, column: str, text: str | None) -> dt.date:
    try:
        return dt.date.fromisoformat((text or "").strip()[:10])
    except ValueError:
        raise DataError(f"{path}:{line}: {column}: {text!r} is not a date (YYYY-MM-DD)") from None


def _number(path: Path, line: int, column: str, text: str | None, positive: bool = False) -> float:
    try:
        value = float((text or "").strip())
    except ValueError:
        raise DataError(f"{path}:{line}: {column}: {text!r} is not a number") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise DataError(f"{path}:{line}: {column}: {text!r} is not a {'positive ' if positive else ''}number")
    return value


def read_prices(path: Path) -> list[tuple[dt.date, float, float, float, float, float]]:
    """Daily bars (session, open, high, low, close, volume), in date order; rows of 'null' (Yahoo's gaps) skipped."""
    out = []
    last: dt.date | None = None
    for line, row in _rows(path, ("Date", "Close")):
        if (row.get("Close") or "").strip().lower() in ("null", "nan", ""):
            continue
        day = _date(path, line, "Date", row["Date"])
        if last is not None and day <= last:
            what = "repeats" if day == last else "is before"
            raise DataError(f"{path}:{line}: Date {day} {what} the row before ({last}); rows must be in date order")
        close = _number(path, line, "Close", row["Close"], positive=True)
        o, h, lo = (_number(path, line, c, row[c], positive=True) if row.get(c) not in (None, "") else close
                    for c in ("Open", "High", "Low"))
        if h < max(o, close) * (1 - 1e-9) or lo > min(o, close) * (1 + 1e-9):
            raise DataError(f"{path}:{line}: High/Low ({h}, {lo}) contradict Open/Close ({o}, {close})")
        vol = _number(path, line, "Volume", row["Volume"]) if row.get("Volume") not in (None, "") else 0.0
        out.append((day, o, h, lo, close, vol))
        last = day
    return out


def read_vintages(path: Path) -> list[Vintage]:
    """ALFRED long format `date,realtime_start,value`; '.' (FRED's missing value) rows are skipped."""
    out = []
    for line, row in _rows(path, ("date", "realtime_start", "value")):
        if (row["value"] or "").strip() == ".":
            continue
        out.append(Vintage(_date(path, line, "date", row["date"]),
                           _date(path, line, "realtime_start", row["realtime_start"]),
                           _number(path, line, "value", row["value"])))
    return out


def read_consensus(path: Path) -> dict[str, dict[dt.date, float]]:
    """`series,date,consensus`: series -> reference period -> consensus."""
    out: dict[str, dict[dt.date, float]] = {}
    for line, row in _rows(path, ("series", "date", "consensus")):
        series = (row["series"] or "").strip()
        if not series:
            raise DataError(f"{path}:{line}: series: empty")
        day = _date(path, line, "date", row["date"])
        table = out.setdefault(series, {})
        if day in table:
            raise DataError(f"{path}:{line}: {series} {day}: consensus given twice")
        table[day] = _number(path, line, "consensus", row["consensus"])
    return out


def price_file(data_dir: Path, symbol: str) -> Path:
    """DIR/prices/<SYMBOL>.csv, the file name being the symbol without a leading '^'."""
    return data_dir / "prices" / f"{symbol.lstrip('^')}.csv"
