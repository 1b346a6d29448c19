"""The consensus feeds in the daemon: polled into the store before a release, point in time, the print judged
against the feed's number; a renamed event, a refusal; the poll jobs before each release. Real clients against
the feeds' stub (tests/stubs/forecasts.py: payrolls on Friday 2026-12-04 08:30 New York, 185K on both)."""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo

import pytest

from macrowatch.clock import FakeClock
from macrowatch.config import load_config
from macrowatch.model import Vintage
from macrowatch.runtime.daemon import Daemon
from macrowatch.sources.base import PriceFetch
from macrowatch.store import open_store
from stubs.forecasts import FF_PATH, ForecastStub

NY = zoneinfo.ZoneInfo("America/New_York")
RELEASE_DAY = dt.date(2026, 12, 4)
RELEASE = dt.datetime(2026, 12, 4, 8, 30, tzinfo=NY)

CONFIG = """\
sources:
  consensus: {{forexfactory: {{url: "{url}"}}, nasdaq: {{url: "{url}"}}}}
releases:
  es: {{dates: [2026-12-04], time: "08:30"}}
macro:
  payrolls:
    series: PAYEMS
    release: es
    measure: change
    beat_by: 25
    consensus:
      - {{feed: forexfactory, event: "{event}", unit: 1000}}
      - {{feed: nasdaq, event: "Nonfarm Payrolls", unit: 1000}}
rules:
  - name: jobs-beat
    when: {{release: payrolls, outcome: beat}}
    message: "payrolls {{payrolls.actual:+.0f}}k vs {{payrolls.consensus:+.0f}}k"
  - name: jobs-miss
    when: {{release: payrolls, outcome: miss}}
"""


