"""A made-up alert with its bars, level and release, for `macrowatch notify-test`: what a real one looks like."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from dataclasses import dataclass

from macrowatch.config.types import BreakoutParams, Level, LevelKind, LevelState, Outcome, Side
from macrowatch.model import Alert, Bar
from macrowatch.notify.render import Context, MacroFormat

NAME = "Sample index"
LEVEL = 100.0
SESSIONS = 60


@dataclass(frozen=True)
class Sample:
    """A sample alert and what its chart is drawn from."""

    alert: Alert
    bars: list[Bar]
    levels: list[Level]
    releases: list[dt.datetime]
    name: str = NAME

    def context(self, tz: str | None = None) -> Context:
        """The names and units its evidence needs, in time zone `tz`."""
        return Context({lv.id: self.name for lv in self.levels}, {"payrolls": MacroFormat("change", "k")}, tz)


def sample(now: dt.datetime, tz: str = "America/New_York", channel: str = "test") -> Sample:
    """Weekday closes up to `now` that press on 100, break it, fail, and break it again after a release."""
    zone = zoneinfo.ZoneInfo(tz)
    days = _weekdays(now.astimezone(zone).date(), SESSIONS)
    closes = [_close(i) for i in range(SESSIONS)]
    bars = [Bar(d, dt.datetime.combine(d, dt.time(16), zone), c - 0.3, c + 0.6, c - 0.7, c)
            for d, c in zip(days, closes, strict=True)]
    level = Level("sample-100", "sample", LevelKind.PRICE, Side.RESISTANCE, BreakoutParams(fail_within_bars=3),
                  price=LEVEL)
    release = dt.datetime.combine(days[-3], dt.time(8, 30), zone)
    last = bars[-1]
    evidence = {
        "sample-100 breakout": {"holds": True, "state": LevelState.BREAKOUT, "level": LEVEL, "close": last.close},
        "payrolls beat within 1d": {"holds": True, "outcome": Outcome.BEAT, "actual": 250.0, "consensus": 180.0,
                                    "surprise": 70.0, "prior": 150.0, "ref_period": days[-3].replace(day=1),
                                    "released_at": release, "consensus_source": "consensus (file)"},
    }
    alert = Alert("notify-test", last.at, "info", {"channel": channel},
                  f"Test alert from macrowatch: {NAME} closed {last.close:.2f}, above {LEVEL:.0f} "
                  "(made-up data)", evidence, f"notify-test|{now.isoformat()}", (channel,), "sample")
    return Sample(alert, bars, [level], [release])


def _close(i: int) -> float:
    """A climb to the level, a breakout that fails, then a breakout that holds (the last 3 bars)."""
    if i < SESSIONS - 12:
        return round(92 + 7 * i / (SESSIONS - 12) + 0.4 * math.sin(i), 2)
    tail = [99.6, 100.8, 101.4, 99.7, 99.2, 98.9, 99.3, 99.5, 99.4, 99.7, 99.9, 101.2]
    return tail[i - (SESSIONS - 12)]


def _weekdays(end: dt.date, n: int) -> list[dt.date]:
    days: list[dt.date] = []
    d = end
    while len(days) < n:
        if d.weekday() < 5:
            days.append(d)
        d -= dt.timedelta(days=1)
    return days[::-1]
