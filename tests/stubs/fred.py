"""A stub FRED on 127.0.0.1 speaking FRED's wire formats, built from small fixtures the tests write.

Serves, under http://127.0.0.1:PORT/fred (the API) and http://127.0.0.1:PORT/graph (the web host):
- /fred/series/observations  XML as fredapi parses it; honours realtime_start/realtime_end (vintages whose
  real-time period meets the window, clipped to it, as FRED does) and observation_start/observation_end
- /fred/series, /fred/series/vintagedates  XML
- /fred/release/dates  JSON (file_type=json) or XML; honours realtime_start/realtime_end and
  include_release_dates_with_no_data (false hides dates after `today`)
- /graph/fredgraph.csv?id=SERIES  latest values; header `observation_date,ID` (or `DATE,ID` with "." for
  missing values, the format before 2024-12); honours cosd/coed
/fred/* requires `api_key` equal to the stub's key, else HTTP 400 with FRED's error body. Rows are emitted in
fixture order, so a test can hand out rows in an order the client must not rely on. Every request is recorded
(path and query, api_key included) in `requests`.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlencode
from xml.sax.saxutils import quoteattr

import pytest

from stubs.http import QuietHandler, StubServer

KEY = "0123456789abcdef0123456789abcdef"  # the stub's registered key: 32 lower-case alphanumerics, like FRED's
NO_END = dt.date(9999, 12, 31)
FAULTS = ("refused", "timeout", "429", "500", "malformed", "html", "empty", "bad_key")
KEY_NOT_SET = "Bad Request.  Variable api_key is not set.  Read https://fred.stlouisfed.org/docs/api/api_key.html for more information."  # noqa: E501
KEY_NOT_REGISTERED = ("Bad Request.  The value for variable api_key is not registered.  "
                      "Read https://fred.stlouisfed.org/docs/api/api_key.html for more information.")
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>FRED is down for maintenance</title></head>"
             b"<body><p>We will be back shortly.</p></body></html>")
XML_HEAD = '<?xml version="1.0" encoding="utf-8" ?>\n'

Answer = tuple[int, str, bytes]  # status, content type, body


@dataclass(frozen=True)
class Recorded:
    """One request the stub received."""

    path: str
    query: dict[str, str]
    at: float = field(default_factory=time.monotonic)  # when it arrived (bench/latency.py measures with it)

    @property
    def url(self) -> str:
        return f"{self.path}?{urlencode(self.query)}"


@dataclass
class Fault:
    """A failure to serve instead of data: for one subject (series, release id) or all; `times` None = always."""

    kind: str
    target: str | None = None
    times: int | None = None


def _day(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _as_date(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def _text(value: float | str) -> str:
    return value if isinstance(value, str) else repr(float(value))


def _xml(tag: str, attrs: dict[str, object], children: Iterable[str] = ()) -> bytes:
    """A FRED-style XML document: one root element with attributes and pre-rendered children."""
    head = f"<{tag} " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in attrs.items())
    body = "\n  ".join(children)
    return (XML_HEAD + (f"{head}>\n  {body}\n</{tag}>\n" if body else f"{head}>\n</{tag}>\n")).encode()


class FredStub(StubServer):
    """The stub server: add fixtures, switch faults on, read `requests`."""

    thread_name = "fred-stub"

    def __init__(self, api_key: str = KEY, today: dt.date = dt.date(2019, 9, 15)):
        self.api_key = api_key
        self.today = today                  # FRED's default real-time period is "today"
        self.series: dict[str, list[tuple[dt.date, dt.date, float | str]]] = {}
        self.titles: dict[str, str] = {}
        self.releases: dict[int, list[dt.date]] = {}
        self.csv_header = "observation_date"  # or "DATE": the fredgraph format before 2024-12
        self.delay = 10.0                   # how long the timeout fault stalls (cut short by stop())
        self.limit = 100000                 # FRED's most observations per response (it says count="all")
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        super().__init__(_Handler)

    # ---- set-up ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API base URL, for FredClient(base_url=...) and config `sources.fred.url`."""
        return f"http://127.0.0.1:{self.port}/fred"

    def add_series(self, series: str, rows: Iterable[tuple[dt.date | str, dt.date | str, float | str]],
                   title: str | None = None) -> FredStub:
        """Vintages (date, realtime_start, value) of a series; a value may be "." (missing)."""
        self.series[series] = [(_as_date(d), _as_date(rs), v) for d, rs, v in rows]
        self.titles[series] = title or series
        return self

    def add_release(self, release_id: int, dates: Iterable[dt.date | str]) -> FredStub:
        """A release's calendar (past and scheduled dates)."""
        self.releases[release_id] = sorted(_as_date(d) for d in dates)
        return self

    def fault(self, kind: str, target: str | int | None = None, times: int | None = None) -> FredStub:
        """Fail requests (for `target` only, `times` times); "refused" stops the server."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}: one of {', '.join(FAULTS)}")
        if kind == "refused":
            self.stop()
        else:
            with self._lock:
                self.faults.append(Fault(kind, None if target is None else str(target), times))
        return self

    def calls(self, path_suffix: str) -> list[Recorded]:
        """The recorded requests whose path ends with `path_suffix`."""
        return [r for r in self.requests if r.path.endswith(path_suffix)]

    # ---- answering ------------------------------------------------------------------------------

    def answer(self, path: str, query: dict[str, str]) -> Answer:
        """The response to one request, faults applied."""
        with self._lock:
            self.requests.append(Recorded(path, dict(query)))
        fault = self._take_fault(query.get("series_id") or query.get("id") or query.get("release_id"))
        if fault == "timeout":
            self._stopping.wait(self.delay)
            fault = None
        as_json = query.get("file_type") == "json"
        if path.startswith("/fred/") and (fault == "bad_key" or query.get("api_key") != self.api_key):
            return self._error(400, KEY_NOT_REGISTERED if query.get("api_key") else KEY_NOT_SET, as_json)
        if fault == "429":
            return self._error(429, "Too Many Requests.  Exceeded Rate Limit", as_json)
        if fault == "500":
            return 500, "text/html", b"<html><body><h1>500 Internal Server Error</h1></body></html>"
        if fault == "html":
            return 200, "text/html; charset=UTF-8", HTML_PAGE
        routes = {"/fred/series/observations": self._observations, "/fred/series": self._series_info,
                  "/fred/series/vintagedates": self._vintage_dates, "/fred/release/dates": self._release_dates,
                  "/graph/fredgraph.csv": self._graph_csv}
        route = routes.get(path)
        if route is None:
            return self._error(404, "Not Found.  No such path.", as_json)
        return route(query, fault)

    def _take_fault(self, subject: str | None) -> str | None:
        with self._lock:
            for fault in self.faults:
                if fault.target is None or fault.target == subject:
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault.kind
        return None

    @staticmethod
    def _error(status: int, message: str, as_json: bool) -> Answer:
        """FRED's error body: JSON with file_type=json, else the XML <error/> document."""
        if as_json:
            return status, "application/json", json.dumps({"error_code": status, "error_message": message}).encode()
        return status, "text/xml; charset=UTF-8", _xml("error", {"code": status, "message": message})

    def _unknown_series(self, series: str) -> Answer | None:
        return None if series in self.series else self._error(400, "Bad Request.  The series does not exist.", False)

    def _window(self, series: str, query: dict[str, str]) -> list[tuple[dt.date, dt.date, dt.date, float | str]]:
        """(date, realtime_start, realtime_end, value) rows visible in the query's real-time and date windows."""
        rt_start = _day(query.get("realtime_start")) or self.today
        rt_end = _day(query.get("realtime_end")) or self.today
        first = _day(query.get("observation_start")) or dt.date.min
        last = _day(query.get("observation_end")) or dt.date.max
        starts: dict[dt.date, list[dt.date]] = {}
        for d, rs, _ in self.series[series]:
            starts.setdefault(d, []).append(rs)
        rows = []
        for d, rs, value in self.series[series]:
            later = [s for s in starts[d] if s > rs]
            end = min(later) - dt.timedelta(days=1) if later else NO_END
            if first <= d <= last and rs <= rt_end and end >= rt_start:
                rows.append((d, max(rs, rt_start), min(end, rt_end), value))
        return rows

    def _observations(self, query: dict[str, str], fault: str | None) -> Answer:
        series = query.get("series_id", "")
        if (unknown := self._unknown_series(series)) is not None:
            return unknown
        if fault == "malformed":
            return 200, "text/xml; charset=UTF-8", (XML_HEAD + '<observations count="3">\n  '
                                                    '<observation realtime_start="2019-08-02" date="2019-').encode()
        rows = [] if fault == "empty" else self._window(series, query)
        attrs = {"realtime_start": query.get("realtime_start", self.today), "realtime_end":
                 query.get("realtime_end", self.today), "observation_start": query.get("observation_start",
                 "1600-01-01"), "observation_end": query.get("observation_end", "9999-12-31"), "units": "lin",
                 "output_type": 1, "file_type": "xml", "order_by": "observation_date", "sort_order": "asc",
                 "count": len(rows), "offset": 0, "limit": self.limit}
        children = [f'<observation realtime_start="{rs}" realtime_end="{re}" date="{d}" value="{_text(v)}"/>'
                    for d, rs, re, v in rows[:self.limit]]
        return 200, "text/xml; charset=UTF-8", _xml("observations", attrs, children)

    def _series_info(self, query: dict[str, str], fault: str | None) -> Answer:
        series = query.get("series_id", "")
        if (unknown := self._unknown_series(series)) is not None:
            return unknown
        dates = sorted(d for d, _, _ in self.series[series]) or [self.today]
        info = {"id": series, "realtime_start": self.today, "realtime_end": self.today, "title": self.titles[series],
                "observation_start": dates[0], "observation_end": dates[-1], "frequency": "Monthly",
                "frequency_short": "M", "units": "Thousands of Persons", "units_short": "Thous. of Persons",
                "seasonal_adjustment": "Seasonally Adjusted", "seasonal_adjustment_short": "SA",
                "last_updated": f"{self.today} 07:47:02-05", "popularity": 80, "notes": ""}
        child = "<series " + " ".join(f"{k}={quoteattr(str(v))}" for k, v in info.items()) + "/>"
        return 200, "text/xml; charset=UTF-8", _xml("seriess", {"realtime_start": self.today,
                                                                "realtime_end": self.today}, [child])

    def _vintage_dates(self, query: dict[str, str], fault: str | None) -> Answer:
        series = query.get("series_id", "")
        if (unknown := self._unknown_series(series)) is not None:
            return unknown
        days = [] if fault == "empty" else sorted({rs for _, rs, _ in self.series[series]})
        attrs = {"realtime_start": "1776-07-04", "realtime_end": "9999-12-31", "order_by": "vintage_date",
                 "sort_order": "asc", "count": len(days), "offset": 0, "limit": 10000}
        return 200, "text/xml; charset=UTF-8", _xml("vintage_dates", attrs,
                                                    [f"<vintage_date>{d}</vintage_date>" for d in days])

    def _release_dates(self, query: dict[str, str], fault: str | None) -> Answer:
        as_json = query.get("file_type") == "json"
        try:
            release_id = int(query.get("release_id", ""))
        except ValueError:
            return self._error(400, "Bad Request.  Variable release_id is not an integer.", as_json)
        if release_id not in self.releases:
            return self._error(400, "Bad Request.  The release does not exist.", as_json)
        start = _day(query.get("realtime_start")) or self.today
        end = _day(query.get("realtime_end")) or self.today
        with_future = query.get("include_release_dates_with_no_data") == "true"
        days = [d for d in self.releases[release_id] if start <= d <= end and (with_future or d <= self.today)]
        if fault == "empty":
            days = []
        head = {"realtime_start": str(start), "realtime_end": str(end), "order_by": "release_date",
                "sort_order": "asc", "count": len(days), "offset": 0, "limit": 10000}
        if not as_json:
            return 200, "text/xml; charset=UTF-8", _xml("release_dates", head, [
                f'<release_date release_id="{release_id}">{d}</release_date>' for d in days])
        if fault == "malformed":
            return 200, "application/json", b'{"release_dates": [{"release_id": 50, "date": "2019-'
        body = {**head, "release_dates": [{"release_id": release_id, "date": str(d)} for d in days]}
        return 200, "application/json", json.dumps(body).encode()

    def _graph_csv(self, query: dict[str, str], fault: str | None) -> Answer:
        series = query.get("id", "")
        if series not in self.series:
            return 404, "text/html", b"<html><body>Series not found</body></html>"
        old_format = self.csv_header == "DATE"
        lines = [f"{self.csv_header},{series}"]
        first = _day(query.get("cosd")) or dt.date.min
        last = _day(query.get("coed")) or dt.date.max
        latest: dict[dt.date, tuple[dt.date, float | str]] = {}
        for d, rs, v in self.series[series]:
            if rs <= self.today and (d not in latest or rs > latest[d][0]):
                latest[d] = (rs, v)
        for d in sorted(latest):
            value = latest[d][1]
            shown = ("." if old_format else "") if value == "." else _text(value)
            if first <= d <= last and fault != "empty":
                lines.append(f"{d},{shown}")
        if fault == "malformed":
            lines.append("2019-13-45,not-a-number")
        return 200, "text/csv", ("\n".join(lines) + "\n").encode()


class _Handler(QuietHandler):
    """Hands each GET to the stub and writes its answer."""

    def do_GET(self) -> None:  # http.server's name for it
        path, query = self.parts()
        status, content_type, body = self.server.stub.answer(path, query)  # type: ignore[attr-defined]
        self.reply(status, content_type, body)


@pytest.fixture(name="fred_stub")
def fred_stub_fixture():
    """A started FredStub, stopped after the test."""
    stub = FredStub().start()
    yield stub
    stub.stop()
