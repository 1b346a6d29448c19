"""Typed reading of located YAML values; every bad value is reported with its place."""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from collections.abc import Iterable
from typing import Any

from macrowatch.config.problems import Loc, Problems
from macrowatch.config.types import Duration
from macrowatch.config.yamlsrc import YNode

ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_DURATION_RE = re.compile(r"^\s*(\d{1,9})\s*(bars?|d|h|m)\s*$")  # 9 digits: int() and timedelta never overflow
MAX_DURATION = dt.timedelta(days=36525)  # 100 years: longer is a typo, and overflows date arithmetic
MAX_BARS = 25_000                         # about 100 years of sessions
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

_TYPE_NAMES = {dict: "a mapping", list: "a list", str: "a string", bool: "true or false",
               type(None): "empty", int: "a whole number", float: "a number",
               dt.date: "a date", dt.datetime: "a date and time"}


def describe(value: Any) -> str:
    """How a YAML value reads to a user: 'a list', 'the string \"x\"'."""
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def close_match(word: str, choices: Iterable[str]) -> str | None:
    """The choice `word` is likely a misspelling of, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return close[0] if close else None


def suggest(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean X?)' hint, or ''."""
    close = close_match(word, choices)
    return f" (did you mean {close!r}?)" if close else ""


def known_ids(names: Iterable[str], most: int = 30) -> str:
    """A ' (known: a, b, c)' list of the ids an unknown one could have been, sorted; long lists cut short."""
    names = sorted(names)
    shown = ", ".join(names[:most]) + (f", ... ({len(names) - most} more)" if len(names) > most else "")
    return f" (known: {shown or 'none defined'})"


def expand_env(text: str, environ: dict[str, str] | None = None) -> tuple[str, tuple[str, ...]]:
    """Expand `${VAR}` and `${VAR:-default}`; return the text and the names that were unset."""
    env = os.environ if environ is None else environ
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            missing.append(name)
            return ""
        return value

    return _VAR_RE.sub(sub, text), tuple(missing)


