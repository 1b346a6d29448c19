"""The one secret masker: which parts of a URL are secret, how a secret is masked in text, and the log filter.

    secrets = url_secrets("tgram://123456789:AAHdq.../987654321")   # the URL, its token, its chat id
    redact("POST .../botAAHdq...: refused", secrets)                 # -> "POST .../bot***: refused"
    handler.addFilter(SecretFilter([api_key, *secrets]))             # every log line masked the same way
    store_name("postgresql://mw:pw@db/mw")                           # -> "postgresql://mw:***@db/mw"

The rules, for every output (log lines, stored delivery errors, `status`, `check --show`, /metrics):
- secret in a URL: its password (as written and percent-decoded), a user name that looks like a token, a host
  without a dot (tgram://BOT_ID:TOKEN, discord://ID/TOKEN: the "host" is a token), path segments that look like
  tokens, and every query value but a few plain words, with its token-like words (a header such as
  ?-Authorization=Bearer%20TOKEN is a value too);
- a token: at least 6 characters, and not a plain lower-case word of an API's path ("services", "webhooks",
  a Slack "#alerts" channel); a lower-case run of MIN_WORD_TOKEN characters or more is a token all the same;
- in text, a secret becomes `***` (longest first, so that a whole URL goes as one); strings shorter than
  MIN_SECRET are never secrets (they would mask ordinary words and numbers everywhere);
- anything URL-shaped left in a stored error is blanked to `<url>`.

A URL named as a delivery target keeps apprise's privacy form (`notify/send.mask`, built on these rules); the
store is named with its password as ***.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote

MASK = "***"
MIN_SECRET = 4            # shorter "secrets" would mask ordinary words and numbers all over the log
MIN_TOKEN = 6             # a path segment or user name shorter than this is a word of the API, not a token
MIN_WORD_TOKEN = 16       # a lower-case word this long is no API path word: a token in lower case
# Query values that are settings, not secrets (apprise's format=, overflow=, method=, verify=...).
PLAIN_VALUES = frozenset({"yes", "true", "false", "post", "json", "html", "text", "markdown", "upstream",
                          "truncate", "split"})
_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)


def _tokenish(part: str) -> bool:
    # Tokens mix digits or case; a plain lower-case word ("services", "webhooks") is part of the API's path.
    return len(part) >= MIN_TOKEN and (not (part.isalpha() and part.islower()) or len(part) >= MIN_WORD_TOKEN)


def _both(value: str) -> set[str]:
    """A value as written and percent-decoded: a message may quote either."""
    return {value, unquote(value)}


def url_secrets(url: str) -> set[str]:
    """The secret pieces of a URL: itself, its password, a token-like user, a dot-less host, token-like path
    segments and query values (each as written and decoded). A postgresql:// URL's ?password= is a value too."""
    out = _both(url)
    base, _, query = url.partition("?")
    scheme, sep, rest = base.partition("://")
    if not sep:
        return {s for s in out if len(s) >= MIN_SECRET}
    # The last '@' ends the user info: a password may hold '@' or '/' unquoted, as a user may write it.
    userinfo, at, hostpath = rest.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        if colon:
            out |= _both(password)
        out |= {u for u in _both(user) if _tokenish(u)}
    host, _, path = hostpath.partition("/")
    host = host.partition("#")[0]
    name, colon, port = host.rpartition(":")
    name = name if colon and port.isdigit() else host
    if name and "." not in name and name.lower() != "localhost" and not name.startswith("["):
        # tgram://BOT_ID:TOKEN/...: a dot-less "host" is not a server but a token, colon and all.
        out |= _both(name) | {p for p in unquote(name).split(":") if _tokenish(p)}
    for segment in re.split(r"[/#]+", path):
        out |= {s for s in _both(segment) if _tokenish(s)}
    try:
        pairs = parse_qsl(query, keep_blank_values=True)
    except ValueError:
        pairs = []
    values = {v for raw in query.split("&") for v in _both(raw.partition("=")[2])} | {v for _, v in pairs}
    for value in values:
        if value.lower() not in PLAIN_VALUES:
            # "Bearer TOKEN" is sent as Bearer+TOKEN too: each token-like word of a value is a secret as well.
            out |= {value} | {w for w in re.split(r"[\s+]+", value) if _tokenish(w)}
    return {s for s in out if len(s) >= MIN_SECRET}


