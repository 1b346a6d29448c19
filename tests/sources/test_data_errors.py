"""`macrowatch replay --data` on data files that are wrong in ways a reader could take silently: rows that are not
gaps, bars on days without a session, consensus and vintage dates that cannot be, header-only files, headers in
another case, rows with missing cells, and paths that are not regular files or are too large."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from macrowatch.commands.cli import cli
from macrowatch.sources import files
from macrowatch.sources.calendar import close_times

CONFIG = """\
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
levels:
  spx-100: {instrument: spx, price: 100, fail_within_bars: 2}
releases:
  es: {fred_release_id: 50, time: "08:30"}
macro:
  payrolls: {series: PAYEMS, release: es, measure: change, beat_by: 25}
rules:
  - name: breakout
    when: {level: spx-100, entered: breakout}
  - name: jobs
    when: {release: payrolls, outcome: any}
    message: "payrolls {payrolls.actual:+.0f}k vs {payrolls.consensus:+.0f}k"
"""
HEADER = "Date,Open,High,Low,Close,Adj Close,Volume"
DAYS = sorted(close_times("XNYS", dt.date(2019, 7, 1), dt.date(2019, 7, 12)))  # 07-04 is a holiday
VINTAGES = textwrap.dedent("""\
    date,realtime_start,value
    2019-04-01,2019-06-07,1000
    2019-05-01,2019-06-07,1100
    2019-05-01,2019-07-05,1120
    2019-06-01,2019-07-05,1320
    """)


def price_rows() -> list[str]:
    closes = [95, 96, 97, 98, 101, 102, 103, 104, 105]
    return [f"{d},{c},{c + 1},{c - 1},{c},{c},1000" for d, c in zip(DAYS, closes, strict=True)]


@pytest.fixture
def root(tmp_path):
    """Closes from 2019-07-01 crossing 100 on 2019-07-08; payrolls +200k (consensus 150k) on 2019-07-05."""
    (tmp_path / "data" / "prices").mkdir(parents=True)
    (tmp_path / "data" / "macro").mkdir()
    write(tmp_path, "prices/GSPC.csv", [HEADER, *price_rows()])
    write(tmp_path, "macro/PAYEMS.csv", VINTAGES.splitlines())
    write(tmp_path, "macro/consensus.csv", ["series,date,consensus", "PAYEMS,2019-06-01,150"])
    (tmp_path / "mw.yaml").write_text(CONFIG)
    return tmp_path


def write(root: Path, rel: str, lines: list[str]) -> Path:
    path = root / "data" / rel
    path.write_text("\n".join(lines) + "\n")
    return path


def replay(root: Path):
    result = CliRunner().invoke(cli, ["replay", "-c", str(root / "mw.yaml"), "--data", str(root / "data")])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


def error_of(root: Path, rel: str) -> str:
    """Replay's one error line, asserted to exit 2 and to name the file; the text after `FILE`."""
    result = replay(root)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    prefix = f"macrowatch replay: {root / 'data' / rel}"
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix):]


# ---- rows that are not gaps -------------------------------------------------------------------------------

@pytest.mark.parametrize("row, message", [
    ("hello", ":4: Date: 'hello' is not a date (YYYY-MM-DD)"),
    (",,,,,,", ":4: Date: '' is not a date (YYYY-MM-DD)"),
    ("2019-07-03,abc", ":4: cannot read High, Low, Close, Adj Close, Volume: the row has 2 cells, the header 7"),
    # Open missing: the High read as the Open, ... and the Volume as the Close.
    ("2019-07-03,98,96,97,97,1000", ":4: cannot read Volume: the row has 6 cells, the header 7"),
    ("2019-07-03,98,96,97,1000", ":4: cannot read Adj Close, Volume: the row has 5 cells, the header 7"),
    ("2019-07-03,97,98,96,,97,1000", ":4: Close: '' is not a number (a gap has no value at all)"),
    ("2019-07-03,null,null,null,null,97,null", ":4: Close: 'null' is not a number (a gap has no value at all)"),
])
def test_a_row_that_is_not_a_gap_is_an_error_naming_its_line(root, row, message):
    rows = price_rows()
    rows[2] = row  # 2019-07-03, line 4
    write(root, "prices/GSPC.csv", [HEADER, *rows])
    assert error_of(root, "prices/GSPC.csv") == message
    assert "contradict" not in message


