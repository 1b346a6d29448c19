"""A stub BLS on 127.0.0.1 speaking BLS's wire formats: the release schedule and the Public Data API v2.

Serves under http://127.0.0.1:PORT (a client's base URL: each request https://HOST/PATH arrives as /HOST/PATH):
- GET /www.bls.gov/schedule/news_release/bls.ics  the iCalendar schedule of the events added (CRLF line ends,
  lines folded at `fold` characters as RFC 5545 allows, "US-Eastern" as the TZID), or `ics` verbatim. Like
  www.bls.gov it answers a request without a browser-like User-Agent (python-requests') with HTTP 403.
- POST /api.bls.gov/publicAPI/v2/timeseries/data/  JSON `{"seriesid": [...], "startyear", "endyear",
  "registrationkey"}`; GET /api.bls.gov/publicAPI/v2/timeseries/data/SERIES?latest=true (&registrationkey=)
  the newest value alone. The answer: `{"status": "REQUEST_SUCCEEDED", "responseTime", "message": [...],
  "Results": {"series": [{"seriesID", "data": [{"year", "period", "periodName", "latest", "value",
  "footnotes"}]}]}}`, values as strings, newest first (M13, the annual average, first in its year). An unknown
  series comes back with no data and a message; a year without data gets a message too, as BLS does. A series
  in `omit` is left out of the answer altogether.
- The quota: after `quota` queries of one key (keyless counted apart), HTTP 200 with
  `"status": "REQUEST_NOT_PROCESSED"` and BLS's message, which quotes the key. A key not in `keys` (when set)
  is refused the same way.
Every request is recorded (method, path, query, JSON body, User-Agent) in `requests`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from stubs.http import QuietHandler, StubServer

KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # a registered key: 32 hex digits, like BLS's
SCHEDULE_PATH = "/www.bls.gov/schedule/news_release/bls.ics"
API_PATH = "/api.bls.gov/publicAPI/v2/timeseries/data/"
FAULTS = ("refused", "timeout", "500", "malformed", "html")
ACCESS_DENIED = (b'<HTML><HEAD>\n<TITLE>Access Denied</TITLE>\n</HEAD><BODY>\n<H1>Access Denied</H1>\n'
                 b"You don't have permission to access \"http&#58;&#47;&#47;www&#46;bls&#46;gov&#47;schedule&#47;"
                 b'news&#95;release&#47;bls&#46;ics\" on this server.<P>\n</BODY>\n</HTML>\n')
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>BLS is down for maintenance</title></head>"
             b"<body><p>We will be back shortly.</p></body></html>")
OVER_QUOTA = ("Request could not be serviced, as the daily threshold for total number of requests allocated to the "
              "user{who} has been reached.")
ICS_HEAD = [
    "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Bureau of Labor Statistics//Release Calendar//EN",
    "CALSCALE:GREGORIAN", "X-WR-CALNAME:BLS Release Schedule", "X-WR-TIMEZONE:US-Eastern",
    "BEGIN:VTIMEZONE", "TZID:US-Eastern",
    "BEGIN:DAYLIGHT", "TZOFFSETFROM:-0500", "TZOFFSETTO:-0400", "DTSTART:19700308T020000",
    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU", "TZNAME:EDT", "END:DAYLIGHT",
    "BEGIN:STANDARD", "TZOFFSETFROM:-0400", "TZOFFSETTO:-0500", "DTSTART:19701101T020000",
    "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU", "TZNAME:EST", "END:STANDARD",
    "END:VTIMEZONE",
]

Answer = tuple[int, str, bytes]  # status, content type, body
Row = tuple[int, str, str]       # year, period ("M11", "M13"), value as BLS writes it ("227", "-")


@dataclass(frozen=True)
class Recorded:
    """One request the stub received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any                    # the POST's JSON, None for a GET
    user_agent: str | None
    at: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> str | None:
        """The registration key the request carried, if any."""
        if isinstance(self.body, dict):
            return self.body.get("registrationkey")
        return self.query.get("registrationkey")


@dataclass
class Fault:
    """A failure to serve instead of an answer: for "api" or "schedule" requests (None: both); `times` None = always."""

    kind: str
    target: str | None = None
    times: int | None = None


