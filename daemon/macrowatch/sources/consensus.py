"""Consensus forecasts from two keyless feeds: ForexFactory's weekly calendar and Nasdaq's economic events.

- https://nfs.faireconomy.media/ff_calendar_thisweek.json: this week's events (Sunday to Saturday) as a JSON list
  of `{title, country (a currency: "USD"), date (ISO, New York's offset), impact, forecast, previous}`; no
  actual. It allows about two requests per five minutes per address and answers more with HTTP 429 or an HTML
  "Request Denied" page. So the client asks only more than 150 s after its last request (never three times in
  any five minutes), waits the whole five minutes after a refusal, and in between answers with the last calendar
  it read.
- https://api.nasdaq.com/api/calendar/economicevents?date=YYYY-MM-DD: one day's events, `{"data": {"rows":
  [{gmt ("13:30"; "All Day", "Tentative"), country ("United States"), eventName, actual, consensus, previous,
  description}]}, "message": null, "status": {"rCode": 200, ...}}`, "&nbsp;" for an empty value. It refuses a
  client without a browser's User-Agent. A row is sometimes listed a day late (on the next day's page), so a
  release is looked for on its UTC day's page at its UTC time of day, then on the next day's page. A page read
  less than a minute ago is not asked for again (several macros of one poll share it).

One `requests.Session` per feed; with a base URL (`sources.consensus.FEED.url`) every request https://HOST/PATH
goes to URL/HOST/PATH. Every failure is a `ConsensusError`. `forecast()` finds a release's event by its title
(exactly, case-insensitive and trimmed), country and time, and divides the value by the entry's `unit` here, so
that every caller gets the series' own units. Every row carries `seen`, the `now` of the request that brought it:
a forecast counts for a release only when it was seen before the release time (point in time).
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, Self
from urllib.parse import urlsplit

import requests

from macrowatch.config.types import ConsensusFeed, ConsensusSources, Feed
from macrowatch.sources.base import ConsensusError

__all__ = ["CLIENTS", "ConsensusError", "EventNotFound", "Forecast", "ForexFactory", "Listing", "Nasdaq",
           "RateLimited", "Row", "forecast", "parse_value"]

log = logging.getLogger("macrowatch.sources.consensus")

_HEADERS = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                          "Chrome/131.0.0.0 Safari/537.36",
            "Accept": "application/json, text/plain, */*", "Accept-Language": "en-US,en;q=0.5"}
_SCALE = {"": 0, "%": 0, "K": 3, "M": 6, "B": 9, "T": 12}
# A number as the feeds write one: a sign, digits (thousands may be grouped with commas), a fraction, a suffix.
_VALUE = re.compile(r"([+-]?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?([KMBT%]?)")


class RateLimited(ConsensusError):
    """The feed refused a request for asking too often (HTTP 429, or ForexFactory's "Request Denied" page)."""


class EventNotFound(ConsensusError):
    """The feed lists the release's time but no event of that title and country then: a renamed or misspelt title
    (never matched loosely); `reason` names the titles that are listed there."""


@dataclass(frozen=True)
class Row:
    """One event as a feed lists it, and when it was seen."""

    feed: Feed
    title: str
    country: str
    at: dt.datetime | None  # as listed, UTC for Nasdaq; None: no time of day ("All Day", "Tentative")
    forecast: str           # as written ("185K", "" or "&nbsp;" for none); Nasdaq calls it consensus
    previous: str
    actual: str | None      # Nasdaq's, "&nbsp;" until released; ForexFactory lists none
    seen: dt.datetime       # the `now` of the request that brought it


class Listing(NamedTuple):
    """What a feed lists around a release: its rows, the listed times that mean the release (best first), and
    why the feed cannot list it (yet) when it does not cover that time (None when it does)."""

    rows: list[Row]
    times: tuple[dt.datetime, ...]
    gap: str | None


class Forecast(NamedTuple):
    """A release's forecast from one feed: the value in the series' units (None: none), the row it came from
    (None: not listed), and why there is no value."""

    value: float | None
    row: Row | None
    note: str = ""


def parse_value(text: str) -> float | None:
    """A feed's value as a number: "185K" -> 185000.0, "-23K", "4.1%" -> 4.1, "1.2M", "1.5B", "52.3".

    None for no value ("", "&nbsp;"). A bound ("<0.1%", ">2.0%") is no point forecast, and anything else is no
    number we can be sure of: both raise ValueError, never a guess.
    """
    written = html.unescape(text).strip().replace("\u2212", "-")
    if not written:
        return None
    if written[0] in "<>\u2264\u2265":
        raise ValueError(f"{text!r} is a bound, not a forecast")
    m = _VALUE.fullmatch(written)
    if m is None:
        raise ValueError(f"{text!r} is not a number with an optional K, M, B, T or % suffix")
    sign, digits, fraction, suffix = m.groups()
    number = Decimal(f"{sign}{digits.replace(',', '')}{fraction or ''}").scaleb(_SCALE[suffix])
    return float(number)


def _same(a: str, b: str) -> bool:
    """Titles and countries match exactly, but for case and the spaces around them."""
    return a.strip().casefold() == b.strip().casefold()


def _when(at: dt.datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} {at.tzname() or ''}".rstrip()


def forecast(client: ForexFactory | Nasdaq, entry: ConsensusFeed, at: dt.datetime, now: dt.datetime) -> Forecast:
    """The forecast of `entry`'s event for the release at `at` (aware), as `client` lists it at `now`.

    Not covered by the feed (yet): Forecast(None, None, why). Listed without a forecast: Forecast(None, row, why).
    Raises EventNotFound when the feed covers the time but lists no such event, ConsensusError when the feed
    fails or the value is unreadable.
    """
    if at.tzinfo is None:
        raise ValueError("a release time must be tz-aware")
    if entry.feed is not client.feed:
        raise ValueError(f"a {entry.feed.value} entry asked of {client.name}")
    subject = f"{entry.event!r} ({entry.in_country}) at {_when(at)}"
    listing = client.listing(at, now)
    for listed in listing.times:
        found = [r for r in listing.rows if r.at == listed and _same(r.country, entry.in_country)
                 and _same(r.title, entry.event)]
        if found:
            return _value(client.name, subject, entry, found)
    if listing.gap:
        return Forecast(None, None, listing.gap)
    there = sorted({r.title for r in listing.rows if r.at in listing.times and _same(r.country, entry.in_country)})
    raise EventNotFound(client.name, subject, "not listed; listed at that time: " + ", ".join(map(repr, there))
                        if there else f"not listed; nothing is listed for {entry.in_country} at that time")


def _value(feed: str, subject: str, entry: ConsensusFeed, found: list[Row]) -> Forecast:
    """The forecast of the rows listing the event (more than one must agree), divided by the entry's unit."""
    values = {}
    for row in found:
        try:
            values[row.forecast] = parse_value(row.forecast)
        except ValueError as exc:
            raise ConsensusError(feed, subject, f"unreadable forecast: {exc}") from None
    if len(set(values.values())) > 1:
        raise ConsensusError(feed, subject, f"listed {len(found)} times with different forecasts: "
                                            + ", ".join(map(repr, values)))
    value = next(iter(values.values()))
    if value is None:
        return Forecast(None, found[0], "listed without a forecast")
    return Forecast(value / entry.unit, found[0])


# ---- transport ----------------------------------------------------------------------------------------

class _Client:
    """One feed's session: the base-URL override, timeouts, and every failure as a ConsensusError."""

    feed: Feed
    name: str

    def __init__(self, base_url: str | None = None, *, timeout: float = 10.0, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers.update(_HEADERS)
        self.clock = clock  # monotonic seconds, for the rate limit and the page cache

    @classmethod
    def from_config(cls, sources: ConsensusSources, **options: Any) -> Self:
        """A client for this feed's entry of config `sources.consensus` (the default URL when it has none)."""
        return cls(sources.source(cls.feed).url, **options)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.session.close()

    def url(self, url: str) -> str:
        """Where a request for https://HOST/PATH goes: there, or to BASE/HOST/PATH with a base URL."""
        if not self.base_url:
            return url
        parts = urlsplit(url)
        return f"{self.base_url}/{parts.netloc}{parts.path}"

    def _json(self, url: str, subject: str, params: dict[str, str] | None = None) -> Any:
        """The JSON of a 200 answer; any other outcome is a ConsensusError (RateLimited for a refusal)."""
        host = urlsplit(url).netloc
        log.debug("GET %s %s", self.url(url), params or "")
        try:
            response = self.session.get(self.url(url), params=params, timeout=self.timeout)
        except requests.Timeout:  # before ConnectionError: ConnectTimeout is both
            raise ConsensusError(self.name, subject, f"no answer from {host} within {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            why = "connection refused" if "refused" in str(exc).lower() else "connection failed"
            raise ConsensusError(self.name, subject, f"cannot reach {host}: {why}") from None
        except requests.RequestException as exc:
            raise ConsensusError(self.name, subject, f"request failed: {exc}") from None
        status, page = response.status_code, _is_html(response)
        title = _title(response) if page or status != 200 else ""
        shown = f" ({title})" if title else ""
        if status == 429:
            raise RateLimited(self.name, subject, f"rate limited (HTTP 429) by {host}{shown}")
        if page and b"request denied" in response.content[:4096].lower():
            raise RateLimited(self.name, subject, f"request denied by {host}{shown}: asked too often")
        if status != 200:
            what = f"server error (HTTP {status})" if status >= 500 else f"HTTP {status}"
            raise ConsensusError(self.name, subject, f"{what} from {host}{shown}")
        if page:
            raise ConsensusError(self.name, subject, f"got an HTML page instead of data from {host}{shown}")
        try:
            return response.json()
        except ValueError as exc:
            raise ConsensusError(self.name, subject, f"malformed answer from {host} (not JSON: "
                                                     f"{str(exc)[:80]})") from None


def _is_html(response: requests.Response) -> bool:
    head = response.content[:512].lstrip().lower()
    return "html" in response.headers.get("Content-Type", "") or head.startswith((b"<!doctype html", b"<html"))


def _title(response: requests.Response) -> str:
    """An HTML page's title ('' when the body is no HTML page with one)."""
    title = re.search(rb"<title>(.*?)</title>", response.content[:4096], re.I | re.S)
    return title[1].decode(errors="replace").strip()[:80] if title else ""


# ---- ForexFactory -----------------------------------------------------------------------------------

class ForexFactory(_Client):
    """This week's calendar, asked for only more than SPACING seconds after the last request; in between, the
    last calendar read (its rows keep the time they were seen)."""

    feed, name = Feed.FOREXFACTORY, "ForexFactory"
    URL = "https://nfs.faireconomy.media/ff_calendar_thisweek.json"
    SPACING = 150.0  # 5 minutes / 2 requests; more than this apart, no 5-minute window ever holds a third
    BACKOFF = 300.0  # after a refusal: the whole window

    def __init__(self, base_url: str | None = None, **options: Any):
        super().__init__(base_url, **options)
        self._next: float | None = None        # no request goes until the clock has passed this reading
        self._rows: list[Row] | None = None    # the last calendar read
        self._failure: str | None = None       # why the last request failed (None: it did not)

    def week(self, now: dt.datetime) -> list[Row]:
        """This week's events: asked for, or the last calendar read when a request now would be too soon."""
        subject = "this week's calendar"
        started = self.clock()
        if self._next is not None and started <= self._next:
            if self._rows is not None and self._failure is None:
                return self._rows
            raise ConsensusError(self.name, subject, f"not asked again within {self._next - started:.0f} s "
                                 f"(it allows about 2 requests per 5 minutes); the last request: {self._failure}")
        self._next = started + self.SPACING  # a request that fails counts too: it may have reached the server
        try:
            body = self._json(self.URL, subject)
        except RateLimited as exc:
            self._next, self._failure = started + self.BACKOFF, exc.reason
            raise
        except ConsensusError as exc:
            self._failure = exc.reason
            raise
        if not isinstance(body, list):
            self._failure = f"malformed answer (a JSON {type(body).__name__}, not a list of events)"
            raise ConsensusError(self.name, subject, self._failure)
        self._rows, self._failure = _ff_rows(body, now), None
        return self._rows

    def listing(self, at: dt.datetime, now: dt.datetime) -> Listing:
        """This week's rows; an event is listed at its own time, and only this week's are."""
        rows = self.week(now)
        listed = [r.at for r in rows if r.at is not None]  # every row has a time: its date says it
        if not listed:
            return Listing(rows, (at,), "this week's calendar lists no events")
        first = min(listed)
        sunday = first.date() - dt.timedelta(days=(first.weekday() + 1) % 7)  # in New York, as the calendar
        saturday = sunday + dt.timedelta(days=6)
        covered = sunday <= at.astimezone(first.tzinfo).date() <= saturday
        return Listing(rows, (at,), None if covered else f"not in this week's calendar ({sunday} to {saturday})")


def _ff_rows(body: list[Any], now: dt.datetime) -> list[Row]:
    """The calendar's events; one that cannot be read is skipped with a warning (it is some other event, or
    the one looked for is then reported as not listed)."""
    rows, skipped = [], []
    for item in body:
        try:
            at = dt.datetime.fromisoformat(item["date"])
            if at.tzinfo is None:
                raise ValueError(f"no UTC offset in {item['date']!r}")
            rows.append(Row(Feed.FOREXFACTORY, str(item["title"]), str(item["country"]), at,
                            str(item.get("forecast") or ""), str(item.get("previous") or ""), None, now))
        except (KeyError, TypeError, ValueError) as exc:
            skipped.append(f"{str(item)[:80]} ({type(exc).__name__}: {exc})")
    if skipped:
        log.warning("ForexFactory: skipped %d unreadable events: %s", len(skipped), "; ".join(skipped[:5]))
    return rows


# ---- Nasdaq -----------------------------------------------------------------------------------------

_GMT = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


class Nasdaq(_Client):
    """One day's economic events per page; a page read less than `FRESH` seconds ago is not asked for again."""

    feed, name = Feed.NASDAQ, "Nasdaq"
    URL = "https://api.nasdaq.com/api/calendar/economicevents"
    FRESH = 60.0

    def __init__(self, base_url: str | None = None, **options: Any):
        super().__init__(base_url, **options)
        self.session.headers.update({"Origin": "https://www.nasdaq.com", "Referer": "https://www.nasdaq.com/"})
        self._pages: dict[dt.date, tuple[float, list[Row]]] = {}

    def day(self, day: dt.date, now: dt.datetime) -> list[Row]:
        """The events listed on `day`'s page."""
        asked = self.clock()
        cached = self._pages.get(day)
        if cached is not None and asked - cached[0] < self.FRESH:
            return cached[1]
        subject = f"events of {day}"
        body = self._json(self.URL, subject, {"date": day.isoformat()})
        try:
            status = body.get("status") or {}
            if status.get("rCode", 200) != 200:  # Nasdaq's own error, in an HTTP 200 answer
                said = "; ".join(str(m.get("errorMessage", m)) if isinstance(m, dict) else str(m)
                                 for m in status.get("bCodeMessage") or []) or body.get("message") or "no message"
                raise ConsensusError(self.name, subject, f"status {status['rCode']}: {said}")
            items = (body.get("data") or {}).get("rows") or []
            if not isinstance(items, list):
                raise TypeError(f"rows is a JSON {type(items).__name__}")
        except (AttributeError, TypeError) as exc:
            raise ConsensusError(self.name, subject, f"malformed answer ({type(exc).__name__}: "
                                                     f"{str(exc)[:80]})") from None
        rows = _nasdaq_rows(items, day, now)
        self._pages = {d: page for d, page in self._pages.items() if asked - page[0] < self.FRESH}
        self._pages[day] = (asked, rows)
        return rows

    def listing(self, at: dt.datetime, now: dt.datetime) -> Listing:
        """The release's UTC day's page and the next day's (where a row listed a day late is)."""
        utc = at.astimezone(dt.UTC)
        rows = self.day(utc.date(), now) + self.day(utc.date() + dt.timedelta(days=1), now)
        gap = None if rows else f"no events listed for {utc.date()} or the day after yet"
        return Listing(rows, (utc, utc + dt.timedelta(days=1)), gap)


def _nasdaq_rows(items: list[Any], day: dt.date, now: dt.datetime) -> list[Row]:
    """The rows of `day`'s page; `gmt` other than HH:MM ("All Day", "Tentative") is no time of day. A row that
    cannot be read is skipped with a warning, as ForexFactory's are."""
    rows, skipped = [], []
    for item in items:
        try:
            gmt = _GMT.fullmatch(str(item.get("gmt") or "").strip())
            at = dt.datetime.combine(day, dt.time(int(gmt[1]), int(gmt[2])), dt.UTC) if gmt else None
            rows.append(Row(Feed.NASDAQ, html.unescape(str(item["eventName"])), html.unescape(str(item["country"])),
                            at, str(item.get("consensus") or ""), str(item.get("previous") or ""),
                            str(item.get("actual") or ""), now))
        except (AttributeError, KeyError) as exc:
            skipped.append(f"{str(item)[:80]} ({type(exc).__name__}: {exc})")
    if skipped:
        log.warning("Nasdaq %s: skipped %d unreadable events: %s", day, len(skipped), "; ".join(skipped[:5]))
    return rows


CLIENTS: dict[Feed, type[ForexFactory] | type[Nasdaq]] = {Feed.FOREXFACTORY: ForexFactory, Feed.NASDAQ: Nasdaq}