def test_a_session_without_any_price_is_a_gap_and_nothing_else_is(tmp_path):
    """Both price readers (pandas' and the row-by-row one) skip a gap and reject a row that only looks like one."""
    def read(reader, row: str):
        rows = price_rows()
        rows[2] = row  # 2019-07-03
        path = tmp_path / "X.csv"
        path.write_text("\n".join([HEADER, *rows]) + "\n")
        try:
            return reader(path).session.tolist()
        except files.DataError as exc:
            return str(exc).removeprefix(f"{path}")

    for row in ["2019-07-03,,,,,,", "2019-07-03,null,null,null,null,null,null", "2019-07-03", "2019-07-03,NaN,,,null"]:
        for reader in (files.read_prices, files._checked):
            assert read(reader, row) == [d for d in DAYS if d != dt.date(2019, 7, 3)], row
    for row in ["hello", "2019-07-03,abc", ",,,,,,", "2019-07-03,98,96,97,1000",
                "2019-07-03,null,null,null,null,97,null", "2019-07-03,97,98,96,97,97,1000,5"]:
        said = read(files.read_prices, row)
        assert isinstance(said, str) and said.startswith(":4: "), (row, said)
        assert read(files._checked, row) == said


def test_a_row_with_an_extra_cell_says_so(root):
    rows = price_rows()
    rows[2] = "2019-07-03,97,97,98,96,97,97,1000"  # the Open twice
    write(root, "prices/GSPC.csv", [HEADER, *rows])
    assert error_of(root, "prices/GSPC.csv") == ":4: the row has 8 cells, the header 7"


def test_a_vintage_row_with_a_missing_cell_names_the_columns(root):
    write(root, "macro/PAYEMS.csv", [*VINTAGES.splitlines(), "2019-06-01,1330"])
    assert error_of(root, "macro/PAYEMS.csv") == ":6: cannot read value: the row has 2 cells, the header 3"


# ---- days without a session -------------------------------------------------------------------------------

@pytest.mark.parametrize("day, what", [("2019-07-06", "a Saturday"), ("2019-07-07", "a Sunday"),
                                       ("2019-07-04", "a Thursday")])
def test_a_bar_on_a_day_without_a_session_is_an_error(root, day, what):
    rows = price_rows()
    at = next(i for i, d in enumerate(DAYS) if d.isoformat() > day)
    rows.insert(at, f"{day},99,100,98,99,99,1000")
    write(root, "prices/GSPC.csv", [HEADER, *rows])
    assert error_of(root, "prices/GSPC.csv") == f":{at + 2}: {day} is not a session of XNYS ({what})"


# ---- consensus and vintage dates --------------------------------------------------------------------------

def test_a_consensus_dated_within_a_month_is_an_error(root):
    write(root, "macro/consensus.csv", ["series,date,consensus", "PAYEMS,2019-06-15,150"])
    assert error_of(root, "macro/consensus.csv") == \
        ":2: date: 2019-06-15 is not the first day of a month (a reference period is dated YYYY-MM-01)"


def test_a_vintage_published_before_its_period_is_an_error(root):
    write(root, "macro/PAYEMS.csv", [*VINTAGES.splitlines(), "2019-07-01,2019-06-10,1500"])
    assert error_of(root, "macro/PAYEMS.csv") == \
        ":6: realtime_start: 2019-06-10 is before the period it reports (2019-07-01)"


# ---- files without rows -----------------------------------------------------------------------------------

@pytest.mark.parametrize("rel, header, said", [
    ("macro/PAYEMS.csv", "date,realtime_start,value", "no values: payrolls has no release to replay"),
    ("macro/consensus.csv", "series,date,consensus", "no rows: the consensus of the config (or the mean of the "
                                                     "last 12 first prints) is used"),
])
def test_a_header_only_file_is_a_warning(root, rel, header, said):
    write(root, rel, [header])
    result = replay(root)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == f"macrowatch replay: warning: {root / 'data' / rel}: {said}"


