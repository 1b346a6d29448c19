"""Yahoo prices through yfinance (the only module importing it): daily bars on the exchange calendar, latest prices.

One `requests.Session`, made at start-up, carries every request: yfinance keeps its session in a process-wide
singleton, and a call without `session=` would swap in a curl_cffi session that reaches the internet unseen by
Python socket guards. With a base URL (`sources.yahoo.url`) its adapter sends https://HOST/PATH to BASE/HOST/PATH.

yf.download never raises; it logs failed tickers and leaves their columns NaN. So the adapter logs each exchange
(status, transport error, Yahoo's error text) and a handler collects yfinance's per-ticker error lines: together
they give each failed instrument a clear reason. 429 and 5xx are retried with exponential backoff; nothing
raises out of `daily()` or `latest()`.
"""

from __future__ import annotations

import ast
import datetime as dt
import logging
import math
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
import yfinance as yf
from requests.adapters import HTTPAdapter
from yfinance.data import YfData

from macrowatch.config.types import Instrument
from macrowatch.model import Bar
from macrowatch.sources import calendar
from macrowatch.sources.base import CalendarFor, LatestFetch, PriceFetch, Quote

__all__ = ["LatestFetch", "PriceFetch", "PriceSource", "Quote"]

log = logging.getLogger("macrowatch.sources.prices")

# Yahoo answers the default python-requests User-Agent with 429s; yfinance's own requests fallback does the same.
_HEADERS = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                          "Chrome/131.0.0.0 Safari/537.36",
            "Accept": "*/*", "Accept-Language": "en-US,en;q=0.5"}
_PRICES = ("Open", "High", "Low", "Close")


# ---- transport ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Exchange:
    """One request as our adapter saw it: the Yahoo URL, the status (None: no answer) and what was wrong."""

    url: str
    status: int | None
    problem: str | None

    @property
    def symbol(self) -> str | None:
        path = urlsplit(self.url).path
        for marker in ("/v8/finance/chart/", "/v10/finance/quoteSummary/"):
            if marker in path:
                return unquote(path.split(marker, 1)[1]).upper()
        return None


