"""`macrowatch status` the way a user runs it, on a store built by hand: the engine's levels, data ages,
next releases, the daemon's heartbeat and sources, the outbox. Secrets never appear."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from engine.helpers import on_close, on_release
from macrowatch.commands.cli import cli
from macrowatch.commands.status import ago, table
from macrowatch.config import load_config
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Alert, Bar, Print, Vintage
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
        on_close(engine, s.at, {"spx": s, "rut": r})
    published = dt.datetime(2019, 8, 2, 8, 30, tzinfo=NY)
    on_release(engine, [Print("payrolls", published, dt.date(2019, 7, 1), 164.0, 193.0, 150.0, "file", 14.0,
                              "beat")])
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
                                          "schedule_updated": None, "consensus": []}


def test_an_empty_store_says_so_plainly(config_path: Path):
    open_store(config_path.parent / "mw.sqlite").close()
    result = invoke(config_path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1:4] == [
        "daemon: no heartbeat recorded (`macrowatch run` has not run on this store)",
        "levels: no evaluations yet: `macrowatch run` evaluates the rules (`fetch` only stores data)",
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
    # No interval recorded (an older daemon's heartbeat): minutes of silence mean it is down.
    assert lines[1] == ("daemon: pid 7, started 2019-08-05 08:00 EDT, not running? last heartbeat 2h ago "
                        "(killed, crashed or stuck: a clean stop says so)")
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


# ---- the daemon's liveness, levels without data, the store's place (issue [10]) ----------------------------

def beat(config_path: Path, **fields) -> None:
    """The daemon's heartbeat state, its times given as seconds before NOW."""
    data = {"pid": 7, "sources": {}}
    for key, value in fields.items():
        data[key] = (NOW - dt.timedelta(seconds=value)).isoformat() if key in ("started", "heartbeat", "stopped") \
            else value
    with open_store(config_path.parent / "mw.sqlite") as store:
        store.save_state("daemon", data)


@pytest.mark.parametrize("age, line", [
    (29, "daemon: pid 7, started 2019-08-05 09:00 EDT, last heartbeat 29s ago"),
    (31, "daemon: pid 7, started 2019-08-05 09:00 EDT, not running? last heartbeat 31s ago "
         "(killed, crashed or stuck: a clean stop says so)"),
], ids=["within-3-intervals", "over-3-intervals"])
def test_a_heartbeat_silent_for_over_three_intervals_is_not_taken_as_running(config_path: Path, age, line):
    beat(config_path, started=3600, heartbeat=age, every=10.0)
    result = invoke(config_path)
    assert result.output.splitlines()[1] == line
    daemon = json.loads(invoke(config_path, "--format", "json").output)["daemon"]
    assert daemon["state"] == ("running" if age < 30 else "silent") and daemon["stale"] is (age > 30)


def test_a_clean_stop_says_stopped_at(config_path: Path):
    # The SIGTERM case: the heartbeat is 29 s old, as fresh as a running daemon's, but the stop was recorded.
    beat(config_path, started=3600, heartbeat=29, stopped=29, every=10.0)
    lines = invoke(config_path).output.splitlines()
    assert lines[1] == "daemon: pid 7, started 2019-08-05 09:00 EDT, stopped at 2019-08-05 09:59:31 EDT (a clean stop)"
    daemon = json.loads(invoke(config_path, "--format", "json").output)["daemon"]
    assert daemon["state"] == "stopped" and daemon["stale"] is True
    assert daemon["stopped"] == (NOW - dt.timedelta(seconds=29)).isoformat()


def test_a_start_under_way_says_it_is_catching_up(config_path: Path):
    beat(config_path, started=5, heartbeat=5, every=10.0, catching_up=True)
    assert invoke(config_path).output.splitlines()[1] == (
        "daemon: pid 7, started 2019-08-05 09:59 EDT, catching up (no heartbeat until it is done), last record 5s ago")
    beat(config_path, started=600, heartbeat=600, every=10.0, catching_up=True)
    assert invoke(config_path).output.splitlines()[1] == (
        "daemon: pid 7, started 2019-08-05 09:50 EDT, catching up (no heartbeat until it is done), last record "
        "10m ago; or stopped during it: a first start fetches years of history, a restart only what it missed")


def test_levels_without_bars_say_no_data_not_a_side(config_path: Path):
    config, _ = load_config(config_path)
    engine = Engine(config)
    for i, close in ((29, 2990.0), (30, 3010.0)):
        on_close(engine, session(i)[1], {"spx": bar(i, close)})   # no bar of rut ever
    with open_store(config.store) as store:
        store.save_state("engine", engine.to_data())
    lines = invoke(config_path).output.splitlines()
    i = lines.index("levels:")
    assert lines[i + 1:i + 3] == ["  spx-3000  spx  breakout  3000.00  last close 3010.00 on 2019-07-30",
                                  "  rut-1600  rut  no data   1600.00  last close -"]
    levels = {lv["level"]: lv for lv in json.loads(invoke(config_path, "--format", "json").output)["levels"]}
    assert levels["rut-1600"]["state"] is None and levels["spx-3000"]["state"] == "breakout"


def test_store_option_reads_the_store_named_there(config_path: Path, tmp_path: Path):
    elsewhere = tmp_path / "var" / "macrowatch.sqlite"   # as under systemd: /var/lib/macrowatch/macrowatch.sqlite
    elsewhere.parent.mkdir()
    with open_store(elsewhere) as store:
        store.save_state("daemon", {"pid": 99, "started": NOW.isoformat(), "heartbeat": NOW.isoformat(),
                                    "sources": {}})
    result = invoke(config_path, "--store", str(elsewhere))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [f"store: {elsewhere}",
                                              "daemon: pid 99, started 2019-08-05 10:00 EDT, last heartbeat 0s ago"]
    assert not (config_path.parent / "mw.sqlite").exists()


def test_without_a_store_the_error_names_the_service_store_and_the_option(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MW_STATUS_URLS", SECRET_URL)
    path = tmp_path / "mw.yaml"
    path.write_text(CONFIG.replace("store: mw.sqlite\n", ""))
    result = CliRunner().invoke(cli, ["status", "-c", str(path)],
                                env={"HOME": str(tmp_path), "STATE_DIRECTORY": None, "MW_STATUS_URLS": SECRET_URL})
    assert result.exit_code == 1
    assert f"no store at {tmp_path}/.local/state/macrowatch/macrowatch.sqlite" in result.output
    assert "--store /var/lib/macrowatch/macrowatch.sqlite" in result.output
