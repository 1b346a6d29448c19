"""What the daemon says about itself is true (issue [10]): the start line names the bars it has, a chart marks every
release in its window, and a slow send does not make the delivery job warn every 2 s.

In process, under a fake clock, with in-memory feeds; the slow send goes through the real apprise to
tests/stubs/webhook.py on 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import logging
import textwrap
import threading
import time
import zoneinfo

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED

from macrowatch.clock import FakeClock, OffsetClock
from macrowatch.config import load_config
from macrowatch.model import Alert, Bar, Vintage
from macrowatch.notify import chart
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.scheduler import Runner
from macrowatch.sources import calendar
from macrowatch.sources.base import LatestFetch, PriceFetch
from macrowatch.store import open_store
from stubs import webhook as webhook_stub

webhook = webhook_stub.webhook  # the receiver fixture
NY = zoneinfo.ZoneInfo("America/New_York")
# XNYS sessions from 2019-06-03: 95 through June, then up through 100 on 2019-07-09 (101).
CLOSES = [95.0] * 20 + [96, 97, 98, 99.5, 99.6, 101, 102]
# PAYEMS released on 06-07, 07-05 and 08-02 (each first publishes a month).
VINTAGES = [Vintage(dt.date(2019, 5, 1), dt.date(2019, 6, 7), 1000.0),
            Vintage(dt.date(2019, 6, 1), dt.date(2019, 7, 5), 1100.0),
            Vintage(dt.date(2019, 7, 1), dt.date(2019, 8, 2), 1300.0)]
CONFIG = """\
sources: {fred: {api_key: "0123456789abcdef0123456789abcdef"}}  # the in-memory Macro feed stands for a keyed FRED
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
  rut: {symbol: "^RUT", name: "Russell 2000"}
levels:
  spx-100: {instrument: spx, price: 100}
  rut-50: {instrument: rut, price: 50}
releases:
  es: {fred_release_id: 50, time: "08:30"}
macro:
  payrolls: {series: PAYEMS, release: es, measure: change, consensus: {2019-06: 50}}
channels:
  desk: ${MW_OPS_MESSAGES_DESK}
rules:
  - {name: breakout, when: {level: spx-100, entered: breakout}, chart: spx}
  - {name: rut-breakout, when: {level: rut-50, entered: breakout}}
  - {name: jobs, when: {release: payrolls, outcome: any}}
"""


def _bars() -> list[Bar]:
    closes = sorted(calendar.close_times("XNYS", dt.date(2019, 6, 3), dt.date(2019, 8, 30)).items())
    return [Bar(d, at, c, c, c, c) for (d, at), c in zip(closes, CLOSES, strict=False)]


class Prices:
    """Bars of the instruments in `have` (none for the others: a fetch that succeeds empty), never ahead."""

    def __init__(self, have: set[str]):
        self.have = have

    def daily(self, instruments, start, now, calendar_for):
        return PriceFetch({i: [b for b in _bars() if start <= b.session and b.at <= now] if i in self.have else []
                           for i in instruments})

    def latest(self, instruments, now, calendar_for):
        return LatestFetch({})


class Macro:
    """PAYEMS' vintages published by the clock (or none: `empty`), each a minute after 08:30."""

    def __init__(self, clock, empty: bool = False):
        self.clock, self.empty = clock, empty

    def vintages(self, series, since=None, *, today=None):
        now = self.clock.now()
        return [v for v in VINTAGES if dt.datetime.combine(v.realtime_start, dt.time(8, 31), NY) <= now
                and not self.empty]

    def release_schedule(self, release, start, end):
        return [v.realtime_start for v in VINTAGES if start <= v.realtime_start <= end]


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_OPS_MESSAGES_DESK", "json://127.0.0.1:9/unused")
    (tmp_path / "mw.yaml").write_text(textwrap.dedent(CONFIG))
    clock = FakeClock(dt.datetime(2019, 7, 8, 17, 0, tzinfo=NY))
    return tmp_path, clock


def make(world, have=("spx", "rut"), series=True, clock=None) -> Daemon:
    tmp_path, fake = world
    clock = clock or fake
    config, _ = load_config(tmp_path / "mw.yaml")
    return Daemon(config, open_store(tmp_path / "mw.sqlite"), clock, Prices(set(have)), Macro(clock, not series))


def start_lines(d: Daemon, caplog) -> list[tuple[int, str]]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="macrowatch.app"):
        d.start(d.clock.now())
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "macrowatch.app"]


