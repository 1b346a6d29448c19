"""Issue [12] in the daemon: release times from the BLS schedule, first prints from the BLS API beside FRED within
the day's query budget, and no release left silently unscheduled.

In process under a fake clock: the real BlsClient against the stub BLS (tests/stubs/bls.py) on 127.0.0.1, FRED as
the in-memory feed of test_daemon_core (PAYEMS: June 1100 known before 2019-08-02, July 1300 from FRED `lag` after
08:30 on that day).
"""

from __future__ import annotations

import datetime as dt
import logging
import textwrap

import pytest

from macrowatch.clock import FakeClock
from macrowatch.config import load_config
from macrowatch.config.problems import ConfigError
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.health import Metrics
from macrowatch.runtime.reloads import check_reloadable
from macrowatch.runtime.wiring import bls_for
from macrowatch.store import open_store
from runtime.test_daemon_core import NY, Macro, Prices
from stubs.bls import API_PATH, KEY, SCHEDULE_PATH, BlsStub

DAY = dt.date(2019, 8, 2)
AT = dt.datetime(2019, 8, 2, 8, 30, tzinfo=NY)
PAYROLLS = "CES0000000001"
FRED_KEY = "0123456789abcdef0123456789abcdef"
BEFORE = [(2019, "M05", "1000"), (2019, "M06", "1100")]   # what BLS shows before the release
RELEASE = [(2019, "M06", "1120"), (2019, "M07", "1330")]  # the July release: July, and June revised
CONFIG = """\
sources:
{fred}  bls: {{{bls_key}url: "{url}"}}
instruments:
  spx: {{symbol: "^GSPC", name: "S&P 500"}}
releases:
  es: {{{calendar}time: "{time}"}}
{more_releases}macro:
  payrolls: {{series: PAYEMS, release: es, measure: change, consensus: {{2019-07: 150}}, beat_by: 25,
             bls_series: {bls_series}}}
{more_macros}rules:
  - name: jobs
    when: {{release: payrolls, outcome: any}}
    message: "payrolls {{payrolls.actual:+.0f}}k vs {{payrolls.consensus:+.0f}}k"
"""


@pytest.fixture
def bls(bls_stub: BlsStub) -> BlsStub:
    bls_stub.add_event("Employment Situation for June 2019", "2019-07-05T08:30")
    bls_stub.add_event("Employment Situation for July 2019", "2019-08-02T08:30")
    return bls_stub.add_series(PAYROLLS, BEFORE)


def config_for(tmp_path, stub: BlsStub, *, key: bool = True, calendar: str = "fred_release_id: 50, ",
               time: str = "08:30", fred_key: str = FRED_KEY, second: bool = False, bls_series: str = PAYROLLS):
    path = tmp_path / "mw.yaml"
    path.write_text(textwrap.dedent(CONFIG.format(
        fred=f'  fred: {{api_key: "{fred_key}"}}\n' if fred_key else "",
        bls_key=f'api_key: "{KEY}", ' if key else "", url=stub.base_url, calendar=calendar,
        time=time, bls_series=bls_series,
        more_releases='  cpi: {fred_release_id: 10, time: "08:30"}\n' if second else "",
        more_macros="  unrate: {series: UNRATE, release: cpi, bls_series: LNS14000000}\n" if second else "")))
    return load_config(path)[0]


def make(tmp_path, config, clock, fred, fired, metrics=None):
    return Daemon(config, open_store(tmp_path / "mw.sqlite"), clock, Prices(), fred, on_alert=fired.append,
                  metrics=metrics, bls=bls_for(config))


def started(tmp_path, stub, lag=dt.timedelta(minutes=3), metrics=None, **options):
    """A daemon started at 08:00 on the release day, its start's alerts dropped."""
    clock = FakeClock(dt.datetime(2019, 8, 2, 8, 0, tzinfo=NY))
    fired: list = []
    fred = Macro(clock, lag=lag)
    d = make(tmp_path, config_for(tmp_path, stub, **options), clock, fred, fired, metrics)
    d.start(clock.now())
    fired.clear()
    clock.set(AT)
    return d, clock, fred, fired


# ---- first prints -----------------------------------------------------------------------------------

