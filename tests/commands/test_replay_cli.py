"""`macrowatch replay` over small CSV histories the tests write: windows, warm-up, formats, bad data."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from macrowatch.commands.cli import cli
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
    message: "{spx.name} {spx.close:.2f} above {spx-100.price:.0f}"
    labels: {desk: macro}
  - name: confirmed
    when: {level: spx-100, entered: confirmed}
  - name: jobs-beat
    when: {release: payrolls, outcome: beat}
    severity: critical
    message: "payrolls {payrolls.actual:+.0f}k vs {payrolls.consensus:+.0f}k"
"""


def sessions(start: dt.date, n: int) -> list[dt.date]:
    return sorted(close_times("XNYS", start, start + dt.timedelta(days=3 * n)))[:n]


def write_prices(path: Path, days: list[dt.date], closes: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    rows += [f"{d},{c},{c + 1},{c - 1},{c},{c},1000" for d, c in zip(days, closes, strict=True)]
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture
def data(tmp_path):
    return write_data(tmp_path)


def write_data(tmp_path: Path) -> tuple[Path, list]:
    """Closes 95 96 97 98 101 102 103 104 from 2019-07-01; payrolls +200k (consensus 150k) on 2019-07-05."""
    days = sessions(dt.date(2019, 7, 1), 8)
    write_prices(tmp_path / "data" / "prices" / "GSPC.csv", days, [95, 96, 97, 98, 101, 102, 103, 104])
    macro = tmp_path / "data" / "macro"
    macro.mkdir()
    (macro / "PAYEMS.csv").write_text(textwrap.dedent("""\
        date,realtime_start,value
        2019-04-01,2019-06-07,1000
        2019-05-01,2019-06-07,1100
        2019-05-01,2019-07-05,1120
        2019-06-01,2019-07-05,1320
        """))
    (macro / "consensus.csv").write_text("series,date,consensus\nPAYEMS,2019-06-01,150\n")
    (tmp_path / "mw.yaml").write_text(CONFIG)
    return tmp_path, days


def replay(tmp_path: Path, *args: str):
    return CliRunner().invoke(cli, ["replay", "-c", str(tmp_path / "mw.yaml"), "--data", str(tmp_path / "data"),
                                    *args])


def test_replay_text(data):
    tmp_path, days = data
    result = replay(tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    # 2019-07-03 is an early close (13:00); the breakout is the 5th session, 2019-07-08.
    assert lines == [
        "2019-07-05 08:30 -0400 [critical] jobs-beat: payrolls +200k vs +150k",
        "2019-07-08 16:00 -0400 [warning] breakout desk=macro: S&P 500 101.00 above 100",
        "2019-07-10 16:00 -0400 [warning] confirmed: spx-100 entered confirmed",
    ]
    assert days[4] == dt.date(2019, 7, 8)


def test_replay_jsonl_window_and_warmup(data):
    """Alerts before --from are not reported, but the state they built is: confirmed still fires."""
    tmp_path, _ = data
    result = replay(tmp_path, "--from", "2019-07-09", "--to", "2019-07-31", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    alerts = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(a["rule"], a["at"]) for a in alerts] == [("confirmed", "2019-07-10T16:00:00-04:00")]
    assert set(alerts[0]) == {"rule", "at", "severity", "labels", "message", "evidence"}
    assert alerts[0]["evidence"]["spx-100 entered confirmed"]["state"] == "confirmed"


def test_replay_jsonl_is_strict_json_when_a_value_overflows(data):
    """Finite values whose change overflows: the evidence shows null, not Infinity (which JSON has not)."""
    tmp_path, _ = data
    path = tmp_path / "data" / "macro" / "PAYEMS.csv"
    path.write_text(path.read_text().replace("2019-05-01,2019-07-05,1120", "2019-05-01,2019-07-05,-1.7e308")
                    .replace("2019-06-01,2019-07-05,1320", "2019-06-01,2019-07-05,1.7e308"))
    result = replay(tmp_path, "--format", "jsonl")
    assert result.exit_code == 0, result.output

    def strict(constant):
        raise ValueError(f"not JSON: {constant}")

    alerts = [json.loads(line, parse_constant=strict) for line in result.stdout.splitlines()]
    jobs = next(a for a in alerts if a["rule"] == "jobs-beat")
    assert jobs["evidence"]["payrolls beat"]["actual"] is None


def test_replay_to_stops_early(data):
    tmp_path, _ = data
    result = replay(tmp_path, "--to", "2019-07-05", "--format", "jsonl")
    assert [json.loads(line)["rule"] for line in result.stdout.splitlines()] == ["jobs-beat"]


def test_release_time_is_local_release_time(data):
    tmp_path, _ = data
    result = replay(tmp_path, "--format", "jsonl")
    jobs = json.loads(result.stdout.splitlines()[0])
    assert jobs["at"] == "2019-07-05T08:30:00-04:00"
    assert jobs["evidence"]["payrolls beat"]["actual"] == 200.0  # 1320 - 1120: the prior month as revised then
    assert jobs["evidence"]["payrolls beat"]["prior"] == 120.0


# A missing file is no bad data: tests/commands/test_skip_missing.py.
@pytest.mark.parametrize("mutate, message", [
    (lambda d: (d / "prices" / "GSPC.csv").write_text("Date,Close\n2019-07-01,95\n2019-07-01,96\n"),
     "prices/GSPC.csv:3: Date 2019-07-01 repeats the row before (2019-07-01); rows must be in date order"),
    (lambda d: (d / "prices" / "GSPC.csv").write_text("Date,Close\n2019-07-02,95\n2019-07-01,96\n"),
     "prices/GSPC.csv:3: Date 2019-07-01 is before the row before (2019-07-02); rows must be in date order"),
    (lambda d: (d / "prices" / "GSPC.csv").write_text("Date,Close\n2019-07-01,abc\n"),
     "prices/GSPC.csv:2: Close: 'abc' is not a number"),
    (lambda d: (d / "prices" / "GSPC.csv").write_text("Date,Close\n2019-07-01,-5\n"),
     "prices/GSPC.csv:2: Close: '-5' is not a positive number"),
    (lambda d: (d / "prices" / "GSPC.csv").write_text("Date,Close\n07/01/2019,95\n"),
     "prices/GSPC.csv:2: Date: '07/01/2019' is not a date (YYYY-MM-DD)"),
    (lambda d: (d / "prices" / "GSPC.csv").write_text("Day,Price\n2019-07-01,95\n"),
     "prices/GSPC.csv:1: missing columns Date, Close (header: Day,Price)"),
    (lambda d: (d / "prices" / "GSPC.csv").write_text("Date,Open,High,Low,Close\n2019-07-01,95,94,90,95\n"),
     "prices/GSPC.csv:2: High/Low (94.0, 90.0) contradict Open/Close (95.0, 95.0)"),
    (lambda d: (d / "prices" / "GSPC.csv").write_text("Date,Close\n"), "prices/GSPC.csv: no bars"),
    (lambda d: (d / "macro" / "PAYEMS.csv").write_text("date,value\n2019-01-01,5\n"),
     "macro/PAYEMS.csv:1: missing column realtime_start (header: date,value)"),
    (lambda d: (d / "macro" / "PAYEMS.csv").write_text("date,realtime_start,value\n2019-01-01,2019-02-01,x\n"),
     "macro/PAYEMS.csv:2: value: 'x' is not a number"),
    (lambda d: (d / "macro" / "consensus.csv").write_text("series,date,consensus\nPAYEMS,2019-06-01,1\n"
                                                          "PAYEMS,2019-06-01,2\n"),
     "macro/consensus.csv:3: PAYEMS 2019-06-01: consensus given twice"),
], ids=["repeated-date", "unordered", "bad-close", "negative-close", "bad-date", "bad-header",
        "high-low-contradiction", "empty", "macro-header", "macro-value", "consensus-twice"])
def test_bad_data_exit_2_naming_file_and_row(data, mutate, message):
    tmp_path, _ = data
    mutate(tmp_path / "data")
    result = replay(tmp_path)
    assert result.exit_code == 2
    assert f"macrowatch replay: {tmp_path / 'data'}/{message}" in result.stderr
    assert "Traceback" not in result.output


def test_null_rows_are_gaps_not_errors(data):
    tmp_path, days = data
    text = (tmp_path / "data" / "prices" / "GSPC.csv").read_text()
    text = text.replace(f"{days[1]},96,97,95,96,96,1000", f"{days[1]},null,null,null,null,null,null")
    (tmp_path / "data" / "prices" / "GSPC.csv").write_text(text)
    assert "null" in text
    result = replay(tmp_path)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args, fragment", [
    (["--from", "2019-08-01", "--to", "2019-07-01"], "--from is after --to"),
    (["--from", "July"], "'July' does not match the format '%Y-%m-%d'"),
    (["--format", "xml"], "'xml' is not one of 'text', 'jsonl'"),
])
def test_bad_arguments_exit_2(data, args, fragment):
    tmp_path, _ = data
    result = replay(tmp_path, *args)
    assert result.exit_code == 2
    assert fragment in result.output


