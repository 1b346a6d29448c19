"""PriceSource drives the real yfinance against the stub Yahoo on 127.0.0.1 (tests/stubs/yahoo.py)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
import time
from typing import TYPE_CHECKING

import pandas as pd
import pytest
import requests

from macrowatch.config.types import Instrument
from macrowatch.sources import prices
from macrowatch.sources.prices import PriceSource

if TYPE_CHECKING:
    from stubs.yahoo import YahooStub


UTC = dt.UTC
NY = "America/New_York"
D = dt.date
SESSIONS = [D(2019, 11, 22), D(2019, 11, 25), D(2019, 11, 26), D(2019, 11, 27), D(2019, 11, 29),
            D(2019, 12, 2), D(2019, 12, 3)]
SPX = [(d, *ohlc, 3.2e9) for d, ohlc in zip(SESSIONS, [
    (3111.41, 3112.87, 3099.26, 3110.29), (3117.44, 3133.83, 3117.44, 3133.64),
    (3134.85, 3142.69, 3131.00, 3140.52), (3145.49, 3154.26, 3143.41, 3153.63),
    (3147.18, 3150.30, 3139.34, 3140.98), (3143.85, 3144.31, 3110.78, 3113.87),
    (3087.41, 3094.97, 3070.33, 3093.20)], strict=True)]
RUT = [(d, *ohlc, 9.0e8) for d, ohlc in zip(SESSIONS, [
    (1590.0, 1598.0, 1585.0, 1596.9), (1600.0, 1625.0, 1599.0, 1624.5), (1624.0, 1628.0, 1615.0, 1623.8),
    (1625.0, 1637.0, 1622.0, 1634.7), (1632.0, 1635.0, 1623.0, 1624.5), (1625.0, 1627.0, 1601.0, 1605.9),
    (1595.0, 1609.0, 1590.0, 1608.2)], strict=True)]
# The futures trade on Thanksgiving (a short CME session) when the stock exchange is shut.
RTY = sorted([(d, o, h, lo, c, 1.0e5) for d, o, h, lo, c, _ in RUT]
             + [(D(2019, 11, 28), 1634.0, 1636.0, 1630.0, 1633.0, 2.0e4)])

INSTRUMENTS = {
    "spx": Instrument("spx", "^GSPC", "S&P 500"),
    "rut": Instrument("rut", "^RUT", "Russell 2000"),
    "rty": Instrument("rty", "RTY=F", "Russell 2000 futures", calendar="CMES"),
}
START = D(2019, 11, 20)
AFTER_CLOSE = dt.datetime(2019, 12, 3, 23, 30, tzinfo=UTC)   # after the XNYS (21:00) and CMES (23:00) closes


def calendar_for(inst: Instrument) -> str:
    return inst.calendar or "XNYS"


@pytest.fixture(scope="session")
def yf_cache(tmp_path_factory) -> str:
    """yfinance's tz/cookie caches are process-wide and fixed at first use: one directory for the session."""
    return str(tmp_path_factory.mktemp("yfinance-cache"))


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def stub(yahoo_stub: YahooStub) -> YahooStub:
    yahoo_stub.timeout_delay = 3.0
    yahoo_stub.stale_drop = 5
    yahoo_stub.add_daily("^GSPC", SPX, tz=NY)
    yahoo_stub.add_daily("^RUT", RUT, tz=NY)
    yahoo_stub.add_daily("RTY=F", RTY, tz=NY)
    return yahoo_stub


