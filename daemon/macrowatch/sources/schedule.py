"""Release calendars: the BLS schedule's iCalendar events, which of them a `bls:` title means, and which releases
of a config have no usable calendar at all (a release rule on one of those could never fire).

The BLS schedule (https://www.bls.gov/schedule/news_release/bls.ics, read by `bls.BlsClient.schedule`) is an
iCalendar file: one VEVENT per news release, `SUMMARY:Employment Situation for November 2026` and
`DTSTART;TZID=US-Eastern:20261204T083000`. "US-Eastern" is BLS's own name for America/New_York, not an IANA
one; long lines may be folded (RFC 5545: a line break followed by a space or a tab continues the line).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from macrowatch.config.types import Config
from macrowatch.sources.base import BlsError

__all__ = ["EASTERN", "Event", "matches", "parse_ics", "release_times", "unschedulable"]

log = logging.getLogger("macrowatch.sources.schedule")

EASTERN = zoneinfo.ZoneInfo("America/New_York")


class Event(NamedTuple):
    """One release in the BLS schedule: its SUMMARY and when it comes out (America/New_York)."""

    summary: str
    at: dt.datetime


# ---- the BLS schedule ---------------------------------------------------------------------------------

# What may follow a title in a SUMMARY: nothing, its period (" for November 2026"), a year, or a mark ("(P)", "—").
_AFTER_TITLE = re.compile(r"\s*$|\s+for\s|\s+\d|\s*[(,:;]|\s+[-\u2013\u2014]")


def matches(summary: str, title: str) -> bool:
    """Whether an event is a release of `title`: its SUMMARY (case and spacing aside) starts with the title, and
    what follows is nothing, " for " and the period ("Employment Situation for November 2026"), a year, or a
    punctuation mark ("Productivity and Costs (P) for Third Quarter 2026", "Union Members — 2025"); never another
    word of a longer name: "Employment Situation" is not "Employment Situation of Veterans"."""
    s, t = _words(summary), _words(title)
    return s.startswith(t) and _AFTER_TITLE.match(s, len(t)) is not None


def release_times(events: Iterable[Event], title: str) -> list[dt.datetime]:
    """When the releases of `title` come out, sorted, each once."""
    return sorted({e.at for e in events if matches(e.summary, title)})


def parse_ics(text: str) -> list[Event]:
    """The events of an iCalendar file with a SUMMARY and a DTSTART date and time, in file order.

    An event that cannot be read is skipped with a warning (the others still count); a file that is no
    calendar, a truncated one or one without a single readable event is a BlsError.
    """
    lines = _unfold(text)
    first = next((line for _, line in lines if line.strip()), "")
    if first.strip().upper() != "BEGIN:VCALENDAR":
        raise BlsError("schedule", f"not an iCalendar file (it starts with {first[:60]!r})")
    events: list[Event] = []
    stack: list[str] = []
    props: dict[str, tuple[dict[str, str], str]] = {}
    problem: str | None = None
    for number, line in lines:
        if not line.strip():
            continue
        parsed = _content_line(line)
        if parsed is None:
            if stack[-1:] == ["VEVENT"]:
                problem = problem or f"unreadable line {line[:60]!r}"
            continue
        name, params, value = parsed
        if name == "BEGIN":
            stack.append(value.upper())
            if stack[-1] == "VEVENT":
                props, problem = {}, None
        elif name == "END":
            if not stack or stack[-1] != value.upper():
                raise BlsError("schedule", f"malformed iCalendar file: END:{value} at line {number} closes "
                                           f"{'BEGIN:' + stack[-1] if stack else 'nothing'}")
            if stack.pop() == "VEVENT":
                event = _event(props, problem)
                if isinstance(event, Event):
                    events.append(event)
                else:
                    log.warning("BLS schedule: skipped the event ending at line %d: %s", number, event)
        elif stack[-1:] == ["VEVENT"]:
            props.setdefault(name, (params, value))
    if stack:
        raise BlsError("schedule", f"truncated iCalendar file (no END:{stack[-1]})")
    if not events:
        raise BlsError("schedule", "no release events in the schedule")
    return events


def _words(text: str) -> str:
    return " ".join(text.split()).casefold()


def _unfold(text: str) -> list[tuple[int, str]]:
    """(line number, content line): a line break followed by a space or a tab continues the line before (RFC 5545,
    3.1); the number is that of the content line's first line in the file."""
    lines: list[tuple[int, str]] = []
    for number, line in enumerate(re.split(r"\r\n|\r|\n", text.removeprefix("\ufeff")), start=1):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] = (lines[-1][0], lines[-1][1] + line[1:])
        else:
            lines.append((number, line))
    return lines


