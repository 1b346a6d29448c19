"""Logging for the daemon: one line per event (key=value or JSON) on stdout, secrets masked.

    handler = logs.setup("INFO", sys.stdout, "kv")
    handler.addFilter(logs.SecretFilter([api_key, *channel_urls]))
    log.info("polled", extra={"fields": {"source": "prices", "n": 3}})
    -> level=info logger=macrowatch.app msg=polled source=prices n=3

journald splits a stream on newlines, so nothing here ever writes one inside an event: messages, fields and
exceptions (their repr and a compact traceback) are escaped onto the same line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
import sysconfig
import traceback
from typing import Any, TextIO

from macrowatch.secrets import MASK as MASK
from macrowatch.secrets import MIN_SECRET as MIN_SECRET
from macrowatch.secrets import SecretFilter
from macrowatch.secrets import url_secrets as url_secrets

FORMATS = ("kv", "json")
TRACE_FRAMES = 8          # the innermost frames kept in `trace`; the outer ones are counted, not listed
_RESERVED = ("ts", "level", "logger", "msg", "exc", "trace")
_BARE = re.compile(r'[^\s"=\\\x00-\x1f\x7f]+\Z')
_KEY_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Characters that end a line for someone (str.splitlines, terminals): escaped in both formats.
_BREAKS = re.compile(r'[\\"\x00-\x1f\x7f\x85\u2028\u2029]')
# A frame of a traceback formatted as text (traceback.format_tb).
_FRAME_LINE = re.compile(r'^\s*File "(?P<file>[^"]*)", line (?P<line>\d+), in (?P<name>.+?)\s*$', re.MULTILINE)


# ---- formatting ---------------------------------------------------------------------------------------

def quote(value: str) -> str:
    """A value as written in a key=value line: bare when safe, else double-quoted and escaped onto one line."""
    return value if _BARE.match(value) else _quoted(value)


def _quoted(text: str) -> str:
    return '"' + _BREAKS.sub(lambda m: _ESCAPES.get(m[0], f"\\u{ord(m[0]):04x}"), text) + '"'


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _key(name: str) -> str:
    key = _KEY_BAD.sub("_", str(name)) or "_"
    return key + "_" if key in _RESERVED else key  # a field never overwrites the event's own keys


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string must not lose the event
        return f"unformattable log call: {record.msg!r} % {record.args!r}"


def exception_fields(exc_info: Any) -> dict[str, str]:
    """`exc` (the repr, with its cause) and `trace` (innermost frames as file:line function, outermost first).

    The traceback may also be text (APScheduler hands its listeners one formatted): its frames are read from
    the `File "...", line N, in name` lines, and any other text is joined onto one line.
    """
    if not exc_info or exc_info is True or exc_info[1] is None:
        return {}
    exc = exc_info[1]
    text = repr(exc)
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None:
        text += f" (from {cause!r})"
    tb = exc_info[2]
    if isinstance(tb, str):
        frames = [(os.path.basename(m["file"]), m["line"], m["name"]) for m in _FRAME_LINE.finditer(tb)]
        if not frames:
            return {"exc": text, "trace": " | ".join(line.strip() for line in tb.splitlines() if line.strip())}
    else:
        frames = [(os.path.basename(f.filename), f.lineno, f.name) for f in traceback.extract_tb(tb)]
    shown = [f"{file}:{line} {name}" for file, line, name in frames[-TRACE_FRAMES:]]
    if len(frames) > TRACE_FRAMES:
        shown.insert(0, f"({len(frames) - TRACE_FRAMES} more)")
    return {"exc": text, "trace": " > ".join(shown)}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        return {"fields": fields}
    return {_key(k): v for k, v in fields.items()}


class LineFormatter(logging.Formatter):
    """One event, one line: `level=info logger=... msg="..." key=value ...`, or the same as a JSON object."""

    def __init__(self, fmt: str = "kv", timestamps: bool = False):
        super().__init__()
        if fmt not in FORMATS:
            raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
        self.fmt, self.timestamps = fmt, timestamps

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {}
        if self.timestamps:
            # record.created is stamped by logging itself; the daemon's clock is not consulted for logs.
            when = dt.datetime.fromtimestamp(record.created, dt.UTC)
            event["ts"] = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event |= {"level": record.levelname.lower(), "logger": record.name, "msg": _message(record)}
        event |= _fields(record)
        event |= exception_fields(record.exc_info)
        return self._json(event) if self.fmt == "json" else self._kv(event)

    @staticmethod
    def _kv(event: dict[str, Any]) -> str:
        # msg is always quoted, so that a one-word message reads the same as a long one.
        return " ".join(f"{k}={_quoted(_text(v)) if k == 'msg' else quote(_text(v))}" for k, v in event.items())

    @staticmethod
    def _json(event: dict[str, Any]) -> str:
        line = json.dumps(event, ensure_ascii=False, default=_text)
        # json escapes C0 controls; these three it leaves raw, and some readers split lines on them.
        return line.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# ---- secrets ------------------------------------------------------------------------------------------

# The rules and the filter live in secrets.py, the one secret masker: SecretFilter, url_secrets, MASK and
# MIN_SECRET are imported from there above, for the callers that know them as logs.*.


# ---- warnings -----------------------------------------------------------------------------------------

_OURS = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # the package: macrowatch/
_LIBRARIES = tuple(sorted({os.path.abspath(p) + os.sep for key in ("stdlib", "platstdlib", "purelib", "platlib")
                           if (p := sysconfig.get_paths().get(key))}))


class LibraryWarnings(logging.Filter):
    """On `py.warnings`: a warning raised in an installed library (a pandas deprecation inside yfinance) is
    logged at debug, not warning: the operator can do nothing about it. Ours, and any from elsewhere, stay.

    logging.captureWarnings logs each warning as its formatwarning() text, which begins with the file it names.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        text = _message(record)
        if record.levelno != logging.WARNING or text.startswith(_OURS) or not text.startswith(_LIBRARIES):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        # The logger let it through as a warning: at debug it is shown only when debug is on.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