def test_a_series_of_missing_values_only_is_a_warning(root):
    write(root, "macro/PAYEMS.csv", ["date,realtime_start,value", "2019-06-01,2019-07-05,."])
    result = replay(root)
    assert result.exit_code == 0, result.output
    assert f"warning: {root / 'data' / 'macro/PAYEMS.csv'}: no values" in result.stderr


# ---- headers in another case ------------------------------------------------------------------------------

def test_headers_are_matched_case_insensitively(root):
    expected = replay(root).stdout
    assert "payrolls +200k vs +150k" in expected and "breakout" in expected, expected
    write(root, "prices/GSPC.csv", [HEADER.upper(), *price_rows()])
    write(root, "macro/PAYEMS.csv", ["Date,RealTime_Start,VALUE", *VINTAGES.splitlines()[1:]])
    write(root, "macro/consensus.csv", ["Series,DATE,Consensus", "PAYEMS,2019-06-01,150"])
    result = replay(root)
    assert result.exit_code == 0, result.output
    assert result.stdout == expected


def test_a_header_naming_a_column_twice_in_two_cases_is_an_error(root):
    write(root, "prices/GSPC.csv", [HEADER + ",close", *(r + ",1" for r in price_rows())])
    assert error_of(root, "prices/GSPC.csv") == ":1: column Close given twice (header: " + HEADER + ",close)"


# ---- paths that are not regular files, files too large ----------------------------------------------------

SPECIAL_FILES = """\
import os, sys
from pathlib import Path
from click.testing import CliRunner
from macrowatch.commands.cli import cli
from macrowatch.sources import files
tmp, root = Path(sys.argv[1]), Path(sys.argv[2])
os.symlink("/dev/zero", tmp / "zero.csv")
os.mkfifo(tmp / "fifo.csv")
for reader in (files.read_prices, files.read_vintages, files.read_consensus):
    for name in ("zero.csv", "fifo.csv"):
        try:
            reader(tmp / name)
        except files.DataError as exc:
            print(exc)
(root / "data" / "macro" / "PAYEMS.csv").unlink()
os.symlink("/dev/zero", root / "data" / "macro" / "PAYEMS.csv")
result = CliRunner().invoke(cli, ["replay", "-c", str(root / "mw.yaml"), "--data", str(root / "data")])
print(result.exit_code, result.output.strip())
"""


def test_a_device_or_fifo_is_refused_before_reading(tmp_path, root):
    """Read before: /dev/zero grew without bound, a FIFO blocked. Run apart, with bounded memory and time."""
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
    (tmp_path / "special").mkdir()
    result = subprocess.run([sys.executable, "-c", limit + SPECIAL_FILES, str(tmp_path / "special"), str(root)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    special = tmp_path / "special"
    assert result.stdout.splitlines() == 3 * [
        f"{special / 'zero.csv'}: is a device (/dev/zero), not a regular file",
        f"{special / 'fifo.csv'}: is a FIFO (named pipe), not a regular file"] + [
        f"2 macrowatch replay: {root / 'data' / 'macro' / 'PAYEMS.csv'}: is a device (/dev/zero), not a regular file"]


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    path = tmp_path / "big.csv"
    with path.open("wb") as handle:  # sparse: takes no disk space
        handle.write(b"date,realtime_start,value\n")
        handle.truncate(files.MAX_DATA_BYTES + 1)
    for reader in (files.read_prices, files.read_vintages, files.read_consensus):
        with pytest.raises(files.DataError) as exc:
            reader(path)
        assert str(exc.value) == f"{path}: file is larger than 128 MiB"


def test_replay_refuses_a_consensus_csv_linked_to_a_device(root):
    path = root / "data" / "macro" / "consensus.csv"
    path.unlink()
    os.symlink("/dev/zero", path)
    assert error_of(root, "macro/consensus.csv") == ": is a device (/dev/zero), not a regular file"