@pytest.fixture
def source(stub: YahooStub, yf_cache: str, sleeps: list[float]) -> PriceSource:
    return PriceSource(stub.url, yf_cache, timeout=1.5, attempts=3, backoff=1.0, sleep=sleeps.append)


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch, _no_network):
    """Record every name lookup, socket connect and curl_cffi request; afterwards all must be loopback-only."""
    looked_up, connected, curl = [], [], []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        connected.append(address)
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        looked_up.append(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def curl_request(self, method, url, *args, **kwargs):
        curl.append(url)
        raise AssertionError(f"curl_cffi carried a request to {url}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        import curl_cffi.requests
        monkeypatch.setattr(curl_cffi.requests.Session, "request", curl_request)
    except ImportError:
        pass
    yield
    assert not curl, f"requests went through curl_cffi: {curl}"
    assert all(_loopback(host) for host in looked_up), f"name lookups beyond loopback: {looked_up}"
    assert all(_loopback(addr[0]) for addr in connected if isinstance(addr, tuple)), connected


def _loopback(host) -> bool:
    if host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(host if isinstance(host, str) else host.decode()).is_loopback
    except ValueError:
        return False


def closes(fetch, iid: str) -> dict[D, float]:
    return {bar.session: bar.close for bar in fetch.bars[iid]}


def expected(rows, until: D = SESSIONS[-1]) -> dict[D, float]:
    return {d: c for d, _, _, _, c, _ in rows if d <= until}


# ---- batching, transport, normalisation ------------------------------------------------------------

def test_one_batched_poll_asks_once_per_symbol(stub, source):
    first = source.daily(INSTRUMENTS, START, AFTER_CLOSE, calendar_for)
    assert first.errors == {}
    for symbol in ("^GSPC", "^RUT", "RTY=F"):  # plus a tz probe when yfinance's disk cache lacks the symbol
        assert len(stub.chart_requests(symbol, history=True)) == 1
        assert len(stub.chart_requests(symbol, history=False)) <= 1
    stub.requests.clear()
    second = source.daily(INSTRUMENTS, START, AFTER_CLOSE, calendar_for)  # same past range: LRU cache trap

    assert second == first
    for symbol in ("^GSPC", "^RUT", "RTY=F"):
        history = stub.chart_requests(symbol, history=True)
        assert len(history) == 1, f"{symbol}: {history}"
        assert {"period1", "period2"} <= history[0].query.keys() and history[0].query["interval"] == "1d"
    # the timezone comes from yfinance's disk cache after the first poll: one chart request per symbol
    assert len(stub.chart_requests()) == 3
    assert stub.hosts() <= {"fc.yahoo.com", "query1.finance.yahoo.com", "query2.finance.yahoo.com",
                            "guce.yahoo.com", "consent.yahoo.com"}


def test_bars_sit_on_the_calendar_sessions(source):
    fetch = source.daily(INSTRUMENTS, START, AFTER_CLOSE, calendar_for)

    assert fetch.errors == {} and fetch.rejected == []
    assert closes(fetch, "spx") == expected(SPX)
    assert closes(fetch, "rut") == expected(RUT)
    assert closes(fetch, "rty") == expected(RTY)
    spx = {bar.session: bar for bar in fetch.bars["spx"]}
    assert spx[D(2019, 11, 27)].at == dt.datetime(2019, 11, 27, 21, 0, tzinfo=UTC)      # 16:00 ET
    assert spx[D(2019, 11, 29)].at == dt.datetime(2019, 11, 29, 18, 0, tzinfo=UTC)      # early close 13:00 ET
    assert (spx[D(2019, 11, 29)].open, spx[D(2019, 11, 29)].high, spx[D(2019, 11, 29)].low) == (
        3147.18, 3150.30, 3139.34)
    assert spx[D(2019, 11, 29)].volume == 3.2e9
    rty = {bar.session: bar for bar in fetch.bars["rty"]}
    assert rty[D(2019, 11, 28)].at == dt.datetime(2019, 11, 28, 18, 0, tzinfo=UTC)      # CME's Thanksgiving
    assert D(2019, 11, 28) not in spx
    assert all(bar.at.tzinfo is not None for bars in fetch.bars.values() for bar in bars)


@pytest.mark.parametrize(("now", "newest"), [
    pytest.param(dt.datetime(2019, 11, 29, 17, 59, tzinfo=UTC), D(2019, 11, 27), id="a-minute-before-early-close"),
    pytest.param(dt.datetime(2019, 11, 29, 18, 0, tzinfo=UTC), D(2019, 11, 29), id="at-the-early-close"),
    pytest.param(dt.datetime(2019, 12, 3, 20, 59, tzinfo=UTC), D(2019, 12, 2), id="a-minute-before-close"),
    pytest.param(dt.datetime(2019, 12, 3, 21, 1, tzinfo=UTC), D(2019, 12, 3), id="after-close"),
])
def test_the_forming_bar_is_never_a_close(stub, source, now, newest):
    stub.add_daily("^GSPC", SPX, tz=NY)  # Yahoo serves the session's row while it trades: the stub always does
    fetch = source.daily({"spx": INSTRUMENTS["spx"]}, START, now, calendar_for)

    assert fetch.errors == {}
    assert max(closes(fetch, "spx")) == newest
    assert closes(fetch, "spx") == expected(SPX, until=newest)


def test_latest_intraday_price(stub, source):
    t0 = dt.datetime(2019, 12, 3, 14, 30, tzinfo=UTC)
    rows = [(t0 + dt.timedelta(minutes=m), 3090 + m, 3091 + m, 3089 + m, 3090.5 + m, 1e6) for m in range(31)]
    rows[-1] = (rows[-1][0], None, None, None, None, None)  # Yahoo's newest minute is often all null
    stub.add_intraday("^GSPC", rows, tz=NY)
    stub.add_intraday("^RUT", [(t, o / 2, h / 2, lo / 2, c / 2, v) for t, o, h, lo, c, v in rows[:-1]], tz=NY)
    now = dt.datetime(2019, 12, 3, 15, 0, 40, tzinfo=UTC)

    fetch = source.latest({k: INSTRUMENTS[k] for k in ("spx", "rut")}, now, calendar_for)

    assert fetch.errors == {}
    assert fetch.prices["spx"] == (3090.5 + 29, dt.datetime(2019, 12, 3, 15, 0, tzinfo=UTC))
    assert fetch.prices["rut"].price == (3090.5 + 29) / 2
    history = stub.chart_requests(history=True)
    assert sorted(r.symbol for r in history) == ["^GSPC", "^RUT"]
    assert all(r.query["interval"] == "1m" and r.query["range"] == "1d" for r in history)


def test_latest_price_too_old_while_open_is_stale(stub, source):
    t0 = dt.datetime(2019, 12, 3, 14, 30, tzinfo=UTC)
    stub.add_intraday("^GSPC", [(t0 + dt.timedelta(minutes=m), 3090, 3091, 3089, 3090, 1e6) for m in range(5)],
                      tz=NY)
    fetch = source.latest({"spx": INSTRUMENTS["spx"]}, dt.datetime(2019, 12, 3, 16, 0, tzinfo=UTC), calendar_for)

    assert fetch.prices == {}
    assert "stale" in fetch.errors["spx"] and "while XNYS is open" in fetch.errors["spx"]


# ---- garbage ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("row", "reason"), [
    pytest.param((D(2019, 11, 26), 3134.85, 3142.69, 3131.00, None, 1e9), "NaN close", id="nan-close"),
    pytest.param((D(2019, 11, 26), 3134.85, 3142.69, -1.0, 3140.52, 1e9), "non-positive low", id="negative-low"),
    pytest.param((D(2019, 11, 26), 0.0, 3142.69, 3131.00, 3140.52, 1e9), "non-positive open", id="zero-open"),
    pytest.param((D(2019, 11, 26), 3134.85, 3139.00, 3131.00, 3140.52, 1e9), "contradict", id="high-below-close"),
    pytest.param((D(2019, 11, 26), 3134.85, 3142.69, 3136.00, 3140.52, 1e9), "contradict", id="low-above-open"),
    pytest.param((D(2019, 11, 28), 3145.0, 3150.0, 3140.0, 3148.0, 1e9), "not a XNYS session", id="holiday-row"),
])
def test_garbage_bars_are_dropped_with_a_reason(stub, source, caplog, row, reason):
    rows = sorted([r for r in SPX if r[0] != row[0]] + [row])
    stub.add_daily("^GSPC", rows, tz=NY)
    with caplog.at_level(logging.WARNING, logger="macrowatch.sources.prices"):
        fetch = source.daily({"spx": INSTRUMENTS["spx"]}, START, AFTER_CLOSE, calendar_for)

    assert fetch.errors == {}
    assert row[0] not in closes(fetch, "spx")
    assert closes(fetch, "spx") == {d: c for d, c in expected(SPX).items() if d != row[0]}
    assert len(fetch.rejected) == 1 and reason in fetch.rejected[0] and str(row[0]) in fetch.rejected[0]
    assert any(reason in r.getMessage() for r in caplog.records)