class _YahooAdapter(HTTPAdapter):
    """Rewrites https://HOST/PATH to BASE/HOST/PATH (when a base is set), bounds timeouts, logs exchanges."""

    def __init__(self, base: str | None, timeout: float, wire: list[_Exchange]) -> None:
        super().__init__(max_retries=0)  # retries are ours, per poll, with backoff
        self._base, self._timeout, self._wire = base, timeout, wire

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        """Send one request (the signature is requests' own)."""
        original, out = request.url, request
        if self._base:
            parts = urlsplit(original)
            out = request.copy()
            out.url = f"{self._base}/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")
            if requests.utils.should_bypass_proxies(out.url, no_proxy=None):
                proxies = {}  # the session chose proxies for Yahoo's host, not for the mirror
        # yfinance hard-codes 10 s for the tz probe and 30 s for the cookie and crumb: our budget wins.
        timeout = self._timeout if timeout is None else min(float(timeout), self._timeout)
        try:
            resp = super().send(out, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        except requests.RequestException as exc:
            self._wire.append(_Exchange(original, None, _transport_problem(exc, self._timeout)))
            raise
        resp.url, resp.request = original, request  # yfinance, its consent check and the cookie jar see Yahoo
        self._wire.append(_Exchange(original, resp.status_code, _body_problem(resp)))
        return resp

    def close(self) -> None:
        """Close the kept-alive connections now. urllib3 2's PoolManager.clear() only drops its pools, which close
        their connections when garbage collected, and a response still referenced (yfinance holds on to some) keeps
        its pool, and so the socket, alive."""
        for manager in (self.poolmanager, *self.proxy_manager.values()):
            for key in manager.pools.keys():  # noqa: SIM118 - the container refuses iteration; keys() is a copy
                pool = manager.pools.get(key)
                if pool is not None:
                    pool.close()  # a request still under way closes its connection when it ends
        super().close()


def _transport_problem(exc: Exception, timeout: float) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer from Yahoo within {timeout:g} s"
    text = str(exc)
    if "refused" in text.lower():
        return "connection to Yahoo refused"
    if "RemoteDisconnected" in text or "aborted" in text.lower():
        return "Yahoo closed the connection without an answer"
    return f"connection to Yahoo failed ({type(exc).__name__})"


def _body_problem(resp: requests.Response) -> str | None:
    """What is wrong with a Yahoo API answer: Yahoo's own error text, a malformed or an empty chart body."""
    path = urlsplit(resp.url).path
    if "/finance/" not in path or resp.status_code == 429 or resp.status_code >= 500:
        return None  # the status says it all (and those bodies are plain text or HTML)
    try:
        body = resp.json()
        top = next(iter(body.values()))
        error = top.get("error")
        if error:
            return str(error.get("description") or error.get("code"))
        result = top.get("result")
        if "/v8/finance/chart/" in path and not (result and result[0].get("timestamp")):
            return "an empty result (no bars)"
    except Exception:
        return "a malformed response (not the chart JSON)"
    return None


def _session(base: str | None, timeout: float, wire: list[_Exchange]) -> requests.Session:
    """The one requests.Session every yfinance call gets; never curl_cffi, so socket guards see it all."""
    session = requests.Session()
    session.headers.update(_HEADERS)
    adapter = _YahooAdapter(base, timeout, wire)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class _YfErrors(logging.Handler):
    """Collects the per-ticker failures yf.download only logs: "['^GSPC', 'X']: reason" and "$X: reason"."""

    _BATCH = re.compile(r"^(\[.*?\]): (.*)$", re.S)
    _ONE = re.compile(r"^\$(\S+): (.*)$", re.S)

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_symbol: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().strip()
        log.debug("yfinance: %s", text)
        if m := self._BATCH.match(text):
            try:
                symbols = ast.literal_eval(m[1])
            except (ValueError, SyntaxError):
                return
            self.by_symbol.update({str(s).upper(): m[2].strip() for s in symbols})
        elif m := self._ONE.match(text):
            self.by_symbol.setdefault(m[1].upper(), m[2].strip())


@contextmanager
def _yfinance_quietly() -> Iterator[_YfErrors]:
    """Capture yfinance's error lines and silence the pandas deprecations raised inside it."""
    handler, logger = _YfErrors(), logging.getLogger("yfinance")
    logger.addHandler(handler)
    # Its error lines reach our log once, as the per-instrument reasons (and at debug level verbatim).
    propagate, logger.propagate = logger.propagate, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


# ---- the source -----------------------------------------------------------------------------------

class PriceSource:
    """Daily bars and latest prices for many instruments, one batched yfinance call per poll."""

    def __init__(self, base_url: str | None = None, cache_dir: str | Path | None = None, timeout: float = 10.0,
                 *, attempts: int = 3, backoff: float = 2.0, sleep: Callable[[float], bool | None] = time.sleep,
                 intraday_grace: dt.timedelta = dt.timedelta(minutes=30)) -> None:
        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            # Process-wide, and only effective before yfinance first opens its tz/cookie databases.
            yf.set_tz_cache_location(str(cache_dir))
        self.timeout, self.attempts, self.backoff, self._sleep = timeout, max(1, attempts), backoff, sleep
        self.intraday_grace = intraday_grace
        self._wire: list[_Exchange] = []
        self.session = _session(base_url.rstrip("/") if base_url else None, timeout, self._wire)
        # yfinance's singleton (cookie strategy, crumb, hide_exceptions flag) is not safe for overlapping polls.
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the session's kept-alive connections (a leadership's end: the next one makes its own source).

        Not under the poll lock: a stop that abandons a poll (a lost leadership) must not wait out its retries.
        """
        self.session.close()

    def daily(self, instruments: Mapping[str, Instrument], start: dt.date, now: dt.datetime,
              calendar_for: CalendarFor) -> PriceFetch:
        """Closed daily bars from `start` up to `now` of every instrument; a forming session's bar is left out."""
        try:
            end = now.date() + dt.timedelta(days=2)  # exclusive, and past `now` in any exchange's timezone
            frames, failed = self._download(_symbols(instruments), start=start, end=end, interval="1d")
            rejected: list[str] = []
            bars, errors = _each(instruments, frames, failed, lambda iid, inst, frame: _closed_bars(
                frame, f"{iid} ({inst.symbol})", calendar_for(inst), start, now, rejected))
            return PriceFetch(bars, errors, rejected)
        except Exception as exc:  # the scheduler must never see an exception from a price poll
            log.exception("prices: daily poll failed")
            return PriceFetch(errors={iid: f"{i.symbol}: poll failed: {exc!r}" for iid, i in instruments.items()})

    def latest(self, instruments: Mapping[str, Instrument], now: dt.datetime, calendar_for: CalendarFor,
               interval: str = "1m", period: str = "1d") -> LatestFetch:
        """The newest valid intraday price of every instrument (and when it was last known), one batched call."""
        try:
            frames, failed = self._download(_symbols(instruments), period=period, interval=interval)
            rejected: list[str] = []
            step = dt.timedelta(minutes=int(interval[:-1]) * (60 if interval.endswith("h") else 1))
            quotes, errors = _each(instruments, frames, failed, lambda iid, inst, frame: _fresh_quote(
                frame, f"{iid} ({inst.symbol})", calendar_for(inst), now, step, self.intraday_grace, rejected))
            return LatestFetch(quotes, errors, rejected)
        except Exception as exc:
            log.exception("prices: intraday poll failed")
            return LatestFetch(errors={iid: f"{i.symbol}: poll failed: {exc!r}" for iid, i in instruments.items()})

    # ---- the batched call -------------------------------------------------------------------------

    def _download(self, symbols: list[str], **kwargs: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """Frames per symbol and reasons per failed symbol; 429 and 5xx are retried with backoff (until a stop:
        a sleep that returns True was interrupted, see clock.stop_aware_sleep)."""
        frames: dict[str, Any] = {}
        failed: dict[str, str] = {}
        pending = symbols
        if not symbols:  # yf.download of nothing fails to concatenate
            return frames, failed
        for attempt in range(1, self.attempts + 1):
            got, why, transient = self._download_once(pending, **kwargs)
            frames.update(got)
            failed.update(why)
            pending = sorted(transient)
            if not pending:
                break
            if attempt == self.attempts:
                for symbol in pending:
                    failed[symbol] += f"; gave up after {attempt} attempts"
                break
            delay = self.backoff * 2 ** (attempt - 1)
            log.warning("prices: retrying %s in %g s (attempt %d of %d failed: %s)", ", ".join(pending), delay,
                        attempt, self.attempts, "; ".join(f"{s}: {why[s]}" for s in pending))
            if self._sleep(delay):  # interrupted: stopping (clock.stop_aware_sleep), no more attempts
                for symbol in pending:
                    failed[symbol] += f"; not retried: stopping after attempt {attempt}"
                break
        return frames, failed

    def _download_once(self, symbols: list[str], **kwargs: Any) -> tuple[dict[str, Any], dict[str, str], set[str]]:
        """One yf.download of all symbols: (frames, reasons, symbols worth retrying)."""
        with self._lock:
            # The in-process cache answers a repeated past range (and a cached error) with no request.
            YfData.cache_get.cache_clear()
            self._wire.clear()
            with _yfinance_quietly() as logged:
                # threads=False: polls are few symbols and not latency-bound; yfinance's threaded path shares
                # one requests.Session and flips a global hide_exceptions flag across threads, and sequential
                # requests keep the wire log (and our error attribution) unambiguous.
                data = yf.download(symbols, session=self.session, group_by="ticker", auto_adjust=False,
                                   actions=False, threads=False, progress=False, timeout=self.timeout,
                                   multi_level_index=True, **kwargs)
            wire = list(self._wire)
        frames, why, transient = {}, {}, set()
        for symbol in symbols:
            frame = _ticker_frame(data, symbol)
            if frame is not None:
                frames[symbol] = frame
                continue
            why[symbol], retry = _reason(symbol, wire, logged.by_symbol.get(symbol))
            if retry:
                transient.add(symbol)
        return frames, why, transient


# ---- pure helpers -----------------------------------------------------------------------------------

class _Failed(Exception):
    """An instrument's poll failed for the reason given."""


def _symbols(instruments: Mapping[str, Instrument]) -> list[str]:
    return sorted({inst.symbol.upper() for inst in instruments.values()})


def _ticker_frame(data: Any, symbol: str) -> Any:
    """The symbol's rows of a group_by="ticker" download, or None when yfinance got nothing for it."""
    columns = getattr(data, "columns", None)
    if columns is None or getattr(columns, "nlevels", 1) != 2 or symbol not in columns.get_level_values(0):
        return None
    frame = data[symbol].dropna(how="all")  # rows that only other tickers had
    return frame if len(frame) and frame[[c for c in _PRICES if c in frame]].notna().any().any() else None


def _reason(symbol: str, wire: list[_Exchange], logged: str | None) -> tuple[str, bool]:
    """Why a symbol got no data, and whether another attempt may help (429 and 5xx)."""
    mine = [e for e in wire if e.symbol == symbol] or [e for e in wire if e.status is None]
    statuses = [e.status for e in mine if e.status is not None]
    if 429 in statuses or (logged and "Too Many Requests" in logged):
        return "rate limited by Yahoo (HTTP 429)", True
    if server := [s for s in statuses if s >= 500]:
        return f"Yahoo server error (HTTP {server[-1]})", True
    for e in reversed(mine):
        if e.status is None:
            return str(e.problem), False
    for e in sorted(reversed(mine), key=lambda e: "/chart/" not in e.url):  # the chart's own words first
        if e.status == 404:
            return f"unknown to Yahoo (HTTP 404: {e.problem or 'not found'})", False
    for e in reversed(mine):
        if e.problem:
            return f"Yahoo sent {e.problem}", False
    if logged:
        return f"yfinance: {logged}", False
    return "Yahoo sent no valid bars (every value missing)", False


def _each(instruments: Mapping[str, Instrument], frames: dict[str, Any], failed: dict[str, str],
          make: Callable[[str, Instrument, Any], Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """`make(id, instrument, frame)` per instrument; a missing frame or any exception becomes its error."""
    values, errors = {}, {}
    for iid, inst in instruments.items():
        try:
            frame = frames.get(inst.symbol.upper())
            if frame is None:
                raise _Failed(failed.get(inst.symbol.upper(), "no data from Yahoo"))
            values[iid] = make(iid, inst, frame)
        except Exception as exc:
            errors[iid] = f"{inst.symbol}: {exc}" if isinstance(exc, _Failed) else \
                f"{inst.symbol}: {type(exc).__name__}: {exc}"
            log.warning("prices: %s: %s", iid, errors[iid])
    return values, errors


def _closed_bars(frame: Any, who: str, code: str, start: dt.date, now: dt.datetime, rejected: list[str]) -> list[Bar]:
    """The frame's valid bars of sessions closed by `now`; _Failed when the newest is older than the calendar says."""
    closes = calendar.close_times(code, start, now.date() + dt.timedelta(days=2))
    bars = _bars(frame, closes, now, code, who, rejected)
    expected = calendar.last_closed_session(code, now)
    newest = bars[-1].session if bars else None
    if expected is not None and expected >= start and (newest is None or newest < expected):
        raise _Failed(f"stale data: the newest valid bar is {newest or 'none'}, "
                      f"the last closed {code} session is {expected}")
    return bars


def _bars(frame: Any, closes: dict[dt.date, dt.datetime], now: dt.datetime, code: str, who: str,
          rejected: list[str]) -> list[Bar]:
    """Valid closed bars on the calendar's sessions; garbage is logged into `rejected`, the forming bar skipped."""
    bars: list[Bar] = []
    newest = None
    for ts, row in frame.iterrows():
        day = ts.date()
        order = None if newest is None or ts > newest else "duplicate timestamp" if ts == newest else "out of order"
        reason = order or _ohlc_problem(row) or (None if day in closes else f"not a {code} session")
        newest = ts if newest is None or ts > newest else newest
        if reason:
            _reject(rejected, f"{who} {day}: {reason}")
        elif closes[day] > now:
            log.debug("prices: %s %s is still forming (closes %s)", who, day, closes[day])
        else:
            volume = float(row.get("Volume", 0.0))
            bars.append(Bar(day, closes[day], float(row["Open"]), float(row["High"]), float(row["Low"]),
                            float(row["Close"]), volume if math.isfinite(volume) else 0.0))
    return bars


def _ohlc_problem(row: Any) -> str | None:
    """Why a bar's prices cannot be true: NaN, non-positive, or a high/low that contradicts open/close."""
    values = {name.lower(): _float(row.get(name)) for name in _PRICES}
    if missing := [k for k, v in values.items() if not math.isfinite(v)]:
        return f"NaN {'/'.join(missing)}"
    if nonpositive := [k for k, v in values.items() if v <= 0]:
        return f"non-positive {'/'.join(nonpositive)}"
    o, h, low, c = values["open"], values["high"], values["low"], values["close"]
    if h < max(o, c, low) or low > min(o, c, h):
        return f"high {h:g} / low {low:g} contradict open {o:g} / close {c:g}"
    volume = _float(row.get("Volume", 0.0))
    if math.isfinite(volume) and volume < 0:
        return f"negative volume {volume:g}"
    return None


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _fresh_quote(frame: Any, who: str, code: str, now: dt.datetime, step: dt.timedelta, grace: dt.timedelta,
                 rejected: list[str]) -> Quote:
    """The newest intraday row at or before `now` with a valid close; _Failed if none, or too old for the calendar."""
    rows = [(ts.to_pydatetime(), _float(row.get("Close"))) for ts, row in frame.iterrows()]
    if future := [start for start, _ in rows if start > now]:
        _reject(rejected, f"{who}: {len(future)} intraday rows after now, from {future[0].isoformat()}")
    for start, close in reversed([r for r in rows if r[0] <= now]):
        if math.isfinite(close) and close > 0:
            quote = Quote(close, min(start + step, now))
            if stale := _stale_intraday(quote.at, now, code, grace):
                raise _Failed(stale)
            return quote
        # Yahoo's newest minute is routinely all null: worth a line, not a warning on every poll
        _reject(rejected, f"{who} {start.isoformat()}: invalid close {close}", logging.INFO)
    raise _Failed("no valid intraday price from Yahoo")


def _reject(rejected: list[str], text: str, level: int = logging.WARNING) -> None:
    rejected.append(text)
    log.log(level, "prices: rejected %s", text)


def _stale_intraday(at: dt.datetime, now: dt.datetime, code: str, grace: dt.timedelta) -> str | None:
    """Why an intraday price is too old for the calendar, or None."""
    opened = calendar.last_open(code, now)
    if opened is not None and at < opened and now - opened > grace:
        return f"stale data: the newest price ({at.isoformat()}) is older than the {code} session that opened {opened}"
    if calendar.is_open(code, now) and now - at > grace:
        return f"stale data: the newest price is {(now - at) // dt.timedelta(minutes=1)} min old while {code} is open"
    return None
