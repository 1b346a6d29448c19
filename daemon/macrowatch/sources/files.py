"""History from CSV files (for `replay`): Yahoo daily bars, ALFRED vintages, consensus.

Every malformed row is an error that names the file and the row; nothing is guessed.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from macrowatch.model import Vintage

# Dates outside these are typos; the exchange calendars (pandas timestamps) and date arithmetic stop near them.
FIRST_DATE, LAST_DATE = dt.date(1800, 1, 1), dt.date(2200, 12, 31)


class DataError(Exception):
    """A data file that cannot be used: the message names the file and, where it can, the row."""

    def __init__(self, message: str):
        # The file's own text (a header, a series name) may hold \v, \x85 or \u2028: the message stays one line.
        super().__init__(_BREAKS.sub(lambda m: repr(m[0])[1:-1], message))


_BREAKS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


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
        day = dt.date.fromisoformat((text or "").strip()[:10])
    except ValueError:
        raise DataError(f"{path}:{line}: {column}: {text!r} is not a date (YYYY-MM-DD)") from None
    if not FIRST_DATE <= day <= LAST_DATE:
        raise DataError(f"{path}:{line}: {column}: {day} is out of range ({FIRST_DATE} to {LAST_DATE})")
    return day


def _number(path: Path, line: int, column: str, text: str | None, positive: bool = False) -> float:
    try:
        value = float((text or "").strip())
    except ValueError:
        raise DataError(f"{path}:{line}: {column}: {text!r} is not a number") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise DataError(f"{path}:{line}: {column}: {text!r} is not a {'positive ' if positive else ''}number")
    return value


def read_prices(path: Path) -> PriceColumns:
    """Daily bars in date order, as columns; rows of 'null' (Yahoo's gaps) skipped.

    Read with pandas' C parser (replay reads thousands of files). A clean file is checked on its numbers at
    once; a file with anything odd is read again as text, so that the first bad row (in file order) is the
    error, as a row-by-row reader would report it. Every column is read (not only those used): the parser
    finds a row with more cells than the header only in columns it reads.
    """
    try:
        fast = None
        if _iso_first(path):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a date column pandas cannot read stays text: the text reader says why
                # Only what the text reader skips as a gap reads as NaN here ("N/A", "-nan": the text reader's
                # errors, so left as text, which sends the file to it).
                fast = _clean(pd.read_csv(path, parse_dates=["Date"], keep_default_na=False, na_values=_GAPS))
    except (OSError, ValueError, csv.Error, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        fast = None
    return fast if fast is not None else _checked(path)


_GAPS = ["", "null", "nan", "NaN", "NULL"]
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_first(path: Path) -> bool:
    """Whether the first row's Date reads YYYY-MM-DD.

    pandas takes the date format from the first date and holds every other row to it (a row that does not
    fit leaves the column as text); a file starting 07/01/2019 would otherwise be read whole as dates.
    Asking pandas for the format instead costs twice the whole read.
    """
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader([handle.readline(), handle.readline()]))
    if len(rows) < 2 or "Date" not in rows[0]:
        return False
    k = rows[0].index("Date")
    return k < len(rows[1]) and _ISO_DAY.fullmatch(rows[1][k]) is not None


def _clean(frame: pd.DataFrame) -> PriceColumns | None:
    """The columns of a file that passes every check as read, or None to look closer."""
    if "Date" not in frame.columns or "Close" not in frame.columns:
        return None
    stamps = frame["Date"].to_numpy()
    cols = {c: frame[c].to_numpy() for c in ("Open", "High", "Low", "Close", "Volume") if c in frame.columns}
    if stamps.dtype.kind != "M" or any(a.dtype.kind not in "fi" for a in cols.values()):
        return None
    cols = {c: a.astype(float, copy=False) for c, a in cols.items()}
    keep = ~np.isnan(cols["Close"])
    if not keep.all():  # Yahoo's 'null' rows: skipped
        stamps, cols = stamps[keep], {c: a[keep] for c, a in cols.items()}
    close = cols["Close"]
    o, h, lo = (cols.get(c, close) for c in ("Open", "High", "Low"))
    volume = cols.get("Volume")
    session = stamps.astype("datetime64[D]")
    if not len(session):
        return PriceColumns(session, o, h, lo, close, np.zeros(0) if volume is None else volume)
    day = session.view(np.int64)  # NaT is the smallest: it breaks the order or the first row's range
    with np.errstate(invalid="ignore"):
        ok = (bool((day[1:] > day[:-1]).all()) and bool(_in_range(session[[0, -1]]).all())
              and bool((stamps == session.astype(stamps.dtype)).all())  # no time of day
              and all(bool(np.isfinite(a).all()) for a in cols.values())
              and all(bool(a.min() > 0) for c, a in cols.items() if c != "Volume")
              and not bool(((h < np.maximum(o, close) * (1 - 1e-9)) | (lo > np.minimum(o, close) * (1 + 1e-9))).any()))
    if not ok:
        return None
    return PriceColumns(session, o, h, lo, close, np.zeros(len(close)) if volume is None else volume)


def _checked(path: Path) -> PriceColumns:
    """Every row checked as text, in file order; the first bad row is the error."""
    frame = _frame(path)
    missing = [c for c in ("Date", "Close") if c not in frame.columns]
    if missing:
        header = ",".join(str(c) for c in frame.columns) or "empty"
        raise DataError(f"{path}:1: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                        f"(header: {header})")
    text = {c: frame[c].str.strip() for c in ("Date", "Close", "Open", "High", "Low", "Volume") if c in frame}
    rows = frame.index.to_numpy() + 2  # the file's line of each row: the header is line 1
    keep = ~text["Close"].str.lower().isin(["null", "nan", ""]).to_numpy()
    rows = rows[keep]
    col = {c: t.to_numpy()[keep] for c, t in text.items()}
    problems: list[tuple[int, int, str]] = []  # (line, order of the check, message)
    day = pd.to_datetime(pd.Series(col["Date"]).str.slice(0, 10), format="%Y-%m-%d", errors="coerce").to_numpy()
    _first(problems, rows, np.isnat(day), 0, lambda i: f"Date: {col['Date'][i]!r} is not a date (YYYY-MM-DD)")
    session = day.astype("datetime64[D]")
    _first(problems, rows, ~np.isnat(session) & ~_in_range(session), 0,
           lambda i: f"Date: {session[i]} is out of range ({FIRST_DATE} to {LAST_DATE})")
    order = np.zeros(len(session), dtype=bool)
    order[1:] = ~np.isnat(session[1:]) & ~np.isnat(session[:-1]) & (session[1:] <= session[:-1])
    _first(problems, rows, order, 1, lambda i: f"Date {session[i]} "
           f"{'repeats' if session[i] == session[i - 1] else 'is before'} the row before ({session[i - 1]}); "
           "rows must be in date order")
    close = _numbers(problems, rows, col["Close"], "Close", 2, positive=True)
    ohl = [(_numbers(problems, rows, col[c], c, 3, positive=True, blank=close) if c in col else close)
           for c in ("Open", "High", "Low")]
    o, h, lo = ohl
    with np.errstate(invalid="ignore"):
        bad = (h < np.maximum(o, close) * (1 - 1e-9)) | (lo > np.minimum(o, close) * (1 + 1e-9))
    _first(problems, rows, bad, 4, lambda i: f"High/Low ({h[i]}, {lo[i]}) contradict Open/Close ({o[i]}, {close[i]})")
    volume = _numbers(problems, rows, col["Volume"], "Volume", 5, blank=np.zeros(len(close))) \
        if "Volume" in col else np.zeros(len(close))
    if problems:
        line, _check, message = min(problems)
        raise DataError(f"{path}:{line}: {message}")
    return PriceColumns(session, o, h, lo, close, volume)


def _in_range(session: np.ndarray) -> np.ndarray:
    return (session >= np.datetime64(FIRST_DATE)) & (session <= np.datetime64(LAST_DATE))


@dataclass(frozen=True)
class PriceColumns:
    """A prices file's bars as columns (no close times yet: those come from the exchange calendar)."""

    session: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.close)


