"""`macrowatch status` the way a user runs it, on a store built by hand: the engine's levels, data ages,
next releases, the daemon's heartbeat and sources, the outbox. Secrets never appear."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from macrowatch.cli import cli
from macrowatch.config import load_config
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Alert, Bar, Print, Vintage
from macrowatch.status import ago, table
from macrowatch.store import open_store

NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2019, 8, 5, 10, 0, tzinfo=NY)      # a Monday morning, after a jobs-report Friday
SECRET_URL = "json://127.0.0.1:9/hook?token=Sup3rS3cretT0ken"

CONFIG = """\
store: mw.sqlite
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
  rut: {symbol: "^RUT", name: "Russell 2000"}
levels:
  spx-3000: {instrument: spx, price: 3000}
  rut-1600: {instrument: rut, price: 1600, fail_within_bars: 2}
releases:
  es: {fred_release_id: 50, time: "08:30", dates: [2019-08-02, 2019-09-06]}
  cpi: {time: "08:30", dates: [2019-08-13]}
macro:
  payrolls: {series: PAYEMS, release: es, measure: change}
channels:
  trading: ${MW_STATUS_URLS}
rules:
  - {name: spx-breakout, when: {level: spx-3000, entered: breakout}, notify: [trading]}
"""


def session(day: int) -> tuple[dt.date, dt.datetime]:
    d = dt.date(2019, 7, day) if day > 5 else dt.date(2019, 8, day)
    return d, dt.datetime.combine(d, dt.time(16, 0), NY)


def bar(day: int, close: float) -> Bar:
    d, at = session(day)
    return Bar(d, at, close, close, close, close, 1e9)


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("MW_STATUS_URLS", SECRET_URL)
    path = tmp_path / "mw.yaml"
    path.write_text(CONFIG)
    return path


def invoke(config_path: Path, *args: str):
    """Run `macrowatch status` at NOW (through MACROWATCH_NOW, as a user's clock would read)."""
    result = CliRunner().invoke(cli, ["status", "-c", str(config_path), *args],
                                env={"MACROWATCH_NOW": NOW.isoformat(), "MW_STATUS_URLS": SECRET_URL})
    assert SECRET_URL not in result.output and "Sup3rS3cretT0ken" not in result.output
    return result


def build(config_path: Path) -> None:
    """A store as the daemon leaves it: bars, vintages, engine state, schedule, heartbeat, outbox."""
    config, _ = load_config(config_path)
    engine = Engine(config)
    spx = [bar(29, 2990.0), bar(30, 2995.0), bar(31, 3010.0), bar(1, 2980.0), bar(2, 2985.5)]
    rut = [bar(29, 1590.0), bar(30, 1610.0), bar(31, 1620.0), bar(1, 1630.0), bar(2, 1625.0)]
    for s, r in zip(spx, rut, strict=True):
        engine.on_close(s.at, {"spx": s, "rut": r})
    published = dt.datetime(2019, 8, 2, 8, 30, tzinfo=NY)
    engine.on_release(published, [Print("payrolls", published, dt.date(2019, 7, 1), 164.0, 193.0, 150.0,
                                        "file", 14.0, "beat")])
    now_utc = NOW.astimezone(dt.UTC)
    with open_store(config.store) as store:
        store.put_bars("spx", spx)
        store.put_bars("rut", rut[:3])
        store.put_bars("ndx", [bar(30, 7800.0)])  # an instrument an earlier config had
        store.put_vintages("PAYEMS", [Vintage(dt.date(2019, 6, 1), dt.date(2019, 7, 5), 151269),
                                      Vintage(dt.date(2019, 7, 1), dt.date(2019, 8, 2), 151433)])
        store.save_state("engine", engine.to_data())
        store.save_state("schedule", {"updated": (now_utc - dt.timedelta(hours=2)).isoformat(),
                                      "releases": {"es": ["2019-08-02", "2019-09-06", "2019-10-04"]}})
        store.save_state("daemon", {
            "started": (now_utc - dt.timedelta(days=3)).isoformat(),
            "heartbeat": (now_utc - dt.timedelta(seconds=12)).isoformat(), "pid": 4242,
            "sources": {"prices": {"last_ok": (now_utc - dt.timedelta(seconds=40)).isoformat(),
                                   "failing_since": None, "error": None},
                        "fred": {"last_ok": (now_utc - dt.timedelta(hours=3)).isoformat(),
                                 "failing_since": (now_utc - dt.timedelta(minutes=29)).isoformat(),
                                 "error": "HTTP 500 from FRED"}}})
        old = alert("spx-breakout|desk=us|close:2019-07-31", dt.datetime(2019, 7, 31, 16, 0, tzinfo=NY))
        new = alert("spx-breakout||close:2019-08-02", dt.datetime(2019, 8, 2, 16, 0, tzinfo=NY))
        store.enqueue(old, ["trading"], old.at)
        store.mark_sent(old.key, "trading", old.at + dt.timedelta(seconds=3))
        store.enqueue(new, ["trading", "ops"], new.at)
        store.mark_sent(new.key, "trading", new.at + dt.timedelta(seconds=2))


def alert(key: str, at: dt.datetime) -> Alert:
    return Alert("spx-breakout", at, "critical", {}, f"message for {SECRET_URL}", {}, key, ("trading",))


def test_full_report(config_path: Path):
    build(config_path)
    result = invoke(config_path)
    assert result.exit_code == 0, result.output
    store = config_path.parent / "mw.sqlite"
    assert result.output.splitlines() == [
        f"store: {store}",
        "daemon: pid 4242, started 2019-08-02 10:00 EDT, last heartbeat 12s ago",
        "  fred    failing for 29m (since 2019-08-05 09:31 EDT): HTTP 500 from FRED",
        "  prices  ok, last success 40s ago",
        "levels:",
        "  spx-3000  spx  failed     3000.00  last close 2985.50 on 2019-08-02",
        "  rut-1600  rut  confirmed  1600.00  last close 1625.00 on 2019-08-02",
        "last releases:",
        "  payrolls  2019-08-02 08:30 EDT  actual +164.00  consensus +150.00  beat",
        "data:",
        "  instrument  spx     ^GSPC  last close 2019-08-02 (3d ago)    5 bars",
        "  instrument  rut     ^RUT   last close 2019-07-31 (5d ago)    3 bars",
        "  series      PAYEMS         last period 2019-07-01 (35d ago)  2 rows",
        "  instrument  ndx            last close 2019-07-30 (6d ago)    1 bar (not in config)",
        "next releases:",
        "  cpi  2019-08-13 08:30 EDT  in 7d   from the config's dates",
        "  es   2019-09-06 08:30 EDT  in 31d  from the release calendar",
        "outbox: 1 pending",
        "last sent:",
        "  2019-08-02 16:00 EDT  trading  spx-breakout  close:2019-08-02",
        "  2019-07-31 16:00 EDT  trading  spx-breakout  close:2019-07-31",
    ]


def test_json_format(config_path: Path):
    build(config_path)
    result = invoke(config_path, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    levels = {lv["level"]: lv for lv in report["levels"]}
    assert levels["spx-3000"] == {"level": "spx-3000", "instrument": "spx", "state": "failed",
                                  "price": 3000.0, "last_close": 2985.5, "session": "2019-08-02"}
    assert report["daemon"]["pid"] == 4242 and report["daemon"]["stale"] is False
    assert report["daemon"]["sources"]["fred"]["error"] == "HTTP 500 from FRED"
    assert report["outbox"]["pending"] == 1
    assert [s["channel"] for s in report["outbox"]["sent"]] == ["trading", "trading"]
    assert report["next_releases"][0] == {"release": "cpi", "next": "2019-08-13T08:30:00-04:00",
                                          "source": "config", "in_seconds": pytest.approx(8 * 86400 - 5400, abs=5),
                                          "schedule_updated": None}


def test_an_empty_store_says_so_plainly(config_path: Path):
    open_store(config_path.parent / "mw.sqlite").close()
    result = invoke(config_path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1:4] == [
        "daemon: no heartbeat recorded (`macrowatch run` has not run on this store)",
        "levels: no evaluations yet: run `macrowatch run` or `macrowatch fetch`",
        "data: no bars or observations stored yet",
    ]
    assert lines[4:] == [
        "next releases:",
        "  cpi  2019-08-13 08:30 EDT  in 7d   from the config's dates",
        "  es   2019-09-06 08:30 EDT  in 31d  from the config's dates",
        "outbox: 0 pending",
        "last sent: nothing sent yet",
    ]


def test_a_missing_store_is_an_error_and_is_not_created(config_path: Path):
    result = invoke(config_path)
    assert result.exit_code == 1
    assert "no store at" in result.output and "run `macrowatch run` or `macrowatch fetch` first" in result.output
    assert not (config_path.parent / "mw.sqlite").exists()


def test_a_stale_heartbeat_is_flagged(config_path: Path):
    with open_store(config_path.parent / "mw.sqlite") as store:
        beat = (NOW - dt.timedelta(hours=2)).isoformat()
        store.save_state("daemon", {"started": beat, "heartbeat": beat, "pid": 7, "sources": {
            "prices": {"last_ok": None, "failing_since": None, "error": None}}})
    lines = invoke(config_path).output.splitlines()
    assert lines[1] == ("daemon: pid 7, started 2019-08-05 08:00 EDT, last heartbeat 2h ago "
                        "(stale: the daemon is not running, or is stuck)")
    assert lines[2] == "  prices  not polled yet"


def test_an_unreadable_engine_state_is_reported_not_raised(config_path: Path):
    with open_store(config_path.parent / "mw.sqlite") as store:
        store.save_state("engine", {"version": 99})
    result = invoke(config_path)
    assert result.exit_code == 0
    assert ("levels: saved engine state unreadable: saved engine state has version 99; this macrowatch reads 1"
            in result.output.splitlines())


def test_past_schedule_dates_leave_no_next_release(config_path: Path):
    with open_store(config_path.parent / "mw.sqlite") as store:
        store.save_state("schedule", {"updated": NOW.isoformat(), "releases": {"es": ["2019-08-02"],
                                                                                "cpi": []}})
    lines = invoke(config_path).output.splitlines()
    i = lines.index("next releases:")
    assert lines[i + 1:i + 3] == ["  cpi  no upcoming date known  from the release calendar",
                                  "  es   no upcoming date known  from the release calendar"]


@pytest.mark.parametrize("seconds, text", [(None, "never"), (0, "0s"), (59.9, "59s"), (60, "1m"),
                                           (3599, "59m"), (7200, "2h"), (86400 * 3 + 5, "3d")])
def test_ago(seconds, text):
    assert ago(seconds) == text


def test_table_aligns_all_but_the_last_column():
    assert table([["a", "bbb", "x"], ["cc", "d", "yy"]]) == ["  a   bbb  x", "  cc  d    yy"]
