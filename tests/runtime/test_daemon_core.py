"""The daemon's jobs under a fake clock, with in-memory feeds: warm-up, closes, release bursts, restarts."""

from __future__ import annotations

import datetime as dt
import logging
import textwrap
import zoneinfo

import pytest

from macrowatch.clock import FakeClock
from macrowatch.config import load_config
from macrowatch.model import Bar, Vintage
from macrowatch.runtime.daemon import Daemon
from macrowatch.sources import calendar
from macrowatch.sources.base import FredError, LatestFetch, PriceFetch, Quote
from macrowatch.store import open_store

NY = zoneinfo.ZoneInfo("America/New_York")
UTC = dt.UTC
# XNYS sessions from 2019-06-03: 95 through June, then 96 97 98 (07-01..07-03), 99.5 (07-05), 99.6 (07-08),
# 101 (07-09: the breakout of 100), 102 103 104 (07-10..07-12: bars 1..3 of the window, confirmed on 07-12).
CLOSES = [95.0] * 20 + [96, 97, 98, 99.5, 99.6, 101, 102, 103, 104, 105, 106]
# What the Prices and Macro feeds below serve; other daemon tests add their own releases and rules to it.
WORLD = """\
sources: {fred: {api_key: "0123456789abcdef0123456789abcdef"}}  # the in-memory Macro feed stands for a keyed FRED
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
levels:
  spx-100: {instrument: spx, price: 100, fail_within_bars: 3}
"""
CONFIG = WORLD + """\
releases:
  es: {fred_release_id: 50, time: "08:30"}
macro:
  payrolls: {series: PAYEMS, release: es, measure: change, consensus: {2019-06: 50, 2019-07: 150}, beat_by: 25}
rules:
  - {name: breakout, when: {level: spx-100, entered: breakout}}
  - {name: confirmed, when: {level: spx-100, entered: confirmed}}
  - name: jobs-beat
    when: {release: payrolls, outcome: beat}
    message: "payrolls {payrolls.actual:+.0f}k vs {payrolls.consensus:+.0f}k"
"""


def sessions() -> list[tuple[dt.date, dt.datetime]]:
    closes = calendar.close_times("XNYS", dt.date(2019, 6, 3), dt.date(2019, 8, 30))
    return sorted(closes.items())[:len(CLOSES)]


class Prices:
    """A price feed over fixed bars that never shows a bar before its session has closed."""

    def __init__(self):
        self.bars = [Bar(d, at, c, c, c, c) for (d, at), c in zip(sessions(), CLOSES, strict=True)]
        self.down = False
        self.calls = 0

    def daily(self, instruments, start, now, calendar_for):
        self.calls += 1
        if self.down:
            return PriceFetch({}, {i: "refused" for i in instruments})
        return PriceFetch({i: [b for b in self.bars if start <= b.session and b.at <= now] for i in instruments})

    def latest(self, instruments, now, calendar_for):
        last = [b for b in self.bars if b.at <= now][-1]
        return LatestFetch({i: Quote(last.close, last.at) for i in instruments})


class Macro:
    """PAYEMS vintages; the August release appears `lag` after 08:30 on its day."""

    def __init__(self, clock, lag=dt.timedelta(seconds=3)):
        self.clock, self.lag = clock, lag
        self.rows = [Vintage(dt.date(2019, 5, 1), dt.date(2019, 6, 7), 1000.0),
                     Vintage(dt.date(2019, 6, 1), dt.date(2019, 7, 5), 1100.0),
                     Vintage(dt.date(2019, 7, 1), dt.date(2019, 8, 2), 1300.0)]
        self.calls = 0

    def vintages(self, series, since=None, *, today=None):
        self.calls += 1
        now = self.clock.now()
        return [v for v in self.rows if dt.datetime.combine(v.realtime_start, dt.time(8, 30), NY) + self.lag <= now]

    def release_schedule(self, release, start, end):
        return [d for d in (dt.date(2019, 7, 5), dt.date(2019, 8, 2)) if start <= d <= end]


class DownMacro(Macro):
    down = False

    def vintages(self, series, since=None, *, today=None):
        if self.down:
            raise FredError(series, "connection refused")
        return super().vintages(series, since, today=today)


