"""Delivery through apprise: the only module that imports it. `send` never raises and never logs a secret.

    result = send(channel.urls, message.title, message.body, png, timeout=10, markup=message.markup)
    if not result.ok:
        print(result.reason)          # masked: safe to log and to store
    result.unknown                    # failed, but written and not answered in time: the receiver may have it

Every log line that names a target uses `mask(url)`: apprise's privacy form without its query, with long path
segments and short tokens shortened (apprise leaves the path of json:// and form:// URLs, where webhook tokens
often live, in clear). A filter on apprise's and urllib3's loggers blanks the secret parts of the URLs sent, for
when their debug lines are on. Which parts are secret, and how text is masked, is secrets.py's (the one masker).

apprise's plugins catch requests' exceptions and return False, so how a request ended is learnt below it:
requests' HTTPAdapter.send is wrapped once, and while a send watches (a context variable, which apprise copies
into the worker thread of a call with a deadline) each request's end is noted: answered, not written (the
connection was refused or timed out, a DNS or TLS failure), or unknown (written, then a read timeout or the
connection dropped with no answer). Outside a send the wrapper only passes through.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import apprise
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ProtocolError

from macrowatch import secrets

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0       # seconds a receiver may take to answer one request
CONNECT_TIMEOUT = 4.0        # at most, to open a connection
CHART_NAME = "chart.png"
_MARKUP = {"text": apprise.NotifyFormat.TEXT, "html": apprise.NotifyFormat.HTML, "native": None}
_APPRISE_LOGGER = logging.getLogger("apprise")
# apprise >= 2.2 bounds a whole notify() call; older ones rely on the per-request timeouts alone.
_CALL_TIMEOUT = "timeout" in inspect.signature(apprise.Apprise.notify).parameters


@dataclass(frozen=True)
class SendResult:
    """The outcome of one send to a group of URLs; `reason` is masked and says why not, "" on success."""

    ok: bool
    reason: str = ""
    # A failed send whose request may have reached the receiver (written, no answer in time): a retry may
    # deliver it a second time.
    unknown: bool = False


def send(urls: Sequence[str], title: str, body: str, png: bytes | None = None,
         timeout: float = DEFAULT_TIMEOUT, *, markup: str = "text") -> SendResult:
    """Send one message to every URL, with the chart where the service takes files; never raises.

    `markup`: "text" (apprise converts it per service), "html", or "native" (already in the service's own
    markup, e.g. Slack mrkdwn: sent as is). Each request may take `timeout` seconds to be answered.
    """
    if not urls:
        return SendResult(False, "no URLs to send to")
    try:
        with _attachment(png) as chart:
            failures = [r for url in urls if not (r := _send_one(url, title, body, chart, timeout, markup)).ok]
    except Exception as exc:  # noqa: BLE001 - send never raises; the outbox retries what failed
        # The exception's text may hold a URL: only its type is kept.
        log.warning("send failed: internal error %s", type(exc).__name__)
        return SendResult(False, f"internal error {type(exc).__name__}")
    return SendResult(not failures, "; ".join(r.reason for r in failures), any(r.unknown for r in failures))


def _send_one(url: str, title: str, body: str, chart: str | None, timeout: float, markup: str) -> SendResult:
    """Send to one URL; its reason is masked."""
    _SCRUB.add(url)
    with _collect() as lines:
        plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        why = f"{mask(url)}: not a usable apprise URL ({_last(lines) or 'unknown service or bad token'})"
        log.warning("send failed: %s", why)
        return SendResult(False, why)
    _bound(plugin, url, timeout)
    target = mask(url, plugin)
    app = apprise.Apprise(asset=apprise.AppriseAsset(app_id="macrowatch"))
    app.add(plugin)
    kwargs = {"timeout": 3 * timeout} if _CALL_TIMEOUT else {}
    with _collect() as lines, _watch() as ends:
        result = app.notify(body=body, title=title, body_format=_MARKUP.get(markup, apprise.NotifyFormat.TEXT),
                            attach=chart if chart and takes_files(plugin) else None, **kwargs)
    if result:
        log.debug("sent to %s", target)
        return SendResult(True)
    status = str(getattr(result, "status", "") or "")
    timed_out = "timeout" in status.lower()  # apprise stopped waiting: the request may still be on its way
    why = _last(lines) or ("timed out" if timed_out else "failed, apprise gave no reason")
    lost = [end for end in list(ends) if end is not None]
    if lost or timed_out:
        why = (f"no answer in time after the request was sent ({lost[-1] if lost else 'timeout'}): "
               "the receiver may have it")
    why = secrets.redact(why, secrets.url_secrets(url))
    log.warning("send to %s failed: %s", target, why)
    return SendResult(False, f"{target}: {why}", bool(lost) or timed_out)


def takes_files(plugin: apprise.NotifyBase) -> bool:
    """Whether the service takes attachments: a Slack webhook does not (a Slack bot token does)."""
    if not getattr(plugin, "attachment_support", False):
        return False
    # Slack's plugin declares attachment support, but only its bot mode uploads files; a webhook
    # logs a warning and sends the text alone.
    return not (plugin.service_name == "Slack" and getattr(plugin, "mode", "bot") != "bot")


def _bound(plugin: apprise.NotifyBase, url: str, timeout: float) -> None:
    """Connect and read timeouts for every request, unless the URL sets its own (?cto= / ?rto=)."""
    given = {k.lower() for k, _ in parse_qsl(url.partition("?")[2])}
    if "cto" not in given:
        plugin.socket_connect_timeout = min(CONNECT_TIMEOUT, timeout)
    if "rto" not in given:
        plugin.socket_read_timeout = timeout


@contextlib.contextmanager
def _attachment(png: bytes | None) -> Iterator[str | None]:
    """The chart as a file: apprise's form:// plugin opens attachments by path (a memory one fails there)."""
    if png is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="macrowatch-chart-") as tmp:
        path = Path(tmp) / CHART_NAME
        path.write_bytes(png)
        yield str(path)