def _frame(path: Path) -> pd.DataFrame:
    try:
        # index_col=False: a first row longer than the header must not turn the dates into the index (every
        # column then shifts by one); its extra cells are ignored, as csv.DictReader did, without a warning.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, skipinitialspace=False,
                               index_col=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}:1: missing columns Date, Close (header: empty)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a CSV file: {str(exc).splitlines()[0][:200]}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None


def _first(problems: list, rows: np.ndarray, bad: np.ndarray, check: int, message) -> None:
    """Note the first bad row of one check."""
    if bad.any():
        i = int(np.argmax(bad))
        problems.append((int(rows[i]), check, message(i)))


def _numbers(problems: list, rows: np.ndarray, text: np.ndarray, column: str, check: int,
             positive: bool = False, blank: np.ndarray | None = None) -> np.ndarray:
    """A column as floats; a blank cell takes `blank`; a bad cell is noted (non-finite or, if asked, <= 0)."""
    empty = text == ""
    values = pd.to_numeric(pd.Series(np.where(empty, "0", text)), errors="coerce").to_numpy(dtype=float)
    said_nan = np.char.lower(text.astype(str)) == "nan"  # float("nan") reads: it is just not a usable number
    unreadable = (np.isnan(values) & ~said_nan) | (empty if blank is None else False)
    if blank is not None:
        values = np.where(empty, blank, values)
    with np.errstate(invalid="ignore"):
        bad = unreadable | ~np.isfinite(values) | (positive & ~(values > 0))

    def message(i: int) -> str:
        what = "a number" if unreadable[i] or not positive else "a positive number"
        return f"{column}: {text[i]!r} is not {what}"

    _first(problems, rows, bad, check, message)
    return values


def read_vintages(path: Path) -> list[Vintage]:
    """ALFRED long format `date,realtime_start,value`; '.' (FRED's missing value) rows are skipped."""
    out = []
    seen: dict[tuple[dt.date, dt.date], int] = {}
    for line, row in _rows(path, ("date", "realtime_start", "value")):
        if (row["value"] or "").strip() == ".":
            continue
        v = Vintage(_date(path, line, "date", row["date"]), _date(path, line, "realtime_start", row["realtime_start"]),
                    _number(path, line, "value", row["value"]))
        if (v.date, v.realtime_start) in seen:  # two values for one vintage: which one is true is a guess
            raise DataError(f"{path}:{line}: {v.date} as of {v.realtime_start} given twice "
                            f"(first at line {seen[(v.date, v.realtime_start)]})")
        seen[(v.date, v.realtime_start)] = line
        out.append(v)
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