def test_the_publisher_first_judged_from_its_own_response(tmp_path, bls):
    bls.publish(PAYROLLS, RELEASE)  # out at the release second; FRED's copy 3 minutes later
    d, clock, fred, fired = started(tmp_path, bls)
    calls = fred.calls
    alerts = d.bursts.burst("es", DAY, clock.now())
    # July 1330 minus June as this release revised it (1120), not as FRED had it (1100): +210, not +230.
    assert [a.message for a in alerts] == ["payrolls +210k vs +150k"] == [a.message for a in fired]
    assert alerts[0].at == AT
    assert clock.now() == AT  # no wait: the first poll had it
    [query] = bls.calls()
    assert query.method == "POST" and query.body == {"seriesid": [PAYROLLS], "startyear": "2017", "endyear": "2019",
                                                     "registrationkey": KEY}
    assert fred.calls == calls  # BLS had it first: FRED was not asked for it
    assert d.store.print_sources() == {("PAYEMS", DAY): ("bls", AT)}
    assert d.store.queries("bls", DAY) == 1
    july = [v for v in d.store.vintages("PAYEMS") if v.realtime_start == DAY]
    assert {(v.date, v.value) for v in july} >= {(dt.date(2019, 6, 1), 1120.0), (dt.date(2019, 7, 1), 1330.0)}


def test_a_stale_answer_keeps_polling_and_fred_wins(tmp_path, bls):
    d, clock, fred, fired = started(tmp_path, bls, lag=dt.timedelta(seconds=5))
    alerts = d.bursts.burst("es", DAY, clock.now())
    assert [a.message for a in alerts] == ["payrolls +200k vs +150k"]  # FRED's July 1300 - June 1100
    assert 5 <= len(bls.calls()) <= 7  # about once a second until FRED showed it
    source, seen = d.store.print_sources()[("PAYEMS", DAY)]
    assert source == "fred" and dt.timedelta(seconds=5) <= seen - AT <= dt.timedelta(seconds=7)
    assert d.store.queries("bls", DAY) == len(bls.calls())


def test_over_quota_is_a_source_failure_and_fred_goes_on_alone(tmp_path, bls):
    bls.quota = 0
    d, clock, fred, fired = started(tmp_path, bls, lag=dt.timedelta(seconds=10))
    d.bursts.burst("es", DAY, clock.now())
    assert len(bls.calls()) == 1  # REQUEST_NOT_PROCESSED: not asked again in this burst
    assert [a.rule for a in fired] == ["ops-bls-failing", "jobs"]
    assert "REQUEST_NOT_PROCESSED" in fired[0].message and KEY not in fired[0].message  # BLS quotes the key
    assert d.outages.health["bls"].failing_since is not None
    assert d.store.print_sources()[("PAYEMS", DAY)][0] == "fred"


def test_a_server_error_backs_off_with_one_ops_alert(tmp_path, bls):
    bls.publish(PAYROLLS, RELEASE)
    bls.fault("500", "api")
    d, clock, fred, fired = started(tmp_path, bls, lag=dt.timedelta(seconds=30))
    d.bursts.burst("es", DAY, clock.now())
    assert [a.rule for a in fired] == ["ops-bls-failing", "jobs"]
    assert "server error (HTTP 500)" in fired[0].message
    assert 2 <= len(bls.calls()) <= 6  # tried again after 2, 4, 8, 16 s: not 30 times
    assert d.store.print_sources()[("PAYEMS", DAY)][0] == "fred"


def test_a_burst_leaves_the_rest_of_the_day_its_share(tmp_path, bls):
    # Keyless: 25 a day, 20 spent already, two BLS releases still due today: this burst may spend 2.
    bls.add_series("LNS14000000", [(2019, "M06", "3.7")])
    metrics = Metrics()
    d, clock, fred, fired = started(tmp_path, bls, lag=dt.timedelta(seconds=20), key=False, second=True,
                                   metrics=metrics)
    d.store.count_queries("bls", DAY, 20)
    d.bursts.burst("es", DAY, clock.now())
    assert len(bls.calls()) == 2 and all(c.key is None for c in bls.calls())
    assert d.store.queries("bls", DAY) == 22
    assert [a.message for a in fired] == ["payrolls +200k vs +150k"]  # FRED alone once the share was spent
    assert metrics.get("macrowatch_source_queries_today", source="bls") == 22
    assert metrics.get("macrowatch_source_query_limit", source="bls") == 25