def store_name(url: str) -> str:
    """A store as it may be shown: a path as is; a URL with its password (in the user info or as ?password=)
    as ***."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    base, q, query = rest.partition("?")
    userinfo, at, host = base.rpartition("@")  # the last '@': a password may hold '@' or '/' unquoted
    if at and ":" in userinfo:
        base = f"{userinfo.partition(':')[0]}:{MASK}@{host}"
    if q:
        query = re.sub(r"(^|&)(password=)[^&]*", rf"\1\2{MASK}", query, flags=re.IGNORECASE)
    return f"{scheme}://{base}{q}{query}"


def store_secrets(url: str) -> set[str]:
    """The password of a store URL (as written and decoded, from the user info or ?password=); none for a path."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return set()
    base, _, query = rest.partition("?")
    userinfo, at, _host = base.rpartition("@")
    out = _both(userinfo.partition(":")[2]) if at else set()
    for raw in query.split("&"):
        key, _, value = raw.partition("=")
        if key.lower() == "password":
            out |= _both(value)
    return {s for s in out if s}


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret (at least MIN_SECRET characters) replaced by ***, the longest first."""
    pattern = _pattern(secrets)
    return pattern.sub(MASK, text) if pattern is not None and text else text


def mask_param(text: str, name: str) -> str:
    """`text` with the value of every `name=` (a query parameter, in a URL or a message) replaced by ***."""
    return re.sub(rf"({re.escape(name)}=)[^&\s\"'<>]*", rf"\g<1>{MASK}", text)


class _QueryParamFilter(logging.Filter):
    """Masks the value of `name=` in a logger's records (urllib3 logs each request's URL, query and all, at DEBUG)."""

    def __init__(self, name: str):
        super().__init__()
        self.param = name

    def filter(self, record: logging.LogRecord) -> bool:
        text = _message(record)
        if f"{self.param}=" in text:
            record.msg, record.args = mask_param(text, self.param), None
        return True


def mask_query_param_in_logs(name: str, logger: str = "urllib3.connectionpool") -> None:
    """Mask `name=` in every record of `logger` from now on; installed once per name (a source keying its requests
    by a query parameter calls this before its first request)."""
    target = logging.getLogger(logger)
    if not any(isinstance(f, _QueryParamFilter) and f.param == name for f in target.filters):
        target.addFilter(_QueryParamFilter(name))


def blank_urls(text: str) -> str:
    """`text` with anything URL-shaped (scheme://...) replaced by <url>: a secret a caller missed is not kept."""
    return _URL.sub("<url>", text)


def _pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    # Longest first, so that a whole URL is masked as one, not piece by piece around its tokens.
    ordered = sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ordered))) if ordered else None


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string must not lose the event
        return f"unformattable log call: {record.msg!r} % {record.args!r}"


class SecretFilter(logging.Filter):
    """Masks every known secret with `***` on each record: its message (args merged in) and its fields.

    On logs.LineHandler it masks the finished line as well (exception reprs, third-party messages).
    """

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self._known: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        """Replace the known secrets (after a reload); strings shorter than MIN_SECRET are ignored."""
        known = frozenset(s for s in secrets if s and len(s) >= MIN_SECRET)
        pattern = _pattern(known)
        with self._lock:
            self._known, self._pattern = known, pattern

    def add(self, secrets: Iterable[str]) -> None:
        """Know these secrets as well as the ones known already."""
        new = {s for s in secrets if s and len(s) >= MIN_SECRET}
        with self._lock:
            if new <= self._known:
                return
            self._known |= new
            self._pattern = _pattern(self._known)

    def redact(self, text: str) -> str:
        """`text` with each known secret replaced by ***."""
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None and text else text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        # Merging the args first masks a secret passed as an argument as well as one in the format string.
        record.msg, record.args = self.redact(_message(record)), None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: self.redact(v) if isinstance(v, str) else v for k, v in fields.items()}
        return True
