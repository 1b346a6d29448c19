"""A release that FRED publishes before this host's clock reads its time still fires at once (issue [9], item 10).

A start or a takeover catches up: it fetches the vintages and evaluates what is due by its own `now`. When
FRED's clock runs ahead of the daemon's (or, in the process tests, the daemon was slow to start), a catch-up a
few seconds before 08:30 finds the 08:30 value already published: it stores it and, rightly, does not evaluate
it yet. The burst at 08:30 then found the value in the store, took it for evaluated and stopped at once; the
alert waited for the close job's next pass, up to a minute later (the HA process test's failover and
test_process_fred_failing_at_the_release_fires_once_it_answers timed out so on a loaded machine). The burst
evaluates what it finds in the store.

In-process under a fake clock with the real clients against the stubs (as in test_faults.py), and once as a
`macrowatch run` process; FRED's clock runs AHEAD (5 s) of the daemon's.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from macrowatch.clock import FakeClock
from macrowatch.config import load_config
from macrowatch.runtime.daemon import Daemon
from macrowatch.store import open_store
from stubs.fred import KEY
from stubs.yahoo import YahooStub

from .test_faults import DAY, fred_client, price_source, wait_until, warm_up
from .world import CHANNELS, SERIES, WARM, Processes, Receiver, Scenario, TimedFred, quiet, release_at

AHEAD = dt.timedelta(seconds=5)


def test_a_value_stored_by_a_catch_up_before_its_release_time_fires_at_the_release_time(tmp_path, monkeypatch):
    scenario = Scenario(WARM + 12)
    at = release_at(scenario.day(DAY))
    clock = FakeClock(at - dt.timedelta(hours=2))
    yahoo, fred, receiver = YahooStub(), TimedFred(lambda: clock.now() + AHEAD, dt.timedelta(0)).start(), Receiver()
    for server in (yahoo._server, fred._server):
        quiet(server)
    try:
        yahoo.add_daily("^GSPC", scenario.yahoo_rows())
        fred.add_series(SERIES, scenario.fred_rows())
        for channel in CHANNELS:
            monkeypatch.setenv(f"MW_TEST_{channel.upper()}", receiver.url("json", f"/{channel}"))
        monkeypatch.setenv("MW_TEST_FRED_KEY", KEY)
        path = tmp_path / "mw.yaml"
        path.write_text(scenario.config_text(fred.base_url, yahoo.url, store=str(tmp_path / "mw.sqlite")))
        config, _ = load_config(path)
        store = open_store(tmp_path / "mw.sqlite")
        fired = []
        make = lambda: Daemon(config, store, clock, price_source(yahoo.url, str(tmp_path / "yf")),  # noqa: E731
                              fred_client(fred.base_url), on_alert=fired.append)
        make().start(clock.now())                     # the first start: warm on the history, silent
        clock.set(at - dt.timedelta(seconds=2))
        daemon = make()                               # a restart (or a takeover) 2 s before the release
        daemon.start(clock.now())
        assert any(v.realtime_start == at.date() for v in store.vintages(SERIES)), "FRED had it at the catch-up"
        assert fired == []                            # not evaluated before its time
        clock.set(at)
        alerts = daemon.bursts.burst("daily", at.date(), clock.now())  # the burst job, at the release time
        assert [a.rule for a in alerts] == ["gauge"] == [a.rule for a in fired]
        assert alerts[0].at == at
        assert sorted(r.path for r in receiver.requests) == ["/desk", "/trading"]  # delivered at once
        store.close()
    finally:
        for stub in (yahoo, fred, receiver):
            stub.stop()


@pytest.mark.slow
def test_process_started_as_fred_publishes_fires_at_the_release_time(tmp_path):
    p = Processes(tmp_path, Scenario(WARM + 12))
    try:
        warm_up(p)
        at = release_at(p.scenario.day(DAY))
        asked = len(p.fred.requests)
        p.fred.now = lambda: p.clock() + AHEAD       # the catch-up, 2 s before 08:30, finds the value published
        run = p.start(at - dt.timedelta(seconds=2))
        wait_until(lambda: len(p.fred.requests) > asked, 20, run)
        wait_until(lambda: sum(p.received().values()) == 2, 20, run)  # not a minute later, at the close job
        time.sleep(1.0)
        assert run.stop() == 0
        assert sorted(p.received()) == sorted((f"gauge||release:{at.isoformat()}", c) for c in CHANNELS)
        assert "level=error" not in run.output() and "Traceback" not in run.output()
    finally:
        p.close()
