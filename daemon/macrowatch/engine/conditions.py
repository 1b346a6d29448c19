"""Condition evaluation: does a rule's `when` hold at this evaluation, and what did each atom see."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from macrowatch.config.types import (
    AllOf,
    AnyOf,
    Condition,
    Duration,
    LevelEntered,
    LevelIn,
    LevelState,
    NarrowRange,
    NewExtreme,
    Not,
    Outcome,
    ReleaseOutcome,
)
from macrowatch.model import Print


@dataclass
class LevelView:
    """What a condition sees of a level at this evaluation."""

    state: LevelState
    entered: LevelState | None  # the state entered at this evaluation, if it changed
    price: float | None         # the level (frozen during a breakout)
    close: float | None         # the instrument's close (or intraday price) it was judged on
    now: float | None = None    # the level's current value, when a breakout holds `price` frozen at another


@dataclass
class View:
    """Everything an evaluation's conditions may look at; built by the evaluator, read-only here."""

    now: dt.datetime
    trigger: str                                   # close | release | intraday
    bar_index: int                                 # sessions closed so far (for `N bars` durations)
    levels: Mapping[str, LevelView]
    closes: Mapping[str, list[float]]              # recent closes per instrument, oldest first
    prints: Mapping[str, tuple[Print, int]]        # latest print per macro, with the bar index when it came
    released: frozenset[str] = frozenset()         # macro ids printed at this evaluation
    evidence: dict[str, Any] | None = field(default_factory=dict)  # None: decide only, record nothing
    occurrences: list[str] = field(default_factory=list)  # the one-off events that held (see alerting.advance)
    # per instrument: the highest and lowest of all its closes before the latest one in `closes` (new_high: all)
    extremes: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def within(d: Duration | None, since: dt.datetime, since_bar: int, view: View, released_now: bool) -> bool:
    """Whether something at `since` is recent enough: no duration means only at its own evaluation."""
    if d is None:
        return released_now
    if d.is_bars:
        return view.bar_index - since_bar <= d.amount
    return dt.timedelta(0) <= view.now - since <= d.as_timedelta()


def holds(c: Condition, view: View) -> bool:
    """Evaluate a condition, recording what each atom saw in `view.evidence`."""
    match c:
        case AllOf():
            results = [holds(i, view) for i in c.items]  # every atom is evaluated, for complete evidence
            return all(results)
        case AnyOf():
            results = [holds(i, view) for i in c.items]
            return any(results)
        case Not():
            return not holds(c.item, view)
        case LevelIn() | LevelEntered():
            return _level(c, view)
        case ReleaseOutcome():
            return _release(c, view)
        case NarrowRange():
            return _narrow(c, view)
        case NewExtreme():
            return _new_extreme(c, view)
    raise TypeError(f"not a condition: {c!r}")


def _level(c: LevelIn | LevelEntered, view: View) -> bool:
    lv = view.levels[c.level]
    if isinstance(c, LevelIn):
        ok = lv.state in c.states
        if view.evidence is None:
            return ok
        key = f"{c.level} state in [{', '.join(c.states)}]" if len(c.states) > 1 else f"{c.level} {c.states[0]}"
    else:
        ok = lv.entered == c.state
        if ok:
            view.occurrences.append(f"{c.level} entered {c.state} at {view.now.isoformat()}")
        if view.evidence is None:
            return ok
        key = f"{c.level} entered {c.state}"
    # Evidence is plain data (saved in the outbox as JSON): the state by its name.
    view.evidence[key] = {"holds": ok, "state": str(lv.state), "level": lv.price, "close": lv.close}
    if lv.now is not None:  # a dynamic level frozen at a breakout has moved on since: both numbers
        view.evidence[key]["level_now"] = lv.now
    return ok


def _release(c: ReleaseOutcome, view: View) -> bool:
    key = f"{c.macro} {c.outcome.value}" + (f" within {c.within}" if c.within else "")
    latest = view.prints.get(c.macro)
    if latest is None:
        if view.evidence is not None:
            view.evidence[key] = {"holds": False, "print": None}
        return False
    p, bar = latest
    recent = within(c.within, p.at, bar, view, c.macro in view.released)
    ok = recent and (c.outcome is Outcome.ANY or p.outcome == c.outcome)
    if ok:
        view.occurrences.append(f"{c.macro} released at {p.at.isoformat()}")
    if view.evidence is None:
        return ok
    view.evidence[key] = {"holds": ok, "outcome": str(p.outcome), "actual": p.actual, "consensus": p.consensus,
                          "surprise": p.surprise, "prior": p.prior, "ref_period": p.ref_period,
                          "released_at": p.at, "consensus_source": p.consensus_source}
    return ok


def _narrow(c: NarrowRange, view: View) -> bool:
    fast = getattr(view.closes, "narrow", None)  # a replay's timeline has the answer for every bar at hand
    if fast is not None and view.evidence is None and (ok := fast(c.instrument, c.bars, c.pct)) is not None:
        return ok
    closes = view.closes.get(c.instrument, [])[-c.bars:]
    key = f"{c.instrument} narrow range {c.bars} bars within {c.pct:g}%"
    if len(closes) < c.bars:
        if view.evidence is not None:
            view.evidence[key] = {"holds": False, "bars": len(closes)}
        return False
    low, high = min(closes), max(closes)
    width = 100.0 * (high - low) / low if low > 0 else float("inf")
    ok = width <= c.pct
    if view.evidence is None:
        return ok
    view.evidence[key] = {"holds": ok, "range_pct": round(width, 4), "low": low, "high": high}
    return ok


def _new_extreme(c: NewExtreme, view: View) -> bool:
    fast = getattr(view.closes, "new_extreme", None)  # a replay's timeline has the answer for every bar at hand
    if fast is not None and view.evidence is None and (ok := fast(c.instrument, c.bars, c.low)) is not None:
        return ok
    word = "low" if c.low else "high"
    key = f"{c.instrument} new {'all-time' if c.bars is None else f'{c.bars}-bar'} {word}"
    closes = view.closes.get(c.instrument, [])
    if c.bars is None:
        extremes = view.extremes.get(c.instrument) if closes else None
        prior = None if extremes is None else extremes[1 if c.low else 0]
    else:
        before = closes[-c.bars - 1:-1]
        prior = (min(before) if c.low else max(before)) if len(before) == c.bars else None
    if prior is None:  # fewer bars before this close than the atom looks back over
        if view.evidence is not None:
            view.evidence[key] = {"holds": False, "bars": len(closes)}
        return False
    ok = closes[-1] < prior if c.low else closes[-1] > prior
    if view.evidence is not None:
        view.evidence[key] = {"holds": ok, "close": closes[-1], word: prior}
    return ok
