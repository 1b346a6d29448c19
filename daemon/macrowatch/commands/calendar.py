"""`macrowatch calendar`: the coming sessions (early closes and holidays marked) and releases."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

import click

from macrowatch.clock import system_clock
from macrowatch.commands.common import load_or_exit
from macrowatch.config.types import Config
from macrowatch.runtime.wiring import fred_for
from macrowatch.sources import calendar
from macrowatch.sources.base import FredError, MacroFeed, calendar_for


def command(config_path: Path, days: int) -> None:
    """Print the sessions and the releases of the next `days` days; problems (FRED unavailable) go to stderr."""
    config = load_or_exit(config_path, channels=False)  # it sends nothing
    today = system_clock().now().astimezone(zoneinfo.ZoneInfo(config.timezone)).date()
    macro = None
    if config.fred.api_key and any(r.fred_release_id for r in config.releases.values()):
        macro = fred_for(config)
    for line in session_lines(config, today, days):
        click.echo(line)
    lines, problems = release_lines(config, macro, today, days)
    click.echo("releases:" if lines else "releases: none scheduled in this window")
    for line in lines:
        click.echo(line)
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


def release_lines(config: Config, macro: MacroFeed | None, today: dt.date, days: int) -> tuple[list[str], list[str]]:
    """A line per scheduled release (FRED's calendar and `dates:`), and the problems met."""
    tz = zoneinfo.ZoneInfo(config.timezone)
    end = today + dt.timedelta(days=days)
    rows: list[tuple[dt.datetime, str]] = []
    problems: list[str] = []
    for rid, release in config.releases.items():
        dates = [d for d in release.dates if today <= d <= end]
        if macro is not None and release.fred_release_id:
            try:
                dates = macro.release_schedule(release, today, end)
            except FredError as exc:
                problems.append(f"release {rid}: FRED calendar unavailable ({exc.reason}); explicit dates only")
        series = ", ".join(sorted({m.series for m in config.macro.values() if m.release == rid})) or "no series"
        for d in dates:
            at = dt.datetime.combine(d, release.time, tz)
            rows.append((at, f"  {at:%a %Y-%m-%d %H:%M %Z}  {rid} ({series})"))
    return [line for _at, line in sorted(rows)], problems