_NAME = re.compile(r"[A-Za-z0-9-]+")
_PARAM = re.compile(r';([A-Za-z0-9-]+)=("[^"]*"|[^";:]*)')


def _content_line(line: str) -> tuple[str, dict[str, str], str] | None:
    """(NAME, {PARAM: value}, value) of `NAME;PARAM=value:value`; None when the line is none."""
    name = _NAME.match(line)
    if name is None:
        return None
    params, at = {}, name.end()
    while (param := _PARAM.match(line, at)) is not None:
        params[param[1].upper()] = param[2].strip('"')
        at = param.end()
    if not line.startswith(":", at):
        return None
    return name[0].upper(), params, line[at + 1:]


def _event(props: dict[str, tuple[dict[str, str], str]], problem: str | None) -> Event | str:
    """The event of a VEVENT's properties, or why there is none."""
    if problem:
        return problem
    if "SUMMARY" not in props or not props["SUMMARY"][1].strip():
        return "no SUMMARY"
    summary = _unescape(props["SUMMARY"][1]).strip()
    if "DTSTART" not in props:
        return f"{summary}: no DTSTART"
    params, value = props["DTSTART"]
    try:
        return Event(summary, _start(params, value.strip()))
    except ValueError as exc:
        return f"{summary}: DTSTART {value.strip()[:40]!r}: {exc}"


def _start(params: dict[str, str], value: str) -> dt.datetime:
    """A DTSTART as an aware time in America/New_York: BLS's "US-Eastern", an IANA TZID, UTC (Z), or floating
    (read as Eastern, BLS's time). A date without a time is no release time."""
    if params.get("VALUE", "").upper() == "DATE" or re.fullmatch(r"\d{8}", value):
        raise ValueError("a date without a time of day")
    form = re.fullmatch(r"(\d{8}T\d{6})(Z?)", value)
    if form is None:
        raise ValueError("not a date and time (YYYYMMDDTHHMMSS)")
    local = dt.datetime.strptime(form[1], "%Y%m%dT%H%M%S")
    if form[2]:
        return local.replace(tzinfo=dt.UTC).astimezone(EASTERN)
    return local.replace(tzinfo=_zone(params.get("TZID")))


def _zone(tzid: str | None) -> zoneinfo.ZoneInfo:
    if tzid is None or tzid.casefold() in ("us-eastern", "us/eastern"):
        return EASTERN
    try:
        return zoneinfo.ZoneInfo(tzid)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        raise ValueError(f"unknown time zone {tzid!r}") from None


def _unescape(text: str) -> str:
    r"""An iCalendar TEXT value: \, \; \\ and \n (a line break, shown as a space)."""
    return re.sub(r"\\([\\,;nN])", lambda m: " " if m[1] in "nN" else m[1], text)


# ---- releases without a calendar ----------------------------------------------------------------------

def unschedulable(config: Config, fred_key: bool, bls_events: Sequence[Event] | None = None,
                  bls_error: str | None = None) -> list[tuple[str, str]]:
    """(release id, why) for each release of `config` with no usable calendar, in config order.

    `fred_key`: whether there is a FRED API key (`fred_release_id` needs one for FRED's release calendar).
    `bls_events`: the BLS schedule as last read, if at hand: a `bls:` title that none of its events matches is no
    calendar (a typo, or a release BLS does not publish). `bls_error`: why the schedule could not be read, when no
    copy is at hand: then a `bls:` title is no calendar either. Without both, a `bls:` title counts as usable;
    explicit `dates:` always do.
    """
    out = []
    for rid, release in config.releases.items():
        if release.dates or (release.fred_release_id is not None and fred_key):
            continue
        why = []
        if release.fred_release_id is not None:
            why.append("no FRED key (sources.fred.api_key) for fred_release_id")
        if release.bls:
            if bls_error is not None:
                why.append(f"the BLS schedule is unavailable ({bls_error})")
            elif bls_events is not None and not release_times(bls_events, release.bls):
                why.append(f"no event of the BLS schedule is titled {release.bls!r} (check `bls:`)")
            else:
                continue
        fixes = [k for k, absent in (("bls", not release.bls), ("dates", True),
                                     ("fred_release_id", fred_key and release.fred_release_id is None)) if absent]
        out.append((rid, "; ".join(why) + ": add " + " or ".join(f"`{k}:`" for k in fixes)))
    return out
