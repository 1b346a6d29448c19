"""The Bureau of Labor Statistics, the publisher itself: its release schedule and its Public Data API v2.

- https://www.bls.gov/schedule/news_release/bls.ics, keyless: every news release with its date and time, as
  iCalendar events (read by schedule.parse_ics).
- https://api.bls.gov/publicAPI/v2/timeseries/data/: values as strings, newest first. One POST asks for several
  series and years; a GET of one series with `latest=true` for its newest value alone. BLS allows 500 queries a
  day with a registration key, 25 without, and answers a spent quota with HTTP 200 and
  `"status": "REQUEST_NOT_PROCESSED"`.

One `requests.Session` with a browser-like User-Agent carries every request: www.bls.gov refuses the default
python-requests one. With a base URL (`sources.bls.url`) every request https://HOST/PATH goes to URL/HOST/PATH,
like the Yahoo override, so one mirror or stub serves both hosts. Every failure is one exception, `BlsError`,
whose text never holds the key. The client counts each API query it sends (`queries`, `on_query`) and never
retries on its own: a retry spends the daily quota, and a release burst polls again on its own schedule.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests

from macrowatch.config.types import BLS_SERIES_ID, BlsSource
from macrowatch.secrets import mask_param, mask_query_param_in_logs, redact
from macrowatch.sources.base import BlsError
from macrowatch.sources.schedule import Event, parse_ics

__all__ = ["BlsClient", "BlsError", "BlsFetch", "Observation"]

log = logging.getLogger("macrowatch.sources.bls")

SCHEDULE_URL = "https://www.bls.gov/schedule/news_release/bls.ics"
API_URL = "https://api.bls.gov/publicAPI/v2/timeseries/data/"
MAX_SERIES_KEYED, MAX_SERIES_KEYLESS = 50, 25  # series per query, with a key and without (BLS's limits)
_HEADERS = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                          "Chrome/131.0.0.0 Safari/537.36",
            "Accept": "*/*", "Accept-Language": "en-US,en;q=0.5"}
_MONTH = re.compile(r"M(0[1-9]|1[0-2])")  # M13 is the annual average; Q01, S01, A01 other frequencies
_KEY_PARAM = "registrationkey"


class Observation(NamedTuple):
    """One monthly value: the period (its first day, as FRED dates it) and the value."""

    period: dt.date
    value: float


@dataclass(frozen=True)
class BlsFetch:
    """One query's monthly values: every series asked for is in `series` or in `missing`, never both."""

    series: dict[str, list[Observation]] = field(default_factory=dict)  # oldest first
    missing: dict[str, str] = field(default_factory=dict)               # why a series brought no value


