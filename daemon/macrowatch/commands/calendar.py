"""`macrowatch calendar`: the coming sessions (early closes and holidays marked) and releases."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from pathlib import Path

import click

from macrowatch.clock import system_clock
from macrowatch.commands.common import load_or_exit
from macrowatch.config.types import Config
from macrowatch.model import Vintage
from macrowatch.runtime.calendars import BlsEvents, bls_days, uses_bls_schedule
from macrowatch.runtime.history import coming_consensus, stored_forecasts
from macrowatch.runtime.wiring import bls_for, fred_for, open_store_for
from macrowatch.sources import calendar, files
from macrowatch.sources.base import BlsError, FredError, MacroFeed, calendar_for
from macrowatch.sources.schedule import unschedulable
from macrowatch.store import StoreError


def command(config_path: Path, days: int) -> None:
    """Print the sessions and the releases of the next `days` days; problems (FRED unavailable) go to stderr."""
    config = load_or_exit(config_path, channels=False)  # it sends nothing
    today = system_clock().now().astimezone(zoneinfo.ZoneInfo(config.timezone)).date()
    macro = None
    if config.fred.api_key and any(r.fred_release_id for r in config.releases.values()):
        macro = fred_for(config)
    for line in session_lines(config, today, days):
        click.echo(line)
    bls = bls_schedule(config)
    lines, problems = release_lines(config, macro, today, days, consensus_lines(config), bls)
    click.echo("releases:" if lines else "releases: none scheduled in this window")
    for line in lines:
        click.echo(line)
    for rid, why in unschedulable(config, bool(config.fred.api_key), bls.events, bls.error):
        click.echo(f"not scheduled: {rid}: {why}")
    for problem in problems:
        click.echo(f"macrowatch calendar: {problem}", err=True)


def session_lines(config: Config, today: dt.date, days: int) -> list[str]:
    """A line per exchange session from today on; weekdays without a session are named as holidays."""
    tz = zoneinfo.ZoneInfo(config.timezone)
    codes = sorted({config.calendar, *map(calendar_for(config), config.instruments.values())})
    end = today + dt.timedelta(days=days)
    lines = []
    for code in codes:
        times = calendar.session_times(code, today, end)
        regular = max((close.astimezone(tz).time() for _open, close in times.values()), default=None)
        lines.append(f"{code}:")
        day = today
        while day <= end:
            if day in times:
                opens, closes = (t.astimezone(tz) for t in times[day])
                early = "  early close" if regular and closes.time() < regular else ""
                lines.append(f"  {day:%a %Y-%m-%d}  {opens:%H:%M}-{closes:%H:%M %Z}{early}")
            elif day.weekday() < 5:
                lines.append(f"  {day:%a %Y-%m-%d}  closed (holiday)")
            day += dt.timedelta(days=1)
    return lines


def consensus_lines(config: Config) -> Callable[[str, dt.datetime], list[str]]:
    """The lines under a release: the consensus each of its macros given one (a file, values or a feed) would be
    judged against now, and its source. With a feed, its forecasts and the series' periods come from the
    config's store when there is one (`macrowatch run` keeps them); none is created."""
    seen: files.Seen | None = None
    vintages: dict[str, list[Vintage]] = {}
    try:
        if any(m.feeds for m in config.macro.values()):
            with open_store_for(config, read_only=True) as store:
                seen = stored_forecasts(config, store)
                vintages = {m.series: store.vintages(m.series) for m in config.macro.values()}
    except StoreError:
        pass  # no store yet: no forecast seen, the period the month before the release's

    def lines(release_id: str, at: dt.datetime) -> list[str]:
        out = []
        for m in config.macro.values():
            if m.release != release_id or not (m.consensus_file or m.consensus or m.feeds):
                continue
            try:
                found = coming_consensus(m, at, vintages.get(m.series, []), seen)
            except files.DataError as exc:
                out.append(f"      {m.id}: consensus file unreadable: {exc}")
                continue
            out.append(f"      {m.id}: consensus {found[1]:g} for {found[0]:%Y-%m} ({found[2]})" if found else
                       f"      {m.id}: no consensus yet (the mean of the last 12 first prints)")
        return out

    return lines


NO_BLS = BlsEvents(None)  # no release names a `bls:` title: the schedule is not asked for


def bls_schedule(config: Config) -> BlsEvents:
    """The BLS schedule's events when a release names a `bls:` title (else none asked for), or why it is missing."""
    if not uses_bls_schedule(config):
        return NO_BLS
    client = bls_for(config)
    try:
        return BlsEvents(client.schedule(), fetched=True)
    except BlsError as exc:
        return BlsEvents(None, exc.reason)
    finally:
        client.close()


def release_lines(config: Config, macro: MacroFeed | None, today: dt.date, days: int,
                  consensus: Callable[[str, dt.datetime], list[str]] = lambda _rid, _at: [],
                  bls: BlsEvents = NO_BLS) -> tuple[list[str], list[str]]:
    """A line per scheduled release (FRED's calendar, the BLS schedule and `dates:`; a BLS time wins over `time:`),
    each followed by its `consensus` lines, and the problems met."""
    tz = zoneinfo.ZoneInfo(config.timezone)
    end = today + dt.timedelta(days=days)
    rows: list[tuple[dt.datetime, str, list[str]]] = []
    problems: list[str] = []
    for rid, release in config.releases.items():
        dates = [d for d in release.dates if today <= d <= end]
        if macro is not None and release.fred_release_id:
            try:
                dates = macro.release_schedule(release, today, end)
            except FredError as exc:
                problems.append(f"release {rid}: FRED calendar unavailable ({exc.reason}); explicit dates only")
        times = bls_days(config, release.bls, bls.events, today, end) if release.bls and bls.events else {}
        if release.bls and bls.error:
            problems.append(f"release {rid}: BLS schedule unavailable ({bls.error})")
        dates = sorted(set(dates) | times.keys())
        series = ", ".join(sorted({m.series for m in config.macro.values() if m.release == rid})) or "no series"
        for d in dates:
            at = dt.datetime.combine(d, times.get(d, release.time), tz)
            rows.append((at, f"  {at:%a %Y-%m-%d %H:%M %Z}  {rid} ({series})", consensus(rid, at)))
    return [line for _at, head, below in sorted(rows) for line in (head, *below)], problems