HIGH_CONFIG = """\
instruments:
  spy: {symbol: SPY, name: SPY}
levels:
  spy-hi5: {instrument: spy, kind: high_of, bars: 5, fail_within_bars: 3}
rules:
  - name: new-high
    when: {level: spy-hi5, entered: breakout}
    message: "{spy.name} closed {spy.close:.2f}, above its 5-bar high {spy-hi5.price:.2f}"
"""
# Five closes at 293.58, a breakout (294.02), its failure (293.1), a new breakout straight out of `failed` (294.5),
# each as Yahoo sends it: a 32-bit float widened to 64 bits (293.58 is 293.5799865722656).
HIGH_CLOSES = [float(np.float32(c)) for c in [293.58] * 5 + [294.02, 293.1, 294.5]]


@pytest.fixture
def highs(tmp_path):
    days = sessions(dt.date(2019, 7, 1), len(HIGH_CLOSES))
    write_prices(tmp_path / "data" / "prices" / "SPY.csv", days, HIGH_CLOSES)
    (tmp_path / "mw.yaml").write_text(HIGH_CONFIG)
    assert "293.5799865722656" in (tmp_path / "data" / "prices" / "SPY.csv").read_text()
    return tmp_path, days


def test_a_new_breakout_out_of_failed_says_the_frozen_level_and_the_level_now(highs):
    tmp_path, days = highs
    result = replay(tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{days[5]} 16:00 -0400 [warning] new-high: SPY closed 294.02, above its 5-bar high 293.58",
        f"{days[7]} 16:00 -0400 [warning] new-high: SPY closed 294.50, above its 5-bar high 293.58 "
        "(frozen at the breakout; the 5-bar high is now 294.02)",
    ]


