"""A leadership's end closes its sources' HTTP connections: the real PriceSource, FredClient and BlsClient (as
`service.build` wires them) against the stub Yahoo, FRED and BLS, which keep each connection open between
requests (HTTP/1.1 keep-alive, as the real servers do) and count those open. A lost leadership's daemon is dropped
for a new one with new sources: without the close, its connections would stay open until garbage collection."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import zoneinfo

from daemonproc import wait_until
from macrowatch.clock import OffsetClock
from macrowatch.config import load_config
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.scheduler import Runner, close_clients
from macrowatch.runtime.wiring import sources_for
from macrowatch.sources.bls import BlsClient
from macrowatch.store import open_store
from stubs.bls import SCHEDULE_PATH
from stubs.fred import KEY

NY = zoneinfo.ZoneInfo("America/New_York")
SESSIONS = [dt.date(2019, 7, d) for d in (24, 25, 26, 29, 30, 31)] + [dt.date(2019, 8, 1)]
CONFIG = """\
sources:
  fred: {{api_key: "{key}", url: "{fred}"}}
  yahoo: {{url: "{yahoo}"}}
  bls: {{url: "{bls}"}}
instruments:
  spx: {{symbol: "^GSPC", name: "S&P 500"}}
releases:
  es: {{bls: "Employment Situation", time: "08:30"}}
macro:
  payrolls: {{series: PAYEMS, release: es, measure: change, consensus: {{2019-07: 150}}}}
rules:
  - {{name: jobs, when: {{release: payrolls, outcome: any}}}}
"""


def counted(stub) -> list[int]:
    """Make the stub's server keep connections alive and count those open (one handler runs per connection)."""
    server = stub._server  # the stubs' http.server: its handler class is per server, so the swap stays local
    lock, open_now = threading.Lock(), [0]

    class Counted(server.RequestHandlerClass):
        protocol_version = "HTTP/1.1"

        def handle(self) -> None:
            with lock:
                open_now[0] += 1
            try:
                super().handle()
            finally:
                with lock:
                    open_now[0] -= 1

    server.RequestHandlerClass = Counted
    return open_now


def test_a_stop_closes_the_price_fred_and_bls_connections(tmp_path, yahoo_stub, fred_stub, bls_stub):
    yahoo_stub.add_daily("^GSPC", [(d, 100.0, 101.0, 99.0, 100.0, 1e9) for d in SESSIONS])
    fred_stub.add_series("PAYEMS", [("2019-06-01", "2019-07-05", 151200)])
    bls_stub.add_event("Employment Situation for July 2019", "2019-08-02T08:30")
    open_now = {"yahoo": counted(yahoo_stub), "fred": counted(fred_stub), "bls": counted(bls_stub)}
    path = tmp_path / "mw.yaml"
    path.write_text(CONFIG.format(key=KEY, fred=fred_stub.base_url, yahoo=yahoo_stub.url, bls=bls_stub.base_url))
    config, _ = load_config(path)
    store = open_store(tmp_path / "mw.sqlite")
    stopping = threading.Event()
    sources = sources_for(config, store, stopping)
    clock = OffsetClock(dt.datetime(2019, 8, 1, 18, 0, tzinfo=NY))  # real time: the scheduler runs the catch-up
    d = Daemon(config, store, clock, sources.prices, sources.fred, stopping=stopping, bls=sources.bls)
    runner = Runner(d)
    runner.start()
    try:
        wait_until(runner.catch_up.done.is_set, timeout=30, what="the catch-up")
        assert yahoo_stub.chart_requests(history=True) and fred_stub.calls("/series/observations")
        assert bls_stub.calls(SCHEDULE_PATH)
        assert all(n[0] >= 1 for n in open_now.values()), open_now  # each kept open after its answer
    finally:
        runner.stop()
        runner.shutdown()
        store.close()
    wait_until(lambda: all(n[0] == 0 for n in open_now.values()), timeout=5,
               what=f"the sources' connections closed by the stopped daemon (open: {open_now})")


class Failing:
    """A price feed whose close fails."""

    def close(self) -> None:
        raise OSError("socket already gone")


class NoClose:
    """A macro feed with no close() (a test's fake, say)."""


def test_one_failing_close_is_logged_and_the_others_still_close(tmp_path, caplog):
    closed: list[str] = []
    path = tmp_path / "mw.yaml"
    path.write_text(CONFIG.format(key=KEY, fred="http://127.0.0.1:9/fred", yahoo="http://127.0.0.1:9",
                                  bls="http://127.0.0.1:9"))
    config, _ = load_config(path)
    bls = BlsClient(base_url="http://127.0.0.1:9")
    bls.session.close = lambda: closed.append("bls")  # the real client's close() reaches its session
    d = Daemon(config, open_store(tmp_path / "mw.sqlite"), OffsetClock(dt.datetime(2019, 8, 1, tzinfo=NY)),
               Failing(), NoClose(), bls=bls)
    d.forecasts.close = lambda: closed.append("feeds")
    with caplog.at_level(logging.WARNING, "macrowatch.scheduler"):
        close_clients(d)
    assert closed == ["bls", "feeds"]
    assert "could not close the prices client: OSError: socket already gone" in caplog.text
    d.store.close()
