"""Health over HTTP: `/healthz` for probes and `/metrics` in Prometheus' text format; no dependency. Any other
page (the dashboard, dashboard.py) comes from the `pages` given; every path answers GET and HEAD only.

    metrics = Metrics()
    metrics.inc("macrowatch_polls_total", source="prices")
    server = HealthServer("127.0.0.1", 9108, metrics, healthy=lambda: (True, "ok"))
    server.start()
"""

from __future__ import annotations

import logging
import math
import re
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import urlsplit

log = logging.getLogger("macrowatch.health")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

LabelKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Family:
    """One metric: its type, help text and the label names its samples may carry."""

    name: str
    kind: str  # "counter" or "gauge"
    help: str
    labels: frozenset[str] = frozenset()


FAMILIES = (
    Family("macrowatch_up", "gauge", "1 when /healthz answers ok, else 0 (evaluated at each scrape)."),
    Family("macrowatch_polls_total", "counter", "Polls of a data source.", frozenset({"source"})),
    Family("macrowatch_source_errors_total", "counter", "Failed polls of a data source.", frozenset({"source"})),
    Family("macrowatch_source_queries_today", "gauge", "Queries counted today against a source's daily limit (BLS).",
           frozenset({"source"})),
    Family("macrowatch_source_query_limit", "gauge", "A source's daily query limit (BLS: 500 with a key, 25 without).",
           frozenset({"source"})),
    Family("macrowatch_data_age_seconds", "gauge", "Seconds since the newest data of an instrument or series.",
           frozenset({"instrument", "series"})),
    Family("macrowatch_evaluations_total", "counter", "Rule evaluations, by what triggered them.",
           frozenset({"trigger"})),
    Family("macrowatch_alerts_total", "counter", "Alerts fired, by rule.", frozenset({"rule"})),
    Family("macrowatch_deliveries_total", "counter", "Delivery attempts, by channel and result.",
           frozenset({"channel", "result"})),
    Family("macrowatch_outbox_depth", "gauge", "Deliveries in the outbox not sent yet."),
    Family("macrowatch_last_heartbeat_timestamp_seconds", "gauge", "Unix time of the daemon's last heartbeat."),
)


class MetricsRegistry(Protocol):
    """What the daemon needs of a metrics registry: `Metrics`, or a stand-in."""

    def define(self, family: Family) -> None: ...

    def inc(self, name: str, value: float = 1, **labels: object) -> None: ...

    def set(self, name: str, value: float, **labels: object) -> None: ...


