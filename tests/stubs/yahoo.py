"""A stub Yahoo Finance on 127.0.0.1 that answers the real yfinance as Yahoo does.

Requests arrive as /HOST/PATH (macrowatch rewrites https://HOST/PATH to STUB/HOST/PATH). The stub serves
the cookie step (fc.yahoo.com), the crumb, chart API v8 (tz probe and history, daily and intraday),
quoteSummary / v7 quote (yfinance's fallback for tickers whose timezone it cannot find) and the consent
page, from fixtures the tests add. Faults are switched per symbol or globally; every request is recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit
from zoneinfo import ZoneInfo

import pytest

# refused: the server is stopped. reset: the connection closes with no answer. timeout: the answer comes
# after `timeout_delay` seconds. 429/500/503: that status. malformed: a truncated JSON body. empty: a chart
# result with no bars. nan: every price null. stale: the newest `stale_drop` sessions are missing.
# unknown: answered as Yahoo answers a symbol it does not know.
FAULTS = ("refused", "reset", "timeout", "429", "500", "503", "malformed", "empty", "nan", "stale", "unknown")
VALID_RANGES = ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]
CRUMB = "Xk3pQ9sTrB2"

Row = tuple  # (date | aware datetime, open, high, low, close, volume); None for a missing value


@dataclass(frozen=True)
class Seen:
    """One request as the stub received it, and the status it answered (0: no answer)."""

    method: str
    host: str
    path: str
    query: dict[str, str]
    status: int

    @property
    def symbol(self) -> str | None:
        """The symbol a chart or quote request is about."""
        for marker in ("/v8/finance/chart/", "/v10/finance/quoteSummary/"):
            if marker in self.path:
                return unquote(self.path.split(marker, 1)[1]).upper()
        return self.query.get("symbols", "").upper() or None

    @property
    def is_chart(self) -> bool:
        return "/v8/finance/chart/" in self.path

    @property
    def is_tz_probe(self) -> bool:
        """yfinance's probe for a ticker's timezone (range=1d, interval=1d), made when its disk cache misses."""
        return self.is_chart and self.query.get("range") == "1d" and self.query.get("interval") == "1d"

    @property
    def is_history(self) -> bool:
        return self.is_chart and not self.is_tz_probe


@dataclass
class Fault:
    kind: str
    times: int | None = None  # None: until cleared


class YahooStub:
    """The server, its fixtures, its fault switches and its request log."""

    def __init__(self, timeout_delay: float = 3.0, stale_drop: int = 5) -> None:
        self.timeout_delay = timeout_delay
        self.stale_drop = stale_drop
        self.daily: dict[str, list[Row]] = {}
        self.intraday: dict[str, list[Row]] = {}
        self.timezones: dict[str, str] = {}
        self.faults: dict[str | None, Fault] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="yahoo-stub", daemon=True)
        self._thread.start()
        self.stopped = False

    @property
    def url(self) -> str:
        """The base URL to configure as `sources.yahoo.url`."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_daily(self, symbol: str, rows: Sequence[Row], tz: str = "America/New_York") -> None:
        """Daily bars: (date, open, high, low, close, volume)."""
        self.daily[symbol.upper()] = list(rows)
        self.timezones[symbol.upper()] = tz

    def add_intraday(self, symbol: str, rows: Sequence[Row], tz: str = "America/New_York") -> None:
        """Intraday bars: (aware datetime of the bar's start, open, high, low, close, volume)."""
        self.intraday[symbol.upper()] = list(rows)
        self.timezones[symbol.upper()] = tz

    def fault(self, kind: str, symbol: str | None = None, times: int | None = None) -> None:
        """Switch a fault on for a symbol's requests, or for every request when symbol is None."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        if kind == "refused":
            self.stop()
            return
        with self._lock:
            self.faults[symbol.upper() if symbol else None] = Fault(kind, times)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def stop(self) -> None:
        """Close the listening socket: from now on connections are refused."""
        if self.stopped:
            return
        self.stopped = True
        self._stopping.set()  # wakes handlers sleeping in a timeout fault
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def chart_requests(self, symbol: str | None = None, history: bool | None = None) -> list[Seen]:
        """Chart API requests, optionally for one symbol and only history (True) or tz probes (False)."""
        return [r for r in list(self.requests) if r.is_chart
                and (symbol is None or r.symbol == symbol.upper())
                and (history is None or r.is_history == history)]

    def hosts(self) -> set[str]:
        """The Yahoo host names requests were meant for."""
        return {r.host for r in list(self.requests)}

    # ---- answering --------------------------------------------------------------------------

    def _take_fault(self, symbol: str | None) -> str | None:
        """The fault that applies to a request about `symbol` (its own first, then the global one)."""
        with self._lock:
            for key in ([symbol] if symbol else []) + [None]:
                fault = self.faults.get(key)
                if fault is None:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self.faults[key]
                return fault.kind
        return None

    def answer(self, method: str, raw: str) -> tuple[int, str, bytes, dict[str, str], str | None]:
        """(status, content type, body, extra headers, action) for a /HOST/PATH?QUERY request."""
        parts = urlsplit(raw)
        host, _, rest = parts.path.lstrip("/").partition("/")
        seen = Seen(method, host, "/" + rest, dict(parse_qsl(parts.query)), 0)
        fault = self._take_fault(seen.symbol)
        action = fault if fault in ("reset", "timeout") else None
        status, ctype, body, headers = self._route(seen, fault)
        with self._lock:
            self.requests.append(Seen(seen.method, host, seen.path, seen.query, 0 if action else status))
        return status, ctype, body, headers, action

    def _route(self, seen: Seen, fault: str | None) -> tuple[int, str, bytes, dict[str, str]]:
        if fault == "429":
            return 429, "text/plain", b"Edge: Too Many Requests", {}
        if fault in ("500", "503"):
            text = {"500": "Internal Server Error", "503": "Service Unavailable"}[fault]
            return int(fault), "application/json", _json({"finance": {"result": None, "error": {
                "code": text, "description": text}}}), {}
        if fault == "malformed":
            return 200, "application/json", b'{"chart":{"result":[{"meta":{"currency":"USD","sym', {}
        if seen.host == "fc.yahoo.com":
            expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).strftime("%a, %d %b %Y %H:%M:%S GMT")
            cookie = f"A3=d=AQABBStub&S=AQAAAStub; Expires={expires}; Domain=.yahoo.com; Path=/; Secure; HttpOnly"
            return 404, "text/html", b"<html><body>Not Found</body></html>", {"Set-Cookie": cookie}
        if seen.path == "/v1/test/getcrumb":
            return 200, "text/plain", CRUMB.encode(), {}
        if seen.host.endswith("yahoo.com") and "consent" in seen.host + seen.path:
            return 200, "text/html", b"<html><body>No consent needed here.</body></html>", {}
        if seen.is_chart:
            return self._chart(seen, fault)
        if "/v10/finance/quoteSummary/" in seen.path:
            return self._quote_summary(seen.symbol or "", fault)
        if seen.path == "/v7/finance/quote":
            known = [_quote_type(s, self.timezones[s]) for s in [seen.symbol] if self._known(s, fault)]
            return 200, "application/json", _json({"quoteResponse": {"result": known, "error": None}}), {}
        return 404, "application/json", _json({"finance": {"result": None, "error": {
            "code": "Not Found", "description": "HTTP 404 Not Found"}}}), {}

    def _known(self, symbol: str | None, fault: str | None) -> bool:
        return bool(symbol) and fault != "unknown" and (symbol in self.daily or symbol in self.intraday)

    def _quote_summary(self, symbol: str, fault: str | None) -> tuple[int, str, bytes, dict[str, str]]:
        if not self._known(symbol, fault):
            return 404, "application/json", _json({"quoteSummary": {"result": None, "error": {
                "code": "Not Found", "description": f"Quote not found for symbol: {symbol}"}}}), {}
        return 200, "application/json", _json({"quoteSummary": {"result": [
            {"quoteType": _quote_type(symbol, self.timezones[symbol])}], "error": None}}), {}

    def _chart(self, seen: Seen, fault: str | None) -> tuple[int, str, bytes, dict[str, str]]:
        symbol = seen.symbol or ""
        if not self._known(symbol, fault):
            return 404, "application/json", _json({"chart": {"result": None, "error": {
                "code": "Not Found", "description": "No data found, symbol may be delisted"}}}), {}
        interval = seen.query.get("interval", "1d")
        tz = ZoneInfo(self.timezones[symbol])
        stamped = self._stamped(symbol, interval, tz)
        if fault == "stale":
            keep = sorted({_day(ts, tz) for ts, *_ in stamped})[:-self.stale_drop]
            stamped = [r for r in stamped if _day(r[0], tz) in keep]
        rows = _select(stamped, seen.query, tz)
        if fault == "nan":
            rows = [(ts, None, None, None, None, None) for ts, *_ in rows]
        if fault == "empty":
            rows = []
        return 200, "application/json", _json(_chart_body(symbol, tz, interval, seen.query, rows, stamped)), {}

    def _stamped(self, symbol: str, interval: str, tz: ZoneInfo) -> list[tuple]:
        """The symbol's rows with Yahoo's epoch timestamps (daily bars stamped at 09:30 exchange time)."""
        if interval.endswith(("m", "h")):
            return [(int(at.timestamp()), *vals) for at, *vals in self.intraday.get(symbol, [])]
        return [(int(dt.datetime.combine(day, dt.time(9, 30), tz).timestamp()), *vals)
                for day, *vals in self.daily.get(symbol, [])]


def _day(ts: int, tz: ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(ts, tz).date()


def _select(rows: list[tuple], query: dict[str, str], tz: ZoneInfo) -> list[tuple]:
    """The rows a chart query asks for: period1 <= ts < period2, or the last days of a range."""
    if "period1" in query:
        lo, hi = int(query["period1"]), int(query.get("period2") or 2**40)
        return [r for r in rows if lo <= r[0] < hi]
    days = sorted({_day(r[0], tz) for r in rows})
    wanted = {"1d": 1, "5d": 5}.get(query.get("range", ""), len(days))
    keep = set(days[-wanted:]) if wanted else set()
    return [r for r in rows if _day(r[0], tz) in keep]


def _period(day: dt.date, tz: ZoneInfo, start: dt.time, end: dt.time) -> dict:
    lo = dt.datetime.combine(day, start, tz)
    return {"timezone": lo.tzname(), "start": int(lo.timestamp()),
            "end": int(dt.datetime.combine(day, end, tz).timestamp()), "gmtoffset": int(lo.utcoffset().total_seconds())}


def _chart_body(symbol: str, tz: ZoneInfo, interval: str, query: dict[str, str], rows: list[tuple],
                every: list[tuple]) -> dict:
    """chart.result[0] as Yahoo returns it: meta, timestamps, quote and adjclose (no quote keys when empty)."""
    last_ts = every[-1][0] if every else int(dt.datetime.now(dt.UTC).timestamp())
    last = dt.datetime.fromtimestamp(last_ts, tz)
    meta = {
        "currency": "USD", "symbol": symbol, "exchangeName": "SNP", "fullExchangeName": "SNP",
        "instrumentType": "INDEX", "firstTradeDate": -1325583000, "regularMarketTime": last_ts,
        "hasPrePostMarketData": False, "gmtoffset": int(last.utcoffset().total_seconds()),
        "timezone": last.tzname(), "exchangeTimezoneName": tz.key,
        "regularMarketPrice": every[-1][4] if every else None, "chartPreviousClose": every[0][4] if every else None,
        "priceHint": 2, "dataGranularity": interval, "range": query.get("range", ""), "validRanges": VALID_RANGES,
        "currentTradingPeriod": {
            "pre": _period(last.date(), tz, dt.time(4), dt.time(9, 30)),
            "regular": _period(last.date(), tz, dt.time(9, 30), dt.time(16)),
            "post": _period(last.date(), tz, dt.time(16), dt.time(20))},
    }
    if interval.endswith(("m", "h")):
        days = sorted({_day(r[0], tz) for r in rows})
        meta["tradingPeriods"] = [[_period(d, tz, dt.time(9, 30), dt.time(16))] for d in days]
    result: dict = {"meta": meta}
    if rows:
        result["timestamp"] = [r[0] for r in rows]
        quote = {k: [r[i] for r in rows] for k, i in
                 (("open", 1), ("high", 2), ("low", 3), ("close", 4), ("volume", 5))}
        result["indicators"] = {"quote": [quote], "adjclose": [{"adjclose": quote["close"]}]}
    else:
        result["indicators"] = {"quote": [{}], "adjclose": [{}]}
    return {"chart": {"result": [result], "error": None}}


def _quote_type(symbol: str, tz: str) -> dict:
    return {"exchange": "SNP", "quoteType": "INDEX", "symbol": symbol, "shortName": symbol,
            "exchangeTimezoneName": tz, "exchangeTimezoneShortName": "EST"}


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _handler(stub: YahooStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            if self.command == "POST":  # consent form posts: drain the body
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, ctype, body, headers, action = stub.answer(self.command, self.path)
            if action == "reset":
                self.close_connection = True
                return
            if action == "timeout" and stub._stopping.wait(stub.timeout_delay):
                return
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up (timeout fault): nothing to tell it

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

    return Handler


@pytest.fixture
def yahoo_stub() -> Iterator[YahooStub]:
    """A running stub Yahoo on 127.0.0.1 (stopped at teardown)."""
    stub = YahooStub()
    try:
        yield stub
    finally:
        stub.stop()