def _period_name(period: str) -> str:
    return "Annual" if period == "M13" else calendar.month_name[int(period[1:])]


class BlsStub(StubServer):
    """The stub server: add series and events, set the quota, switch faults on, read `requests`."""

    thread_name = "bls-stub"

    def __init__(self, keys: Iterable[str] | None = (KEY,)):
        self.keys = None if keys is None else set(keys)  # None: any key is registered
        self.series: dict[str, dict[tuple[int, str], str]] = {}
        self.events: list[tuple[str, dt.datetime]] = []
        self.omit: set[str] = set()          # series left out of every answer
        self.ics: str | None = None          # the schedule verbatim, instead of the events
        self.fold = 75                       # RFC 5545's line length; a smaller one folds more lines
        self.quota: int | None = None        # queries per key (and keyless); None: no limit
        self.used: dict[str | None, int] = {}
        self.delay = 10.0                    # how long the timeout fault stalls (cut short by stop())
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        super().__init__(_Handler)

    # ---- set-up ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The base URL, for BlsClient(base_url=...) and config `sources.bls.url`."""
        return f"http://127.0.0.1:{self.port}"

    def add_series(self, series: str, rows: Iterable[Row]) -> BlsStub:
        """A series' values, in any order (served newest first)."""
        self.series[series] = {}
        return self.publish(series, rows)

    def publish(self, series: str, rows: Iterable[Row]) -> BlsStub:
        """More values of a series (a release: the new period, and revisions of earlier ones)."""
        with self._lock:
            self.series.setdefault(series, {}).update({(year, period): value for year, period, value in rows})
        return self

    def add_event(self, summary: str, at: dt.datetime | str) -> BlsStub:
        """A release in the schedule, `at` in Eastern time ("2026-12-04T08:30")."""
        self.events.append((summary, at if isinstance(at, dt.datetime) else dt.datetime.fromisoformat(at)))
        return self

    def fault(self, kind: str, target: str | None = None, times: int | None = None) -> BlsStub:
        """Fail requests ("api" or "schedule" ones only, `times` times); "refused" stops the server."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}: one of {', '.join(FAULTS)}")
        if kind == "refused":
            self.stop()
        else:
            with self._lock:
                self.faults.append(Fault(kind, target, times))
        return self

    def calls(self, path_prefix: str = API_PATH) -> list[Recorded]:
        """The recorded requests whose path starts with `path_prefix` (the API's, by default)."""
        return [r for r in self.requests if r.path.startswith(path_prefix)]

    # ---- answering ------------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: dict[str, str], body: Any, agent: str | None) -> Answer:
        """The response to one request, faults applied."""
        with self._lock:
            self.requests.append(Recorded(method, path, dict(query), body, agent))
        target = "schedule" if path == SCHEDULE_PATH else "api" if path.startswith(API_PATH) else None
        fault = self._take_fault(target)
        if fault == "timeout":
            self._stopping.wait(self.delay)
            fault = None
        if fault == "500":
            return 500, "text/html", b"<html><body><h1>500 Internal Server Error</h1></body></html>"
        if fault == "html":
            return 200, "text/html; charset=UTF-8", HTML_PAGE
        if target == "schedule" and method == "GET":
            if not agent or agent.startswith("python-requests"):
                return 403, "text/html", ACCESS_DENIED
            return 200, "text/calendar; charset=utf-8", self._ics(fault).encode()
        if target == "api" and (method == "POST" and path == API_PATH or method == "GET" and path != API_PATH):
            return self._api(method, path, query, body, fault)
        return 404, "text/html", b"<html><body>Not Found</body></html>"

    def _take_fault(self, target: str | None) -> str | None:
        with self._lock:
            for fault in self.faults:
                if fault.target is None or fault.target == target:
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault.kind
        return None

    def _ics(self, fault: str | None) -> str:
        if self.ics is not None:
            return self.ics
        lines = list(ICS_HEAD)
        for n, (summary, at) in enumerate(self.events, start=1):
            escaped = summary.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
            lines += ["BEGIN:VEVENT", f"UID:{at:%Y%m%d}-{n}@bls.gov", "DTSTAMP:20260101T120000Z",
                      f"DTSTART;TZID=US-Eastern:{at:%Y%m%dT%H%M%S}",
                      f"DTEND;TZID=US-Eastern:{at + dt.timedelta(hours=1):%Y%m%dT%H%M%S}",
                      f"SUMMARY:{escaped}",
                      f"DESCRIPTION:{escaped}\\, released at {at:%H:%M} Eastern time. See "
                      "https://www.bls.gov/schedule/news_release/ for the full schedule.",
                      "CATEGORIES:News Release", "END:VEVENT"]
        lines.append("END:VCALENDAR")
        if fault == "malformed":
            lines = lines[:-4]  # cut inside the last event, as a dropped connection would
        return "".join(self._folded(line) for line in lines)

    def _folded(self, line: str) -> str:
        """A content line, folded: CRLF and a space before every `fold` characters after the first."""
        parts = [line[:self.fold]] + [line[i:i + self.fold - 1] for i in range(self.fold, len(line), self.fold - 1)]
        return "\r\n ".join(parts) + "\r\n"

    def _api(self, method: str, path: str, query: dict[str, str], body: Any, fault: str | None) -> Answer:
        started = time.monotonic()
        if method == "POST":
            if not isinstance(body, dict) or not isinstance(body.get("seriesid"), list):
                return self._json(started, "REQUEST_NOT_PROCESSED", ["No series ID was provided in the request."])
            ids, key = [str(s) for s in body["seriesid"]], body.get("registrationkey")
            years = range(int(body.get("startyear", 1900)), int(body.get("endyear", 9999)) + 1)
            latest = False
        else:
            ids, key = [path[len(API_PATH):]], query.get("registrationkey")
            years, latest = range(1900, 10000), query.get("latest") == "true"
        if key is not None and self.keys is not None and key not in self.keys:
            return self._json(started, "REQUEST_NOT_PROCESSED", [f"The key:{key} provided by the User is invalid."])
        with self._lock:
            self.used[key] = self.used.get(key, 0) + 1
            over = self.quota is not None and self.used[key] > self.quota
        if over:
            return self._json(started, "REQUEST_NOT_PROCESSED",
                              [OVER_QUOTA.format(who=f" with registration key {key}" if key else "")])
        if fault == "malformed":
            return 200, "application/json", b'{"status":"REQUEST_SUCCEEDED","responseTime":41,"message":[],"Resu'
        messages, series = [], []
        for sid in ids:
            data = self._data(sid, years, latest)
            if sid not in self.series:
                messages.append(f"Series does not exist for Series {sid}")
            else:
                have = {int(d["year"]) for d in data}
                messages += [f"No Data Available for Series {sid} Year: {y}" for y in years
                             if y not in have and len(years) < 100]
            if sid not in self.omit:
                series.append({"seriesID": sid, "data": data})
        return self._json(started, "REQUEST_SUCCEEDED", messages, {"series": series})

    def _data(self, sid: str, years: range, latest: bool) -> list[dict[str, Any]]:
        with self._lock:
            rows = sorted(((y, p, v) for (y, p), v in self.series.get(sid, {}).items() if y in years), reverse=True)
        data = [{"year": str(y), "period": p, "periodName": _period_name(p), "value": v, "footnotes": [{}]}
                for y, p, v in rows]
        if data:
            data[0] = {**data[0], "latest": "true", "footnotes": [{"code": "P", "text": "preliminary"}]}
        return data[:1] if latest else data

    @staticmethod
    def _json(started: float, status: str, messages: list[str], results: dict | None = None) -> Answer:
        body = {"status": status, "responseTime": int((time.monotonic() - started) * 1000) + 40,
                "message": messages, "Results": results if results is not None else {}}
        return 200, "application/json", json.dumps(body).encode()


class _Handler(QuietHandler):
    """Hands each GET and POST to the stub and writes its answer."""

    def do_GET(self) -> None:  # http.server's name for it
        self._serve(None)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        self._serve(body)

    def _serve(self, body: Any) -> None:
        path, query = self.parts()
        status, content_type, payload = self.server.stub.answer(  # type: ignore[attr-defined]
            self.command, path, query, body, self.headers.get("User-Agent"))
        self.reply(status, content_type, payload)


@pytest.fixture(name="bls_stub")
def bls_stub_fixture():
    """A started BlsStub, stopped after the test."""
    stub = BlsStub().start()
    yield stub
    stub.stop()
