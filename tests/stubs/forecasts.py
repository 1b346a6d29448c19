"""A stub of the two consensus forecast feeds on 127.0.0.1, in their wire formats.

Serves under http://127.0.0.1:PORT (a client's base URL: each request https://HOST/PATH arrives as /HOST/PATH):
- GET /nfs.faireconomy.media/ff_calendar_thisweek.json  ForexFactory's week: a JSON list of `{title, country,
  date, impact, forecast, previous}` (`week`; THIS_WEEK by default), dates ISO with New York's offset, "" for no
  forecast. Like the real one it allows `ff_limit` requests per `ff_window` seconds (2 per 5 minutes, by `clock`)
  and answers more with its refusal: an HTML "Request Denied" page with HTTP 200 (`ff_refusal` "denied") or
  HTTP 429 ("429").
- GET /api.nasdaq.com/api/calendar/economicevents?date=YYYY-MM-DD  the day's page (`pages`; PAGES by default)
  in Nasdaq's envelope `{"data": {"headers", "rows": [{gmt, country, eventName, actual, consensus, previous,
  description}]}, "message": null, "status": {"rCode": 200, ...}}`, "&nbsp;" for an empty value and
  `"rows": null` for a day without events; a bad date gets rCode 400 with Nasdaq's message. Like Nasdaq's edge,
  it answers a request without a browser's User-Agent with HTTP 403 "Access Denied".
Faults (FAULTS; "status" answers Nasdaq's error envelope, as for a bad date) apply to one feed or both. Every request is
recorded (path, query, User-Agent) in `requests`.

The fixtures are the week of Sunday 2026-11-29: payrolls on Friday 2026-12-04 08:30 New York (13:30 UTC), and
on Nasdaq the CPI of Thursday 2026-12-10 listed a day late, on Friday's page.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from stubs.http import QuietHandler, StubServer

FF_PATH = "/nfs.faireconomy.media/ff_calendar_thisweek.json"
NASDAQ_PATH = "/api.nasdaq.com/api/calendar/economicevents"
FAULTS = ("timeout", "429", "denied", "500", "malformed", "html", "status")  # status: Nasdaq's rCode 400
REQUEST_DENIED = (b"<!DOCTYPE html>\n<html><head><title>Request Denied</title></head><body>\n<h1>Request Denied</h1>"
                  b"\n<p>You have made too many requests. Please wait a few minutes before trying again.</p>\n"
                  b"</body></html>\n")
TOO_MANY = b"<html><head><title>429 Too Many Requests</title></head><body><h1>Too Many Requests</h1></body></html>"
ACCESS_DENIED = (b"<HTML><HEAD>\n<TITLE>Access Denied</TITLE>\n</HEAD><BODY>\n<H1>Access Denied</H1>\n"
                 b"You don't have permission to access \"http&#58;&#47;&#47;api&#46;nasdaq&#46;com&#47;api&#47;"
                 b"calendar&#47;economicevents\" on this server.<P>\n</BODY>\n</HTML>\n")
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Down for maintenance</title></head>"
             b"<body><p>We will be back shortly.</p></body></html>")
NBSP = "&nbsp;"

Answer = tuple[int, str, bytes]  # status, content type, body


def ff_event(title: str, date: str, forecast: str = "", previous: str = "", country: str = "USD",
             impact: str = "High") -> dict[str, str]:
    """One ForexFactory event; `date` as it writes it ("2026-12-04T08:30:00-05:00")."""
    return {"title": title, "country": country, "date": date, "impact": impact, "forecast": forecast,
            "previous": previous}


def nasdaq_event(name: str, gmt: str, consensus: str = NBSP, previous: str = NBSP, actual: str = NBSP,
                 country: str = "United States") -> dict[str, str]:
    """One Nasdaq row; `gmt` "13:30" (or "All Day", "Tentative")."""
    return {"gmt": gmt, "country": country, "eventName": name, "actual": actual, "consensus": consensus,
            "previous": previous, "description": f"The {name} release.\r\n\r\nSee the agency&#39;s site."}


THIS_WEEK = [
    ff_event("Bank Holiday", "2026-11-29T19:00:00-05:00", country="JPY", impact="Holiday"),
    ff_event("ISM Manufacturing PMI", "2026-12-01T10:00:00-05:00", "52.3", "51.9"),
    ff_event("Final Manufacturing PMI", "2026-12-01T09:45:00-05:00", "", "49.8", impact="Low"),
    ff_event("JOLTS Job Openings", "2026-12-02T10:00:00-05:00", "7.45M", "7.67M"),
    ff_event("Unemployment Claims", "2026-12-03T08:30:00-05:00", "221K", "218K"),
    ff_event("Trade Balance", "2026-12-03T08:30:00-05:00", "-78.5B", "-73.8B", impact="Medium"),
    ff_event("Non-Farm Employment Change", "2026-12-04T08:30:00-05:00", "185K", "-23K"),
    ff_event("Unemployment Rate", "2026-12-04T08:30:00-05:00", "4.1%", "4.1%"),
    ff_event("Average Hourly Earnings m/m", "2026-12-04T08:30:00-05:00", "0.3%", "0.4%"),
    ff_event("Employment Change", "2026-12-04T08:30:00-05:00", "25.3K", "14.5K", country="CAD"),
    ff_event("Unemployment Rate", "2026-12-04T08:30:00-05:00", "6.6%", "6.5%", country="CAD"),
    ff_event("Prelim UoM Consumer Sentiment", "2026-12-04T10:00:00-05:00", "", "71.8"),
]

PAGES: dict[dt.date, list[dict[str, str]]] = {
    dt.date(2026, 12, 4): [
        nasdaq_event("Nonfarm Payrolls", "13:30", "185K", "-23K"),
        nasdaq_event("Unemployment Rate", "13:30", "4.1%", "4.1%"),
        nasdaq_event("Average Hourly Earnings", "13:30", NBSP, "0.4%"),
        nasdaq_event("Unemployment Rate", "13:30", "6.6%", "6.5%", country="Canada"),
        nasdaq_event("Michigan Consumer Sentiment", "15:00", "71.5", "71.8"),
    ],
    dt.date(2026, 12, 7): [nasdaq_event("Consumer Credit", "20:00", "$10.5B", "$13.1B")],
    dt.date(2026, 12, 10): [nasdaq_event("MBA Mortgage Applications", "12:00", NBSP, "-1.4%")],
    dt.date(2026, 12, 11): [  # the CPI of the 10th, listed a day late
        nasdaq_event("CPI", "13:30", "0.3%", "0.2%"),
        nasdaq_event("Core CPI", "13:30", "0.3%", "0.3%"),
        nasdaq_event("Bank Holiday", "All Day", country="Japan"),
    ],
}
HEADERS = {"gmt": "GMT", "country": "Country", "eventName": "Event Name", "actual": "Actual",
           "consensus": "Consensus", "previous": "Previous"}


@dataclass(frozen=True)
class Recorded:
    """One request the stub received."""

    path: str
    query: dict[str, str]
    user_agent: str | None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    """A failure to serve instead of an answer: for "forexfactory" or "nasdaq" (None: both); `times` None = always."""

    kind: str
    target: str | None = None
    times: int | None = None


class ForecastStub(StubServer):
    """The stub server: edit `week` and `pages`, switch faults on, read `requests`."""

    thread_name = "forecast-stub"

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.week: list[dict[str, Any]] = copy.deepcopy(THIS_WEEK)
        self.pages: dict[dt.date, list[dict[str, Any]]] = copy.deepcopy(PAGES)
        self.clock = clock                  # for ForexFactory's limit
        self.ff_limit, self.ff_window = 2, 300.0
        self.ff_refusal = "denied"          # or "429"
        self.delay = 10.0                   # how long the timeout fault stalls (cut short by stop())
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self._ff_served: list[float] = []   # clock readings of the ForexFactory requests counted by the limit
        super().__init__(_Handler)

    @property
    def base_url(self) -> str:
        """The base URL of both feeds, for a client's base_url and config `sources.consensus.FEED.url`."""
        return f"http://127.0.0.1:{self.port}"

    def fault(self, kind: str, target: str | None = None, times: int | None = None) -> ForecastStub:
        """Fail requests ("forexfactory" or "nasdaq" ones only, `times` times)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}: one of {', '.join(FAULTS)}")
        with self._lock:
            self.faults.append(Fault(kind, target, times))
        return self

    def calls(self, path: str) -> list[Recorded]:
        """The recorded requests of one feed (FF_PATH or NASDAQ_PATH)."""
        return [r for r in self.requests if r.path == path]

    # ---- answering ------------------------------------------------------------------------------

    def answer(self, path: str, query: dict[str, str], agent: str | None) -> Answer:
        """The response to one GET, faults applied."""
        with self._lock:
            self.requests.append(Recorded(path, dict(query), agent))
        target = {FF_PATH: "forexfactory", NASDAQ_PATH: "nasdaq"}.get(path)
        if target is None:
            return 404, "text/html", b"<html><body>Not Found</body></html>"
        fault = self._take_fault(target)
        if fault == "timeout":
            self._stopping.wait(self.delay)
            fault = None
        if fault in ("429", "denied"):
            return self._refusal(fault)
        if fault == "500":
            return 500, "text/html", b"<html><body><h1>500 Internal Server Error</h1></body></html>"
        if fault == "html":
            return 200, "text/html; charset=UTF-8", HTML_PAGE
        if target == "forexfactory":
            return self._forexfactory(fault)
        return self._nasdaq(query, agent, fault)

    def _take_fault(self, target: str) -> str | None:
        with self._lock:
            for fault in self.faults:
                if fault.target is None or fault.target == target:
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault.kind
        return None

    @staticmethod
    def _refusal(kind: str) -> Answer:
        if kind == "429":
            return 429, "text/html", TOO_MANY
        return 200, "text/html; charset=UTF-8", REQUEST_DENIED

    def _forexfactory(self, fault: str | None) -> Answer:
        now = self.clock()
        with self._lock:
            self._ff_served = [t for t in self._ff_served if t > now - self.ff_window]
            over = len(self._ff_served) >= self.ff_limit
            self._ff_served.append(now)  # a refused request counts too: the server saw it
        if over:
            return self._refusal(self.ff_refusal)
        body = json.dumps(self.week).encode()
        if fault == "malformed":
            body = body[: len(body) // 2]  # cut, as a dropped connection would
        return 200, "application/json; charset=utf-8", body

    def _nasdaq(self, query: dict[str, str], agent: str | None, fault: str | None) -> Answer:
        if not agent or not agent.startswith("Mozilla/"):
            return 403, "text/html", ACCESS_DENIED
        try:
            day = dt.date.fromisoformat(query.get("date", ""))
        except ValueError:
            day = None
        if day is None or fault == "status":
            body = {"data": None, "message": None, "status": {
                "rCode": 400, "bCodeMessage": [{"code": 1001, "errorMessage": "Invalid date"}],
                "developerMessage": None}}
            return 200, "application/json; charset=utf-8", json.dumps(body).encode()
        rows = self.pages.get(day) or None
        body = {"data": {"asOf": None, "headers": HEADERS, "rows": rows}, "message": None,
                "status": {"rCode": 200, "bCodeMessage": None, "developerMessage": None}}
        raw = json.dumps(body).encode()
        if fault == "malformed":
            raw = raw[: len(raw) // 2]
        return 200, "application/json; charset=utf-8", raw


class _Handler(QuietHandler):
    """Hands each GET to the stub and writes its answer."""

    def do_GET(self) -> None:  # http.server's name for it
        path, query = self.parts()
        status, content_type, payload = self.server.stub.answer(  # type: ignore[attr-defined]
            path, query, self.headers.get("User-Agent"))
        self.reply(status, content_type, payload)


@pytest.fixture(name="forecast_stub")
def forecast_stub_fixture():
    """A started ForecastStub with this week's fixtures, stopped after the test."""
    stub = ForecastStub().start()
    yield stub
    stub.stop()
