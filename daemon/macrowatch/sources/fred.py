"""FRED: every vintage of a series (fredapi), the release calendar, and the keyless fredgraph CSV.

The only module that imports fredapi. Every request goes through one bounded path (`_Http`): a rolling-window
rate limiter, a per-call timeout, bounded retries with exponential backoff on 429 and 5xx, and failures turned
into one exception, `FredError`, whose text never holds the API key.

URLs: `base_url` (config `sources.fred.url`, default https://api.stlouisfed.org/fred) is fredapi's `root_url`,
and `/release/dates` hangs off it too. The keyless CSV lives on the web host: for the default API that is
https://fred.stlouisfed.org/graph/fredgraph.csv; for an override it is the override's origin (scheme://host:port)
+ /graph/fredgraph.csv, so one stub or mirror at http://HOST:PORT/fred serves both.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import io
import logging
import math
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import requests
from fredapi import Fred

from macrowatch.config.types import FredSource, Release
from macrowatch.model import Vintage
from macrowatch.secrets import mask_param, mask_query_param_in_logs, redact
from macrowatch.sources.base import FredError

__all__ = ["Changes", "FredClient", "FredError", "RateLimiter", "detect", "graph_csv_url", "mask"]

log = logging.getLogger("macrowatch.sources.fred")

DEFAULT_URL = "https://api.stlouisfed.org/fred"
DEFAULT_GRAPH_URL = "https://fred.stlouisfed.org/graph/fredgraph.csv"
_SERIES_ID = re.compile(r"^[A-Za-z0-9_.]{1,64}$")
# The XML document each fredapi endpoint must answer with (path below base_url -> root tag).
_ROOT_TAGS = {"/series/observations": "observations", "/series": "seriess", "/series/vintagedates": "vintage_dates"}


def mask(text: str, key: str | None = None) -> str:
    """`text` with every `api_key=` value, and the key itself, replaced by *** (secrets.py's rules)."""
    return redact(mask_param(text, "api_key"), [key] if key else [])


class RateLimiter:
    """At most `limit` acquisitions in any rolling window of `per` seconds, for each (limit, per) given.

    A token bucket whose tokens come back exactly `per` seconds after they were spent, so the bound holds for
    every window (a refill-rate bucket lets a full bucket plus a minute of refill through in one minute).
    """

    def __init__(self, *windows: tuple[int, float], clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], bool | None] = time.sleep):
        self._windows = [(limit, per, collections.deque()) for limit, per in windows or ((120, 60.0),)]
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()

    @classmethod
    def for_fred(cls, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], bool | None] = time.sleep) -> RateLimiter:
        """FRED's documented 120 a minute, plus 2 a second (reported enforced since 2026)."""
        return cls((120, 60.0), (2, 1.0), clock=clock, sleep=sleep)

    def acquire(self) -> bool:
        """Wait until a request may go, then count it: True. False, with nothing counted, when the sleep was
        interrupted (it returned True: a stop, see clock.stop_aware_sleep): the request is not to be sent."""
        with self._lock:  # held while sleeping: waiting callers queue in order
            while (wait := self._wait(self._clock())) > 0:
                if self._sleep(wait):
                    return False
            now = self._clock()
            for _, _, spent in self._windows:
                spent.append(now)
            return True

    def _wait(self, now: float) -> float:
        """Seconds until every window has a token free."""
        wait = 0.0
        for limit, per, spent in self._windows:
            while spent and spent[0] <= now - per:
                spent.popleft()
            if len(spent) >= limit:
                wait = max(wait, spent[0] + per - now)
        return wait


