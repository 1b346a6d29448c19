"""The demo: its scenario tells its story through the engine (replay.run), its feeds never show what has not
happened yet by their clock, and `macrowatch demo` runs the real daemon offline, printing, charting and
delivering each alert once."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

import pytest
from click.testing import CliRunner

from macrowatch.clock import FakeClock
from macrowatch.commands.cli import cli
from macrowatch.commands.demo import run
from macrowatch.commands.demo import scenario as sc
from macrowatch.commands.demo.feeds import FRED_LAG, ScenarioMacro, ScenarioPrices
from macrowatch.config.types import Instrument
from macrowatch.engine.evaluator import Engine
from macrowatch.runtime import history as replay
from macrowatch.sources.base import FredError
from macrowatch.sources.calendar import close_times

NY = zoneinfo.ZoneInfo("America/New_York")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = 2_000_000  # scenario seconds per second: the scenario in about 4 s
TOKEN = "s3cr3tT0KEN42xyz"

# Every alert the scenario raises after its warm-up, in order, worked out from the key closes in scenario.TRACKS
# (levels: spx-2400 approaching from 2376; rut-1400 approaching from 1386 with 3 closes to prove a breakout;
# ndx-ath approaching within 1% of the record, reset by a pullback of more than 1% from it).
EXPECTED = [
    # NDX set a record 5330 on 02-15 and fell to 5262 on 02-17 (more than 1% under it: `below`); 02-23 closes
    # above the old record: a new breakout.
    ("2017-02-23 16:00", "info", "ndx-new-high", "Nasdaq 100 new all-time closing high: 5345.00"),
    # RUT 1409 on 02-28 (breakout, bar 0), 1411 on 03-01 (bar 1), 1397 on 03-02: back under 1400 in the window.
    ("2017-03-02 16:00", "warning", "rut-false-breakout",
     "Russell 2000 false breakout: back to 1397.00 after closing above 1400"),
    # SPX 2388, 2381, 2384 on 03-01..03-03: the third close in a row in 2376..2400. It stays in the band (clipped
    # to 2378..2397) until 03-20, so no second alert; 03-21 drops to 2344.
    ("2017-03-03 16:00", "info", "spx-pressing-2400", "S&P 500 pressing on 2400: closed 2384.00, no breakout yet"),
    # NDX's record 5481 (04-04), 5385 on 04-13 (a real pullback), 5520 on 04-25 above the record; the cooldown
    # (5d) since 02-23 is long over.
    ("2017-04-25 16:00", "info", "ndx-new-high", "Nasdaq 100 new all-time closing high: 5520.00"),
    # SPX 2388, 2387, 2389 on 04-25..04-27: pressing again, 55 days after the first alert (cooldown 10d).
    ("2017-04-27 16:00", "info", "spx-pressing-2400", "S&P 500 pressing on 2400: closed 2389.00, no breakout yet"),
    # 05-05 08:30: payrolls +211k vs +180k, a beat (25k or more over); the close 2406.20 breaks 2400 while the
    # beat is 7.5 hours old (within 1d). The 03-10 beat came with SPX only pressing: no alert.
    ("2017-05-05 16:00", "critical", "spx-breakout-with-jobs",
     "S&P 500 broke 2400 at 2406.20; payrolls +211k vs +180k"),
    # 05-08..05-12: five closes above 2400 after the breakout: confirmed on the fifth.
    ("2017-05-12 16:00", "warning", "spx-breakout-confirmed",
     "S&P 500 held above 2400 for 5 closes: breakout confirmed at 2415.00"),
]


def _history(s: sc.Scenario) -> replay.History:
    ids = {inst.symbol: iid for iid, inst in s.config.instruments.items()}
    prints = [p for m in s.config.macro.values() for p in
              replay.macro_prints(s.config, m, list(s.vintages[m.series]), None)]
    return replay.History({ids[sym]: list(bars) for sym, bars in s.bars.items()}, sorted(prints, key=lambda p: p.at))


def _ny(alert) -> str:
    return f"{alert.at.astimezone(NY):%Y-%m-%d %H:%M}"


# ---- the scenario -------------------------------------------------------------------------------------------

def test_scenario_raises_the_expected_alerts_through_replay():
    s = sc.scenario()
    alerts = replay.run(Engine(s.config), _history(s), sc.REPORT_FROM, sc.LAST_SESSION, s.config.timezone)
    assert [(_ny(a), a.severity, a.rule, a.message) for a in alerts] == EXPECTED


def test_scenario_is_deterministic_and_small():
    s = sc.scenario()
    closes = close_times(s.config.calendar, sc.FIRST_SESSION, sc.LAST_SESSION)
    for track in sc.TRACKS:
        again = sc.make_bars(track, closes)
        assert again == list(s.bars[track.symbol])
        placed = sc.key_closes(track)
        assert {b.session: b.close for b in again if b.session in placed} == placed
    hand_placed = sum(len(sc.key_closes(t)) for t in sc.TRACKS) + 4 * sum(len(t.bands) for t in sc.TRACKS)
    assert hand_placed + 4 * len(sc.PAYROLLS) < 300


def test_bars_are_real_xnys_sessions_at_their_close():
    s = sc.scenario()
    closes = close_times("XNYS", sc.FIRST_SESSION, sc.LAST_SESSION)
    for bars in s.bars.values():
        assert [(b.session, b.at) for b in bars] == sorted(closes.items())
        assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)
    sessions = {b.session for b in s.bars["^GSPC"]}
    assert dt.date(2017, 2, 20) not in sessions and dt.date(2017, 4, 14) not in sessions  # Presidents Day, Good Friday
    assert s.end == closes[sc.LAST_SESSION]


def test_payrolls_print_first_and_revise_the_month_before():
    s = sc.scenario()
    vintages = s.vintages["PAYEMS"]
    for day, month, _change, _revision in sc.PAYROLLS:
        published = {v.date for v in vintages if v.realtime_start == day}
        assert month in published and (month - dt.timedelta(days=1)).replace(day=1) in published
    prints = replay.macro_prints(s.config, s.config.macro["payrolls"], list(vintages), None)
    assert [(p.at.date().isoformat(), p.actual, p.consensus, p.outcome) for p in prints if p.consensus] == [
        ("2017-02-03", 227, 175, "beat"), ("2017-03-10", 235, 200, "beat"),
        ("2017-04-07", 98, 180, "miss"), ("2017-05-05", 211, 180, "beat")]


# ---- the feeds never peek ahead ------------------------------------------------------------------------------

def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=NY)


@pytest.mark.parametrize(("clock_at", "last"), [
    ("2017-03-02T15:59:59", "2017-03-01"),   # the 03-02 bar is still forming
    ("2017-03-02T16:00", "2017-03-02"),      # at the close it is there
    ("2017-03-04T12:00", "2017-03-03"),      # a Saturday: Friday's
    ("2017-04-14T12:00", "2017-04-13"),      # Good Friday, no session
    ("2017-01-30T15:00", None),              # before the first close: nothing
], ids=["before-close", "at-close", "weekend", "holiday", "before-first"])
def test_daily_shows_only_closed_sessions(clock_at, last):
    s = sc.scenario()
    spx = {"spx": s.config.instruments["spx"]}
    feed = ScenarioPrices(s.bars, FakeClock(_at(clock_at)))
    far = _at("2017-12-31T00:00")  # a caller's `now` ahead of the clock does not reveal more
    got = feed.daily(spx, sc.FIRST_SESSION, far, lambda _i: "XNYS").bars["spx"]
    assert (got[-1].session.isoformat() if got else None) == last
    assert not feed.daily(spx, sc.FIRST_SESSION, _at("2017-01-31T16:00"), lambda _i: "XNYS").bars["spx"][2:]


def test_daily_from_start_and_unknown_symbols():
    s = sc.scenario()
    feed = ScenarioPrices(s.bars, FakeClock(_at("2017-03-10T17:00")))
    instruments = dict(s.config.instruments)
    extra = dict(instruments, dax=Instrument("dax", "^GDAXI", "DAX"))
    got = feed.daily(extra, dt.date(2017, 3, 6), _at("2017-03-10T17:00"), lambda _i: "XNYS")
    assert [b.session.day for b in got.bars["spx"]] == [6, 7, 8, 9, 10]
    assert set(got.bars) == {"spx", "ndx", "rut"} and "not in the demo scenario" in got.errors["dax"]


def test_latest_moves_from_the_open_to_the_close_and_never_ahead():
    s = sc.scenario()
    bar = next(b for b in s.bars["^GSPC"] if b.session == dt.date(2017, 3, 2))
    before = next(b for b in s.bars["^GSPC"] if b.session == dt.date(2017, 3, 1))
    spx = {"spx": s.config.instruments["spx"]}
    clock = FakeClock(_at("2017-03-02T09:00"))
    feed = ScenarioPrices(s.bars, clock)

    def quote():
        return feed.latest(spx, _at("2017-12-31T00:00"), lambda _i: "XNYS").prices["spx"]

    assert quote() == (before.close, before.at)          # before the open: the last close
    clock.set(_at("2017-03-02T09:30"))
    assert quote().price == pytest.approx(bar.open, abs=0.01)
    clock.set(_at("2017-03-02T12:45"))                   # halfway through the session
    assert quote() == (pytest.approx((bar.open + bar.close) / 2, abs=0.01), _at("2017-03-02T12:45"))
    clock.set(_at("2017-03-02T16:00"))
    assert quote() == (bar.close, bar.at)
    early = ScenarioPrices(s.bars, FakeClock(_at("2017-01-30T08:00"))).latest(spx, _at("2017-02-01T00:00"),
                                                                           lambda _i: "XNYS")
    assert "no price yet" in early.errors["spx"]


def _macro(clock_at: str) -> ScenarioMacro:
    s = sc.scenario()
    return ScenarioMacro.for_config(s.config, s.vintages, FakeClock(_at(clock_at)))


@pytest.mark.parametrize(("clock_at", "april"), [
    ("2017-05-05T08:29:59", False),
    ("2017-05-05T08:30", False),             # the release time: FRED has not caught up yet
    ("2017-05-05T08:31", True),              # release time plus FRED_LAG
    ("2017-05-06T00:00", True),
], ids=["before", "release-time", "after-lag", "next-day"])
def test_vintages_appear_at_the_release_time_plus_lag(clock_at, april):
    assert dt.timedelta(minutes=1) == FRED_LAG  # the cases assume it
    got = _macro(clock_at).vintages("PAYEMS", dt.date(2017, 1, 1))
    days = {(v.date, v.realtime_start) for v in got}
    assert ((dt.date(2017, 4, 1), dt.date(2017, 5, 5)) in days) is april
    assert ((dt.date(2017, 3, 1), dt.date(2017, 5, 5)) in days) is april  # the revision comes with it
    assert all(v.date >= dt.date(2017, 1, 1) for v in got)


def test_vintages_respect_today_and_unknown_series():
    feed = _macro("2017-05-06T00:00")
    got = feed.vintages("PAYEMS", today=dt.date(2017, 4, 30))
    assert max(v.realtime_start for v in got) == dt.date(2017, 4, 7)
    with pytest.raises(FredError, match="not in the demo scenario"):
        feed.vintages("CPIAUCSL")
    with pytest.raises(FredError, match="no observations"):
        _macro("2016-12-01T00:00").vintages("PAYEMS")


def test_release_schedule_is_the_configs_dates():
    s = sc.scenario()
    release = s.config.releases["employment-situation"]
    got = _macro("2017-02-21T00:00").release_schedule(release, dt.date(2017, 3, 1), dt.date(2017, 4, 30))
    assert got == [dt.date(2017, 3, 10), dt.date(2017, 4, 7)]


# ---- macrowatch demo -----------------------------------------------------------------------------------------

GUARD = """\
# Loaded at start-up through PYTHONPATH: any connection or name lookup beyond loopback is recorded and refused.
import ipaddress, os, socket

