"""History is never taken for what a failed or partial fetch left (issue [9], items 1-3).

In-process, under a fake clock, with the real clients against the stubs (as in test_faults.py): a price
history with an old all-time high of 120 at session 10 (100 before it, 90 after it), and from the first start
(07:00 of session START) closes of 110 (under the old high), 112, then 125 (a real new high). A series is
released every session day at 08:30. What the daemon sends must be what `macrowatch replay` gives over the
same data for the events after the daemon began to watch, whatever failed at its first start:

1. Yahoo down at the first start, then back: its history is fetched in full, no alert for 110 or 112 (the
   old high holds), the new high at 125 fires with the true high in its message; an ops alert says the history
   was missing while it was. FRED down at the first start, then back during a release burst: one alert, for
   the release under way, none for the years of releases before.
2. An instrument added to the config gets its whole history, not ten days of it.
3. FRED's release calendar down at a start: the last good schedule is kept (in memory and in the store), its
   bursts are scheduled, and the calendar is asked again within seconds.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from macrowatch.commands import status
from macrowatch.config import load_config
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Bar, Vintage
from macrowatch.runtime import history as replay
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.history import History, macro_prints
from macrowatch.runtime.scheduler import Runner
from macrowatch.store import open_store
from stubs.fred import KEY
from stubs.yahoo import YahooStub

from .test_faults import ScriptedClock, fred_client, price_source
from .world import Receiver, TimedFred, quiet, release_at, sessions

N = 60
START = 50                      # the first start: 07:00 of this session day
OLD_HIGH = 10                   # the session of the all-time high, 40 sessions before the start
RELEASE_ID = 50

CONFIG = """\
store: {store}
sources:
  fred: {{api_key: "${{MW_TEST_FRED_KEY}}", url: "{fred}"}}
  yahoo: {{url: "{yahoo}"}}
instruments:
{instruments}
levels:
{levels}
releases:
  daily: {{{release}, time: "08:30"}}
macro:
  gauge: {{series: GAUGE, release: daily, measure: level, beat_by: 1}}
{macro}
channels:
  trading: ${{MW_TEST_TRADING}}
  ops: ${{MW_TEST_OPS}}