# ---- the start line ---------------------------------------------------------------------------------------

def test_a_start_says_which_instruments_have_bars_and_which_none(world, caplog):
    d = make(world, have={"spx"})  # Yahoo answers for ^RUT with no rows: a success, with nothing in it
    [(level, line)] = start_lines(d, caplog)
    assert level == logging.WARNING
    assert line.startswith("warmed up on history: spx 25 bars, PAYEMS 2 observations; "
                           "no bars for rut: levels unknown until data arrives; alerts count from 2019-07-08")
    d.store.close()
    # A restart finds the store without rut's bars still: said again, although nothing is warmed up now.
    d = make(world, have={"spx"})
    assert start_lines(d, caplog) == [
        (logging.WARNING, "history: spx 25 bars, PAYEMS 2 observations; no bars for rut: levels unknown until "
                          "data arrives")]


def test_a_start_with_no_data_at_all_does_not_claim_a_warm_up(world, caplog):
    d = make(world, have=set(), series=False)
    assert start_lines(d, caplog) == [
        (logging.WARNING, "no bars for spx, rut: levels unknown until data arrives; no observations of PAYEMS: "
                          "releases unknown until data arrives")]


def test_a_start_with_everything_is_one_info_line(world, caplog):
    [(level, line)] = start_lines(make(world), caplog)
    assert level == logging.INFO
    assert line.startswith("warmed up on history: spx 25 bars, rut 25 bars, PAYEMS 2 observations; alerts count")


# ---- the chart's releases ------------------------------------------------------------------------------------

def test_a_chart_marks_every_release_in_its_window(world, monkeypatch):
    drawn: list[chart.Chart] = []
    real = chart.draw
    monkeypatch.setattr(chart, "draw", lambda *a, **k: drawn.append(real(*a, **k)) or drawn[-1])
    _tmp, clock = world
    d = make(world)
    d.alerts.charts_dir = world[0] / "charts"
    d.start(d.clock.now())                                               # warmed up on the 06-07 and 07-05 releases
    clock.set(dt.datetime(2019, 7, 9, 16, 1, tzinfo=NY))
    assert [a.rule for a in d.check_closes(clock.now())] == ["breakout"]
    [picture] = drawn                                       # bars from 06-03 to 07-09: both releases in view
    assert [t.astimezone(NY).date() for t in picture.releases] == [dt.date(2019, 6, 7), dt.date(2019, 7, 5)]
    assert len(list(d.alerts.charts_dir.glob("*.png"))) == 1


# ---- a slow send and the delivery job ------------------------------------------------------------------------

def test_a_slow_send_does_not_make_the_delivery_job_warn_at_each_run(world, webhook, monkeypatch, caplog):
    monkeypatch.setenv("MW_OPS_MESSAGES_DESK", webhook.url("json"))
    d = make(world, clock=OffsetClock(world[1].now()))  # a scheduler runs on real time
    d.start(d.clock.now())
    now = d.clock.now()
    d.alerts.dispatcher.submit([Alert("breakout", now, "info", {}, "a slow one", {}, "slow|1", ("desk",), None)], now)
    webhook.slow(30.0)                                     # takes the request and holds it until restore()
    runner = Runner(d, closes_every=3600, deliver_every=0.05, heartbeat_every=3600, schedule_every=3600,
                    intraday_every=0)
    runs = {"deliver": 0}
    lock = threading.Lock()

    def executed(event):
        with lock:
            runs[event.job_id] = runs.get(event.job_id, 0) + 1

    runner.scheduler.add_listener(executed, EVENT_JOB_EXECUTED)
    skipped = []
    caplog.set_level(logging.WARNING, logger="apscheduler")
    runner.start()
    try:
        deadline = time.monotonic() + 15  # a bound, not a timing: either the job runs on or it is skipped
        while time.monotonic() < deadline:
            skipped = [r for r in caplog.records if "maximum number of running instances" in r.getMessage()]
            if webhook.arrived and (runs["deliver"] >= 5 or len(skipped) >= 3):
                break
            time.sleep(0.02)
        assert webhook.arrived == 1                       # the send is held meanwhile
    finally:
        webhook.restore()
        runner.shutdown()
    assert skipped == []
    assert runs["deliver"] >= 5                           # each run beside the slow one returned at once
    assert len(webhook.wait_for(1)) == 1 and d.alerts.dispatcher.pending() == 0  # and the alert went once
    d.store.close()