class Metrics:
    """Thread-safe counters and gauges with labels, rendered in the Prometheus text format (0.0.4)."""

    def __init__(self, families: tuple[Family, ...] = FAMILIES):
        self._lock = threading.Lock()
        self._families: dict[str, Family] = {}
        self._values: dict[str, dict[LabelKey, float]] = {}
        for family in families:
            self.define(family)

    def define(self, family: Family) -> None:
        """Add a metric family (the macrowatch ones are defined already)."""
        if not _NAME.match(family.name) or family.kind not in ("counter", "gauge"):
            raise ValueError(f"bad metric family {family.name!r} ({family.kind})")
        with self._lock:
            self._families.setdefault(family.name, family)
            self._values.setdefault(family.name, {})

    def inc(self, name: str, value: float = 1, **labels: object) -> None:
        """Add `value` to a counter (or a gauge); counters only go up."""
        family, key = self._key(name, labels)
        if family.kind == "counter" and value < 0:
            raise ValueError(f"{name}: a counter cannot go down ({value})")
        with self._lock:
            series = self._values[name]
            series[key] = series.get(key, 0.0) + value

    def set(self, name: str, value: float, **labels: object) -> None:
        """Set a gauge."""
        family, key = self._key(name, labels)
        if family.kind != "gauge":
            raise ValueError(f"{name} is a {family.kind}: use inc()")
        with self._lock:
            self._values[name][key] = float(value)

    def get(self, name: str, **labels: object) -> float | None:
        """A sample's current value, or None when it has none yet."""
        _family, key = self._key(name, labels)
        with self._lock:
            return self._values[name].get(key)

    def render(self) -> str:
        """Every family in the text exposition format: HELP, TYPE, then its samples sorted by labels."""
        with self._lock:
            snapshot = [(f, dict(self._values[f.name])) for f in self._families.values()]
        lines = []
        for family, samples in snapshot:
            lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
            lines.append(f"# TYPE {family.name} {family.kind}")
            for key in sorted(samples):
                lines.append(f"{family.name}{_labels_text(key)} {_value_text(samples[key])}")
        return "\n".join(lines) + "\n"

    def _key(self, name: str, labels: dict[str, object]) -> tuple[Family, LabelKey]:
        family = self._families.get(name)
        if family is None:
            raise KeyError(f"unknown metric {name!r}")
        unknown = set(labels) - family.labels
        if unknown:
            # A misspelt label would silently start a new series: fail where it is written instead.
            raise ValueError(f"{name}: unknown label(s) {', '.join(sorted(unknown))}")
        return family, tuple(sorted((k, str(v)) for k, v in labels.items()))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label(value: str) -> str:
    """A label value escaped for the text format: backslash, double quote and newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels_text(key: LabelKey) -> str:
    if not key:
        return ""
    return "{" + ",".join(f'{k}="{escape_label(v)}"' for k, v in key) + "}"


def _value_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


# ---- the HTTP endpoint ------------------------------------------------------------------------------

Healthy = Callable[[], tuple[bool, str]]
Redact = Callable[[str], str]
ALLOWED = "GET, HEAD"


@dataclass(frozen=True)
class Page:
    """One answer of a `Pages`: status, content type, body and how long a browser may keep it."""

    status: int
    content_type: str
    body: bytes
    cache: str = "no-store"
    headers: tuple[tuple[str, str], ...] = ()


class Pages(Protocol):
    """The pages served beside /healthz and /metrics (the dashboard); reads only."""

    def page(self, path: str) -> Page | None:
        """The page at `path` (without its query), or None when there is none (404)."""
        ...


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive for scrapers; the timeout frees a thread an idle client holds
    timeout = 30

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches on
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(send_body=False)

    def __getattr__(self, name: str):
        # http.server looks up do_<METHOD>: every method but GET and HEAD is refused, nothing here changes state.
        if name.startswith("do_"):
            return self._refuse
        raise AttributeError(name)

    def _refuse(self) -> None:
        self.close_connection = True  # a request body left unread must not be taken for the next request
        self._send(_text(405, f"method {self.command} not allowed: {ALLOWED} only\n"), True, {"Allow": ALLOWED})

    def _answer(self, send_body: bool) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            ok, reason = self.server.check()
            page = _text(200 if ok else 503, reason + "\n")
        elif path == "/metrics":
            ok, _reason = self.server.check()
            self.server.metrics.set("macrowatch_up", 1 if ok else 0)
            page = Page(200, CONTENT_TYPE, self.server.metrics.render().encode("utf-8"))
        else:
            page = self._page(path)
        self._send(page, send_body)

    def _page(self, path: str) -> Page:
        pages = self.server.pages
        try:
            page = pages.page(path) if pages is not None else None
        except Exception:  # noqa: BLE001 - one failing page must not take the endpoint down
            log.warning("page %s failed", path, exc_info=True)
            return _text(500, "this page failed; the daemon's log says why\n")
        if page is None:
            return _text(404, "not found: try " + ("/, " if pages is not None else "") + "/healthz or /metrics\n")
        return page

    def _send(self, page: Page, send_body: bool, headers: dict[str, str] | None = None) -> None:
        self.send_response(page.status)
        self.send_header("Content-Type", page.content_type)
        self.send_header("Content-Length", str(len(page.body)))
        self.send_header("Cache-Control", page.cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (*page.headers, *(headers or {}).items()):
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(page.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Silent: a scrape every 15 s would otherwise fill the journal."""


def _text(status: int, text: str) -> Page:
    return Page(status, "text/plain; charset=utf-8", text.encode("utf-8"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never holds up the daemon's exit
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], metrics: Metrics, healthy: Healthy, pages: Pages | None = None,
                 redact: Redact = str):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.metrics = metrics
        self._healthy = healthy
        self.pages = pages
        self._redact = redact
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: tuple) -> None:
        """One log line, not socketserver's traceback on stderr: a client that went away mid-answer (a scrape
        timed out, a probe closed early) is routine, at debug; anything else is a warning, with its trace."""
        exc = sys.exc_info()[1]
        client = f"{client_address[0]}:{client_address[1]}" if len(client_address) >= 2 else str(client_address)
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("health client %s went away: %s", client, str(exc) or type(exc).__name__)
        else:
            log.warning("health request from %s failed: %s", client, exc, exc_info=True)

    def check(self) -> tuple[bool, str]:
        """The health verdict; a check that raises is itself a reason to be unhealthy. The reason is served
        through `redact`: an error's text may quote a secret (a store URL, a token)."""
        try:
            ok, reason = self._healthy()
        except Exception as exc:  # noqa: BLE001 - a probe must answer, whatever the check does
            ok, reason = False, f"health check failed: {type(exc).__name__}: {exc}"
        return bool(ok), self._redact(reason or ("ok" if ok else "unhealthy"))


class HealthServer:
    """`/healthz` (200 with "ok" or the check's note, such as a standby's; 503 with the reason), `/metrics` and
    the `pages` (the dashboard) on host:port, served from a thread. `redact` masks the secrets in a reason
    (the log's SecretFilter.redact), so that /healthz never serves one."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9108, metrics: Metrics | None = None,
                 healthy: Healthy = lambda: (True, "ok"), pages: Pages | None = None, redact: Redact = str):
        self.host, self._port = host, port
        self.metrics = metrics if metrics is not None else Metrics()
        self.healthy = healthy
        self.pages = pages
        self.redact = redact
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one chosen for port 0, once started)."""
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        """http://HOST:PORT of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread; raises OSError when the address is taken."""
        if self._server is not None:
            return
        self._server = _Server((self.host, self._port), self.metrics, self.healthy, self.pages, self.redact)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="macrowatch-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