rules:
{rules}
"""
SPX = '  spx: {symbol: "^GSPC", name: "S&P 500"}'
DJI = '  dji: {symbol: "^DJI", name: "Dow"}'
SPX_ATH = "  spx-ath: {instrument: spx, kind: all_time_high}"
DJI_ATH = "  dji-ath: {instrument: dji, kind: all_time_high}"
SPX_RULE = ('  - {name: spx-high, when: {level: spx-ath, entered: breakout}, notify: [trading],\n'
            '     message: "S&P {spx.close:.2f} > {spx-ath.price:.2f}"}')
DJI_RULE = ('  - {name: dji-high, when: {level: dji-ath, entered: breakout}, notify: [trading],\n'
            '     message: "Dow {dji.close:.2f} > {dji-ath.price:.2f}"}')
GAUGE2 = "  gauge2: {series: GAUGE, release: daily, measure: level, beat_by: 2}"
GAUGE2_RULE = ('  - {name: gauge2, when: {release: gauge2, outcome: any}, notify: [trading],\n'
               '     message: "gauge2 {gauge2.actual:.0f}"}')
LIVE_RULE = ('  - {name: spx-live, on: [intraday], notify: [trading], message: "S&P {spx-ath.state}",\n'
             '     when: {level: spx-ath, state: [below, approaching, breakout, confirmed, failed]}}')
GAUGE_RULE = ('  - {name: gauge, when: {release: gauge, outcome: any}, notify: [trading],\n'
              '     message: "gauge {gauge.actual:.0f}"}')


def close_of(i: int) -> float:
    if i == OLD_HIGH:
        return 120.0
    return {START: 110.0, START + 1: 112.0, START + 2: 125.0}.get(i, 126.0 if i > START + 2 else
                                                                   100.0 if i < OLD_HIGH else 90.0)


class Setup:
    """The stubs, the clock and a config writer; `daemon()` builds a Daemon on the one store."""

    def __init__(self, tmp_path: Path, monkeypatch, yf_cache: str, calendar: bool = False):
        self.days = sessions(N)
        self.clock = ScriptedClock(self.at(START, dt.time(7, 0)))
        self.yahoo, self.fred = YahooStub(), TimedFred(self.clock.now, dt.timedelta(seconds=5)).start()
        self.trading, self.ops = Receiver(), Receiver()
        for server in (self.yahoo._server, self.fred._server):
            quiet(server)
        for symbol in ("^GSPC", "^DJI"):
            self.yahoo.add_daily(symbol, [(d, close_of(i), close_of(i) + 0.5, close_of(i) - 0.5, close_of(i), 1e9)
                                          for i, (d, _at) in enumerate(self.days)])
        self.fred.add_series("GAUGE", [(d, d, 1000.0 + i) for i, (d, _at) in enumerate(self.days)])
        self.fred.add_release(RELEASE_ID, [d for d, _at in self.days])
        monkeypatch.setenv("MW_TEST_TRADING", self.trading.url("json", "/trading"))
        monkeypatch.setenv("MW_TEST_OPS", self.ops.url("json", "/ops"))
        monkeypatch.setenv("MW_TEST_FRED_KEY", KEY)
        self.tmp_path, self.yf_cache, self.calendar = tmp_path, yf_cache, calendar
        self.store_path = tmp_path / "mw.sqlite"
        self.store = open_store(self.store_path)
        self.fired: list = []

    def at(self, i: int, t: dt.time) -> dt.datetime:
        return release_at(self.days[i][0]).replace(hour=t.hour, minute=t.minute).astimezone(dt.UTC)

    def close(self, i: int) -> dt.datetime:
        return self.days[i][1]

    def session(self, d: Daemon, i: int) -> None:
        """Session i as the scheduler runs it: the 08:30 release's burst, then the close check after 16:00."""
        s_day = self.days[i][0]
        self.clock.set(max(self.clock.now(), release_at(s_day)))
        d.bursts.burst("daily", s_day, self.clock.now())
        self.clock.set(self.close(i) + dt.timedelta(minutes=1))
        d.check_closes(self.clock.now())

    def config(self, dji: bool = False, spx_ath: bool = True, gauge2: bool = False, live: bool = False):
        release = f"fred_release_id: {RELEASE_ID}" if self.calendar else \
            "dates: [" + ", ".join(d.isoformat() for d, _ in self.days) + "]"
        text = CONFIG.format(store=self.store_path, fred=self.fred.base_url, yahoo=self.yahoo.url, release=release,
                             instruments="\n".join([SPX, *([DJI] if dji else [])]),
                             levels="\n".join([*([SPX_ATH] if spx_ath else []), *([DJI_ATH] if dji else [])]) or "  {}",
                             macro=GAUGE2 if gauge2 else "",
                             rules="\n".join([*([SPX_RULE] if spx_ath else []), GAUGE_RULE,
                                              *([DJI_RULE] if dji else []), *([GAUGE2_RULE] if gauge2 else []),
                                              *([LIVE_RULE] if live else [])]))
        path = self.tmp_path / "mw.yaml"
        path.write_text(text)
        return load_config(path)[0]

    def daemon(self, dji: bool = False, spx_ath: bool = True) -> Daemon:
        return Daemon(self.config(dji, spx_ath), self.store, self.clock, price_source(self.yahoo.url, self.yf_cache),
                      fred_client(self.fred.base_url), on_alert=self.fired.append)

    def news(self) -> list[tuple[str, str]]:
        return [(a.rule, a.message) for a in self.fired if not a.rule.startswith("ops-")]

    def ops_alerts(self) -> list[str]:
        return [a.rule for a in self.fired if a.rule.startswith("ops-")]

    def replayed(self, config, after: dt.datetime, until: dt.datetime) -> list[tuple[str, str]]:
        """What `macrowatch replay` gives over the whole data for the events in (after, until]."""
        bars = {iid: [Bar(d, at, close_of(i), close_of(i) + 0.5, close_of(i) - 0.5, close_of(i))
                      for i, (d, at) in enumerate(self.days) if at <= until] for iid in config.instruments}
        vintages = [Vintage(d, d, 1000.0 + i) for i, (d, _at) in enumerate(self.days)]
        prints = [p for p in macro_prints(config, config.macro["gauge"], vintages, None) if p.at <= until]
        return [(a.rule, a.message) for a in replay.run(Engine(config), History(bars, prints)) if a.at > after]

    def stop(self) -> None:
        self.store.close()
        for stub in (self.yahoo, self.fred, self.trading, self.ops):
            stub.stop()


@pytest.fixture(scope="module")
def yf_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("yfinance-cache"))


@pytest.fixture
def setup(tmp_path, monkeypatch, yf_cache):
    s = Setup(tmp_path, monkeypatch, yf_cache)
    yield s
    s.stop()