# ---- the handler ----------------------------------------------------------------------------------------

class LineHandler(logging.StreamHandler):
    """A stream handler writing LineFormatter lines; its SecretFilters also mask the finished line."""

    def __init__(self, stream: TextIO, fmt: str = "kv", timestamps: bool = False):
        super().__init__(stream)
        self.setFormatter(LineFormatter(fmt, timestamps))

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        # Exception reprs and third-party messages reach the line without passing a field filter.
        for f in self.filters:
            if isinstance(f, SecretFilter):
                line = f.redact(line)
        return line


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(str(level).upper())
    if not isinstance(value, int):
        raise ValueError(f"log level {level!r}: expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return value


def setup(level: str | int = "INFO", stream: TextIO | None = None, fmt: str | None = None,
          timestamps: bool | None = None) -> LineHandler:
    """Send every logger's events through one LineHandler on `stream` (stdout); return it to add filters to.

    fmt: "kv" or "json" ($MACROWATCH_LOG_FORMAT, else kv). timestamps: None leaves them out under journald
    ($JOURNAL_STREAM set), which stamps each line itself. Calling it again replaces the previous handler.
    """
    handler = LineHandler(stream if stream is not None else sys.stdout,
                          fmt or os.environ.get("MACROWATCH_LOG_FORMAT") or "kv",
                          not os.environ.get("JOURNAL_STREAM") if timestamps is None else timestamps)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, LineHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = _level(level)
    root.setLevel(numeric)
    # APScheduler logs every job run at INFO; with a heartbeat every few seconds that would bury the events.
    logging.getLogger("apscheduler.executors").setLevel(logging.DEBUG if numeric <= logging.DEBUG
                                                        else logging.WARNING)
    logging.captureWarnings(True)  # warnings.warn() then arrives as one line too, not as stderr text
    warned = logging.getLogger("py.warnings")
    if not any(isinstance(f, LibraryWarnings) for f in warned.filters):
        warned.addFilter(LibraryWarnings())
    return handler
