"""The typed, frozen config: what a loaded YAML file means."""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


class Documented(enum.StrEnum):
    """A string enum whose members each carry one line of meaning: `NAME = "value", "what it means"`."""

    def __new__(cls, value: str, doc: str) -> Documented:
        member = str.__new__(cls, value)
        member._value_ = value
        member.__doc__ = doc
        return member


class LevelState(Documented):
    """A state of a level's breakout state machine (engine/breakout.py); both sides' states in one enum.

    The members are their names as written in rules, saved state, messages and status (`str` subclasses).
    """

    BELOW = "below", "resistance: the close is short of the approach band"
    ABOVE = "above", "support: the close is short of the approach band (above it)"
    APPROACHING = "approaching", "the close is inside the approach band, at most `buffer_pct` past the level"
    BREAKOUT = "breakout", ("resistance: a close above the level by more than `buffer_pct`; the level is "
                            "frozen at its value for the watch window")
    BREAKDOWN = "breakdown", ("support: a close below the level by more than `buffer_pct`; the level is "
                              "frozen at its value for the watch window")
    CONFIRMED = "confirmed", "every close of the watch window (`fail_within_bars` bars) stayed past the level"
    FAILED = "failed", "a false breakout: a close back at or behind the level inside the watch window"


# The states of each side's machine, in the order quiet, approaching, breaking, confirmed, failed
# (engine/batch.py numbers them in this order).
STATES = {
    Side.RESISTANCE: (LevelState.BELOW, LevelState.APPROACHING, LevelState.BREAKOUT, LevelState.CONFIRMED,
                      LevelState.FAILED),
    Side.SUPPORT: (LevelState.ABOVE, LevelState.APPROACHING, LevelState.BREAKDOWN, LevelState.CONFIRMED,
                   LevelState.FAILED),
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


class Outcome(Documented):
    """A release's outcome against consensus (engine/outcomes.py), and what a rule's `outcome:` asks for."""

    BEAT = "beat", "the actual beat consensus by `beat_by` or more (the better way, by `higher_is`)"
    MISS = "miss", "the actual missed consensus by `beat_by` or more"
    INLINE = "inline", "the actual was within `beat_by` of consensus (an exact match is always inline)"
    ANY = "any", "in a rule: whatever the outcome, unknown included; never a release's own outcome"
    UNKNOWN = "unknown", ("the release had nothing to be judged against: no consensus and fewer first prints "
                          "than the baseline needs; never written in a rule")


# What a rule's `outcome:` may be (an unknown outcome is matched by `any` only).
RULE_OUTCOMES = (Outcome.BEAT, Outcome.MISS, Outcome.INLINE, Outcome.ANY)


class Trigger(enum.StrEnum):
    """What kind of evaluation a rule runs on."""

    CLOSE = "close"
    RELEASE = "release"
    INTRADAY = "intraday"


class Direction(enum.StrEnum):
    """Which way a rule's alerts are scored (replay --score): a long return, or the short (negated) one."""

    LONG = "long"
    SHORT = "short"


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
    def states(self) -> tuple[LevelState, ...]:
        return STATES[self.side]


@dataclass(frozen=True)
class Briefing:
    """`briefing: {before: 30m, notify: [...]}`: a message this long before each release of it, saying what its
    rules would do on a beat, inline print or miss (engine/whatif.py)."""

    before: Duration                  # elapsed time (d, h, m), never bars
    notify: tuple[str, ...] = ()
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class Release:
    id: str
    time: dt.time
    fred_release_id: int | None = None
    dates: tuple[dt.date, ...] = ()
    bls: str | None = None            # the title of its events in the BLS schedule ("Employment Situation")
    briefing: Briefing | None = None
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


# A BLS series id, upper-case letters and digits (CES0000000001, LNS14000000, CUUR0000SA0, EIUIR); use fullmatch.
BLS_SERIES_ID = re.compile(r"[A-Z0-9]{5,30}")


class Feed(enum.StrEnum):
    """A consensus forecast feed (sources/consensus.py); keyless, so naming one needs no `sources.consensus` entry."""

    FOREXFACTORY = "forexfactory"  # ForexFactory's weekly calendar JSON (this week's events, with forecasts)
    NASDAQ = "nasdaq"              # Nasdaq's economic events, one page per day (consensus, actual, previous)


# The United States as each feed names it: ForexFactory by currency, Nasdaq by country name.
US_COUNTRY = {Feed.FOREXFACTORY: "USD", Feed.NASDAQ: "United States"}


@dataclass(frozen=True)
class ConsensusFeed:
    """`{feed: F, event: TITLE, unit: N, country: C}`: a feed's forecast for each release of a macro series.

    The forecast ("185K" = 185000) is divided by `unit` into the series' units (PAYEMS counts thousands: 1000).
    """

    feed: Feed
    event: str                 # the feed's title of the event, matched exactly (case-insensitive, trimmed)
    unit: float = 1.0
    country: str | None = None  # None: the United States (US_COUNTRY)
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)

    @property
    def in_country(self) -> str:
        """The country the event is matched in, as the feed writes it."""
        return self.country or US_COUNTRY[self.feed]


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
    bls_series: str | None = None  # the same series in the BLS API, read at the release time
    # The feeds of `consensus` (a feed entry, or a list), tried in order after the file or inline entry for the
    # month (at most one of those, before the feeds) and before the mean of the last 12 first prints.
    feeds: tuple[ConsensusFeed, ...] = ()
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
    states: tuple[LevelState, ...]
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class LevelEntered:
    """`{level: ID, entered: S}`: the level changed to S at this evaluation."""

    level: str
    state: LevelState
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
class NewExtreme:
    """`{instrument: ID, new_high: N bars}` / `new_low`: this close is above the highest (below the lowest) close
    of the N bars before it; `all` (bars None): of every close before it."""

    instrument: str
    bars: int | None
    low: bool = False
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)

    @property
    def key(self) -> str:
        """The atom's key as written: new_high or new_low."""
        return "new_low" if self.low else "new_high"


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


