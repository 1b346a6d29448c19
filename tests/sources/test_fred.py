"""FredClient against the stub FRED: the real fredapi parses the stub's wire formats; no network."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import socket
import time
import traceback
import urllib.request

import pytest

from macrowatch.config.types import FredSource, Release
from macrowatch.engine.outcomes import SeriesHistory
from macrowatch.model import Vintage
from macrowatch.sources.fred import (
    DEFAULT_GRAPH_URL,
    Changes,
    FredClient,
    FredError,
    RateLimiter,
    detect,
    graph_csv_url,
)
from stubs.fred import KEY, FredStub

D = dt.date.fromisoformat
TODAY = D("2019-09-15")
# PAYEMS as ALFRED shows it, rows deliberately out of order: the client must not rely on the server's order.
PAYEMS = [
    ("2019-07-01", "2019-08-02", 164.0),   # July, first print
    ("2019-06-01", "2019-08-02", 193.0),   # June, revised in July's release
    ("2019-08-01", "2019-09-06", 130.0),   # August, first print
    ("2019-06-01", "2019-07-05", 224.0),   # June, first print
    ("2019-07-01", "2019-09-06", 159.0),   # July, revised in August's release
    ("2019-05-01", "2019-06-07", "."),     # a missing value
]
EXPECTED = [
    Vintage(D("2019-06-01"), D("2019-07-05"), 224.0),
    Vintage(D("2019-06-01"), D("2019-08-02"), 193.0),
    Vintage(D("2019-07-01"), D("2019-08-02"), 164.0),
    Vintage(D("2019-07-01"), D("2019-09-06"), 159.0),
    Vintage(D("2019-08-01"), D("2019-09-06"), 130.0),
]
ES_DATES = ["2019-07-05", "2019-08-02", "2019-09-06", "2019-10-04", "2019-11-01"]


class FakeClock:
    """An injected clock whose sleep only records and advances it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stub(fred_stub: FredStub) -> FredStub:
    """The stub with PAYEMS and the Employment Situation calendar (release 50)."""
    return fred_stub.add_series("PAYEMS", PAYEMS, title="All Employees, Total Nonfarm").add_release(50, ES_DATES)


def client_for(stub: FredStub, fake: FakeClock, key: str | None = KEY, **options) -> FredClient:
    """A client of the stub with the fake clock (backoff 1 s, 2 s, 4 s)."""
    options = {"timeout": 2.0, "backoff": 1.0, "clock": fake.clock, "sleep": fake.sleep, **options}
    return FredClient(key, stub.base_url, **options)


# ---- vintages ------------------------------------------------------------------------------------

def test_vintages_are_sorted_with_first_prints_and_revisions(stub, fake):
    assert client_for(stub, fake).vintages("PAYEMS") == EXPECTED
    (request,) = stub.requests
    assert request.path == "/fred/series/observations"
    assert request.query == {"series_id": "PAYEMS", "realtime_start": "1776-07-04", "realtime_end": "9999-12-31",
                             "api_key": KEY}


def test_vintages_do_not_depend_on_server_order(stub, fake):
    stub.add_series("PAYEMS", list(reversed(PAYEMS)))
    assert client_for(stub, fake).vintages("PAYEMS") == EXPECTED


def test_since_asks_fred_for_those_periods_only(stub, fake):
    got = client_for(stub, fake).vintages("PAYEMS", since=D("2019-07-01"))
    assert got == [v for v in EXPECTED if v.date >= D("2019-07-01")]
    assert stub.requests[0].query["observation_start"] == "2019-07-01"
    assert stub.requests[0].query["series_id"] == "PAYEMS"


def test_vintages_feed_the_point_in_time_history(stub, fake):
    history = SeriesHistory.from_vintages(client_for(stub, fake).vintages("PAYEMS"))
    assert history.release_days() == [D("2019-07-05"), D("2019-08-02"), D("2019-09-06")]
    assert history.as_of(D("2019-06-01"), D("2019-08-01")) == 224.0   # before July's release revised it
    assert history.as_of(D("2019-06-01"), D("2019-08-02")) == 193.0


def test_a_truncated_answer_is_an_error(stub, fake):
    stub.limit = 4  # FRED stops at `limit` rows, oldest first; fredapi would silently lose the newest periods
    with pytest.raises(FredError, match=r"FRED sent 4 of 6 rows \(its limit\): ask for fewer periods \(since=\)"):
        client_for(stub, fake).vintages("PAYEMS")


def test_from_config(stub):
    client = FredClient.from_config(FredSource(api_key=KEY, url=stub.base_url), timeout=2.0)
    assert client.vintages("PAYEMS") == EXPECTED
    client.close()