class Reader:
    """Reads values out of YNodes, reporting problems instead of raising."""

    def __init__(self, problems: Problems):
        self.problems = problems

    def error(self, loc: Loc, message: str) -> None:
        self.problems.error(loc, message)

    def expand(self, text: str) -> tuple[str, tuple[str, ...]]:
        """`expand_env`, noting each value it put in so that no message shows it (it may be a secret)."""
        for m in _VAR_RE.finditer(text):
            value = os.environ.get(m.group(1))
            if value:
                self.problems.hide(value, m.group(1))
        return expand_env(text)

    # ---- mappings ---------------------------------------------------------------------------
    def mapping(self, node: YNode, what: str, allowed: Iterable[str],
                required: Iterable[str] = ()) -> dict[str, YNode] | None:
        """The node's keys after checking: unknown keys and missing required keys are errors."""
        if not node.is_map:
            self.error(node.loc, f"{what}: expected a mapping, got {describe(node.value)}")
            return None
        allowed = list(allowed)
        for key, kloc in node.keys.items():
            if key not in allowed:
                self.error(kloc, f"{what}: unknown key {key!r}{suggest(key, allowed)}; "
                                 f"allowed: {', '.join(allowed)}")
        for key in required:
            if key not in node.value:
                self.error(node.loc, f"{what}: missing key {key!r}")
        return {k: v for k, v in node.value.items() if k in allowed}

    def id(self, name: str, loc: Loc, what: str) -> bool:
        """Check an id (letters, digits, '-' and '_', starting with a letter)."""
        if ID_RE.match(name):
            return True
        self.error(loc, f"{what}: {name!r} is not a valid id (a letter, then letters, digits, '-' or '_')")
        return False

    # ---- scalars ----------------------------------------------------------------------------
    def string(self, node: YNode, what: str, nonempty: bool = True, expand: bool = True) -> str | None:
        """A string, with `${VAR}` expanded from the environment (an unset variable is an error).

        `expand=False` returns the text as written, for the callers that treat unset variables themselves.
        """
        if not isinstance(node.value, str):
            self.error(node.loc, f"{what}: expected a string, got {describe(node.value)}")
            return None
        text = node.value
        if expand:
            text, missing = self.expand(text)
            for var in missing:
                self.error(node.loc, f"{what}: environment variable {var} is not set")
            if missing:
                return None
        if nonempty and not text.strip():
            self.error(node.loc, f"{what}: must not be empty" + (" after expanding the environment"
                                                                 if text != node.value else ""))
            return None
        return text

    def number(self, node: YNode, what: str, minimum: float | None = None,
               above: float | None = None, below: float | None = None) -> float | None:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int | float):
            self.error(node.loc, f"{what}: expected a number, got {describe(v)}")
            return None
        try:
            v = float(v)
        except OverflowError:  # an integer of hundreds of digits
            self.error(node.loc, f"{what}: expected a finite number, got one too large for a float")
            return None
        if v != v or v in (float("inf"), float("-inf")):
            self.error(node.loc, f"{what}: expected a finite number, got {v}")
            return None
        if minimum is not None and v < minimum:
            self.error(node.loc, f"{what}: must be at least {minimum:g}, got {v:g}")
            return None
        if above is not None and v <= above:
            self.error(node.loc, f"{what}: must be greater than {above:g}, got {v:g}")
            return None
        if below is not None and v >= below:
            self.error(node.loc, f"{what}: must be less than {below:g}, got {v:g}")
            return None
        return float(v)

    def integer(self, node: YNode, what: str, minimum: int | None = None,
                maximum: int | None = None) -> int | None:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, int):
            self.error(node.loc, f"{what}: expected a whole number, got {describe(v)}")
            return None
        if minimum is not None and v < minimum:
            self.error(node.loc, f"{what}: must be at least {minimum}, got {v}")
            return None
        if maximum is not None and v > maximum:
            self.error(node.loc, f"{what}: must be at most {maximum}, got {v}")
            return None
        return v

    def choice(self, node: YNode, what: str, choices: Iterable[str]) -> str | None:
        choices = list(choices)
        v = node.value
        if not isinstance(v, str) or v not in choices:
            shown = repr(v) if isinstance(v, str) else describe(v)
            hint = suggest(v, choices) if isinstance(v, str) else ""
            self.error(node.loc, f"{what}: {shown} is not one of {', '.join(choices)}{hint}")
            return None
        return v

    def date(self, node: YNode, what: str) -> dt.date | None:
        v = node.value
        if isinstance(v, dt.datetime):
            self.error(node.loc, f"{what}: expected a date (YYYY-MM-DD), got a date and time")
            return None
        if isinstance(v, dt.date):
            return v
        if isinstance(v, str):
            try:
                return dt.date.fromisoformat(v.strip())
            except ValueError:
                pass
        self.error(node.loc, f"{what}: expected a date (YYYY-MM-DD), got {describe(v)}")
        return None

    def month_or_date(self, node: YNode, what: str) -> dt.date | None:
        """A reference period: `2019-07` or `2019-07-01` (FRED dates a period by its first day)."""
        v = node.value
        if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}", v.strip()):
            try:
                return dt.date.fromisoformat(v.strip() + "-01")
            except ValueError:
                pass
        d = self.date(node, what)
        if d is not None and d.day != 1:
            self.error(node.loc, f"{what}: {d} is not the first day of a month; a reference period is "
                                 "written YYYY-MM or YYYY-MM-01")
            return None
        return d

    def clock_time(self, node: YNode, what: str) -> dt.time | None:
        v = node.value
        if isinstance(v, str):
            m = re.fullmatch(r"(\d{1,2}):(\d{2})", v.strip())
            if m and int(m.group(1)) < 24 and int(m.group(2)) < 60:
                return dt.time(int(m.group(1)), int(m.group(2)))
        self.error(node.loc, f"{what}: expected a time of day HH:MM, got {describe(v)}")
        return None

    def duration(self, node: YNode, what: str, bars: bool = True) -> Duration | None:
        v = node.value
        m = _DURATION_RE.match(v) if isinstance(v, str) else None
        if m is None or int(m.group(1)) <= 0:
            forms = "'N bars', 'Nd', 'Nh' or 'Nm'" if bars else "'Nd', 'Nh' or 'Nm'"
            shown = repr(v) if isinstance(v, str) else describe(v)
            self.error(node.loc, f"{what}: {shown} is not a duration; use {forms} with N > 0")
            return None
        unit = "bars" if m.group(2).startswith("bar") else m.group(2)
        if unit == "bars" and not bars:
            self.error(node.loc, f"{what}: takes elapsed time ('Nd', 'Nh' or 'Nm'), not bars")
            return None
        d = Duration(int(m.group(1)), unit)
        if d.amount > MAX_BARS if d.is_bars else d.as_timedelta() > MAX_DURATION:
            self.error(node.loc, f"{what}: {d} is too long (at most {MAX_BARS} bars or "
                                 f"{MAX_DURATION.days}d)")
            return None
        return d

    def string_list(self, node: YNode, what: str, expand: bool = True) -> list[tuple[str, Loc]]:
        """A string or a list of strings, each with its place."""
        items = node.value if node.is_list else [node]
        out = []
        for item in items:
            s = self.string(item, what, expand=expand)
            if s is not None:
                out.append((s, item.loc))
        if node.is_list and not items:
            self.error(node.loc, f"{what}: must not be an empty list")
        return out