def test_yahoo_down_at_the_first_start_waits_for_the_whole_history(setup):
    s = setup
    started = s.clock.now()
    s.yahoo.fault("500")
    d = s.daemon()
    d.start(s.clock.now())
    assert s.news() == []
    assert s.ops_alerts() == ["ops-history-missing"]             # at once, and once while it lasts
    missing = d.liveness.heartbeat(s.clock.now())["history_missing"]
    assert missing and "spx" in missing[0]
    shown = status.render(status.collect(d.config, s.store, s.clock.now()), d.config.timezone)
    assert any(line.startswith("history missing: spx (^GSPC: Yahoo server error (HTTP 500)") for line in shown)
    for i in (START, START + 1):                                  # closes of 110 and 112, Yahoo still down
        s.session(d, i)
    assert s.news() == [("gauge", "gauge 1050"), ("gauge", "gauge 1051")]  # the series had its history
    assert s.ops_alerts() == ["ops-history-missing"]

    s.yahoo.clear_faults()
    s.clock.set(s.close(START + 1) + dt.timedelta(minutes=2))
    d.check_closes(s.clock.now())
    bars = s.store.bars("spx")
    assert bars[0].session == s.days[0][0] and len(bars) == START + 2  # the whole history, not ten days
    assert d.engine.machines["spx-ath"].price == 120.0                 # the old high, for good
    for i in (START + 2, START + 3):
        s.session(d, i)
    until = s.clock.now()
    # 110 and 112 are under the old high: no alert; 125 is the new high, against 120.
    assert s.news() == s.replayed(d.config, started, until)
    assert [m for r, m in s.news() if r == "spx-high"] == ["S&P 125.00 > 120.00"]
    assert d.liveness.heartbeat(s.clock.now())["history_missing"] == []
    shown = status.render(status.collect(d.config, s.store, s.clock.now()), d.config.timezone)
    assert not any("history missing" in line for line in shown)


def test_yahoo_down_at_the_first_start_and_back_after_a_close_sends_that_close_late_once(setup):
    """A close after the start, seen only once the history is in: sent then (as replay has it), once."""
    s = setup
    started = s.clock.now()
    s.yahoo.fault("500")
    d = s.daemon()
    d.start(s.clock.now())
    for i in (START, START + 1, START + 2):                          # 125, the new high: Yahoo still down
        s.session(d, i)
    assert [r for r, _m in s.news() if r == "spx-high"] == []
    s.yahoo.clear_faults()
    s.clock.advance(dt.timedelta(minutes=1))
    d.check_closes(s.clock.now())
    d.check_closes(s.clock.now())
    d2 = s.daemon()                                                   # and a restart repeats nothing
    d2.start(s.clock.now())
    assert [m for r, m in s.news() if r == "spx-high"] == ["S&P 125.00 > 120.00"]
    assert s.news() == s.replayed(d.config, started, s.clock.now())


def test_fred_down_at_the_first_start_then_back_in_a_burst_fires_only_that_release(setup):
    s = setup
    started = s.clock.now()
    s.fred.fault("500")
    d = s.daemon()
    d.start(s.clock.now())
    assert s.news() == [] and s.ops_alerts() == ["ops-history-missing"]
    day = s.days[START][0]
    s.clock.set(release_at(day))
    s.clock.at(release_at(day) + dt.timedelta(minutes=4), lambda: s.fred.faults.clear())
    d.bursts.burst("daily", day, s.clock.now())
    assert s.news() == [("gauge", "gauge 1050")]                     # not the 50 releases before it
    assert len(s.store.vintages("GAUGE")) == START + 1               # all of them, from the first
    d2 = s.daemon()                                                   # a restart: nothing again
    d2.start(s.clock.now())
    s.clock.set(s.close(START) + dt.timedelta(minutes=1))
    d2.check_closes(s.clock.now())
    s.session(d2, START + 1)
    assert s.news() == s.replayed(d.config, started, s.clock.now())
    assert s.ops_alerts() == ["ops-history-missing"]


def test_fred_down_at_the_first_start_then_a_restart_sends_no_old_release(setup):
    s = setup
    s.fred.fault("500")
    s.daemon().start(s.clock.now())
    s.clock.advance(dt.timedelta(minutes=10))
    s.fred.faults.clear()
    d = s.daemon()
    d.start(s.clock.now())
    assert s.news() == []
    assert len(s.store.vintages("GAUGE")) == START                   # today's comes at 08:30
    s.clock.set(release_at(s.days[START][0]) + dt.timedelta(seconds=10))
    d.bursts.burst("daily", s.days[START][0], s.clock.now())
    assert s.news() == [("gauge", "gauge 1050")]