@pytest.fixture
def world(tmp_path):
    path = tmp_path / "mw.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    config, _ = load_config(path)
    clock = FakeClock(dt.datetime(2019, 7, 1, 12, 0, tzinfo=NY))
    return config, clock, tmp_path / "mw.sqlite"


def daemon(world, prices=None, macro=None, fired=None):
    config, clock, store_path = world
    return Daemon(config, open_store(store_path), clock, prices or Prices(), macro or Macro(clock),
                  on_alert=(fired.append if fired is not None else None))


def test_first_start_warms_up_silently(world):
    clock = world[1]
    fired = []
    d = daemon(world, fired=fired)
    d.start(clock.now())
    assert fired == []  # the history before the first start is warm-up, not news
    assert d.engine.sessions["spx"] == dt.date(2019, 6, 28)
    assert d.engine.machines["spx-100"].state == "below"  # 95 x20 then 96: under the 99 band


def test_closes_fire_once_at_their_session(world):
    config, clock, _ = world
    fired = []
    d = daemon(world, fired=fired)
    d.start(clock.now())
    clock.set(dt.datetime(2019, 7, 8, 16, 1, tzinfo=NY))
    d.check_closes(clock.now())
    assert fired == []  # 99.6: approaching, not a breakout
    assert d.engine.machines["spx-100"].state == "approaching"
    clock.set(dt.datetime(2019, 7, 9, 16, 1, tzinfo=NY))  # after the close of 2019-07-09 (101)
    d.check_closes(clock.now())
    d.check_closes(clock.now())  # nothing new: nothing twice
    assert [(a.rule, a.at.astimezone(NY).isoformat()) for a in fired] == [("breakout", "2019-07-09T16:00:00-04:00")]


def test_restart_after_a_missed_close_catches_up_exactly_once(world):
    config, clock, store_path = world
    first = []
    d = daemon(world, fired=first)
    d.start(clock.now())
    clock.set(dt.datetime(2019, 7, 9, 16, 1, tzinfo=NY))
    d.check_closes(clock.now())
    assert [a.rule for a in first] == ["breakout"]
    d.store.close()
    # Down from 2019-07-09 evening to 2019-07-12 evening: three closes missed, and nobody saw the 07-05 jobs
    # report (no burst ran). The restart evaluates each missed event once, in time order.
    clock.set(dt.datetime(2019, 7, 12, 18, 0, tzinfo=NY))
    again = []
    d2 = daemon(world, fired=again)
    d2.start(clock.now())
    d2.check_closes(clock.now())
    assert [(a.rule, a.at.astimezone(NY).isoformat()) for a in again] == [
        ("jobs-beat", "2019-07-05T08:30:00-04:00"), ("confirmed", "2019-07-12T16:00:00-04:00")]
    d2.store.close()
    third = []
    d3 = daemon(world, fired=third)
    d3.start(clock.now())
    assert third == []


def test_release_burst_polls_until_the_print_is_seen(world):
    config, clock, _ = world
    fired = []
    macro = Macro(clock, lag=dt.timedelta(seconds=5))
    d = daemon(world, macro=macro, fired=fired)
    clock.set(dt.datetime(2019, 8, 2, 8, 0, tzinfo=NY))
    d.start(clock.now())
    fired.clear()
    clock.set(dt.datetime(2019, 8, 2, 8, 30, tzinfo=NY))
    calls = macro.calls
    alerts = d.bursts.burst("es", dt.date(2019, 8, 2), clock.now())
    assert [a.rule for a in alerts] == ["jobs-beat"] == [a.rule for a in fired]
    assert alerts[0].message == "payrolls +200k vs +150k"
    assert alerts[0].at == dt.datetime(2019, 8, 2, 8, 30, tzinfo=NY)
    assert 5 <= macro.calls - calls <= 7  # about once a second until 5 s after 08:30
    assert clock.now() - dt.datetime(2019, 8, 2, 8, 30, tzinfo=NY) <= dt.timedelta(seconds=6)


def test_release_already_in_the_store_is_not_polled_again(world):
    config, clock, _ = world
    macro = Macro(clock)
    d = daemon(world, macro=macro)
    clock.set(dt.datetime(2019, 8, 2, 9, 0, tzinfo=NY))
    d.start(clock.now())
    calls = macro.calls
    assert d.bursts.burst("es", dt.date(2019, 8, 2), clock.now()) == []
    assert macro.calls == calls