# ---- how each request ended ------------------------------------------------------------------------------

# While a send watches: one entry per request that ended without an answer after it was written (the
# exception's type name), None per other end. A list shared with the threads the context is copied into.
_ENDS: contextvars.ContextVar[list[str | None] | None] = contextvars.ContextVar("macrowatch_send_ends",
                                                                                default=None)


@contextlib.contextmanager
def _watch() -> Iterator[list[str | None]]:
    ends: list[str | None] = []
    token = _ENDS.set(ends)
    try:
        yield ends
    finally:
        _ENDS.reset(token)


def unanswered(exc: BaseException) -> bool:
    """Whether a request that raised this was written and then got no answer: a read timeout, or a connection
    that dropped after it was open (urllib3's ProtocolError, "Connection aborted"). A connect timeout, a refused
    connection, a DNS or TLS failure (all raised before anything is sent) are not."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    return isinstance(exc, requests.exceptions.ConnectionError) and any(
        isinstance(arg, ProtocolError) for arg in exc.args)


def _watched(send_request: Callable[..., Any]) -> Callable[..., Any]:
    """requests' HTTPAdapter.send, noting how each request ended while a send watches."""

    @functools.wraps(send_request)
    def send(self: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        ends = _ENDS.get()
        if ends is None:
            return send_request(self, request, *args, **kwargs)
        try:
            response = send_request(self, request, *args, **kwargs)
        except BaseException as exc:
            ends.append(type(exc).__name__ if unanswered(exc) else None)
            raise
        ends.append(None)
        return response

    send.macrowatch_watched = True
    return send


if not getattr(HTTPAdapter.send, "macrowatch_watched", False):
    HTTPAdapter.send = _watched(HTTPAdapter.send)


# ---- masking --------------------------------------------------------------------------------------------

def mask(url: str, plugin: apprise.NotifyBase | None = None) -> str:
    """The URL as it may be logged: apprise's privacy form, no query, long path segments shortened and any
    other part that secrets.py's rules call secret (a short token, a token as host) masked too."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "?"
    _SCRUB.add(url)  # before apprise parses it: its warnings about a bad URL may quote the token
    if plugin is None:
        with _collect():
            plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return f"{scheme}://…"
    hidden = secrets.url_secrets(url)
    private = plugin.url(privacy=True).split("?", 1)[0]
    scheme, _, rest = private.partition("://")
    host, _, path = rest.partition("/")
    userinfo, at, hostport = host.rpartition("@")
    name, colon, port = hostport.rpartition(":")
    name, port = (name, colon + port) if colon and port.isdigit() else (hostport, "")
    host = userinfo + at + (_short(name) if name in hidden else name) + port
    segments = [_short(s) if len(s) > 6 or s in hidden else s for s in path.split("/")]
    return f"{scheme}://{host}/" + "/".join(segments)


def _short(segment: str) -> str:
    if "..." in segment:
        return segment  # apprise's privacy form already
    return f"{segment[0]}...{segment[-1]}" if len(segment) > 6 else "****"


class _Scrubber(secrets.SecretFilter):
    """Blanks the secrets of every URL sent so far from apprise's and urllib3's log records."""

    def add(self, url: str) -> None:  # type: ignore[override] - takes a URL, not its secrets
        super().add(secrets.url_secrets(url))


_SCRUB = _Scrubber()
_APPRISE_LOGGER.addFilter(_SCRUB)
# requests' transport logs each request line (path included) at debug level.
logging.getLogger("urllib3.connectionpool").addFilter(_SCRUB)


class _Collector(logging.Handler):
    """Keeps apprise's warnings and errors during one call: they say why a send failed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _collect() -> Iterator[list[str]]:
    handler = _Collector()
    _APPRISE_LOGGER.addHandler(handler)
    try:
        yield handler.lines
    finally:
        _APPRISE_LOGGER.removeHandler(handler)


def _last(lines: list[str]) -> str:
    """apprise's last word on a failure, on one line."""
    return " ".join(lines[-1].split()) if lines else ""
