"""SIGHUP reloads, all or nothing and never dropped (issue [9], item 9).

A reload asked for while another is under way used to be an APScheduler job turned away as a second instance
("maximum number of running instances"): in a burst of SIGHUPs the last edit could be lost. And a changed
`store:` (opened once, at the start) was ignored while "config reloaded" was logged. Now every request is
queued, the requests waiting at once become one reload of the file as it is by then, and a change to a
setting read only at the start is refused whole, with the reason, the running config kept.

In-process against a real Runner (and a standing-by Supervisor) with in-memory feeds; one `macrowatch run`
subprocess against the stub Yahoo and FRED, whose release calendar answers slowly so that each reload lasts.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
import zoneinfo
from pathlib import Path

import pytest

import daemonproc
from macrowatch.clock import FakeClock
from macrowatch.config import load_config
from macrowatch.model import Bar
from macrowatch.runtime import ha
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.scheduler import Runner
from macrowatch.sources import calendar
from macrowatch.sources.base import LatestFetch, PriceFetch, Quote
from macrowatch.store import open_store
from stubs.fred import KEY, FredStub
from stubs.yahoo import YahooStub

NY = zoneinfo.ZoneInfo("America/New_York")
SKIPPED = "maximum number of running instances"
CONFIG = """\
store: {store}
instruments:
  spx: {{symbol: "^GSPC", name: "S&P 500"}}
levels:
  spx-100: {{instrument: spx, price: 100}}
rules:
{rules}"""


def rules(n: int) -> str:
    return "".join(f"  - {{name: r{i}, when: {{level: spx-100, entered: breakout}}}}\n" for i in range(n))


def write(path: Path, n_rules: int, store: Path | str) -> None:
    path.write_text(CONFIG.format(store=store, rules=rules(n_rules)))


def wait_for(check, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# ---- in-process: a real Runner over in-memory feeds ---------------------------------------------------------

class Prices:
    """Closes at 95 on the June 2019 sessions: nothing fires."""

    def __init__(self):
        closes = calendar.close_times("XNYS", dt.date(2019, 6, 3), dt.date(2019, 6, 28))
        self.bars = [Bar(d, at, 95.0, 95.0, 95.0, 95.0) for d, at in sorted(closes.items())]

    def daily(self, instruments, start, now, calendar_for):
        return PriceFetch({i: [b for b in self.bars if start <= b.session and b.at <= now] for i in instruments})

    def latest(self, instruments, now, calendar_for):
        return LatestFetch({i: Quote(self.bars[-1].close, self.bars[-1].at) for i in instruments})


class Macro:
    def vintages(self, series, since=None, *, today=None):
        return []

    def release_schedule(self, release, start, end):
        return []


@pytest.fixture
def running(tmp_path):
    path, store = tmp_path / "mw.yaml", tmp_path / "mw.sqlite"
    write(path, 1, store)
    config, _ = load_config(path)
    daemon = Daemon(config, open_store(store), FakeClock(dt.datetime(2019, 7, 1, 12, 0, tzinfo=NY)), Prices(),
                    Macro())
    runner = Runner(daemon, closes_every=3600, deliver_every=3600, heartbeat_every=3600, intraday_every=0)
    runner.start()
    assert runner.catch_up.done.wait(10)
    yield runner, path, store
    runner.stop()
    runner.shutdown()
    daemon.store.close()


def test_a_burst_of_reloads_during_a_reload_ends_with_the_last_edit(running, caplog):
    runner, path, store = running
    first_load = threading.Event()
    go_on = threading.Event()

    def load():
        config, _ = load_config(path)  # the file as it is when this reload reads it
        if not first_load.is_set():
            first_load.set()
            go_on.wait(10)  # the first reload is still under way while the next requests come
        return config

    write(path, 2, store)
    runner.request_reload(load)
    assert first_load.wait(10)
    for n in (3, 4, 5):  # edit, then SIGHUP, three times while the first reload runs
        write(path, n, store)
        runner.request_reload(load)
    time.sleep(0.3)  # room for the scheduler to turn a request away, as it did
    go_on.set()
    wait_for(lambda: len(runner.daemon.config.rules) == 5, what="the last edit (5 rules)")
    assert SKIPPED not in caplog.text


def test_a_changed_store_is_refused_whole_and_the_running_config_stays(running, tmp_path, caplog):
    runner, path, store = running
    caplog.set_level(logging.INFO)
    before = runner.daemon.config
    write(path, 2, "postgresql://mw:hunter2secret@127.0.0.1:1/mw")  # another store, and a new rule with it
    runner.request_reload(lambda: load_config(path)[0])
    wait_for(lambda: "previous config keeps running" in caplog.text, what="the refusal")
    assert "store changed: a restart is needed" in caplog.text
    assert "config reloaded" not in caplog.text
    assert "hunter2secret" not in caplog.text
    assert runner.daemon.config is before and len(runner.daemon.config.rules) == 1
    assert sorted(r.name for r in runner.daemon.engine.config.rules) == ["r0"]  # the new rule is not active
    assert runner.scheduler.running
    write(path, 3, store)  # the same store again: taken
    runner.request_reload(lambda: load_config(path)[0])
    wait_for(lambda: len(runner.daemon.config.rules) == 3, what="a reload on the same store")


# ---- in-process: a Supervisor standing by -----------------------------------------------------------------------

class NeverLeads:
    holder, enabled, waits_for = "b:2", True, "the lease"

    def term(self):
        return None

    def token(self):
        raise ha.Fenced("standing by")

    def remaining(self):
        return 0.0

    def start(self):
        pass

    def stop(self):
        pass

    def step_down(self, term):
        pass


def test_a_standby_queues_its_reloads_and_ends_with_the_last_edit(tmp_path, caplog):
    # A standby validated the config inside the signal handler: a burst of HUPs ran loads nested in one
    # another on the main thread, and an earlier one could finish last.
    caplog.set_level(logging.INFO)
    path, store_path = tmp_path / "mw.yaml", tmp_path / "mw.sqlite"
    loaded: list[int] = []
    first_load, go_on = threading.Event(), threading.Event()

    def load():
        config, _ = load_config(path)
        if not first_load.is_set():
            first_load.set()
            go_on.wait(10)
        loaded.append(len(config.rules))
        return config

    with open_store(store_path) as store:
        sup = ha.Supervisor(NeverLeads(), store, lambda s: None, check_every=0.01)
        sup.start()
        try:
            write(path, 2, store_path)
            asked = threading.Thread(target=sup.request_reload, args=[load], daemon=True)
            asked.start()
            assert first_load.wait(10)
            asked.join(5)
            assert not asked.is_alive(), "the request waits for the load (a signal handler would block)"
            for n in (3, 4):
                write(path, n, store_path)
                sup.request_reload(load)
            go_on.set()
            wait_for(lambda: loaded and loaded[-1] == 4, what="the last edit loaded")
        finally:
            go_on.set()
            sup.shutdown()
    assert "config reloaded (standing by)" in caplog.text


# ---- `macrowatch run` as a process ------------------------------------------------------------------------------

PROCESS_CONFIG = "store: {store}\n" + daemonproc.STUB_SOURCES + """\
levels:
  spx-100: {{instrument: spx, price: 100}}
