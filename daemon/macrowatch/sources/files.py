"""History from CSV files (for `replay`): Yahoo daily bars, ALFRED vintages, consensus.

Every malformed row is an error that names the file and the row; nothing is guessed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from macrowatch.config import safeio
from macrowatch.config.types import ConsensusFeed, Macro, Measure
from macrowatch.model import Vintage

# Dates outside these are typos; the exchange calendars (pandas timestamps) and date arithmetic stop near them.
FIRST_DATE, LAST_DATE = dt.date(1800, 1, 1), dt.date(2200, 12, 31)
# A data file is read whole, checked as it is read (a device, a FIFO or a file growing past this is refused, never
# read on). 128 MiB is about two million daily bars or vintage rows (a century of daily bars is 2 MB): more is a
# wrong file, and reading it as text for an error message would take gigabytes.
MAX_DATA_BYTES = 128 << 20


class DataError(Exception):
    """A data file that cannot be used: the message names the file and, where it can, the row."""

    def __init__(self, message: str):
        # The file's own text (a header, a series name) may hold \v, \x85 or \u2028: the message stays one line.
        super().__init__(_BREAKS.sub(lambda m: repr(m[0])[1:-1], message))


_BREAKS = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def _read(path: Path) -> bytes:
    """The whole file, if it is a regular file of at most MAX_DATA_BYTES."""
    try:
        return safeio.read_bytes(path, MAX_DATA_BYTES)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (safeio.NotRegularFile, safeio.FileTooLarge) as exc:
        raise DataError(f"{path}: {exc.strerror}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None


def _records(path: Path, data: bytes) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of each CSV record, the header first; blank lines (spaces and tabs only) skipped, as pandas
    skips them."""
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark (Excel writes one)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte {data[exc.start]:#04x})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for cells in reader:
            if cells and (len(cells) > 1 or cells[0].strip(" \t")):
                yield reader.line_num, cells
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None


def _columns(path: Path, header: list[str], known: tuple[str, ...], required: tuple[str, ...]) -> dict[str, int]:
    """Where each known column is in a header, matched without regard to case or to spaces around it."""
    where: dict[str, int] = {}
    names = {c.lower(): c for c in known}
    for k, cell in enumerate(header):
        name = names.get(cell.strip(" \t").lower())
        if name is None:
            continue
        if name in where:
            raise DataError(f"{path}:1: column {name} given twice (header: {','.join(header)})")
        where[name] = k
    missing = [c for c in required if c not in where]
    if missing:
        raise DataError(f"{path}:1: missing column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing)} (header: {','.join(header) or 'empty'})")
    return where


def _cells_message(header: list[str], n: int) -> str:
    """A row with fewer or more cells than its header: which columns it could not read."""
    width = len(header)
    unread = f"cannot read {', '.join(c.strip() for c in header[n:])}: " if n < width else ""
    return f"{unread}the row has {n} cell{'s' if n != 1 else ''}, the header {width}"


def _rows(path: Path, known: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row dict by the canonical column name) of a CSV file whose header holds the known columns."""
    records = _records(path, _read(path))
    header = next(records, (1, []))[1]
    where = _columns(path, header, known, known)
    for line, cells in records:
        if len(cells) != len(header):
            raise DataError(f"{path}:{line}: {_cells_message(header, len(cells))}")
        yield line, {c: cells[k] for c, k in where.items()}


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


PRICE_COLUMNS = ("Date", "Open", "High", "Low", "Close", "Adj Close", "Volume")


def read_prices(path: Path) -> PriceColumns:
    """Daily bars in date order, as columns; gaps skipped: rows of a date and no value at all (Yahoo's 'null' rows).

    Read with pandas' C parser (replay reads thousands of files). A clean file is checked on its numbers at
    once; a file with anything odd is read again as text, row by row, so that the first bad row (in file order)
    is the error. Every column is read (not only those used): the parser finds a row with more cells than the
    header only in columns it reads, and a row with fewer only as missing values, which in a row that is not a
    gap send the file to the text reader.
    """
    data = _read(path)
    fast = None
    names = _iso_first(data)
    if names is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a date column pandas cannot read stays text: the text reader says why
                # Only what the text reader skips as a gap reads as NaN here ("N/A", "-nan": the text reader's
                # errors, so left as text, which sends the file to it). Our names replace the header's (matched
                # without regard to case).
                frame = pd.read_csv(io.BytesIO(data), header=0, names=names, parse_dates=["Date"],
                                    keep_default_na=False, na_values=_GAPS)
            fast = _clean(frame)
        except (ValueError, csv.Error, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            fast = None
    return fast if fast is not None else _checked(path, data)


_GAPS = ["", "null", "nan", "NaN", "NULL"]
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_first(data: bytes) -> list[str] | None:
    """Column names for pandas (ours for the price columns) if the header is sound and the first row's Date reads
    YYYY-MM-DD; else None.

    pandas takes the date format from the first date and holds every other row to it (a row that does not
    fit leaves the column as text); a file starting 07/01/2019 would otherwise be read whole as dates.
    Asking pandas for the format instead costs twice the whole read.
    """
    end = data.find(b"\n", data.find(b"\n") + 1)
    head = data[:end if end >= 0 else len(data)].decode("utf-8-sig", errors="replace")
    rows = list(csv.reader(io.StringIO(head, newline="")))
    try:
        where = _columns(Path(), rows[0], PRICE_COLUMNS, ("Date", "Close")) if rows else None
    except DataError:  # the text reader says why
        return None
    if where is None or len(rows) < 2:
        return None
    k = where["Date"]
    if not (k < len(rows[1]) and _ISO_DAY.fullmatch(rows[1][k])):
        return None
    names = [f"\x00{j}" for j in range(len(rows[0]))]  # columns not read: names no header can hold
    for column, j in where.items():
        names[j] = column
    return names


def _clean(frame: pd.DataFrame) -> PriceColumns | None:
    """The columns of a file that passes every check as read, or None to look closer."""
    if not isinstance(frame.index, pd.RangeIndex):  # a first row longer than the header: pandas made an index
        return None
    stamps = frame["Date"].to_numpy()
    cols = {c: frame[c].to_numpy() for c in ("Open", "High", "Low", "Close", "Volume") if c in frame.columns}
    if stamps.dtype.kind != "M" or any(a.dtype.kind not in "fi" for a in cols.values()):
        return None
    # A gap has no value at all (a short row of a date alone too); any other row missing a cell is the text
    # reader's to judge (a short row, a blank Open).
    empty = {c: frame[c].isna().to_numpy() for c in PRICE_COLUMNS[1:] if c in frame.columns}
    gap = np.logical_and.reduce(list(empty.values()))
    if bool((frame.isna().to_numpy().any(axis=1) & ~gap).any()):
        return None
    session = stamps.astype("datetime64[D]")
    if len(session):
        day = session.view(np.int64)  # NaT is the smallest: it breaks the order or the first row's range
        if not (bool((day[1:] > day[:-1]).all()) and bool(_in_range(session[[0, -1]]).all())
                and bool((stamps == session.astype(stamps.dtype)).all())):  # no time of day
            return None
    cols = {c: a.astype(float, copy=False) for c, a in cols.items()}
    if gap.any():  # the gaps: skipped
        keep = ~gap
        session, cols = session[keep], {c: a[keep] for c, a in cols.items()}
    close = cols["Close"]
    o, h, lo = (cols.get(c, close) for c in ("Open", "High", "Low"))
    volume = cols.get("Volume")
    if not len(session):
        return PriceColumns(session, o, h, lo, close, np.zeros(0) if volume is None else volume)
    with np.errstate(invalid="ignore"):
        ok = (all(bool(np.isfinite(a).all()) for a in cols.values())
              and all(bool(a.min() > 0) for c, a in cols.items() if c != "Volume")
              and not bool(((h < np.maximum(o, close) * (1 - 1e-9)) | (lo > np.minimum(o, close) * (1 + 1e-9))).any()))
    if not ok:
        return None
    return PriceColumns(session, o, h, lo, close, np.zeros(len(close)) if volume is None else volume)


def _checked(path: Path, data: bytes | None = None) -> PriceColumns:
    """Every row checked as text, in file order; the first bad row is the error."""
    records = _records(path, _read(path) if data is None else data)
    header = next(records, (1, []))[1]
    where = _columns(path, header, PRICE_COLUMNS, ("Date", "Close"))
    lines, counts, cells = [], [], {c: [] for c in where}
    for line, row in records:
        lines.append(line)
        counts.append(len(row))
        for c, k in where.items():
            cells[c].append(row[k].strip() if k < len(row) else "")  # a missing cell: the count says so
    rows = np.array(lines, dtype=np.int64)  # the file's line of each row
    col = {c: np.array(v, dtype=object) for c, v in cells.items()}
    lower = {c: pd.Series(v, dtype=object).str.lower().to_numpy() for c, v in col.items() if c != "Date"}
    null = {c: np.isin(v, ["", "null", "nan"]) for c, v in lower.items()}
    gap = np.logical_and.reduce(list(null.values()))  # a date and no value at all: a session without a price
    problems: list[tuple[int, int, str]] = []  # (line, order of the check, message)
    day = pd.to_datetime(pd.Series(col["Date"], dtype=object).str.slice(0, 10), format="%Y-%m-%d",
                         errors="coerce").to_numpy()
    _first(problems, rows, np.isnat(day), 0, lambda i: f"Date: {col['Date'][i]!r} is not a date (YYYY-MM-DD)")
    session = day.astype("datetime64[D]")
    _first(problems, rows, ~np.isnat(session) & ~_in_range(session), 0,
           lambda i: f"Date: {session[i]} is out of range ({FIRST_DATE} to {LAST_DATE})")
    order = np.zeros(len(session), dtype=bool)
    order[1:] = ~np.isnat(session[1:]) & ~np.isnat(session[:-1]) & (session[1:] <= session[:-1])
    _first(problems, rows, order, 1, lambda i: f"Date {session[i]} "
           f"{'repeats' if session[i] == session[i - 1] else 'is before'} the row before ({session[i - 1]}); "
           "rows must be in date order")
    count = np.array(counts, dtype=np.int64)
    width = len(header)
    _first(problems, rows, (count > width) | ((count < width) & ~gap), 2,
           lambda i: _cells_message(header, int(count[i])))
    keep = ~gap
    rows, session = rows[keep], session[keep]
    col = {c: v[keep] for c, v in col.items()}
    _first(problems, rows, null["Close"][keep], 3,
           lambda i: f"Close: {col['Close'][i]!r} is not a number (a gap has no value at all)")
    close = _numbers(problems, rows, col["Close"], "Close", 4, positive=True)
    ohl = [(_numbers(problems, rows, col[c], c, 5, positive=True, blank=close) if c in col else close)
           for c in ("Open", "High", "Low")]
    o, h, lo = ohl
    with np.errstate(invalid="ignore"):
        bad = (h < np.maximum(o, close) * (1 - 1e-9)) | (lo > np.minimum(o, close) * (1 + 1e-9))
    _first(problems, rows, bad, 6, lambda i: f"High/Low ({h[i]}, {lo[i]}) contradict Open/Close ({o[i]}, {close[i]})")
    volume = _numbers(problems, rows, col["Volume"], "Volume", 7, blank=np.zeros(len(close))) \
        if "Volume" in col else np.zeros(len(close))
    if problems:
        line, _check, message = min(problems)
        raise DataError(f"{path}:{line}: {message}")
    return PriceColumns(session, o, h, lo, close, volume, rows)


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
    line: np.ndarray | None = None  # each bar's line in the file, when read row by row (see `bar_lines`)

    def __len__(self) -> int:
        return len(self.close)


def bar_lines(path: Path) -> np.ndarray:
    """The line in the file of each bar read_prices returns (the file read again, row by row: for errors)."""
    return _checked(path).line


def _first(problems: list, rows: np.ndarray, bad: np.ndarray, check: int, message) -> None:
    """Note the first bad row of one check."""
    if bad.any():
        i = int(np.argmax(bad))
        problems.append((int(rows[i]), check, message(i)))


def _numbers(problems: list, rows: np.ndarray, text: np.ndarray, column: str, check: int,
             positive: bool = False, blank: np.ndarray | None = None) -> np.ndarray:
    """A column as floats; a blank cell takes `blank`; a bad cell is noted (non-finite or, if asked, <= 0)."""
    empty = text == ""
    values = pd.to_numeric(pd.Series(np.where(empty, "0", text), dtype=object), errors="coerce").to_numpy(dtype=float)
    said_nan = pd.Series(text, dtype=object).str.lower().to_numpy() == "nan"  # float("nan") reads: just not usable
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
        if v.realtime_start < v.date:  # a period is reported once it has begun: a typo, which would pass for a
            # vintage of it and make its real first print a revision
            raise DataError(f"{path}:{line}: realtime_start: {v.realtime_start} is before the period it reports "
                            f"({v.date})")
        if (v.date, v.realtime_start) in seen:  # two values for one vintage: which one is true is a guess
            raise DataError(f"{path}:{line}: {v.date} as of {v.realtime_start} given twice "
                            f"(first at line {seen[(v.date, v.realtime_start)]})")
        seen[(v.date, v.realtime_start)] = line
        out.append(v)
    return out


ConsensusTable = dict[tuple[str, Measure | None], dict[dt.date, float]]
# A release's forecast as the store kept it: (value, seen_at) of the newest sighting of `entry`'s event for the
# release at the time given that was seen strictly before that time (Store.forecast_before), None for none.
Seen = Callable[[ConsensusFeed, dt.datetime], tuple[float | None, dt.datetime] | None]


def read_consensus(path: Path) -> ConsensusTable:
    """`series,date,consensus[,measure]`: (series, measure or None) -> reference period -> consensus.

    A row with a measure applies only to the macros of that measure; without one, to every macro of the series
    (`consensus_of`).
    """
    out: ConsensusTable = {}
    records = _records(path, _read(path))
    header = next(records, (1, []))[1]
    where = _columns(path, header, ("series", "date", "consensus", "measure"), ("series", "date", "consensus"))
    measures = {m.value: m for m in Measure}
    for line, cells in records:
        if len(cells) != len(header):
            raise DataError(f"{path}:{line}: {_cells_message(header, len(cells))}")
        row = {c: cells[k] for c, k in where.items()}
        series = (row["series"] or "").strip()
        if not series:
            raise DataError(f"{path}:{line}: series: empty")
        day = _date(path, line, "date", row["date"])
        if day.day != 1:  # matched to the series' periods, which FRED dates by their first day: never used
            raise DataError(f"{path}:{line}: date: {day} is not the first day of a month (a reference period is "
                            "dated YYYY-MM-01)")
        written = (row.get("measure") or "").strip()
        if written and written.lower() not in measures:
            raise DataError(f"{path}:{line}: measure: {written!r} is not one of {', '.join(measures)} "
                            "(or empty: every measure)")
        measure = measures[written.lower()] if written else None
        table = out.setdefault((series, measure), {})
        if day in table:
            raise DataError(f"{path}:{line}: {series} {day}{f' {measure.value}' if measure else ''}: "
                            "consensus given twice")
        table[day] = _number(path, line, "consensus", row["consensus"])
    return out


def consensus_of(table: ConsensusTable, macro: Macro) -> dict[dt.date, float] | None:
    """The rows of a consensus table for a macro: its series' rows without a measure, and over them those of its
    own measure; None when the table has none for it."""
    general, own = table.get((macro.series, None)), table.get((macro.series, macro.measure))
    if general is None and own is None:
        return None
    return {**(general or {}), **(own or {})}


def feed_label(entry: ConsensusFeed, seen_at: dt.datetime) -> str:
    """The source of a feed's consensus, as alerts, status and replay's evidence name it."""
    return f"{entry.feed.value}, seen {seen_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"


def consensus_for(macro: Macro, given: tuple[Mapping[dt.date, float], str] | None = None,
                  releases: Mapping[dt.date, dt.datetime] | None = None, seen: Seen | None = None
                  ) -> tuple[Mapping[dt.date, float], str | Mapping[dt.date, str]]:
    """The consensus a macro's releases are judged against, as (reference period -> value, label or label per
    period), by the one precedence: the entry for the month from `given` (replay's DATA/macro/consensus.csv for
    the series, a rule test's print), else from the config's consensus file, else from its inline `consensus:`
    table; then the macro's feeds in order, each the newest value it showed strictly before the release time
    (`seen`, for the releases at `releases`: reference period -> release time); a feed that showed none, or
    showed its value only later, does not count. A period none of these has is judged against the baseline, the
    mean of the last 12 first prints (`engine.outcomes.assess`), else has none.

    Raises DataError for a consensus file that does not read.
    """
    if given is not None:
        table, label = given
    elif macro.consensus_file is not None:
        table, label = consensus_of(read_consensus(macro.consensus_file), macro) or {}, "consensus (file)"
    else:
        table, label = dict(macro.consensus), "consensus (config)"
    if not (macro.feeds and releases and seen):
        return table, label
    values, labels = dict(table), dict.fromkeys(table, label)
    for period, at in releases.items():
        if period in values:
            continue
        for entry in macro.feeds:
            sighting = seen(entry, at)
            if sighting is not None and sighting[0] is not None and sighting[1] < at:
                values[period], labels[period] = sighting[0], feed_label(entry, sighting[1])
                break
    return values, labels


def price_file(data_dir: Path, symbol: str) -> Path:
    """DIR/prices/<SYMBOL>.csv, the file name being the symbol without a leading '^'."""
    return data_dir / "prices" / f"{symbol.lstrip('^')}.csv"


def series_file(data_dir: Path, series: str) -> Path:
    """DIR/macro/<SERIES>.csv: a series' vintages in a data directory."""
    return data_dir / "macro" / f"{series}.csv"


def consensus_file(data_dir: Path) -> Path:
    """DIR/macro/consensus.csv: the consensus of a data directory's releases (optional)."""
    return data_dir / "macro" / "consensus.csv"
