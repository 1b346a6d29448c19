"""A real HTTP webhook receiver on 127.0.0.1 for apprise: records every request, fails when told to.

    def test_it(webhook):
        send([webhook.url("json")], "title", "body", png, timeout=5)
        assert webhook.requests[0].json()["title"] == "title"

Faults: `fail(500)` answers every request with that status; `slow(s)` answers after s seconds; `refuse()`
stops listening (connections are refused) and `restore()` listens again on the same port with no fault.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest


@dataclass(frozen=True)
class Part:
    """One part of a multipart/form-data body: a field (filename None) or a file."""

    name: str
    filename: str | None
    content_type: str
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8")


@dataclass(frozen=True)
class Received:
    """One request as the receiver got it, and the status it answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]   # names lower-cased
    body: bytes
    status: int
    at: float = field(default_factory=time.monotonic)  # when it arrived (bench/latency.py measures with it)

    @property
    def endpoint(self) -> str:
        """The last segment of the path (`sendPhoto` for /botTOKEN/sendPhoto)."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def parts(self) -> list[Part]:
        """The parts of a multipart/form-data body, in order."""
        if not self.content_type.startswith("multipart/"):
            raise ValueError(f"not a multipart body: {self.content_type!r}")
        head = f"Content-Type: {self.content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + self.body)
        return [Part(p.get_param("name", header="content-disposition") or "", p.get_filename(),
                     p.get_content_type(), p.get_payload(decode=True) or b"")
                for p in message.iter_parts()]

    def form(self) -> dict[str, str]:
        """The plain fields of a multipart or url-encoded form."""
        if self.content_type.startswith("application/x-www-form-urlencoded"):
            return dict(parse_qsl(self.body.decode()))
        return {p.name: p.text for p in self.parts() if p.filename is None}

    def files(self) -> dict[str, Part]:
        """The file parts of a multipart body, by field name."""
        return {p.name: p for p in self.parts() if p.filename is not None}


@dataclass
class _Behaviour:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    wake: threading.Event = field(default_factory=threading.Event)


class WebhookReceiver:
    """The receiver: its URL, its request log and its fault switches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._log: list[Received] = []
        self._behaviour = _Behaviour()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.arrived = 0  # requests read in full, answered or still held by slow()
        self._listen()

    # ---- addresses ----------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    def url(self, scheme: str = "json", path: str = "/hook", query: str = "") -> str:
        """An apprise URL that posts here, e.g. json://127.0.0.1:PORT/hook."""
        return f"{scheme}://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")

    # ---- the log ------------------------------------------------------------------------------------
    @property
    def requests(self) -> list[Received]:
        """Every request received so far, in order of arrival."""
        with self._lock:
            return list(self._log)

    def delivered(self) -> list[Received]:
        """The requests answered with a 2xx status."""
        return [r for r in self.requests if 200 <= r.status < 300]

    def clear(self) -> None:
        with self._lock:
            self._log.clear()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        """Wait until at least n requests have arrived; return the log."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.requests

    # ---- faults -------------------------------------------------------------------------------------
    def reply(self, status: int = 200, body: bytes = b"ok") -> None:
        """Answer every request with this status and body (200 "ok" by default: what a Slack webhook says)."""
        with self._lock:
            self._behaviour.status, self._behaviour.body = status, body

    def fail(self, status: int = 500) -> None:
        """Answer every request with an error status."""
        self.reply(status, b"failing on purpose")

    def slow(self, seconds: float) -> None:
        """Answer only after `seconds` (a receiver that hangs)."""
        with self._lock:
            self._behaviour.delay = seconds

    def refuse(self) -> None:
        """Stop listening: connections are refused until restore()."""
        self._close()

    def restore(self) -> None:
        """Listen again on the same port, answering 200 "ok" at once."""
        self._behaviour.wake.set()
        with self._lock:
            self._behaviour = _Behaviour()
        if self._server is None:
            self._listen(self.port)

    def stop(self) -> None:
        """Shut down for good."""
        self._behaviour.wake.set()
        self._close()

    # ---- the server ---------------------------------------------------------------------------------
    def _listen(self, port: int = 0) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        server.daemon_threads = True
        self._server, self.port = server, server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"webhook-{self.port}", daemon=True)
        self._thread.start()

    def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        with self._lock:
            self.arrived += 1
            b = self._behaviour
        if b.delay:
            b.wake.wait(b.delay)
        split = urlsplit(path)
        with self._lock:
            self._log.append(Received(method, split.path, dict(parse_qsl(split.query)), headers, body, b.status))
        return b.status, b.body


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = receiver._answer(self.command, self.path, headers, body)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a slow answer): what a hanging receiver looks like

        do_GET = do_POST = do_PUT = do_DELETE = _any

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # quiet: the log is the record

    return Handler


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A running webhook receiver on 127.0.0.1 (stopped at teardown)."""
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()