releases:
  es: {{fred_release_id: 50, time: "08:30"}}
rules:
{rules}"""
SESSIONS = [dt.date(2019, 7, d) for d in (22, 23, 24, 25, 26, 29, 30, 31)] + [dt.date(2019, 8, 1)]


@pytest.mark.slow
def test_process_a_burst_of_sighups_ends_with_the_last_edit_and_a_store_change_is_refused(
        tmp_path, yahoo_stub: YahooStub, fred_stub: FredStub):
    yahoo_stub.add_daily("^GSPC", [(d, 95.0, 96.0, 94.0, 95.0, 1e9) for d in SESSIONS])
    fred_stub.add_release(50, [dt.date(2019, 8, 2), dt.date(2019, 9, 6)])
    path, store = tmp_path / "mw.yaml", tmp_path / "state" / "mw.sqlite"

    def edit(n: int, store_target: Path | str = store) -> None:
        path.write_text(PROCESS_CONFIG.format(store=store_target, fred=fred_stub.base_url, yahoo=yahoo_stub.url,
                                              rules=rules(n)))

    edit(1)
    log = tmp_path / "daemon.log"
    daemon = daemonproc.Daemon(path, daemonproc.environment(tmp_path, MW_TEST_FRED_KEY=KEY), log,
                               now=dt.datetime(2019, 8, 1, 18, 0, tzinfo=NY))
    proc, wait_line = daemon.proc, daemon.wait_for_line
    try:
        wait_line("warmed up")
        # Another store, with a password, and a new rule: refused whole.
        edit(2, "postgresql://mw:hunter2secret@127.0.0.1:1/mw")
        proc.send_signal(signal.SIGHUP)
        wait_line("previous config keeps running")
        assert "store changed: a restart is needed" in log.read_text()
        assert "config reloaded" not in log.read_text()
        # A burst: each reload waits 1 s for FRED's release calendar, the next SIGHUPs come meanwhile.
        fred_stub.delay = 1.0
        fred_stub.fault("timeout", 50)
        for n in (3, 4, 5, 6):
            edit(n)
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.25)
        wait_line("6 rules")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        daemon.close()
    text = log.read_text()
    reloaded = [line for line in text.splitlines() if "config reloaded" in line]
    assert "6 rules" in reloaded[-1], reloaded
    assert SKIPPED not in text
    assert "hunter2secret" not in text
    assert "Traceback" not in text