def month(m: int) -> dt.date:
    return dt.date(2025 + (m - 1) // 12, (m - 1) % 12 + 1, 1)


class Prices:
    """No instruments: nothing to fetch."""

    def daily(self, instruments, start, now, calendar_for):
        return PriceFetch({i: [] for i in instruments})


class Macro:
    """PAYEMS: +300k a month for a year (the mean of the last 12 first prints: +300), then November 2026 at +220k,
    published on 2026-12-04 3 s after 08:30."""

    def __init__(self, clock):
        self.clock = clock
        self.rows = [Vintage(month(m), month(m + 1) + dt.timedelta(days=4), 150_000.0 + 300 * m) for m in range(1, 23)]
        self.rows.append(Vintage(month(23), RELEASE_DAY, self.rows[-1].value + 220))

    def vintages(self, series, since=None, *, today=None):
        now = self.clock.now()
        return [v for v in self.rows if dt.datetime.combine(v.realtime_start, dt.time(8, 30), NY)
                + dt.timedelta(seconds=3) <= now]

    def release_schedule(self, release, start, end):
        return [d for d in release.dates if start <= d <= end]


@pytest.fixture
def world(tmp_path, forecast_stub):
    def make(event: str = "Non-Farm Employment Change", fired: list | None = None) -> Daemon:
        path = tmp_path / "mw.yaml"
        path.write_text(CONFIG.format(url=forecast_stub.base_url, event=event))
        config, _ = load_config(path)
        clock = FakeClock(dt.datetime(2026, 12, 4, 7, 0, tzinfo=NY))
        return Daemon(config, open_store(tmp_path / "mw.sqlite"), clock, Prices(), Macro(clock),
                      on_alert=fired.append if fired is not None else None)

    return make


def poll(d: Daemon) -> int:
    now = d.clock.now()
    return d.forecasts.poll(now, d.bursts.release_times(now))


def test_the_daemon_judges_a_release_against_the_feeds_forecast(world):
    fired = []
    d = world(fired=fired)
    d.start(d.clock.now())
    assert poll(d) == 2  # both feeds' 185K, seen at 07:00 (12:00 UTC)
    d.clock.set(RELEASE)
    alerts = d.bursts.burst("es", RELEASE_DAY, d.clock.now())
    # +220k against the feed's +185k is a beat by 35k; against the mean of the last 12 first prints (+300k) it
    # would have been a miss.
    assert [a.rule for a in alerts] == ["jobs-beat"]
    assert alerts[0].message == "payrolls +220k vs +185k"
    evidence = next(iter(alerts[0].evidence.values()))
    assert evidence["consensus_source"] == "forexfactory, seen 2026-12-04 12:00 UTC"
    assert alerts[0].at == RELEASE


def test_a_forecast_first_seen_at_or_after_the_release_time_does_not_count(world):
    fired = []
    d = world(fired=fired)
    d.start(d.clock.now())
    # The feed showed its number only at 08:30 (and again later): too late for a point-in-time consensus.
    for seen in (RELEASE, RELEASE + dt.timedelta(minutes=1)):
        d.store.put_forecast("forexfactory", "Non-Farm Employment Change", "USD", RELEASE, 185.0 + seen.minute, seen)
    d.clock.set(RELEASE)
    alerts = d.bursts.burst("es", RELEASE_DAY, d.clock.now())
    assert [a.rule for a in alerts] == ["jobs-miss"]
    evidence = next(iter(alerts[0].evidence.values()))
    assert (evidence["consensus"], evidence["consensus_source"]) == (
        300.0, "baseline: mean of the last 12 first prints")


def test_a_poll_stores_each_value_once_with_when_it_was_seen(world, forecast_stub):
    d = world()
    forecast_stub.clock = d.clock.monotonic  # ForexFactory's limit on the daemon's (fake) clock, as its client's
    d.start(d.clock.now())
    assert poll(d) == 2
    d.clock.advance(dt.timedelta(minutes=1))
    assert poll(d) == 0  # within ForexFactory's spacing: its last calendar, no request
    assert len(forecast_stub.calls(FF_PATH)) == 1
    d.clock.advance(dt.timedelta(minutes=29))
    assert poll(d) == 0  # the same numbers: no new rows
    forecast_stub.week[6]["forecast"] = "190K"  # the economists revise
    d.clock.advance(dt.timedelta(minutes=15))
    assert poll(d) == 1
    assert len(forecast_stub.calls(FF_PATH)) == 3
    rows = [(r.feed, r.value, r.seen_at.astimezone(NY).time()) for r in d.store.forecasts()]
    assert rows == [("forexfactory", 185.0, dt.time(7, 0)), ("nasdaq", 185.0, dt.time(7, 0)),
                    ("forexfactory", 190.0, dt.time(7, 45))]
    assert d.outages.health["forexfactory"].last_ok is not None and not d.outages.failing()


def test_a_renamed_event_is_one_ops_alert_naming_it_and_the_next_feed_counts(world, forecast_stub):
    fired = []
    d = world(event="Nonfarm Employment Change", fired=fired)  # not ForexFactory's title
    d.start(d.clock.now())
    poll(d)
    poll(d)
    ops = [a for a in fired if a.rule == "ops-consensus-event"]
    assert len(ops) == 1
    assert "'Nonfarm Employment Change'" in ops[0].message and "'Non-Farm Employment Change'" in ops[0].message
    assert d.outages.failing() == ["forexfactory"]
    d.clock.set(RELEASE)
    [beat] = d.bursts.burst("es", RELEASE_DAY, d.clock.now())
    assert next(iter(beat.evidence.values()))["consensus_source"] == "nasdaq, seen 2026-12-04 12:00 UTC"


def test_a_refused_feed_is_a_source_failure(world, forecast_stub: ForecastStub):
    forecast_stub.ff_refusal = "429"
    forecast_stub.fault("429", "forexfactory")
    d = world()
    d.start(d.clock.now())
    assert poll(d) == 1  # Nasdaq's
    assert len(forecast_stub.calls(FF_PATH)) == 1
    assert d.outages.failing() == ["forexfactory"]
    assert "HTTP 429" in d.outages.health["forexfactory"].error


def test_polls_are_scheduled_60_and_15_minutes_before_each_release_of_a_macro_with_a_feed(world):
    from macrowatch.runtime.scheduler import Runner

    d = world()
    d.start(d.clock.now())
    runner = Runner(d)  # not started: the jobs wait in the scheduler
    runner.releases.schedule()
    jobs = {j.id: j for j in runner.scheduler.get_jobs()}
    for minutes in (60, 15):
        job = jobs[f"consensus:es:{RELEASE_DAY}:{minutes}"]
        assert job.trigger.run_date == d.clock.to_wall(RELEASE - dt.timedelta(minutes=minutes))
    jobs["consensus:es:2026-12-04:15"].func()
    assert len(d.store.forecasts()) == 2


def test_a_daemon_stop_closes_the_feeds_connections(tmp_path, forecast_stub, monkeypatch):
    from daemonproc import wait_until
    from macrowatch.clock import OffsetClock
    from macrowatch.runtime.scheduler import Runner
    from stubs.forecasts import NASDAQ_PATH, _Handler

    # The stub keeps each connection open between requests (HTTP/1.1 keep-alive, as the feeds' servers do), so a
    # connection ends only when the client closes it; it counts the connections open.
    lock, open_now = threading.Lock(), [0]
    serve = _Handler.handle

    def counted(handler) -> None:
        with lock:
            open_now[0] += 1
        try:
            serve(handler)
        finally:
            with lock:
                open_now[0] -= 1

    monkeypatch.setattr(_Handler, "protocol_version", "HTTP/1.1")
    monkeypatch.setattr(_Handler, "handle", counted)
    path = tmp_path / "mw.yaml"
    path.write_text(CONFIG.format(url=forecast_stub.base_url, event="Non-Farm Employment Change"))
    config, _ = load_config(path)
    clock = OffsetClock(dt.datetime(2026, 12, 4, 7, 0, tzinfo=NY))  # real time: the scheduler runs the jobs
    d = Daemon(config, open_store(tmp_path / "mw.sqlite"), clock, Prices(), Macro(clock))
    runner = Runner(d)
    runner.start()
    try:
        wait_until(lambda: len(d.store.forecasts()) == 2, timeout=20, what="the start's poll of both feeds")
        assert open_now[0] == 2  # one kept open per feed
    finally:
        runner.stop()
        runner.shutdown()
        d.store.close()
    assert forecast_stub.calls(FF_PATH) and forecast_stub.calls(NASDAQ_PATH)
    wait_until(lambda: open_now[0] == 0, timeout=5, what="the feeds' connections closed by the stopped daemon")