def test_duplicate_and_out_of_order_rows_are_dropped():
    # yfinance sorts and de-duplicates daily rows before we see them; the check guards against that changing
    index = pd.to_datetime(["2019-11-26", "2019-11-27", "2019-11-27", "2019-11-25", "2019-11-29"])
    frame = pd.DataFrame({"Open": 10.0, "High": 12.0, "Low": 9.0, "Close": 11.0, "Volume": 5.0}, index=index)
    rejected: list[str] = []
    close_at = {d: dt.datetime.combine(d, dt.time(21), UTC) for d in SESSIONS}

    bars = prices._bars(frame, close_at, AFTER_CLOSE, "XNYS", "spx", rejected)

    assert [b.session for b in bars] == [D(2019, 11, 26), D(2019, 11, 27), D(2019, 11, 29)]
    assert ["duplicate" in rejected[0], "out of order" in rejected[1]] == [True, True]


# ---- faults ------------------------------------------------------------------------------------------

FAULTS = [
    pytest.param("refused", None, "connection to Yahoo refused", id="refused"),
    pytest.param("reset", "^RUT", "closed the connection without an answer", id="connection-reset"),
    pytest.param("timeout", "^RUT", "no answer from Yahoo within 1.5 s", id="timeout"),
    pytest.param("429", "^RUT", "rate limited by Yahoo (HTTP 429); gave up after 3 attempts", id="429"),
    pytest.param("500", "^RUT", "Yahoo server error (HTTP 500); gave up after 3 attempts", id="500"),
    pytest.param("503", "^RUT", "Yahoo server error (HTTP 503); gave up after 3 attempts", id="503"),
    pytest.param("malformed", "^RUT", "malformed response", id="malformed-body"),
    pytest.param("empty", "^RUT", "empty result", id="empty-result"),
    pytest.param("nan", "^RUT", "no valid bars", id="nan-bars"),
    pytest.param("stale", "^RUT", "stale data: the newest valid bar is 2019-11-25, "   # 5 sessions missing
                                  "the last closed XNYS session is 2019-12-03", id="stale"),
    pytest.param("unknown", "^RUT", "unknown to Yahoo (HTTP 404", id="unknown-ticker"),
]