def _number(value: Any) -> float | None:
    """A BLS value ("227", "4.1"); None for "-" (not available) or anything else that is no finite number."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _monthly(sid: str, rows: list[dict[str, Any]]) -> tuple[list[Observation], list[str]]:
    """A series' data rows (newest first) as monthly values oldest first, and the periods dropped for a value
    that is no number. M13 (the annual average) and the periods of other frequencies are skipped."""
    values: dict[dt.date, float] = {}
    dropped = []
    for row in rows:
        month = _MONTH.fullmatch(str(row["period"]))
        if month is None:
            continue
        period = dt.date(int(row["year"]), int(month[1]), 1)
        value = _number(row["value"])
        if value is None:
            dropped.append(f"{period:%Y-%m} {row['value']!r}")
        else:
            values[period] = value
    if dropped:
        log.info("BLS %s: dropped values that are no number: %s", sid, ", ".join(dropped))
    return [Observation(p, v) for p, v in sorted(values.items())], dropped


def _refuse_html(response: requests.Response, subject: str) -> None:
    """A proxy, captive portal or maintenance page answers with HTML and status 200: say so plainly."""
    head = response.content[:512].lstrip().lower()
    if "html" in response.headers.get("Content-Type", "") or head.startswith((b"<!doctype html", b"<html")):
        raise BlsError(subject, f"got an HTML page instead of BLS data{_title(response)}")


def _title(response: requests.Response) -> str:
    """ (the page's title), or '' when the body is no HTML page with one."""
    title = re.search(rb"<title>(.*?)</title>", response.content[:4096], re.I | re.S)
    return f" ({title[1].decode(errors='replace').strip()[:80]})" if title else ""


class BlsClient:
    """The BLS schedule and API for the daemon; `queries` counts the API queries sent (`on_query` is told of each)."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None, *, timeout: float = 10.0,
                 session: requests.Session | None = None, on_query: Callable[[], None] | None = None):
        self.api_key = api_key or None
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers.update(_HEADERS)
        self.on_query = on_query
        self.queries = 0
        mask_query_param_in_logs(_KEY_PARAM)

    @classmethod
    def from_config(cls, source: BlsSource, **options) -> BlsClient:
        """A client for config `sources.bls`."""
        return cls(source.api_key, source.url, **options)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.session.close()

    def url(self, url: str) -> str:
        """Where a request for https://HOST/PATH goes: there, or to BASE/HOST/PATH with a base URL."""
        if not self.base_url:
            return url
        parts = urlsplit(url)
        return f"{self.base_url}/{parts.netloc}{parts.path}"

    def schedule(self) -> list[Event]:
        """Every readable release event of the BLS schedule (bls.ics), in file order."""
        response = self._send("GET", SCHEDULE_URL, "schedule")
        _refuse_html(response, "schedule")
        return parse_ics(response.content.decode("utf-8", errors="replace"))

    def latest(self, series_ids: Sequence[str], start_year: int, end_year: int) -> BlsFetch:
        """The monthly values of each series from `start_year` to `end_year`: one POST for them all."""
        ids = self._checked(series_ids)
        if start_year > end_year:
            raise ValueError(f"start_year {start_year} is after end_year {end_year}")
        body: dict[str, Any] = {"seriesid": ids, "startyear": str(start_year), "endyear": str(end_year)}
        if self.api_key:
            body[_KEY_PARAM] = self.api_key
        subject = ", ".join(ids)
        return self._fetch(self._query("POST", API_URL, subject, json=body), ids, subject)

    def newest(self, series_id: str) -> BlsFetch:
        """The newest value of one series (a GET with latest=true): the smallest look for a new period."""
        [sid] = self._checked([series_id])
        params = {"latest": "true"} | ({_KEY_PARAM: self.api_key} if self.api_key else {})
        return self._fetch(self._query("GET", API_URL + sid, sid, params=params), [sid], sid)

    # ---- transport ----------------------------------------------------------------------------------

    def _checked(self, series_ids: Sequence[str]) -> list[str]:
        """The ids, each once; a bad id never reaches a URL or a body, and too many for one query are refused."""
        ids = list(dict.fromkeys(series_ids))
        bad = [s for s in ids if not (isinstance(s, str) and BLS_SERIES_ID.fullmatch(s))]
        if not ids or bad:
            raise ValueError(f"not BLS series ids: {bad!r}" if bad else "no series to ask BLS for")
        most = MAX_SERIES_KEYED if self.api_key else MAX_SERIES_KEYLESS
        if len(ids) > most:
            raise ValueError(f"{len(ids)} series in one query: BLS takes at most {most} "
                             f"{'with' if self.api_key else 'without'} a key")
        return ids

    def _query(self, method: str, url: str, subject: str, **kwargs: Any) -> requests.Response:
        """One API query, counted before it goes: one that fails on the way may still have reached BLS."""
        self.queries += 1
        if self.on_query is not None:
            self.on_query()
        return self._send(method, url, subject, **kwargs)

    def _send(self, method: str, url: str, subject: str, **kwargs: Any) -> requests.Response:
        """The 200 response; any other outcome is a BlsError."""
        host = urlsplit(url).netloc
        log.debug("%s %s", method, self.url(url))
        try:
            response = self.session.request(method, self.url(url), timeout=self.timeout, **kwargs)
        except requests.Timeout:  # before ConnectionError: ConnectTimeout is both
            raise BlsError(subject, f"no answer from {host} within {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            why = "connection refused" if "refused" in str(exc).lower() else "connection failed"
            raise BlsError(subject, f"cannot reach {host}: {why}") from None
        except requests.RequestException as exc:
            raise BlsError(subject, f"request failed: {self._mask(str(exc))}") from None
        status = response.status_code
        if status != 200:
            what = ("rate limited (HTTP 429)" if status == 429 else
                    f"server error (HTTP {status})" if status >= 500 else f"HTTP {status}")
            raise BlsError(subject, f"{what} from {host}{self._mask(_title(response))}")
        return response

    def _fetch(self, response: requests.Response, ids: list[str], subject: str) -> BlsFetch:
        """The series of an API answer; an answer that is no success is a BlsError with BLS's own words."""
        _refuse_html(response, subject)
        try:
            body = response.json()
            status, messages = body.get("status"), body.get("message") or []
            messages = [self._mask(str(m)) for m in (messages if isinstance(messages, list) else [messages])]
            if status != "REQUEST_SUCCEEDED":
                raise BlsError(subject, f"{status or 'no status'}: {'; '.join(messages) or 'no message'}")
            answered = {str(s["seriesID"]): _monthly(str(s["seriesID"]), s["data"]) for s in body["Results"]["series"]}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BlsError(subject, f"malformed answer from BLS ({type(exc).__name__}: "
                                    f"{self._mask(str(exc))[:120]})") from None
        series, missing = {}, {}
        for sid in ids:
            observations, dropped = answered.get(sid, ([], []))
            said = next((m for m in messages if re.search(rf"\b{sid}\b", m)), None)  # "Series does not exist ..."
            if observations:
                series[sid] = observations
            elif said:
                missing[sid] = said
            elif sid not in answered:
                missing[sid] = "not in BLS's answer"
            else:
                missing[sid] = "no monthly value" + (f" (no number: {', '.join(dropped)})" if dropped else "")
        for sid, why in missing.items():
            log.warning("BLS %s: %s", sid, why)
        return BlsFetch(series, missing)

    def _mask(self, text: str) -> str:
        """`text` with every registrationkey= value, and the key itself, as ***."""
        return redact(mask_param(text, _KEY_PARAM), [self.api_key] if self.api_key else [])
