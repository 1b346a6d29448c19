"""The typed, frozen config: what a loaded YAML file means."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from macrowatch.config.problems import Loc

NOWHERE = Loc("<default>")


class Side(enum.StrEnum):
    """Which way a level breaks: resistance breaks up, support breaks down."""

    RESISTANCE = "resistance"
    SUPPORT = "support"


class LevelKind(enum.StrEnum):
    """How a level's price is found."""

    PRICE = "price"                  # a fixed price
    ALL_TIME_HIGH = "all_time_high"  # highest close before the bar
    HIGH_OF = "high_of"              # highest close of the prior N bars
    RANGE_HIGH = "range_high"        # highest close since a date
    ALL_TIME_LOW = "all_time_low"
    LOW_OF = "low_of"
    RANGE_LOW = "range_low"

    @property
    def side(self) -> Side | None:
        """The side a dynamic kind implies; None for a fixed price (either side)."""
        if self is LevelKind.PRICE:
            return None
        return Side.SUPPORT if self.value.endswith("_low") or self is LevelKind.LOW_OF else Side.RESISTANCE


# The states of each side's breakout state machine (engine/breakout.py gives their meaning).
STATES = {
    Side.RESISTANCE: ("below", "approaching", "breakout", "confirmed", "failed"),
    Side.SUPPORT: ("above", "approaching", "breakdown", "confirmed", "failed"),
}


class Measure(enum.StrEnum):
    """What number a release is judged by."""

    LEVEL = "level"            # the newest value as published
    CHANGE = "change"          # newest minus the month before, both from the same release
    PCT_CHANGE = "pct_change"  # the same change in percent of the month before
    YOY_PCT = "yoy_pct"        # percent change from the same period a year before


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Outcome(enum.StrEnum):
    BEAT = "beat"
    MISS = "miss"
    INLINE = "inline"
    ANY = "any"


class Trigger(enum.StrEnum):
    """What kind of evaluation a rule runs on."""

    CLOSE = "close"
    RELEASE = "release"
    INTRADAY = "intraday"


@dataclass(frozen=True)
class Duration:
    """`N bars` (session closes) or elapsed time (`Nd`, `Nh`, `Nm`)."""

    amount: int
    unit: str  # "bars", "d", "h" or "m"

    @property
    def is_bars(self) -> bool:
        return self.unit == "bars"

    def as_timedelta(self) -> dt.timedelta:
        """The elapsed time; only for time units."""
        if self.is_bars:
            raise ValueError("a duration in bars has no fixed length of time")
        return dt.timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[self.unit]: self.amount})

    def __str__(self) -> str:
        return f"{self.amount} bars" if self.is_bars else f"{self.amount}{self.unit}"


@dataclass(frozen=True)
class BreakoutParams:
    """Tuning of the breakout state machine (defaults, overridable per level)."""

    approach_pct: float = 1.0
    buffer_pct: float = 0.0
    fail_within_bars: int = 5


@dataclass(frozen=True)
class Instrument:
    id: str
    symbol: str
    name: str
    calendar: str | None = None  # None: the config's calendar
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Level:
    id: str
    instrument: str
    kind: LevelKind
    side: Side
    breakout: BreakoutParams
    price: float | None = None        # kind price
    since: dt.date | None = None      # range_high / range_low
    bars: int | None = None           # high_of / low_of
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)

    @property
    def states(self) -> tuple[str, ...]:
        return STATES[self.side]


@dataclass(frozen=True)
class Release:
    id: str
    time: dt.time
    fred_release_id: int | None = None
    dates: tuple[dt.date, ...] = ()
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Macro:
    id: str
    series: str
    release: str
    measure: Measure = Measure.LEVEL
    consensus_file: Path | None = None
    consensus: Mapping[dt.date, float] = field(default_factory=dict)  # inline: reference period -> value
    beat_by: float = 0.0
    higher_is: str = "better"  # "better" or "worse" (swaps beat and miss)
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Channel:
    id: str
    source: str                                         # as written, ${VAR} unexpanded: safe to show
    urls: tuple[str, ...] = field(default=(), repr=False)  # expanded: holds secrets, never logged
    missing: tuple[str, ...] = ()                       # environment variables that were not set
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


# ---- rule conditions -------------------------------------------------------------------------

@dataclass(frozen=True)
class LevelIn:
    """`{level: ID, state: S | [S...]}`: the level is in one of the states now."""

    level: str
    states: tuple[str, ...]
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class LevelEntered:
    """`{level: ID, entered: S}`: the level changed to S at this evaluation."""

    level: str
    state: str
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class ReleaseOutcome:
    """`{release: MACRO, outcome: O, within: D}`: the latest release had outcome O, no longer than D ago."""

    macro: str
    outcome: Outcome
    within: Duration | None = None  # None: only at the evaluation of the release itself
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class NarrowRange:
    """`{instrument: ID, narrow_range: {bars: N, pct: P}}`: the last N closes lie within P% of their low."""

    instrument: str
    bars: int
    pct: float
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Not:
    item: Condition
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


Condition = LevelIn | LevelEntered | ReleaseOutcome | NarrowRange | AllOf | AnyOf | Not


@dataclass(frozen=True)
class TemplateField:
    """One `{id.attr:spec}` of a message template."""

    id: str
    kind: str  # "instrument", "level" or "macro"
    attr: str


@dataclass(frozen=True)
class Template:
    text: str
    fields: tuple[TemplateField, ...] = ()


@dataclass(frozen=True)
class Rule:
    name: str
    when: Condition
    severity: Severity = Severity.WARNING
    notify: tuple[str, ...] = ()
    for_: Duration | None = None
    cooldown: Duration | None = None
    chart: str | None = None
    message: Template | None = None
    on: frozenset[Trigger] = frozenset({Trigger.CLOSE, Trigger.RELEASE})
    labels: Mapping[str, str] = field(default_factory=dict)
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class FredSource:
    api_key: str | None = field(default=None, repr=False)  # expanded: a secret
    api_key_source: str | None = None                       # as written
    url: str | None = None


@dataclass(frozen=True)
class YahooSource:
    url: str | None = None


@dataclass(frozen=True)
class Health:
    host: str
    port: int


@dataclass(frozen=True)
class Ha:
    """High availability on a postgresql:// store: how long a lease lasts (takeover time; ha.py)."""

    lease_seconds: int = 10


@dataclass(frozen=True)
class Config:
    files: tuple[Path, ...]
    timezone: str = "America/New_York"
    calendar: str = "XNYS"
    store: str | None = None           # path (made absolute) or postgresql:// URL; None: the default place
    poll_intraday: Duration = Duration(5, "m")
    health: Health | None = None
    ha: Ha = Ha()
    fred: FredSource = FredSource()
    yahoo: YahooSource = YahooSource()
    breakout: BreakoutParams = BreakoutParams()
    instruments: Mapping[str, Instrument] = field(default_factory=dict)
    levels: Mapping[str, Level] = field(default_factory=dict)
    releases: Mapping[str, Release] = field(default_factory=dict)
    macro: Mapping[str, Macro] = field(default_factory=dict)
    channels: Mapping[str, Channel] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()

    def summary(self) -> str:
        """One line of counts, for `macrowatch check`."""
        parts = [(len(self.instruments), "instrument"), (len(self.levels), "level"),
                 (len(self.releases), "release"), (len(self.macro), "macro series"),
                 (len(self.rules), "rule"), (len(self.channels), "channel")]
        return ", ".join(f"{n} {w}{'' if n == 1 or w.endswith('series') else 's'}" for n, w in parts)
