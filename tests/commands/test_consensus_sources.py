"""Which consensus a print is judged against (files.consensus_for): the month's entry, then the feeds in order
(the newest value seen before the release), then the mean of the last 12 first prints; consensus.csv's `measure`
column; and the commands that show it: replay (the store's feed history), status, calendar, check."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from pathlib import Path

import pytest
from click.testing import CliRunner

from macrowatch.commands.cli import cli
from macrowatch.config import load_config
from macrowatch.sources import files
from macrowatch.store import open_store

NY = zoneinfo.ZoneInfo("America/New_York")
AT = dt.datetime(2019, 7, 5, 8, 30, tzinfo=NY)  # the June 2019 payrolls
JUNE = dt.date(2019, 6, 1)

CONFIG = """\
store: mw.sqlite
instruments: {spx: {symbol: "^GSPC"}}
levels: {l: {instrument: spx, price: 1}}
releases:
  es: {dates: [2019-06-07, 2019-07-05, 2019-08-02], time: "08:30"}
macro:
  payrolls:
    series: PAYEMS
    release: es
    measure: change
    beat_by: 25
    consensus: CONSENSUS
rules:
  - {name: jobs, when: {release: payrolls, outcome: any}}
"""
FEEDS = ('[{feed: forexfactory, event: "Non-Farm Employment Change", unit: 1000}, '
         '{feed: nasdaq, event: "Nonfarm Payrolls", unit: 1000}]')


def config_at(tmp_path: Path, consensus: str = FEEDS):
    path = tmp_path / "mw.yaml"
    path.write_text(CONFIG.replace("CONSENSUS", consensus))
    return path, load_config(path)[0]


def seen_from(rows: dict[str, list[tuple[dt.datetime, float | None]]]):
    def seen(entry, at):
        before = [(seen_at, v) for seen_at, v in rows.get(entry.feed.value, []) if seen_at < at]
        return (before[-1][1], before[-1][0]) if before else None
    return seen


def test_the_feeds_count_in_order_and_only_what_was_seen_before_the_release(tmp_path):
    _, config = config_at(tmp_path)
    macro = config.macro["payrolls"]
    before, after = AT - dt.timedelta(hours=1), AT + dt.timedelta(minutes=1)
    cases = [
        ({"forexfactory": [(before, 180.0)], "nasdaq": [(before, 175.0)]}, (180.0, "forexfactory, seen 2019-07-05 "
                                                                                   "11:30 UTC")),
        # ForexFactory listed it without a forecast: Nasdaq's counts
        ({"forexfactory": [(before, None)], "nasdaq": [(before, 175.0)]}, (175.0, "nasdaq, seen 2019-07-05 11:30 UTC")),
        # A value shown only after 08:30 never counts (the lookup is asked for what came before; this one lies)
        ({"forexfactory": [(after, 180.0)]}, None),
    ]
    for rows, expected in cases:
        lying = (lambda entry, at, rows=rows: (rows["forexfactory"][0][1], rows["forexfactory"][0][0])) \
            if expected is None else seen_from(rows)
        values, labels = files.consensus_for(macro, None, {JUNE: AT}, lying)
        got = (values[JUNE], labels[JUNE]) if JUNE in values else None
        assert got == expected


def test_the_months_own_entry_comes_before_the_feeds(tmp_path):
    _, config = config_at(tmp_path, "[{2019-06: 150}, " + FEEDS[1:])
    values, labels = files.consensus_for(config.macro["payrolls"], None, {JUNE: AT, dt.date(2019, 7, 1): AT},
                                         seen_from({"forexfactory": [(AT - dt.timedelta(hours=1), 180.0)]}))
    assert (values[JUNE], labels[JUNE]) == (150.0, "consensus (config)")
    assert labels[dt.date(2019, 7, 1)] == "forexfactory, seen 2019-07-05 11:30 UTC"


def test_consensus_csv_measure_column(tmp_path):
    path = tmp_path / "consensus.csv"
    path.write_text("series,date,consensus,measure\nPAYEMS,2019-06-01,150,\nPAYEMS,2019-06-01,151000,level\n"
                    "PAYEMS,2019-07-01,160,change\n")
    table = files.read_consensus(path)
    _, config = config_at(tmp_path, "{2019-01: 1}")
    change = config.macro["payrolls"]
    level = type(change)(**{**change.__dict__, "measure": type(change.measure)("level")})
    yoy = type(change)(**{**change.__dict__, "measure": type(change.measure)("yoy_pct")})
    assert files.consensus_of(table, change) == {JUNE: 150.0, dt.date(2019, 7, 1): 160.0}
    assert files.consensus_of(table, level) == {JUNE: 151000.0}  # its own row over the one for every measure
    assert files.consensus_of(table, yoy) == {JUNE: 150.0}
    path.write_text("series,date,consensus,measure\nPAYEMS,2019-06-01,150,levels\n")
    with pytest.raises(files.DataError, match=r"consensus.csv:2: measure: 'levels' is not one of level, change"):
        files.read_consensus(path)
    path.write_text("series,date,consensus,measure\nPAYEMS,2019-06-01,150,change\nPAYEMS,2019-06-01,151,change\n")
    with pytest.raises(files.DataError, match=r"consensus.csv:3: PAYEMS 2019-06-01 change: consensus given twice"):
        files.read_consensus(path)


def write_data(root: Path) -> None:
    """Two sessions and PAYEMS vintages: May +100 (first printed 2019-06-07), June +200 (2019-07-05)."""
    (root / "prices").mkdir(parents=True)
    (root / "macro").mkdir()
    (root / "prices" / "GSPC.csv").write_text("Date,Open,High,Low,Close,Adj Close,Volume\n"
                                              "2019-07-03,1,1,1,1,1,1\n2019-07-05,1,1,1,1,1,1\n")
    (root / "macro" / "PAYEMS.csv").write_text("date,realtime_start,value\n2019-04-01,2019-05-03,1000\n"
                                               "2019-05-01,2019-06-07,1100\n2019-06-01,2019-07-05,1300\n")


def test_replay_judges_a_past_release_by_the_stored_feed_history(tmp_path):
    path, _ = config_at(tmp_path)
    write_data(tmp_path / "data")
    with open_store(tmp_path / "mw.sqlite") as store:
        store.put_forecast("forexfactory", "Non-Farm Employment Change", "USD", AT, 160.0, AT - dt.timedelta(days=1))
        store.put_forecast("forexfactory", "Non-Farm Employment Change", "USD", AT, 250.0, AT)  # at 08:30: too late
    result = CliRunner().invoke(cli, ["replay", "-c", str(path), "--data", str(tmp_path / "data"), "--from",
                                      "2019-07-01", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    [line] = [json.loads(x) for x in result.stdout.splitlines()]
    evidence = next(iter(line["evidence"].values()))
    assert (evidence["consensus"], evidence["outcome"]) == (160.0, "beat")
    assert evidence["consensus_source"] == "forexfactory, seen 2019-07-04 12:30 UTC"
    # The data's consensus.csv comes first: a row for this measure.
    (tmp_path / "data" / "macro" / "consensus.csv").write_text("series,date,consensus,measure\n"
                                                               "PAYEMS,2019-06-01,210,change\n")
    result = CliRunner().invoke(cli, ["replay", "-c", str(path), "--data", str(tmp_path / "data"), "--from",
                                      "2019-07-01", "--format", "jsonl"])
    evidence = next(iter(json.loads(result.stdout)["evidence"].values()))
    assert (evidence["consensus"], evidence["consensus_source"]) == (210.0, "consensus (data)")


def test_replay_without_a_store_warns_that_the_feeds_count_for_nothing(tmp_path):
    path, _ = config_at(tmp_path)
    write_data(tmp_path / "data")
    result = CliRunner().invoke(cli, ["replay", "-c", str(path), "--data", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert "warning: no forecasts of the consensus feeds (no store at" in result.stderr
    assert not (tmp_path / "mw.sqlite").exists()


def test_status_and_calendar_show_the_next_releases_consensus_and_its_source(tmp_path, monkeypatch):
    path, _ = config_at(tmp_path)
    august = dt.datetime(2019, 8, 2, 8, 30, tzinfo=NY)
    with open_store(tmp_path / "mw.sqlite") as store:
        store.put_forecast("nasdaq", "Nonfarm Payrolls", "United States", august, 165.0,
                           dt.datetime(2019, 7, 30, 9, 0, tzinfo=NY))
    monkeypatch.setenv("MACROWATCH_NOW", "2019-07-31T12:00:00-04:00")
    result = CliRunner().invoke(cli, ["status", "-c", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    [es] = json.loads(result.stdout)["next_releases"]
    assert es["consensus"] == [{"macro": "payrolls", "period": "2019-07-01", "consensus": 165.0,
                                "source": "nasdaq, seen 2019-07-30 13:00 UTC"}]
    text = CliRunner().invoke(cli, ["status", "-c", str(path)]).stdout.splitlines()
    assert "    payrolls: consensus +165.00 for 2019-07 (nasdaq, seen 2019-07-30 13:00 UTC)" in text
    lines = CliRunner().invoke(cli, ["calendar", "-c", str(path), "--days", "5"]).stdout.splitlines()
    i = lines.index("  Fri 2019-08-02 08:30 EDT  es (PAYEMS)")
    assert lines[i + 1] == "      payrolls: consensus 165 for 2019-07 (nasdaq, seen 2019-07-30 13:00 UTC)"


def test_check_warns_of_a_macro_without_any_consensus(tmp_path):
    path = tmp_path / "mw.yaml"
    path.write_text(CONFIG.replace("    consensus: CONSENSUS\n", ""))
    result = CliRunner().invoke(cli, ["check", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"{path}:8:5: warning: macro.payrolls: no consensus (no file, no values, no feed): its releases are judged "
        "against the mean of the last 12 first prints; name a feed, e.g. consensus: {feed: forexfactory, event: ...}"]
    path.write_text(CONFIG.replace("CONSENSUS", FEEDS))
    assert CliRunner().invoke(cli, ["check", "-c", str(path)]).stderr == ""