@pytest.mark.parametrize(("fault", "symbol", "reason"), FAULTS)
def test_a_fault_is_a_clear_error_for_its_instrument_only(stub, source, sleeps, fault, symbol, reason):
    stub.fault(fault, symbol)
    fetch = source.daily(INSTRUMENTS, START, AFTER_CLOSE, calendar_for)

    assert reason in fetch.errors["rut"] and fetch.errors["rut"].startswith("^RUT: ")
    assert "rut" not in fetch.bars
    assert not set(fetch.bars) & set(fetch.errors)
    if symbol is None:  # the whole of Yahoo is down
        assert set(fetch.errors) == set(INSTRUMENTS)
    else:
        assert set(fetch.errors) == {"rut"}
        assert closes(fetch, "spx") == expected(SPX) and closes(fetch, "rty") == expected(RTY)
    if fault in ("429", "500", "503"):
        assert sleeps == [1.0, 2.0]
        assert len([r for r in stub.chart_requests("^RUT") if r.status == int(fault)]) >= 3
    else:
        assert sleeps == []


def test_429_then_recovery_after_backoff(stub, yf_cache):
    slept: list[float] = []
    asked_before_retry: list[int] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        asked_before_retry.append(len(stub.requests))
        stub.clear_faults()  # Yahoo lets us back in while we wait

    source = PriceSource(stub.url, yf_cache, timeout=1.5, backoff=1.5, sleep=sleep)
    stub.fault("429", "^RUT")
    fetch = source.daily(INSTRUMENTS, START, AFTER_CLOSE, calendar_for)

    assert slept == [1.5]
    assert fetch.errors == {}
    assert closes(fetch, "rut") == expected(RUT)
    statuses = [r.status for r in stub.chart_requests("^RUT")]
    assert 429 in statuses and statuses[-1] == 200
    # the retry asked again only for the symbol that failed
    assert {r.symbol for r in stub.requests[asked_before_retry[0]:] if r.is_chart} == {"^RUT"}