def test_jsonl_writes_numbers_as_the_data_has_them(highs):
    tmp_path, _ = highs
    result = replay(tmp_path, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    first, again = (json.loads(line)["evidence"]["spy-hi5 entered breakout"] for line in result.stdout.splitlines())
    assert first == {"holds": True, "state": "breakout", "level": 293.58, "close": 294.02}
    assert again == {"holds": True, "state": "breakout", "level": 293.58, "close": 294.5, "level_now": 294.02}
    assert "293.58," in result.stdout and "293.579" not in result.stdout


def test_jsonl_keeps_a_value_with_more_than_6_decimals_exact(data):
    tmp_path, _ = data
    path = tmp_path / "data" / "macro" / "PAYEMS.csv"
    path.write_text(path.read_text().replace("2019-06-01,2019-07-05,1320", "2019-06-01,2019-07-05,1320.1234567"))
    result = replay(tmp_path, "--format", "jsonl")
    jobs = json.loads(result.stdout.splitlines()[0])
    # 1320.1234567 - 1120 is 200.12345670000004 in floating point: the noise goes, the data's digits stay.
    assert jobs["evidence"]["payrolls beat"]["actual"] == 200.1234567


def test_from_past_the_end_of_the_data_says_where_it_ends(data):
    tmp_path, days = data
    result = replay(tmp_path, "--from", "2019-08-01")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert (f"macrowatch replay: warning: --from 2019-08-01 is past the end of the data: its last day is {days[-1]} "
            "(the last close of spx); nothing to replay") in result.stderr
    assert "0 alerts" in result.stderr


def test_from_on_the_last_day_of_the_data_warns_of_nothing(data):
    tmp_path, days = data
    result = replay(tmp_path, "--from", str(days[-1]))
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr


def store_config(tmp_path: Path) -> Path:
    """The test config with its own store beside it, and the consensus of the data's consensus.csv inline."""
    path = tmp_path / "mw-store.yaml"
    inline = CONFIG.replace("beat_by: 25}", "beat_by: 25, consensus: {2019-06: 150}}")
    path.write_text(f"store: {tmp_path / 'mw.sqlite'}\n" + inline)
    return path


def test_replay_without_data_replays_what_the_store_holds_as_the_data_directory_would(data):
    from macrowatch.commands.replay import load_history
    from macrowatch.config import load_config
    from macrowatch.sources import files
    from macrowatch.store import open_store

    tmp_path, _days = data
    (tmp_path / "data" / "macro" / "consensus.csv").unlink()  # both judge by the config's inline consensus
    config_path = store_config(tmp_path)
    config, _problems = load_config(config_path)
    history = load_history(config, tmp_path / "data")
    with open_store(tmp_path / "mw.sqlite") as store:  # what `fetch` saves
        store.put_bars("spx", history.bar_list("spx"))
        store.put_vintages("PAYEMS", files.read_vintages(tmp_path / "data" / "macro" / "PAYEMS.csv"))
    from_store = CliRunner().invoke(cli, ["replay", "-c", str(config_path), "--format", "jsonl"])
    from_data = CliRunner().invoke(cli, ["replay", "-c", str(config_path), "--data", str(tmp_path / "data"),
                                         "--format", "jsonl"])
    assert from_store.exit_code == 0, from_store.output
    assert from_data.exit_code == 0, from_data.output
    assert from_store.stdout.splitlines() == from_data.stdout.splitlines()
    assert {json.loads(line)["rule"] for line in from_store.stdout.splitlines()} >= {"breakout", "jobs-beat"}


def test_replay_without_data_names_what_the_store_lacks_and_the_command_that_gets_it(data):
    from macrowatch.commands.replay import load_history
    from macrowatch.config import load_config
    from macrowatch.store import open_store

    tmp_path, _days = data
    config_path = store_config(tmp_path)
    missing_store = CliRunner().invoke(cli, ["replay", "-c", str(config_path)])
    assert missing_store.exit_code == 2
    assert f"macrowatch fetch -c {config_path}" in missing_store.stderr and "fills it" in missing_store.stderr
    history = load_history(load_config(config_path)[0], tmp_path / "data")
    with open_store(tmp_path / "mw.sqlite") as store:  # bars, but no vintage of PAYEMS
        store.put_bars("spx", history.bar_list("spx"))
    result = CliRunner().invoke(cli, ["replay", "-c", str(config_path)])
    assert result.exit_code == 2
    assert "series PAYEMS" in result.stderr and f"`macrowatch fetch -c {config_path}` gets it" in result.stderr
    assert "instrument spx" not in result.stderr
    assert "Traceback" not in result.output