def test_a_release_burst_logs_its_start(world, caplog):
    config, clock, _ = world
    d = daemon(world)
    clock.set(dt.datetime(2019, 8, 2, 9, 0, tzinfo=NY))
    d.start(clock.now())
    with caplog.at_level(logging.INFO, logger="macrowatch.app"):
        d.bursts.burst("es", dt.date(2019, 8, 2), clock.now())
    [started] = [r for r in caplog.records if r.getMessage() == "release burst started"]
    assert started.fields == {"release": "es", "day": dt.date(2019, 8, 2)}  # tests wait on it: `release=es day=...`


def test_a_late_release_raises_one_ops_alert(world):
    config, clock, _ = world
    fired = []
    macro = Macro(clock, lag=dt.timedelta(minutes=20))
    d = daemon(world, macro=macro, fired=fired)
    clock.set(dt.datetime(2019, 8, 2, 8, 0, tzinfo=NY))
    d.start(clock.now())
    fired.clear()
    clock.set(dt.datetime(2019, 8, 2, 8, 30, tzinfo=NY))
    d.bursts.burst("es", dt.date(2019, 8, 2), clock.now())
    assert [a.rule for a in fired] == ["ops-release-late", "jobs-beat"]
    assert "10 min after 08:30" in fired[0].message


def test_a_source_down_long_enough_raises_one_ops_alert(world):
    config, clock, _ = world
    fired = []
    prices, macro = Prices(), DownMacro(clock)
    d = daemon(world, prices=prices, macro=macro, fired=fired)
    d.start(clock.now())
    prices.down = macro.down = True
    clock.set(dt.datetime(2019, 7, 2, 16, 5, tzinfo=NY))
    d.check_closes(clock.now())
    d.polls.refresh_vintages(clock.now())
    d.liveness.heartbeat(clock.now())
    assert fired == []
    clock.advance(dt.timedelta(minutes=16))
    d.liveness.heartbeat(clock.now())
    d.liveness.heartbeat(clock.now())
    assert sorted(a.rule for a in fired) == ["ops-source-down", "ops-source-down"]  # prices and fred, once each
    state = d.store.load_state("daemon")
    assert state["sources"]["prices"]["error"] == "spx: refused"
    prices.down = False
    d.check_closes(clock.now())
    assert d.outages.health["prices"].failing_since is None


def test_reload_keeps_state_of_kept_ids(world, tmp_path):
    config, clock, _ = world
    d = daemon(world)
    d.start(clock.now())
    before = d.engine.machines["spx-100"].to_data()
    path = tmp_path / "new.yaml"
    path.write_text(textwrap.dedent(CONFIG).replace("fail_within_bars: 3", "fail_within_bars: 4"))
    new, _ = load_config(path)
    d.reload(new, clock.now())
    assert d.engine.machines["spx-100"].to_data() == before
    assert d.engine.machines["spx-100"].level.breakout.fail_within_bars == 4


def test_a_schedule_refresh_adds_no_burst_again_once_it_has_started(world):
    # The 6-hourly refresh re-added a release still under way: it ran again after the burst (or was turned
    # away by APScheduler as a second instance, with a warning in the log).
    from macrowatch.runtime.scheduler import Runner

    config, clock, _ = world
    d = daemon(world, macro=Macro(clock))
    clock.set(dt.datetime(2019, 7, 5, 8, 0, tzinfo=NY))
    d.start(clock.now())
    runner = Runner(d)  # not started: the jobs wait in the scheduler, run here by hand
    runner.releases.schedule()
    ids = {j.id for j in runner.scheduler.get_jobs()}
    assert {"release:es:2019-07-05", "release:es:2019-08-02"} <= ids
    clock.set(dt.datetime(2019, 7, 5, 8, 30, tzinfo=NY))
    job = runner.scheduler.get_job("release:es:2019-07-05")
    job.func(*job.args)
    runner.scheduler.remove_job(job.id)  # a one-off job is removed once run
    assert d.bursts.published("PAYEMS", dt.date(2019, 7, 5))
    runner.releases.schedule()  # a refresh while the release is still "under way" by the clock
    ids = {j.id for j in runner.scheduler.get_jobs()}
    assert "release:es:2019-07-05" not in ids
    assert "release:es:2019-08-02" in ids