def test_timeouts_are_bounded_by_ours_not_yfinances(stub, yf_cache):
    # a symbol new to the tz cache: yfinance probes its timezone with a hard-coded 10 s timeout
    stub.add_daily("^SLOW", SPX, tz=NY)
    stub.fault("timeout", "^SLOW")
    source = PriceSource(stub.url, yf_cache, timeout=0.5, sleep=lambda s: None)
    began = time.monotonic()
    fetch = source.daily({"slow": Instrument("slow", "^SLOW", "slow")}, START, AFTER_CLOSE, calendar_for)

    assert time.monotonic() - began < stub.timeout_delay
    assert "no answer from Yahoo within 0.5 s" in fetch.errors["slow"]


# ---- the session and the contract ---------------------------------------------------------------------

def test_every_yfinance_call_carries_our_session(stub, source, monkeypatch):
    calls = []
    real = prices.yf.download

    def download(*args, **kwargs):
        calls.append(kwargs.get("session"))
        return real(*args, **kwargs)

    monkeypatch.setattr(prices.yf, "download", download)
    source.daily(INSTRUMENTS, START, AFTER_CLOSE, calendar_for)
    stub.fault("429", "^RUT", times=2)
    source.daily(INSTRUMENTS, START, AFTER_CLOSE, calendar_for)
    source.latest(INSTRUMENTS, AFTER_CLOSE, calendar_for)

    assert len(calls) >= 3 and all(s is source.session for s in calls)
    assert type(source.session) is requests.Session
    from yfinance.data import YfData
    assert YfData()._session is source.session  # the process-wide singleton holds ours, not a curl_cffi one


def test_without_a_base_url_the_session_is_plain_requests(yf_cache):
    source = PriceSource(None, yf_cache, timeout=1.0)
    assert type(source.session) is requests.Session
    adapter = source.session.get_adapter("https://query2.finance.yahoo.com/v8/finance/chart/%5EGSPC")
    assert isinstance(adapter, prices._YahooAdapter) and adapter._base is None


def test_nothing_raises_out_of_a_poll(source, monkeypatch):
    def broken(inst: Instrument) -> str:
        if inst.id == "rty":
            raise KeyError("no calendar NOPE")
        return "XNYS"

    fetch = source.daily(INSTRUMENTS, START, AFTER_CLOSE, broken)
    assert set(fetch.errors) == {"rty"} and "KeyError" in fetch.errors["rty"]
    assert set(fetch.bars) == {"spx", "rut"}

    monkeypatch.setattr(prices.yf, "download", lambda *a, **k: 1 / 0)
    assert set(source.daily(INSTRUMENTS, START, AFTER_CLOSE, calendar_for).errors) == set(INSTRUMENTS)
    assert set(source.latest(INSTRUMENTS, AFTER_CLOSE, calendar_for).errors) == set(INSTRUMENTS)
