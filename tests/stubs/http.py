"""What every stub server's request handler shares: the request's path and query, one way to answer, quiet."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
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
