"""A stop interrupts every sleep: a release burst's waits, the sources' retries and FRED's rate limit.

systemd gives a stop `TimeoutStopSec=30` before SIGKILL, and a standby takes over only once the leader has
let go: a stop stuck behind a burst's 2-minute wait (its late phase) or a source's backoff was past both.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import threading
import time

import pytest

from macrowatch.clock import AcceleratedClock, Clock, FakeClock, OffsetClock, stop_aware_sleep
from macrowatch.config import load_config
from macrowatch.runtime import health
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.service import build
from macrowatch.sources.base import FredError
from macrowatch.sources.fred import RateLimiter
from macrowatch.store import open_store
from stubs.fred import KEY, FredStub
from stubs.yahoo import YahooStub

from .test_faults import ScriptedClock
from .world import SERIES, WARM, Processes, Scenario, quiet, release_at

DAY = WARM
T0 = dt.datetime(2019, 8, 2, 12, 30, tzinfo=dt.UTC)


# ---- the interruptible wait --------------------------------------------------------------------------

@pytest.mark.parametrize("clock", [Clock(), OffsetClock(T0), AcceleratedClock(T0, 10.0)],
                         ids=["real", "offset", "accelerated"])
def test_a_real_clock_waits_until_the_event_is_set(clock):
    event = threading.Event()
    threading.Timer(0.1, event.set).start()
    assert clock.wait(3600.0, event) is True          # an hour's wait, cut short by the event
    assert clock.wait(3600.0, event) is True          # and at once once it is set
    assert clock.wait(0.01, threading.Event()) is False  # a wait that runs its course


def test_a_fake_clock_waits_by_sleeping_unless_the_event_is_set():
    clock, event = FakeClock(T0), threading.Event()
    assert clock.wait(120.0, event) is False
    assert clock.now() == T0 + dt.timedelta(seconds=120)
    event.set()
    assert clock.wait(120.0, event) is True
    assert clock.now() == T0 + dt.timedelta(seconds=120)  # no time passes once stopping


def test_a_scripted_clock_runs_its_script_through_wait():
    # tests/reliability/test_faults.py's ScriptedClock overrides `sleep`: `wait` must go through it.
    clock, event, ran = ScriptedClock(T0), threading.Event(), []
    clock.at(T0 + dt.timedelta(seconds=60), lambda: ran.append(clock.now()))
    clock.at(T0 + dt.timedelta(seconds=90), event.set)
    assert clock.wait(120.0, event) is True
    assert ran == [T0 + dt.timedelta(seconds=60)]


def test_the_stop_aware_sleep_returns_true_once_the_event_is_set():
    event = threading.Event()
    sleep = stop_aware_sleep(event)
    assert sleep(0.01) is False
    threading.Timer(0.1, event.set).start()
    assert sleep(3600.0) is True
    assert sleep(3600.0) is True


def test_the_rate_limiter_gives_up_its_wait_when_stopped():
    # Its loop sleeps until a token is free: with a sleep that returns at once it must end, not spin.
    event = threading.Event()
    limiter = RateLimiter((1, 3600.0), sleep=stop_aware_sleep(event))
    assert limiter.acquire() is True
    result = []
    waiting = threading.Thread(target=lambda: result.append(limiter.acquire()), daemon=True)
    waiting.start()
    time.sleep(0.1)
    event.set()
    waiting.join(10)
    assert not waiting.is_alive(), "the rate limiter waits out its window after a stop"
    assert result == [False]                       # nothing counted: the request is not sent


# ---- the sources, as the daemon builds them ----------------------------------------------------------

@pytest.fixture
def built(tmp_path, monkeypatch):
    """The daemon as `macrowatch run` builds it (service.build), against a stub FRED and Yahoo."""
    fred, yahoo = FredStub().start(), YahooStub()
    for server in (fred._server, yahoo._server):
        quiet(server)
    scenario = Scenario(WARM + 2)
    fred.add_series(SERIES, scenario.fred_rows())
    yahoo.add_daily("^GSPC", scenario.yahoo_rows())
    monkeypatch.setenv("MW_TEST_FRED_KEY", KEY)
    for channel in ("TRADING", "DESK"):
        monkeypatch.setenv(f"MW_TEST_{channel}", "json://127.0.0.1:9/x")
    path = tmp_path / "mw.yaml"
    path.write_text(scenario.config_text(fred.base_url, yahoo.url, store=str(tmp_path / "mw.sqlite")))
    config, _ = load_config(path)
    store = open_store(tmp_path / "mw.sqlite")
    daemon = build(config, Clock(), health.Metrics(), store)
    yield daemon, fred, yahoo, scenario
    store.close()
    fred.stop()
    yahoo.stop()


def test_a_stop_ends_fred_retries_without_another_request(built):
    daemon, fred, _yahoo, _scenario = built
    fred.fault("429")                 # FRED rate limits: the client would retry 3 times, 2 + 4 + 8 s apart
    daemon.stopping.set()
    with pytest.raises(FredError, match="HTTP 429"):
        daemon.polls.macro.vintages(SERIES)
    assert len(fred.requests) == 1


def test_a_stop_ends_yahoo_retries_without_another_request(built):
    daemon, _fred, yahoo, scenario = built
    yahoo.fault("429")                # Yahoo rate limits: the source would retry twice, 2 + 4 s apart
    daemon.stopping.set()
    inst = daemon.config.instruments
    result = daemon.polls.prices.daily(inst, scenario.day(0), scenario.days[-1][1] + dt.timedelta(hours=1),
                                 daemon.polls.calendar_for)
    assert set(result.errors) == {"spx"} and "429" in result.errors["spx"]
    assert "not retried: stopping after attempt 1" in result.errors["spx"]   # no second attempt


def test_the_daemon_and_its_sources_share_one_stopping_event(built):
    daemon = built[0]
    assert isinstance(daemon, Daemon)
    daemon.stopping.set()
    assert daemon.polls.macro._http.sleep(3600.0) is True
    assert daemon.polls.macro._http.limiter._sleep(3600.0) is True
    assert daemon.polls.prices._sleep(3600.0) is True


# ---- the real daemon ---------------------------------------------------------------------------------

@pytest.fixture
def processes(tmp_path):
    world = Processes(tmp_path, Scenario(WARM + 12))
    yield world
    world.close()


@pytest.mark.slow
def test_process_sigterm_in_a_bursts_late_phase_exits_at_once(processes):
    p = processes
    p.fred.add_series(SERIES, p.scenario.fred_rows()[:DAY])   # FRED never publishes DAY's value
    run = p.start(release_at(p.scenario.day(DAY)) + dt.timedelta(minutes=40))  # past 30 min: 2-minute waits
    run.wait_for_line("ops release-late")                     # the burst has polled once and waits now
    asked = len(p.fred.requests)
    time.sleep(0.5)
    run.proc.send_signal(signal.SIGTERM)
    try:
        code = run.proc.wait(timeout=10)  # a generous bound: the wait is 120 s, systemd's stop timeout 30 s
    except subprocess.TimeoutExpired:
        pytest.fail(f"SIGTERM did not stop the daemon within 10 s:\n{run.output()[-3000:]}")
    assert code == 0, run.output()[-3000:]
    assert len(p.fred.requests) == asked                    # no poll after the stop
    assert "Traceback" not in run.output() and "Logging error" not in run.output()