def test_a_series_of_missing_values_is_an_error(fred_stub, fake):
    fred_stub.add_series("GONE", [("2019-07-01", "2019-08-02", ".")])  # pandas 3 makes this row NaT, not NaN
    with pytest.raises(FredError, match=r"only missing values"):
        client_for(fred_stub, fake).vintages("GONE")


def test_unknown_series_says_so(stub, fake):
    with pytest.raises(FredError, match=r"FRED NOPE: HTTP 400: Bad Request.  The series does not exist"):
        client_for(stub, fake).vintages("NOPE")


@pytest.mark.parametrize("series", ["PAYEMS&realtime_start=2020-01-01", "", "PAY EMS"], ids=["query", "empty", "space"])
def test_a_bad_series_id_never_reaches_the_url(stub, fake, series):
    with pytest.raises(FredError, match="not a FRED series id"):
        client_for(stub, fake).vintages(series)
    assert stub.requests == []


def test_other_fredapi_endpoints_parse_the_stub(stub, fake):
    api = client_for(stub, fake)._api  # the bounded fredapi instance: the stub's XML must suit the real parser
    assert api.get_series_info("PAYEMS")["title"] == "All Employees, Total Nonfarm"
    assert [d.date() for d in api.get_series_vintage_dates("PAYEMS")] == [
        D("2019-06-07"), D("2019-07-05"), D("2019-08-02"), D("2019-09-06")]
    latest = api.get_series("PAYEMS")  # FRED's default real-time period: the stub's today
    assert latest[dt.datetime(2019, 7, 1)] == 159.0


