"""What the stub servers share: the request handler's path and query, one way to answer, quiet; and the server's
life cycle on an ephemeral loopback port (`StubServer`)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that reads `parts()` and answers with `reply(...)`; it logs nothing (tests read the stub)."""

    def parts(self) -> tuple[str, dict[str, str]]:
        """The request's path and its query (the last value of each parameter, blanks kept)."""
        split = urlsplit(self.path)
        return split.path, {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}

    def reply(self, status: int, content_type: str, body: bytes) -> None:
        """Write the answer; a client that gave up (its timeout) is no error."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the stub's record of requests, not stderr."""


class StubServer:
    """A stub's server on 127.0.0.1 and a port of its own, served from a thread once started; its handler reaches
    the stub as `self.server.stub`. Subclasses set their fixtures, then call this __init__ with their handler."""

    thread_name = "stub"

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.stub = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self.port = self._server.server_address[1]

    def start(self) -> Self:
        # a short poll: shutdown() waits for the loop to notice, and every test stops a stub
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name=self.thread_name,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; the port then refuses connections. Idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()  # first, so a stalled (timeout) handler returns and server_close() need not wait
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