Condition = LevelIn | LevelEntered | ReleaseOutcome | NarrowRange | NewExtreme | AllOf | AnyOf | Not


# What a message template may name, per kind of id, with a sample value to try the format spec on.
TEMPLATE_FIELDS: dict[str, dict[str, Any]] = {
    "instrument": {"close": 1.5, "name": "name", "symbol": "SYM"},
    "level": {"price": 1.5, "state": "state"},
    "macro": {"actual": 1.5, "consensus": 1.5, "surprise": 1.5, "prior": 1.5,
              "ref_period": dt.date(2019, 7, 1)},
}


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
class Score:
    """`score: {instrument: ID, direction: long|short}`: what a rule's alerts are scored on (replay --score).

    No instrument: the rule's chart, else the first level or instrument its condition names."""

    instrument: str | None = None
    direction: Direction = Direction.LONG
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


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
    score: Score | None = None
    loc: Loc = field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True)
class FredSource:
    api_key: str | None = field(default=None, repr=False)  # expanded: a secret
    api_key_source: str | None = None                       # as written
    url: str | None = None


@dataclass(frozen=True)
class BlsSource:
    api_key: str | None = field(default=None, repr=False)  # expanded: a secret; None: keyless (25 queries a day)
    api_key_source: str | None = None                       # as written
    url: str | None = None


@dataclass(frozen=True)
class YahooSource:
    url: str | None = None


@dataclass(frozen=True)
class FeedSource:
    url: str | None = None  # a base-URL override: https://HOST/PATH goes to URL/HOST/PATH


@dataclass(frozen=True)
class ConsensusSources:
    """`sources.consensus`: where each feed is asked (each optional; a feed not written here has the default)."""

    forexfactory: FeedSource = FeedSource()
    nasdaq: FeedSource = FeedSource()

    def source(self, feed: Feed) -> FeedSource:
        return getattr(self, feed.value)


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
    bls: BlsSource = BlsSource()
    yahoo: YahooSource = YahooSource()
    consensus: ConsensusSources = ConsensusSources()
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
