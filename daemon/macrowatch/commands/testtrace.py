"""The trace under a failing rule test (commands/test.py): what decided it, event by event, around each alert that
was expected and did not come or came unexpected. Each row is one close or release: the instruments' closes, each
level's value (as the close was judged against it) and state after it, each release's outcome, each rule's phase.

The rows come from a second run of the test's history through a fresh Engine, fed one event at a time inside the
windows (and all at once between them), as the daemon feeds it; the verdict itself is the first run's.
"""

from __future__ import annotations

import bisect
import datetime as dt
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field

from macrowatch.commands.rulestest import Case
from macrowatch.config.types import Config, Rule
from macrowatch.engine.alerting import Phase, RuleState
from macrowatch.engine.breakout import FROZEN_STATES
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Bar, Print
from macrowatch.runtime.history import History, run
from macrowatch.runtime.inputs import instrument_key, level_key, macro_key, rule_inputs

BEFORE, AFTER = 3, 1  # the sessions shown before and after the day of each difference
MAX_DAYS = 3  # days of differences traced: a test that is wrong everywhere is explained by its first ones


@dataclass
class Moment:
    """One event of a test's history: the closes of one close time, or the prints of one release time."""

    at: dt.datetime
    bars: dict[str, Bar] = field(default_factory=dict)
    prints: list[Print] = field(default_factory=list)


def trace(config: Config, case: Case, rules: Iterable[str], days: Iterable[dt.date]) -> list[str]:
    """The aligned rows around each of `days` (local dates; the first MAX_DAYS) for the rules named and what they
    read."""
    zone = zoneinfo.ZoneInfo(config.timezone)
    moments = _moments(case.history)
    if not moments:
        return []
    shown = [r for r in config.rules if r.name in set(rules)]
    reads = set().union(*(rule_inputs(config, r) for r in shown))
    with_bars = [iid for iid in config.instruments if case.history.bar_list(iid)]
    instruments = [iid for iid in with_bars if instrument_key(iid) in reads] or with_bars
    levels = [lid for lid in config.levels if level_key(lid) in reads]
    macros = [mid for mid in config.macro if macro_key(mid) in reads]
    rows = [["", "at", "event", *instruments, *levels, *macros, *(r.name for r in shown)]]
    engine, fed = Engine(config), 0
    every = sorted(set(days))
    focus = set(every[:MAX_DAYS])
    for lo, hi in _windows([m.at.astimezone(zone).date() for m in moments], focus):
        if rows[1:]:
            rows.append(["...", *[""] * (len(rows[0]) - 1)])
        _feed(engine, moments[fed:lo], config.timezone)
        for m in moments[lo:hi]:
            values = {lid: engine.machines[lid].value.value for lid in levels}
            states = dict(engine.rule_states)
            fired = {a.rule for a in _feed(engine, [m], config.timezone)}
            day = m.at.astimezone(zone).date()
            rows.append([">" if day in focus else "", m.at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                         "close" if m.bars else "release " + ", ".join(sorted({p.macro for p in m.prints})),
                         *(_num(m.bars[iid].close) if iid in m.bars else "" for iid in instruments),
                         *(_level(engine, lid, values[lid]) for lid in levels),
                         *(_outcome([p for p in m.prints if p.macro == mid]) for mid in macros),
                         *(_phase(r, states[r.name], engine.rule_states[r.name], r.name in fired) for r in shown)])
        fed = hi
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    first = f"; the first {MAX_DAYS} of {len(every)} days with one" if len(every) > MAX_DAYS else ""
    return [f"trace (> the day of a difference{first}; a level: its value as the close saw it, its state after):",
            *("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)]


def _moments(history: History) -> list[Moment]:
    """The history's events in time order; a release first at a tie with a close, as the engine plays them."""
    by_key: dict[tuple[dt.datetime, int], Moment] = {}
    for p in history.prints:
        by_key.setdefault((p.at, 0), Moment(p.at)).prints.append(p)
    for iid in history.bars:
        for b in history.bar_list(iid):
            by_key.setdefault((b.at, 1), Moment(b.at)).bars[iid] = b
    return [by_key[k] for k in sorted(by_key, key=lambda k: (k[0].timestamp(), k[1]))]


def _windows(days: list[dt.date], focus: set[dt.date]) -> list[tuple[int, int]]:
    """The spans of moments (start, end indices) from BEFORE days before each focus day to AFTER days after it,
    counted in the days that have events; overlapping spans merged."""
    distinct = sorted(set(days))
    spans: list[tuple[int, int]] = []
    for day in sorted(focus):
        i = min(bisect.bisect_left(distinct, day), len(distinct) - 1)
        first, last = distinct[max(i - BEFORE, 0)], distinct[min(i + AFTER, len(distinct) - 1)]
        lo, hi = bisect.bisect_left(days, first), bisect.bisect_right(days, last)
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(hi, spans[-1][1]))
        else:
            spans.append((lo, hi))
    return spans


def _feed(engine: Engine, moments: list[Moment], tz: str) -> list:
    """Feed moments through history.run, the path the test's verdict took; the alerts."""
    if not moments:
        return []
    bars: dict[str, list[Bar]] = {}
    for m in moments:
        for iid, b in m.bars.items():
            bars.setdefault(iid, []).append(b)
    return run(engine, History(bars, [p for m in moments for p in m.prints]), tz=tz)


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _level(engine: Engine, lid: str, value: float | None) -> str:
    """The level's value before the event and its state after; a frozen breakout level that differs, too."""
    m = engine.machines[lid]
    cell = f"{_num(value) if value is not None else 'no value'} {m.state}"
    if m.state in FROZEN_STATES and m.step.frozen is not None and m.step.frozen != value:
        cell += f" (frozen {_num(m.step.frozen)})"
    return cell


def _outcome(prints: list[Print]) -> str:
    return ", ".join(f"{p.outcome} {p.actual:g} vs {'none' if p.consensus is None else f'{p.consensus:g}'}"
                     for p in prints)


def _phase(rule: Rule, before: RuleState, after: RuleState, fired: bool) -> str:
    """The rule's phase after the event, saying when it fired and when its cooldown held it back."""
    if fired:
        return "FIRED"
    anew = before.phase is not Phase.FIRING or (after.occurrence is not None and after.occurrence != before.occurrence)
    if after.phase is Phase.FIRING and anew:  # it holds anew and is ready, but did not fire: in_cooldown
        return "held back (cooldown)"
    f = rule.for_
    if after.phase is Phase.PENDING and f is not None and f.is_bars:
        return f"pending ({after.true_closes} of {f.amount} closes)"
    return str(after.phase)