def test_an_instrument_added_to_the_config_gets_its_whole_history(setup):
    s = setup
    s.daemon().start(s.clock.now())                                   # spx alone
    s.clock.set(s.close(START) + dt.timedelta(minutes=1))
    d = s.daemon(dji=True)                                            # dji added, then a restart
    d.start(s.clock.now())
    dji = s.store.bars("dji")
    assert dji[0].session == s.days[0][0] and len(dji) == START + 1
    assert d.engine.machines["dji-ath"].price == 120.0
    assert [r for r, _m in s.news() if r == "dji-high"] == []          # its 110 is under its old high
    for i in (START + 1, START + 2):
        s.session(d, i)
    assert [m for r, m in s.news() if r == "dji-high"] == ["Dow 125.00 > 120.00"]


@pytest.fixture
def calendar_setup(tmp_path, monkeypatch, yf_cache):
    s = Setup(tmp_path, monkeypatch, yf_cache, calendar=True)
    yield s
    s.stop()


def test_the_release_calendar_down_at_a_start_keeps_the_last_schedule_and_asks_again_soon(calendar_setup):
    s = calendar_setup
    first = s.daemon()
    first.start(s.clock.now())
    ahead = [d for d, _at in s.days[START:START + 3]]
    assert first.bursts.schedule["daily"][-3:] != [] and set(ahead) <= set(first.bursts.schedule["daily"])
    saved = s.store.load_state("schedule")["releases"]["daily"]

    s.fred.fault("500", RELEASE_ID)                                    # the calendar alone is down
    d = s.daemon()
    d.start(s.clock.now())
    assert set(ahead) <= set(d.bursts.schedule["daily"])               # kept in memory...
    assert s.store.load_state("schedule")["releases"]["daily"] == saved  # ...and in the store, not []
    assert d.bursts.schedule_failures == 1
    runner = Runner(d, closes_every=3600, deliver_every=3600, heartbeat_every=3600, intraday_every=0)
    runner.scheduler.start(paused=True)
    try:
        runner.releases.schedule()
        jobs = {j.id: j for j in runner.scheduler.get_jobs()}
        assert f"release:daily:{ahead[0]}" in jobs                     # the burst is scheduled all the same
        retry = jobs["schedule-retry"].next_run_time
        assert dt.timedelta(0) < retry - d.clock.to_wall(d.clock.now()) <= dt.timedelta(seconds=10)
        s.fred.faults.clear()
        runner.releases.refresh()                                      # the retry: back to normal
        assert d.bursts.schedule_failures == 0 and s.store.load_state("schedule")["failing_since"] is None
    finally:
        runner.scheduler.shutdown(wait=False)


def test_a_level_and_a_macro_added_by_a_reload_start_from_the_whole_history(setup):
    """The instrument and the series have years in the store: the new level's all-time high is the true one,
    and the new macro's old releases are not news."""
    s = setup
    d = s.daemon(spx_ath=False)
    d.start(s.clock.now())
    s.session(d, START)
    d.reload(s.config(spx_ath=True, gauge2=True), s.clock.now())
    for i in (START + 1, START + 2):
        s.session(d, i)
    assert d.engine.machines["spx-ath"].price == 120.0
    assert [m for r, m in s.news() if r == "spx-high"] == ["S&P 125.00 > 120.00"]
    assert [m for r, m in s.news() if r == "gauge2"] == ["gauge2 1051", "gauge2 1052"]
    assert [m for r, m in s.news() if r == "gauge"] == ["gauge 1050", "gauge 1051", "gauge 1052"]


def test_an_intraday_rule_on_an_instrument_without_its_history_stays_silent(setup):
    s = setup
    s.yahoo.fault("500")
    d = Daemon(s.config(live=True), s.store, s.clock, price_source(s.yahoo.url, s.yf_cache),
               fred_client(s.fred.base_url), on_alert=s.fired.append)
    d.start(s.clock.now())
    s.yahoo.clear_faults()
    day = s.days[START][0]
    bar = dt.datetime.combine(day, dt.time(10, 0), release_at(day).tzinfo)
    s.yahoo.add_intraday("^GSPC", [(bar + dt.timedelta(minutes=m), 110.0, 110.5, 109.5, 110.0, 1e6) for m in range(5)])
    s.clock.set(bar + dt.timedelta(minutes=5))
    assert d.intraday(s.clock.now()) == []          # the level is not known: nothing to say about it
    d.check_closes(s.clock.now())                   # the history comes in (a close check, every minute)
    s.clock.advance(dt.timedelta(minutes=1))
    assert [a.message for a in d.intraday(s.clock.now())] == ["S&P below"]  # 110 under the old high of 120