class _Http:
    """One GET: rate-limited, timed out, retried on 429/5xx with backoff; any failure is a FredError.

    The timeout bounds the connect and each wait for bytes (requests' semantics), which is what a silent or
    stalled server needs; a server trickling bytes slower than that could still take longer in total.
    Refused connections and timeouts are not retried: the caller polls again on its own schedule. A sleep that
    returns True (interrupted by a stop) ends the retries: the last failure is the answer.
    """

    def __init__(self, key: str | None, timeout: float, limiter: RateLimiter, sleep: Callable[[float], bool | None],
                 retries: int, backoff: float, session: requests.Session | None):
        self.key, self.timeout, self.limiter, self.sleep = key, timeout, limiter, sleep
        self.retries, self.backoff = retries, backoff
        self.session = session or requests.Session()

    def get(self, url: str, params: dict[str, str], subject: str) -> requests.Response:
        """The 200 response, or FredError after at most `retries` retries."""
        for attempt in range(self.retries + 1):
            if not self.limiter.acquire():
                raise FredError(subject, "not sent: stopping")
            response = self._send(url, params, subject)
            status = response.status_code
            if status == 200:
                return response
            if not (status == 429 or status >= 500) or attempt == self.retries:
                break
            delay = self._delay(attempt, response)
            log.warning("FRED %s: HTTP %d, retry %d of %d in %.1f s", subject, status, attempt + 1, self.retries,
                        delay)
            if self.sleep(delay):
                break
        raise FredError(subject, self._failure(response, attempt + 1))

    def _send(self, url: str, params: dict[str, str], subject: str) -> requests.Response:
        host = urlsplit(url).netloc
        log.debug("GET %s %s", mask(url, self.key), {k: v for k, v in params.items() if k != "api_key"})
        try:
            return self.session.get(url, params=params, timeout=self.timeout)
        except requests.Timeout:  # before ConnectionError: ConnectTimeout is both
            raise FredError(subject, f"no answer from {host} within {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            why = "connection refused" if "refused" in str(exc).lower() else "connection failed"
            raise FredError(subject, f"cannot reach {host}: {why}") from None
        except requests.RequestException as exc:
            raise FredError(subject, f"request failed: {mask(str(exc), self.key)}") from None

    def _delay(self, attempt: int, response: requests.Response) -> float:
        """Exponential backoff, or the server's Retry-After when longer; capped at a minute."""
        after = response.headers.get("Retry-After", "")
        return min(max(self.backoff * 2 ** attempt, float(after) if after.isdigit() else 0.0), 60.0)

    def _failure(self, response: requests.Response, attempts: int) -> str:
        status = response.status_code
        what = ("rate limited (HTTP 429)" if status == 429 else
                f"server error (HTTP {status})" if status >= 500 else f"HTTP {status}")
        if attempts > 1:
            what += f" after {attempts} attempts"
        detail = _error_message(response)
        if detail and "api_key" in detail:
            detail += " (check sources.fred.api_key)"
        return mask(f"{what}: {detail}" if detail else what, self.key)


def _error_message(response: requests.Response) -> str | None:
    """FRED's own error text from a JSON or XML error body, if the body is one."""
    try:
        if "json" in response.headers.get("Content-Type", ""):
            return str(response.json().get("error_message") or "") or None
        root = ET.fromstring(response.content)
    except (ValueError, AttributeError, ET.ParseError):
        return None
    return root.get("message") if root.tag == "error" else None


def _refuse_html(response: requests.Response, subject: str) -> None:
    """A proxy, captive portal or maintenance page answers with HTML and status 200: say so plainly."""
    head = response.content[:512].lstrip().lower()
    if "html" in response.headers.get("Content-Type", "") or head.startswith((b"<!doctype html", b"<html")):
        title = re.search(rb"<title>(.*?)</title>", response.content[:4096], re.I | re.S)
        shown = f" ({title.group(1).decode(errors='replace').strip()[:80]})" if title else ""
        raise FredError(subject, f"got an HTML page instead of FRED data{shown}")


def _xml_root(response: requests.Response, subject: str, expected: str | None) -> ET.Element:
    """The XML document of a 200 response; an error document or another document is a FredError."""
    _refuse_html(response, subject)
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError as exc:
        raise FredError(subject, f"malformed XML from FRED ({exc})") from None
    if root.tag == "error":
        raise FredError(subject, mask(root.get("message") or "error document without a message"))
    if expected and root.tag != expected:
        raise FredError(subject, f"unexpected XML document <{root.tag}>, expected <{expected}>")
    count = root.get("count", "")
    if count.isdigit() and int(count) > len(root):
        # FRED cuts at `limit` (100000) rows, oldest periods first, and fredapi does not page: the newest
        # periods, the ones a release brings, would be the ones missing.
        raise FredError(subject, f"FRED sent {len(root)} of {count} rows (its limit): ask for fewer periods (since=)")
    return root


class _BoundedFred(Fred):
    """fredapi with its single fetch method replaced by `_Http`: fredapi still builds URLs and parses rows.

    fredapi reads every URL through `Fred.__fetch_data` (name-mangled `_Fred__fetch_data`) with a bare
    `urlopen` and no timeout. Overriding that one method in a subclass bounds each call per instance, with no
    process-wide state: `socket.setdefaulttimeout` would leak into every thread, and patching
    `fredapi.fred.urlopen` would change every Fred in the process. The cost is reliance on a private name,
    checked below, so a fredapi upgrade that renames it fails loudly here and in tests/test_fred.py.
    """

    def __init__(self, http: _Http, root_url: str, api_key: str):
        if not callable(getattr(Fred, "_Fred__fetch_data", None)):
            raise RuntimeError("fredapi no longer has Fred.__fetch_data: update macrowatch.sources.fred")
        # Fred.__init__ is skipped on purpose: it falls back to $FRED_API_KEY and, with HTTP_PROXY set,
        # installs a process-wide urllib opener. These are the attributes it would set.
        self.api_key, self.proxies, self.root_url, self._http = api_key, None, root_url, http

    def _Fred__fetch_data(self, url: str) -> ET.Element:  # fredapi's private name, mangled
        parts = urlsplit(url)
        subject = parse_qs(parts.query).get("series_id", ["FRED"])[0]
        response = self._http.get(url, {"api_key": self.api_key}, subject)
        expected = _ROOT_TAGS.get(parts.path[len(urlsplit(self.root_url).path):])
        return _xml_root(response, subject, expected)


@dataclass(frozen=True)
class Changes:
    """What a fetch brought that an earlier one had not: first prints and revisions."""

    new: tuple[Vintage, ...] = ()      # a period seen for the first time (its first vintage): a release landed
    revised: tuple[Vintage, ...] = ()  # a later vintage of a period, with a value different from the one before

    def __bool__(self) -> bool:
        return bool(self.new or self.revised)


def detect(old: Iterable[Vintage], new: Iterable[Vintage]) -> Changes:
    """Compare two fetches of one series: which periods are new, which vintages revise a value."""
    known: dict[dt.date, dict[dt.date, float]] = {}
    for v in old:
        known.setdefault(v.date, {})[v.realtime_start] = v.value
    fresh: dict[dt.date, dict[dt.date, float]] = {}
    for v in new:
        if v.realtime_start not in known.get(v.date, {}):
            fresh.setdefault(v.date, {})[v.realtime_start] = v.value
    firsts, revisions = [], []
    for period in sorted(fresh):
        merged = sorted({**known.get(period, {}), **fresh[period]}.items())
        for i, (start, value) in enumerate(merged):
            if start not in fresh[period]:
                continue
            if i == 0 and period not in known:
                firsts.append(Vintage(period, start, value))
            elif i > 0 and value != merged[i - 1][1]:  # same value again: re-seen (keyless CSV), not revised
                revisions.append(Vintage(period, start, value))
    return Changes(tuple(firsts), tuple(revisions))


def graph_csv_url(base_url: str) -> str:
    """The fredgraph CSV URL that goes with an API base URL (see the module docstring)."""
    if base_url.rstrip("/") == DEFAULT_URL:
        return DEFAULT_GRAPH_URL
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}/graph/fredgraph.csv"