def test_no_process_wide_state(stub, fake, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # fredapi's own __init__ would install an opener
    monkeypatch.setattr(urllib.request, "_opener", None)
    client_for(stub, fake).vintages("PAYEMS")
    assert urllib.request._opener is None
    assert socket.getdefaulttimeout() is None


# ---- release calendar ----------------------------------------------------------------------------

def test_release_dates_include_scheduled_ones(stub, fake):
    got = client_for(stub, fake).release_dates(50, D("2019-08-01"), D("2019-10-31"))
    assert got == [D("2019-08-02"), D("2019-09-06"), D("2019-10-04")]  # 2019-10-04 is after the stub's today
    (request,) = stub.requests
    assert request.path == "/fred/release/dates"
    assert request.query == {"release_id": "50", "file_type": "json", "include_release_dates_with_no_data": "true",
                             "realtime_start": "2019-08-01", "realtime_end": "2019-10-31", "api_key": KEY}


def test_release_dates_may_be_none_in_a_short_window(stub, fake):
    assert client_for(stub, fake).release_dates(50, D("2019-08-03"), D("2019-08-31")) == []


def test_unknown_release_is_an_error(stub, fake):
    with pytest.raises(FredError, match=r"FRED release 999: HTTP 400: .*release does not exist"):
        client_for(stub, fake).release_dates(999, D("2019-01-01"), D("2019-12-31"))


ES = Release(id="employment-situation", time=dt.time(8, 30), fred_release_id=50,
             dates=(D("2019-10-04"), D("2019-10-11"), D("2020-01-10")))


@pytest.mark.parametrize(("release", "key", "expected", "asks_fred"), [
    pytest.param(ES, KEY, ["2019-09-06", "2019-10-04", "2019-10-11", "2019-11-01"], True, id="merged"),
    pytest.param(Release(id="x", time=dt.time(8, 30), dates=ES.dates), KEY, ["2019-10-04", "2019-10-11"], False,
                 id="no-release-id"),
    pytest.param(ES, None, ["2019-10-04", "2019-10-11"], False, id="keyless"),
])
def test_release_schedule(stub, fake, release, key, expected, asks_fred):
    got = client_for(stub, fake, key=key).release_schedule(release, D("2019-09-01"), D("2019-11-30"))
    assert got == [D(d) for d in expected]
    assert bool(stub.calls("/release/dates")) is asks_fred


# ---- detect --------------------------------------------------------------------------------------

def V(period: str, start: str, value: float) -> Vintage:  # noqa: N802 (reads like the type)
    return Vintage(D(period), D(start), value)


OLD = [V("2019-06-01", "2019-07-05", 224), V("2019-06-01", "2019-08-02", 193), V("2019-07-01", "2019-08-02", 164)]
AUG = V("2019-08-01", "2019-09-06", 130)
JUL_REVISED = V("2019-07-01", "2019-09-06", 159)


@pytest.mark.parametrize(("old", "new", "first", "revised"), [
    pytest.param([], OLD, [OLD[0], OLD[2]], [OLD[1]], id="first-fetch"),
    pytest.param(OLD, OLD, [], [], id="nothing-changed"),
    pytest.param(OLD, [*OLD, AUG], [AUG], [], id="release-landed"),
    pytest.param(OLD, [*OLD, JUL_REVISED], [], [JUL_REVISED], id="revision"),
    pytest.param(OLD, [*OLD, AUG, JUL_REVISED], [AUG], [JUL_REVISED], id="release-with-revision"),
    pytest.param(OLD, [*OLD, V("2019-07-01", "2019-09-06", 164)], [], [], id="same-value-is-no-revision"),
    pytest.param(OLD, [AUG], [AUG], [], id="narrower-fetch"),
    pytest.param(OLD, [AUG, V("2019-08-01", "2019-10-04", 136)], [AUG], [V("2019-08-01", "2019-10-04", 136)],
                 id="missed-release-then-revised"),
    pytest.param([V("2019-07-01", "2019-09-10", 164)], [V("2019-07-01", "2019-09-15", 164), AUG], [AUG], [],
                 id="keyless-reseen"),
    pytest.param([V("2019-07-01", "2019-09-10", 164)], [V("2019-07-01", "2019-09-15", 159)], [],
                 [V("2019-07-01", "2019-09-15", 159)], id="keyless-revised"),
])
def test_detect(old, new, first, revised):
    changes = detect(old, new)
    assert changes == Changes(tuple(first), tuple(revised))
    assert bool(changes) is bool(first or revised)
    assert FredClient.detect(old, new) == changes


# ---- keyless -------------------------------------------------------------------------------------

@pytest.mark.parametrize("header", ["observation_date", "DATE"], ids=["current-header", "old-header"])
def test_keyless_reads_the_graph_csv_and_warns_once(stub, fake, caplog, header):
    stub.csv_header = header
    client = client_for(stub, fake, key=None)
    got = client.vintages("PAYEMS", today=TODAY)
    client.vintages("PAYEMS", today=TODAY)
    assert got == [V("2019-06-01", "2019-09-15", 193), V("2019-07-01", "2019-09-15", 159),
                   V("2019-08-01", "2019-09-15", 130)]
    warnings = [r for r in caplog.records if r.name == "macrowatch.sources.fred" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "keyless" in warnings[0].getMessage()
    assert [(r.path, r.query) for r in stub.requests] == [("/graph/fredgraph.csv", {"id": "PAYEMS"})] * 2


def test_keyless_since_and_revisions_by_comparison(stub, fake):
    client = client_for(stub, fake, key="")
    before = client.vintages("PAYEMS", since=D("2019-07-01"), today=D("2019-09-10"))
    assert stub.requests[0].query == {"id": "PAYEMS", "cosd": "2019-07-01"}
    stub.add_series("PAYEMS", [*PAYEMS, ("2019-08-01", "2019-10-04", 136.0), ("2019-09-01", "2019-10-04", 136.0)])
    stub.today = D("2019-10-04")
    after = client.vintages("PAYEMS", since=D("2019-07-01"), today=D("2019-10-04"))
    assert detect(before, after) == Changes((V("2019-09-01", "2019-10-04", 136),),
                                            (V("2019-08-01", "2019-10-04", 136),))


def test_keyless_needs_today(stub, fake):
    with pytest.raises(ValueError, match="today="):
        client_for(stub, fake, key=None).vintages("PAYEMS")


@pytest.mark.parametrize(("base", "graph"), [
    (None, DEFAULT_GRAPH_URL),
    ("https://api.stlouisfed.org/fred/", DEFAULT_GRAPH_URL),
    ("http://127.0.0.1:8001/fred", "http://127.0.0.1:8001/graph/fredgraph.csv"),
    ("https://mirror.example/proxy/fred", "https://mirror.example/graph/fredgraph.csv"),
], ids=["default", "default-slash", "stub", "mirror"])
def test_graph_url_follows_the_base_url(base, graph):
    assert FredClient(None, base).graph_url == graph
    if base:
        assert graph_csv_url(base) == graph


# ---- rate limit and retries ----------------------------------------------------------------------

def test_the_121st_request_in_a_minute_waits(fake):
    limiter = RateLimiter((120, 60.0), clock=fake.clock, sleep=fake.sleep)
    for _ in range(120):
        limiter.acquire()
        fake.now += 0.1   # 120 requests spread over 12 s
    assert fake.sleeps == []
    limiter.acquire()
    assert fake.sleeps == [pytest.approx(48.0)]  # until the first request is a minute old


def test_the_client_keeps_to_the_limit(stub, fake):
    client = client_for(stub, fake, limiter=RateLimiter((120, 60.0), clock=fake.clock, sleep=fake.sleep))
    for _ in range(121):
        client.release_dates(50, D("2019-08-01"), D("2019-08-31"))
    assert fake.sleeps == [60.0]
    assert len(stub.requests) == 121


def test_fred_limits_hold_in_every_window(fake):
    limiter = RateLimiter.for_fred(clock=fake.clock, sleep=fake.sleep)
    stamps = []
    for _ in range(300):
        limiter.acquire()
        stamps.append(fake.now)
    assert max(sum(s <= t < s + 1.0 for t in stamps) for s in stamps) == 2
    assert max(sum(s <= t < s + 60.0 for t in stamps) for s in stamps) <= 120


def test_429_backs_off_then_recovers(stub, fake, caplog):
    stub.fault("429", times=2)
    assert client_for(stub, fake).vintages("PAYEMS") == EXPECTED
    assert len(stub.requests) == 3
    assert fake.sleeps == [1.0, 2.0]
    assert sum("HTTP 429, retry" in r.getMessage() for r in caplog.records) == 2


# ---- faults --------------------------------------------------------------------------------------

FAULTS = [  # (fault, what the reason says)
    pytest.param("refused", r"cannot reach 127\.0\.0\.1:\d+: connection refused", id="refused"),
    pytest.param("timeout", r"no answer from 127\.0\.0\.1:\d+ within 0\.5 s", id="timeout"),
    pytest.param("429", r"rate limited \(HTTP 429\) after 4 attempts: Too Many Requests", id="429"),
    pytest.param("500", r"server error \(HTTP 500\) after 4 attempts", id="500"),
    pytest.param("malformed", r"malformed (XML from FRED|release dates)", id="malformed"),
    pytest.param("html", r"got an HTML page instead of FRED data \(FRED is down for maintenance\)", id="html"),
    pytest.param("empty", r"no observations", id="empty"),
    pytest.param("bad_key", r"HTTP 400: Bad Request.  The value for variable api_key is not registered.*"
                            r"\(check sources.fred.api_key\)", id="bad-key"),
]
CALLS = {
    "vintages": lambda c: c.vintages("PAYEMS"),
    "release_dates": lambda c: c.release_dates(50, D("2019-08-01"), D("2019-10-31")),
}
# No release dates in a window is an answer, not a fault (test_empty_release_dates_are_an_empty_list).
CASES = [pytest.param(f.values[0], f.values[1], call, id=f"{f.id}-{call}")
         for f, call in itertools.product(FAULTS, CALLS) if (f.id, call) != ("empty", "release_dates")]


def _fail(stub: FredStub, fake: FakeClock, fault: str, call: str) -> tuple[FredError, float]:
    """Switch the fault on, make the call; the FredError and the seconds the call took."""
    stub.fault(fault)
    client = client_for(stub, fake, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(FredError) as caught:
        CALLS[call](client)
    return caught.value, time.monotonic() - started


@pytest.mark.parametrize(("fault", "reason", "call"), CASES)
def test_faults_raise_one_error_with_a_clear_reason(stub, fake, fault, reason, call):
    error, took = _fail(stub, fake, fault, call)
    assert error.subject == ("PAYEMS" if call == "vintages" else "release 50")
    assert re.search(reason, error.reason), str(error)
    assert str(error) == f"FRED {error.subject}: {error.reason}"
    assert took < 0.5 + 1.5  # a silent server costs the timeout, never a hang


def test_empty_release_dates_are_an_empty_list(stub, fake):
    stub.fault("empty")
    assert client_for(stub, fake).release_dates(50, D("2019-08-01"), D("2019-10-31")) == []


@pytest.mark.parametrize("fault", ["refused", "timeout", "500", "malformed", "html", "empty"])
def test_keyless_faults(stub, fake, fault):
    stub.fault(fault)
    with pytest.raises(FredError, match=r"FRED PAYEMS: "):
        client_for(stub, fake, key=None, timeout=0.5).vintages("PAYEMS", today=TODAY)


@pytest.mark.parametrize(("fault", "reason", "call"), CASES)
def test_the_key_never_shows(stub, fake, caplog, fault, reason, call):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's request lines included
    error, _ = _fail(stub, fake, fault, call)
    shown = [str(error), repr(error), *traceback.format_exception(error), *(r.getMessage() for r in caplog.records)]
    assert [text for text in shown if KEY in text] == []
    if fault not in ("refused", "timeout"):  # the server answered: the key went out, and urllib3 logged it masked
        assert stub.requests and all(r.query["api_key"] == KEY for r in stub.requests)
        assert any("api_key=***" in r.getMessage() for r in caplog.records)