LOG = os.environ["MACROWATCH_TEST_NETLOG"]

def _note(what):
    with open(LOG, "a") as f:
        f.write(what + "\\n")

def _local(host):
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

def _guard(real):
    def connect(self, address):
        if not isinstance(address, (str, bytes)) and not _local(address[0]):
            _note(f"connect {address!r}")
            raise OSError(f"the demo tried to reach {address!r}")
        return real(self, address)
    return connect

socket.socket.connect = _guard(socket.socket.connect)
socket.socket.connect_ex = _guard(socket.socket.connect_ex)
_getaddrinfo = socket.getaddrinfo

def getaddrinfo(host, *args, **kwargs):
    if not _local(host.decode() if isinstance(host, bytes) else host):
        _note(f"getaddrinfo {host!r}")
        raise socket.gaierror(f"the demo tried to resolve {host!r}")
    return _getaddrinfo(host, *args, **kwargs)

socket.getaddrinfo = getaddrinfo
_note("guard on")
"""


def _console_script() -> str:
    exe = Path(sys.executable).with_name("macrowatch")
    return str(exe) if exe.exists() else (shutil.which("macrowatch") or pytest.skip("no macrowatch console script"))


def _demo_env(tmp_path: Path) -> dict[str, str]:
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and k != "MACROWATCH_DEMO_URLS"}
    return {**env, "PYTHONPATH": str(guard), "MACROWATCH_TEST_NETLOG": str(tmp_path / "net.log"),
            "MPLCONFIGDIR": str(tmp_path / "mpl")}


def _printed(stdout: str) -> list[tuple[str, str, str, str]]:
    """(New York time, severity, rule, message) of each alert line the demo printed."""
    out = []
    for line in stdout.splitlines():
        parts = line.split(None, 6)
        if line.startswith("  ") and len(parts) == 7 and parts[1].startswith("2017-"):
            out.append((f"{parts[1]} {parts[2]}", parts[4], parts[5], parts[6]))
    return out


@pytest.mark.slow
def test_demo_command_prints_charts_and_delivers_each_alert_once(tmp_path, webhook):
    charts = tmp_path / "charts"
    env = _demo_env(tmp_path)
    began = time.monotonic()
    proc = subprocess.run([_console_script(), "demo", "--speed", str(FAST), "--charts", str(charts),
                           "--notify", webhook.url("json")], capture_output=True, text=True, timeout=120, env=env)
    took = time.monotonic() - began
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "net.log").read_text() == "guard on\n"  # the guard ran, and nothing went beyond loopback
    assert _printed(proc.stdout) == EXPECTED
    assert f"Charts ({len(EXPECTED)}): {charts}" in proc.stdout and "Delivered: 7 sent." in proc.stdout
    pngs = sorted(charts.glob("*.png"))
    assert len(pngs) == len(EXPECTED) and all(p.read_bytes().startswith(PNG_MAGIC) for p in pngs)
    assert (charts / sc.CONFIG_NAME).read_text() == sc.CONFIG_YAML
    assert f"Charts, the config and the daemon's log go to {charts}." in proc.stdout
    logged = (charts / run.LOG_NAME).read_text().splitlines()
    assert logged and all(re.match(r"ts=\S+ level=\w+ logger=\S+ msg=", line) for line in logged), logged[:3]
    got = webhook.wait_for(len(EXPECTED), timeout=10)
    assert sorted((r.json()["title"], r.json()["message"].splitlines()[0]) for r in got) == sorted(
        (f"[{sev.upper()}] {rule}", message) for _at, sev, rule, message in EXPECTED)
    assert all(r.json()["attachments"] for r in got)  # each with its chart
    assert proc.stderr == ""
    assert took < 120, f"the demo took {took:.1f} s"  # a hang guard only: it plays in about 4 s at this speed


def _unshare_works() -> bool:
    unshare = shutil.which("unshare")
    return bool(unshare) and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _unshare_works(), reason="unshare -n (a network namespace) is not available")
def test_demo_runs_with_no_network_at_all(tmp_path):
    proc = subprocess.run(["unshare", "-n", _console_script(), "demo", "--speed", str(FAST),
                           "--charts", str(tmp_path / "charts")],
                          capture_output=True, text=True, timeout=120, env=_demo_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _printed(proc.stdout) == EXPECTED
    assert "Send them somewhere: macrowatch demo --notify URL" in proc.stdout


def test_the_intro_says_where_the_demo_writes_and_that_a_new_folder_stays():
    s = sc.scenario()
    folder = Path("/tmp/macrowatch-demo-abc123")
    lines = run.intro(s, 1e6, [], folder, temporary=True)
    [said] = [line for line in lines if str(folder) in line]
    assert "kept after the demo" in said and "--charts DIR" in said
    chosen = run.intro(s, 1e6, ["json://127.0.0.1:1/x"], folder)
    assert f"Charts, the config and the daemon's log go to {folder}." in chosen


def test_the_demo_log_is_in_runs_key_value_format_with_secrets_masked(tmp_path):
    path = tmp_path / run.LOG_NAME
    with run.logs_to(path, [f"json://127.0.0.1:1/{TOKEN}/hook"]):
        logging.getLogger("macrowatch.app").info("alert sent to json://127.0.0.1:1/%s/hook", TOKEN,
                                                 extra={"fields": {"channel": "desk"}})
        logging.getLogger("apprise").warning("two\nlines")
    got = path.read_text(encoding="utf-8").splitlines()
    assert len(got) == 2 and TOKEN not in path.read_text(encoding="utf-8")
    assert re.fullmatch(r'ts=\S+Z level=info logger=macrowatch\.app msg="alert sent to \*\*\*" '
                        r"channel=desk", got[0]), got[0]
    assert re.fullmatch(r'ts=\S+Z level=warning logger=apprise msg="two\\nlines"', got[1]), got[1]


def test_demo_help_and_a_bad_url():
    runner = CliRunner()
    assert "spring 2017" in runner.invoke(cli, ["demo", "--help"]).output
    bad = runner.invoke(cli, ["demo", "--notify", "not a url"])
    assert bad.exit_code == 2 and "not an apprise URL" in bad.output