def _day(value: object) -> dt.date:
    """A date from fredapi's frame (datetime or pandas Timestamp; NaT is not one)."""
    if isinstance(value, dt.datetime) and value == value:
        return value.date()
    raise ValueError(f"not a date: {value!r}")


def _number(value: object) -> float | None:
    """A value from fredapi's frame; None for FRED's "." (NaN, or NaT: pandas 3 infers such rows as dates).

    An infinite value ("1e999" parses as one) is garbage, dropped like a missing value: the store refuses it
    with a ValueError that would end a release's polling.
    """
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


class FredClient:
    """FRED for the daemon: vintages of a series, release dates, and what changed between two fetches."""

    detect = staticmethod(detect)

    def __init__(self, api_key: str | None, base_url: str | None = None, *, timeout: float = 20.0,
                 limiter: RateLimiter | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], bool | None] = time.sleep, retries: int = 3, backoff: float = 2.0,
                 session: requests.Session | None = None):
        self.api_key = api_key or None
        self.base_url = (base_url or DEFAULT_URL).rstrip("/")
        self.graph_url = graph_csv_url(self.base_url)
        limiter = limiter or RateLimiter.for_fred(clock=clock, sleep=sleep)
        self._http = _Http(self.api_key, timeout, limiter, sleep, retries, backoff, session)
        self._api = _BoundedFred(self._http, self.base_url, self.api_key) if self.api_key else None
        self._warned_keyless = False
        mask_query_param_in_logs("api_key")  # a daemon run at DEBUG would log the key with every request

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.session.close()

    @classmethod
    def from_config(cls, source: FredSource, **options) -> FredClient:
        """A client for config `sources.fred`."""
        return cls(source.api_key, source.url, **options)

    def vintages(self, series: str, since: dt.date | None = None, *, today: dt.date | None = None) -> list[Vintage]:
        """Every vintage of the periods dated `since` or later, sorted by (date, realtime_start).

        Keyless, the fredgraph CSV has only the latest values: each comes back with realtime_start=`today`
        (required then), and only comparing fetches (`detect`, a store keeping the first day seen) yields vintages.
        """
        if not _SERIES_ID.match(series):
            raise FredError(repr(series), "not a FRED series id")
        if not self.api_key:
            return self._csv_vintages(series, since, today)
        # fredapi's get_series_all_releases takes no observation_start; its URL is plain string formatting, so
        # the parameter rides on the (validated) series id and FRED sends only the periods asked for.
        query = series if since is None else f"{series}&observation_start={since.isoformat()}"
        try:
            frame = self._api.get_series_all_releases(query)
            if len(frame) == 0:  # fredapi's frame of no rows has no columns either
                raise FredError(series, "no observations" + (f" dated {since.isoformat()} or later" if since else ""))
            rows = [(_day(d), _day(rs), _number(v))
                    for d, rs, v in zip(frame["date"], frame["realtime_start"], frame["value"], strict=True)]
        except (KeyError, ValueError, TypeError) as exc:
            raise FredError(series, f"malformed observations ({type(exc).__name__}: "
                                    f"{mask(str(exc), self.api_key)[:120]})") from None
        return _vintages(series, rows, since)

    def _csv_vintages(self, series: str, since: dt.date | None, today: dt.date | None) -> list[Vintage]:
        if today is None:
            raise ValueError("keyless FRED needs today=: the CSV has no vintages, values are stamped when seen")
        if not self._warned_keyless:
            self._warned_keyless = True
            log.warning("no FRED API key (sources.fred.api_key): using the keyless fredgraph CSV, which has no "
                        "vintages (a value counts from the day it is first seen, earlier revisions are unknown) "
                        "and no release calendar (explicit release dates only)")
        params = {"id": series} if since is None else {"id": series, "cosd": since.isoformat()}
        response = self._http.get(self.graph_url, params, series)
        _refuse_html(response, series)
        rows = [(d, today, v) for d, v in _parse_graph_csv(response.text, series)]
        if not rows:
            raise FredError(series, "no observations in the fredgraph CSV")
        return _vintages(series, rows, since)

    def release_dates(self, release_id: int, start: dt.date, end: dt.date) -> list[dt.date]:
        """FRED's calendar for a release between `start` and `end`, future (scheduled) dates included."""
        subject = f"release {release_id}"
        if not self.api_key:
            raise FredError(subject, "the release calendar needs an API key (sources.fred.api_key)")
        params = {"release_id": str(release_id), "file_type": "json", "include_release_dates_with_no_data": "true",
                  "realtime_start": start.isoformat(), "realtime_end": end.isoformat(), "api_key": self.api_key}
        response = self._http.get(f"{self.base_url}/release/dates", params, subject)
        _refuse_html(response, subject)
        try:
            body = response.json()
            if isinstance(body, dict) and body.get("error_message"):
                raise FredError(subject, mask(str(body["error_message"]), self.api_key))
            days = {dt.date.fromisoformat(item["date"]) for item in body["release_dates"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise FredError(subject, f"malformed release dates ({type(exc).__name__}: "
                                     f"{mask(str(exc), self.api_key)[:120]})") from None
        return sorted(d for d in days if start <= d <= end)

    def release_schedule(self, release: Release, start: dt.date, end: dt.date) -> list[dt.date]:
        """The config's explicit dates merged with FRED's calendar (explicit alone without a release id or key)."""
        days = {d for d in release.dates if start <= d <= end}
        if release.fred_release_id is not None and self.api_key:
            days.update(self.release_dates(release.fred_release_id, start, end))
        return sorted(days)


def _vintages(series: str, rows: list[tuple[dt.date, dt.date, float | None]],
              since: dt.date | None) -> list[Vintage]:
    """Rows to sorted vintages: "." dropped, periods before `since` dropped (in case the server ignored it)."""
    rows = [row for row in rows if since is None or row[0] >= since]
    kept = sorted((Vintage(d, rs, v) for d, rs, v in rows if v is not None), key=lambda v: (v.date, v.realtime_start))
    if not kept:
        raise FredError(series, "only missing values ('.') in the answer" if rows else
                        f"no observations dated {since} or later")
    log.debug("FRED %s: %d vintages of %d periods", series, len(kept), len({v.date for v in kept}))
    return kept


def _parse_graph_csv(text: str, series: str) -> list[tuple[dt.date, float | None]]:
    """(date, value) rows of a fredgraph CSV: header `observation_date,ID` (since 2024-12) or `DATE,ID`."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    if len(header) < 2 or header[0] not in ("observation_date", "DATE") or header[1].upper() != series.upper():
        raise FredError(series, f"malformed fredgraph CSV (header {','.join(header)[:80] or 'missing'})")
    rows = []
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            # missing values: "." in the old format, empty in the current one
            value = None if row[1].strip() in ("", ".") else _number(float(row[1]))
            rows.append((dt.date.fromisoformat(row[0]), value))
        except (ValueError, IndexError):
            raise FredError(series, f"malformed fredgraph CSV at line {line}: {','.join(row)[:80]}") from None
    return rows
