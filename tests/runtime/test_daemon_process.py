"""`macrowatch run` as a subprocess, against the stub Yahoo and FRED and a webhook receiver on 127.0.0.1.

The daemon's clock starts at MACROWATCH_NOW and runs at real speed, so a release "a few seconds ahead" is
really a few seconds ahead.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
import zoneinfo

import pytest

from daemonproc import STUB_SOURCES, Daemon, environment, free_port, wait_until
from stubs.fred import KEY, FredStub
from stubs.webhook import WebhookReceiver
from stubs.yahoo import YahooStub

pytestmark = pytest.mark.slow  # `macrowatch run` as a subprocess

NY = zoneinfo.ZoneInfo("America/New_York")
D = dt.date
# The 2019-07 sessions before the jobs report of Friday 2019-08-02, then the days after it.
SESSIONS = [D(2019, 7, d) for d in (22, 23, 24, 25, 26, 29, 30, 31)] + [D(2019, 8, 1)]
CLOSES = [95.0, 96, 97, 96, 97, 98, 97, 96, 97]
PAYEMS = [("2019-05-01", "2019-06-07", 151000), ("2019-06-01", "2019-07-05", 151200),
          ("2019-05-01", "2019-07-05", 151010)]
AUGUST = ("2019-07-01", "2019-08-02", 151400)   # +200k: the release the daemon waits for
# The market, the jobs report and the rule on it, after the store (test_ha_process.py runs them too): formatted
# with fred=, yahoo= and the release's time=.
JOBS_REPORT = STUB_SOURCES + """\
levels:
  spx-100: {{instrument: spx, price: 100, fail_within_bars: 3}}
releases:
  es: {{dates: [2019-08-02], time: "{time}"}}
macro:
  payrolls: {{series: PAYEMS, release: es, measure: change, consensus: {{2019-07: 150}}, beat_by: 25}}
channels:
  trading: ${{MW_TEST_TRADING}}
rules:
  - name: jobs-beat
    when: {{release: payrolls, outcome: beat}}
    notify: [trading]
    message: "payrolls {{payrolls.actual:+.0f}}k vs {{payrolls.consensus:+.0f}}k"
"""
CONFIG = "store: state/mw.sqlite\n" + JOBS_REPORT + """\
  - name: spx-breakout
    when: {{level: spx-100, entered: breakout}}
    notify: [trading]
    message: "{{spx.name}} {{spx.close:.2f}} above {{spx-100.price:.0f}}"
"""


def bars(closes: list[float], sessions: list[D] = SESSIONS):
    return [(d, c, c + 1, c - 1, c, 1e9) for d, c in zip(sessions, closes, strict=True)]


@pytest.fixture
def world(tmp_path, yahoo_stub: YahooStub, fred_stub: FredStub, webhook: WebhookReceiver):
    yahoo_stub.add_daily("^GSPC", bars(CLOSES))
    fred_stub.add_series("PAYEMS", PAYEMS)
    env = environment(tmp_path, MW_TEST_FRED_KEY=KEY, MW_TEST_TRADING=webhook.url("json"))
    started: list[Daemon] = []

    def start(now: dt.datetime, release_time: str = "08:30", extra: str = "") -> Daemon:
        (tmp_path / "mw.yaml").write_text(extra + CONFIG.format(fred=fred_stub.base_url, yahoo=yahoo_stub.url,
                                                                time=release_time))
        daemon = Daemon(tmp_path / "mw.yaml", env, tmp_path / f"daemon-{len(started)}.log", now=now)
        started.append(daemon)
        return daemon

    yield start, yahoo_stub, fred_stub, webhook
    for daemon in started:
        daemon.close()


def messages(webhook: WebhookReceiver) -> list[str]:
    return [r.json()["message"] for r in webhook.delivered()]


def test_a_release_seconds_ahead_reaches_the_receiver(world):
    start, _yahoo, fred, webhook = world
    release = dt.datetime(2019, 8, 2, 8, 30, tzinfo=NY)
    daemon = start(release - dt.timedelta(seconds=6))
    daemon.wait_for_line("release burst started")
    polls = len(fred.calls("/series/observations"))
    wait_until(lambda: len(fred.calls("/series/observations")) > polls, what="the burst's first poll of FRED")
    fred.add_series("PAYEMS", [*PAYEMS, AUGUST])  # FRED publishes a little after the release time, as it does
    published = time.monotonic()
    webhook.wait_for(1, timeout=20)
    arrival = time.monotonic() - published
    assert len(webhook.delivered()) == 1
    assert messages(webhook)[0].startswith("payrolls +200k vs +150k")
    assert arrival < 10, arrival
    assert daemon.stop() == 0
    out = daemon.output()
    assert "Traceback" not in out and KEY not in out and "/hook" not in out


def test_sighup_with_a_bad_config_keeps_it_running_and_sigterm_exits_0(world, tmp_path):
    start, *_ = world
    daemon = start(dt.datetime(2019, 8, 1, 18, 0, tzinfo=NY))
    daemon.wait_for_line("ready")
    (tmp_path / "mw.yaml").write_text("instruments: [oops\n")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for_line("reload refused")
    time.sleep(0.5)
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0
    assert "stopped" in daemon.output()


def test_restart_after_a_missed_close_catches_up_exactly_once(world):
    start, yahoo, _fred, webhook = world
    first = start(dt.datetime(2019, 8, 1, 18, 0, tzinfo=NY))   # warm-up on the July bars: no alerts
    first.wait_for_line("warmed up")
    assert first.stop() == 0
    assert webhook.delivered() == []
    # While it is down, 2019-08-02 closes at 101: a breakout of 100 that nobody has evaluated.
    yahoo.add_daily("^GSPC", bars([*CLOSES, 101.0], [*SESSIONS, D(2019, 8, 2)]))
    second = start(dt.datetime(2019, 8, 2, 18, 0, tzinfo=NY))
    second.wait_for_line("ready")
    webhook.wait_for(1, timeout=20)
    time.sleep(3)  # room for a wrong second delivery
    assert second.stop() == 0
    breakouts = [m for m in messages(webhook) if "above 100" in m]
    assert len(breakouts) == 1 and breakouts[0].startswith("S&P 500 101.00 above 100")
    third = start(dt.datetime(2019, 8, 2, 18, 5, tzinfo=NY))
    third.wait_for_line("ready")
    time.sleep(3)
    assert third.stop() == 0
    assert [m for m in messages(webhook) if "above 100" in m] == breakouts
    assert json.loads(webhook.delivered()[0].body)["title"]


def test_health_endpoint_and_metrics(world):
    import urllib.request

    start, *_ = world
    port = free_port()
    daemon = start(dt.datetime(2019, 8, 1, 18, 0, tzinfo=NY), extra=f"health: {{listen: '127.0.0.1:{port}'}}\n")
    try:
        daemon.wait_for_line("warmed up")
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200 and r.read().strip() == b"ok"
                    break
            except (OSError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
        assert 'macrowatch_polls_total{source="prices"}' in text
        assert 'macrowatch_data_age_seconds{instrument="spx"}' in text
        assert "macrowatch_up 1" in text
    finally:
        assert daemon.stop() == 0
