"""A rule's alert state and the one transition that decides whether it fires; message rendering."""

from __future__ import annotations

import datetime as dt
import enum
import re
import string
from dataclasses import dataclass, replace
from typing import Any

from macrowatch.config.types import Level, LevelKind, Rule, Side, Template

MISSING = "n/a"
# The unit written around a field ("{x.actual:+.0f}k", "{x.change:.1f}%", "${x.close:.2f}"): it belongs to the
# number, so a value not known yet reads as a plain "n/a", not "n/ak".
_UNIT_AFTER = re.compile(r"(?:[^\W\d_]|%)+")
_UNIT_BEFORE = re.compile(r"[$€£¥]+\Z")


class Phase(enum.StrEnum):
    """Where a rule stands."""

    INACTIVE = "inactive"  # the condition does not hold
    PENDING = "pending"    # it holds, but not yet for as long as `for:` asks
    FIRING = "firing"      # it holds and has fired (or was held back by its cooldown) in this stretch


@dataclass(frozen=True)
class RuleState:
    phase: Phase = Phase.INACTIVE
    since: dt.datetime | None = None      # when the condition started to hold
    true_closes: int = 0                  # consecutive close evaluations at which it held
    last_fired: dt.datetime | None = None
    last_fired_bar: int | None = None
    occurrence: str | None = None         # the one-off events (a release, an `entered`) it holds on, if any

    def to_data(self) -> dict[str, Any]:
        return {"phase": self.phase.value, "since": _iso(self.since), "true_closes": self.true_closes,
                "last_fired": _iso(self.last_fired), "last_fired_bar": self.last_fired_bar,
                "occurrence": self.occurrence}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> RuleState:
        return cls(Phase(data.get("phase", "inactive")), _dt(data.get("since")), int(data.get("true_closes", 0)),
                   _dt(data.get("last_fired")), data.get("last_fired_bar"), data.get("occurrence"))


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t else None


def _dt(s: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(s) if s else None


def in_cooldown(rule: Rule, state: RuleState, now: dt.datetime, bar_index: int) -> bool:
    """Whether a fire now would repeat the rule inside its cooldown."""
    if rule.cooldown is None or state.last_fired is None:
        return False
    if rule.cooldown.is_bars:
        return bar_index - (state.last_fired_bar or 0) < rule.cooldown.amount
    return now - state.last_fired < rule.cooldown.as_timedelta()


def advance(rule: Rule, state: RuleState, holds: bool, now: dt.datetime, bar_index: int,
            on_close: bool, occurrence: str | None = None) -> tuple[RuleState, bool]:
    """The rule's next state after one evaluation, and whether it fires now.

    It fires on the evaluation where the condition has held as long as `for:` asks; not again while it keeps
    holding; again only after it stopped holding and the cooldown has passed (a return inside the cooldown is
    held back for that whole stretch). A condition that holds on a one-off event (a release, a level
    having just entered a state) holds anew on the next such event, even with no evaluation in between
    where it was false: a rule on releases alone fires on each release, not once ever.
    """
    if holds and occurrence is not None and state.phase is not Phase.INACTIVE and occurrence != state.occurrence:
        state = RuleState(Phase.INACTIVE, None, 0, state.last_fired, state.last_fired_bar)
    if not holds:  # only a close that breaks the run resets the count of `for: N bars` (a dip intraday does not)
        closes = 0 if on_close else state.true_closes
        if state.phase is Phase.INACTIVE and state.since is None and state.true_closes == closes:
            return state, False  # nothing changes: the common case of a replay, kept cheap
        return RuleState(Phase.INACTIVE, None, closes, state.last_fired, state.last_fired_bar), False
    since = state.since or now
    closes = state.true_closes + (1 if on_close else 0)
    state = replace(state, since=since, true_closes=closes, occurrence=occurrence)
    if state.phase is Phase.FIRING:
        return state, False
    f = rule.for_
    ready = (f is None or (f.is_bars and closes >= f.amount)
             or (not f.is_bars and now - since >= f.as_timedelta()))
    if not ready:
        return replace(state, phase=Phase.PENDING), False
    if in_cooldown(rule, state, now, bar_index):
        return replace(state, phase=Phase.FIRING), False
    return replace(state, phase=Phase.FIRING, last_fired=now, last_fired_bar=bar_index), True


@dataclass(frozen=True)
class FrozenLevel:
    """`{level.price}` of a dynamic level frozen at a breakout while its value has moved on since: a field that
    says both numbers, so that "above its 52-week high 293.58" does not read as wrong when the high is now higher."""

    price: float
    now: float
    name: str   # the level in words (`level_name`)


def level_name(level: Level) -> str:
    """A level in plain words: "52-week high", "20-bar low", "all-time high", "high since 2017-03-01", "level"."""
    high = level.side is Side.RESISTANCE
    if level.kind in (LevelKind.HIGH_OF, LevelKind.LOW_OF):
        span = "52-week" if level.bars == 252 else f"{level.bars}-bar"  # 252 sessions: the usual 52 weeks
        return f"{span} {'high' if high else 'low'}"
    if level.kind in (LevelKind.ALL_TIME_HIGH, LevelKind.ALL_TIME_LOW):
        return f"all-time {'high' if high else 'low'}"
    if level.kind in (LevelKind.RANGE_HIGH, LevelKind.RANGE_LOW):
        return f"{'high' if high else 'low'} since {level.since}"
    return "level"


def render(template: Template, values: dict[tuple[str, str], Any]) -> str:
    """Render a checked template; `values[(id, attr)]` gives each field (None: not known yet: "n/a", without
    the unit written next to the field)."""
    out = []
    unit_follows = False  # the previous field was missing: its unit, at the start of this literal, goes too
    for literal, name, spec, conversion in string.Formatter().parse(template.text):
        if unit_follows and (unit := _UNIT_AFTER.match(literal)):
            literal = literal[unit.end():]
        out.append(literal)
        unit_follows = False
        if name is None:
            continue
        ident, attr = name.rsplit(".", 1)
        value = values.get((ident, attr))
        if value is None:
            out[-1] = _UNIT_BEFORE.sub("", out[-1])
            out.append(MISSING)
            unit_follows = True
            continue
        out.append(_field(value, spec, conversion))
    return "".join(out)


def _field(value: Any, spec: str | None, conversion: str | None) -> str:
    if isinstance(value, FrozenLevel):
        return (f"{_field(value.price, spec, conversion)} (frozen at the breakout; the {value.name} is now "
                f"{_field(value.now, spec, conversion)})")
    if conversion:
        value = {"r": repr, "s": str, "a": ascii}[conversion](value)
    return format(value, spec or "")