# ---- the schedule -----------------------------------------------------------------------------------

def test_the_bls_time_wins_over_time_and_times_the_print(tmp_path, bls):
    bls.publish(PAYROLLS, RELEASE)
    d, clock, fred, fired = started(tmp_path, bls, calendar='bls: "Employment Situation", ', time="10:00")
    assert [(r, day, at) for r, day, at in d.bursts.release_times(clock.now())] == [("es", DAY, AT)]
    alerts = d.bursts.burst("es", DAY, clock.now())
    assert [a.at for a in alerts] == [AT]  # the print is at the BLS time, not at `time:`
    saved = d.store.load_state("schedule")
    assert saved["releases"]["es"] == ["2019-08-02"]  # a week back to SCHEDULE_DAYS ahead
    assert saved["times"]["es"]["2019-08-02"] == "08:30:00"


def test_the_bls_schedule_is_read_once_a_day_and_kept_while_unreachable(tmp_path, bls, caplog):
    options = {"calendar": 'bls: "Employment Situation", ', "time": "10:00"}
    d, clock, fred, fired = started(tmp_path, bls, **options)
    assert len(bls.calls(SCHEDULE_PATH)) == 1
    d.bursts.refresh_schedule(clock.now())
    assert len(bls.calls(SCHEDULE_PATH)) == 1  # the store's copy is under a day old
    bls.fault("500", "schedule")
    clock.advance(dt.timedelta(days=1, hours=1))
    d.bursts.refresh_schedule(clock.now())
    assert len(bls.calls(SCHEDULE_PATH)) == 2
    assert d.bursts.schedule["es"] == [DAY]  # the copy stands
    assert d.bursts.schedule_failures == 1 and d.outages.health["bls"].failing_since is not None
    assert not [a for a in fired if a.rule == "ops-release-unschedulable"]


def test_a_release_without_a_usable_calendar_raises_an_ops_alert_once_per_episode(tmp_path, bls, caplog):
    d, clock, fred, fired = started(tmp_path, bls, calendar="fred_release_id: 50, ", fred_key="")
    with caplog.at_level(logging.ERROR, logger="macrowatch.app"):
        d.bursts.refresh_schedule(clock.now())
    assert "ops release-unschedulable: release es cannot be scheduled" in caplog.text  # said again at each refresh
    assert fired == []  # ... and sent once: at the start
    d.store.close()
    again: list = []
    clock.set(dt.datetime(2019, 8, 1, 12, 0, tzinfo=NY))
    config = config_for(tmp_path, bls, calendar='bls: "Employment Situaton", ')  # a typo in the title
    make(tmp_path, config, clock, Macro(clock), again).start(clock.now())
    [alert] = [a for a in again if a.rule == "ops-release-unschedulable"]
    assert "no event of the BLS schedule is titled 'Employment Situaton' (check `bls:`)" in alert.message


def test_a_start_without_a_fred_key_names_the_dead_release(tmp_path, bls):
    clock = FakeClock(dt.datetime(2019, 8, 1, 12, 0, tzinfo=NY))
    fired: list = []
    config = config_for(tmp_path, bls, fred_key="")
    make(tmp_path, config, clock, Macro(clock), fired).start(clock.now())
    [alert] = [a for a in fired if a.rule == "ops-release-unschedulable"]
    assert alert.message == ("release es cannot be scheduled, its release rules cannot fire: no FRED key "
                             "(sources.fred.api_key) for fred_release_id: add `bls:` or `dates:`")


def test_sources_bls_changes_need_a_restart(tmp_path, bls):
    running = config_for(tmp_path, bls)
    new = config_for(tmp_path, bls, key=False)
    with pytest.raises(ConfigError, match="sources.bls changed: a restart is needed"):
        check_reloadable(running, new)


def test_wiring_builds_the_bls_client_from_the_config(tmp_path, bls):
    client = bls_for(config_for(tmp_path, bls, key=False))
    assert client.api_key is None and client.base_url == bls.base_url
    assert client.url("https://api.bls.gov" + API_PATH[len("/api.bls.gov"):]) == bls.base_url + API_PATH
