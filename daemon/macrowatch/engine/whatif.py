"""What a coming release would do: the engine itself, on a copy of its state, fed a hypothetical print per outcome.

A briefing before a release (runtime/briefings.py) asks, for each outcome its print can have against consensus,
which rules would fire if the release came out that way now. No second evaluator answers it: a copy of the
engine (`Engine.load(engine.to_data())`) is fed, through `Engine.feed` as the real print will be, one
hypothetical print per macro series of the release, at the release time. The values (`hypothetical_actual`):

    inline  the consensus itself (an exact match is always inline);
    beat    consensus + beat_by; with beat_by 0, consensus + one step of the series' precision, 10^-d, d being the
            decimals of its latest first print (0 for payrolls' 211, 1 for an unemployment rate of 4.4), else of
            the consensus, at most 6;
    miss    the mirror: consensus - beat_by, or one step below;
    `higher_is: worse` swaps the directions (a beat is the lower number).

Every series of the release takes the same outcome in a scenario. A series with no consensus (none given and fewer
than 12 first prints) is judged `unknown` whatever it prints: its print is the same in every scenario, and when
no series of the release has a consensus the one scenario is `unknown`.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from macrowatch.config.types import Macro, Outcome, ReleaseOutcome, Rule, Trigger
from macrowatch.engine.alerting import Phase, RuleState
from macrowatch.engine.conditions import LevelView, View, holds
from macrowatch.engine.evaluator import Engine, _conditions
from macrowatch.engine.outcomes import assess, judge
from macrowatch.model import Alert, Print, number

SCENARIOS = (Outcome.BEAT, Outcome.INLINE, Outcome.MISS)
MAX_DECIMALS = 6  # the finest step taken for a beat or a miss with beat_by 0


@dataclass(frozen=True)
class Expectation:
    """What is known of a macro series' coming print: the consensus it will be judged against, and the last one."""

    macro: str
    ref_period: dt.date | None      # the period the print will be about
    consensus: float | None
    source: str                     # as a print names it ("consensus (file)", "baseline: ...", ...); "none"
    why: str | None = None          # why the fallback (the baseline, or none) stands: where no consensus was found
    prior: float | None = None      # the latest first print
    prior_period: dt.date | None = None


@dataclass(frozen=True)
class Scenario:
    """The release coming out one way: the values printed and the alerts the engine would raise."""

    outcome: Outcome
    values: Mapping[str, float]     # macro -> the hypothetical actual
    alerts: tuple[Alert, ...]

    @property
    def fires(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.rule for a in self.alerts))


@dataclass(frozen=True)
class Verdict:
    """One rule naming the release: whether it fires in each scenario, why not where it does not, and its other
    conditions as they stand now."""

    rule: str
    fires: Mapping[Outcome, bool]
    why: Mapping[Outcome, str]      # "" where it fires
    now: Mapping[str, Any]          # evidence of its conditions other than this release's, as the engine sees them


@dataclass(frozen=True)
class WhatIf:
    """A release's scenarios and the verdict on each rule that names it."""

    release: str
    at: dt.datetime
    expectations: tuple[Expectation, ...]
    scenarios: tuple[Scenario, ...]
    verdicts: tuple[Verdict, ...]
    chart: str | None               # the chart instrument of the first such rule that has one


def release_rules(rules: tuple[Rule, ...], macros: set[str]) -> list[Rule]:
    """The rules with a release atom on one of `macros`."""
    return [r for r in rules if any(isinstance(c, ReleaseOutcome) and c.macro in macros for c in _conditions(r))]


def step_of(value: float) -> float:
    """One step of a value's precision: 10^-decimals (1 for 211, 0.1 for 4.4), at most MAX_DECIMALS decimals."""
    shown = number(value)
    if shown is None:
        return 1.0
    exponent = decimal.Decimal(repr(shown)).normalize().as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return 10.0 ** -min(decimals, MAX_DECIMALS)


def hypothetical_actual(macro: Macro, consensus: float, outcome: Outcome, precision: float | None = None) -> float:
    """The value printed in a scenario (see the module's doc); `precision`: the latest first print, whose decimals
    give the step when beat_by is 0 (None: the consensus's)."""
    if outcome is Outcome.INLINE:
        return consensus
    up = (outcome is Outcome.BEAT) == (macro.higher_is != "worse")
    step = macro.beat_by or step_of(consensus if precision is None else precision)
    for _ in range(30):
        value = consensus + step if up else consensus - step
        if judge(value, consensus, macro.beat_by, macro.higher_is)[1] is outcome:
            return value
        step *= 10  # the step was lost in the float or in the rounding of the surprise: a coarser one
    raise ValueError(f"{macro.id}: no {outcome} value found around consensus {consensus}")


def thresholds(macro: Macro, consensus: float) -> dict[str, tuple[str, float]]:
    """Where a beat and a miss begin: {"beat": (">=", 210.0), "miss": ("<=", 160.0)} (">" / "<" with beat_by 0)."""
    b = macro.beat_by
    above, below = ((">=", consensus + b), ("<=", consensus - b)) if b else ((">", consensus), ("<", consensus))
    return {"beat": above, "miss": below} if macro.higher_is != "worse" else {"beat": below, "miss": above}


def hypothetical_print(macro: Macro, expected: Expectation, at: dt.datetime, outcome: Outcome) -> Print:
    """The print of one series in a scenario, judged by `outcomes.assess` as a real one (no consensus: unknown)."""
    period = expected.ref_period or at.date().replace(day=1)
    if expected.consensus is None:
        actual, given = expected.prior if expected.prior is not None else 0.0, {}
    else:
        actual = hypothetical_actual(macro, expected.consensus, outcome, expected.prior)
        given = {period: expected.consensus}
    return assess(macro, at, period, actual, expected.prior, given, expected.source, [])


def copy_of(engine: Engine) -> Engine:
    """An engine with the same config and state, to feed what has not happened."""
    twin = Engine(engine.config)
    twin.load(engine.to_data())
    return twin


def what_if(engine: Engine, release_id: str, at: dt.datetime, expected: Mapping[str, Expectation]) -> WhatIf:
    """Feed a copy of `engine` each scenario's prints of the release at `at`; the engine itself is not changed."""
    config = engine.config
    macros = [m for m in config.macro.values() if m.release == release_id]
    ids = {m.id for m in macros}
    known = {m.id: expected.get(m.id) or Expectation(m.id, None, None, "none", "nothing known of the series")
             for m in macros}
    outcomes = SCENARIOS if any(e.consensus is not None for e in known.values()) else (Outcome.UNKNOWN,)
    rules = release_rules(config.rules, ids)
    scenarios, fires, why, now = [], {}, {}, {}
    for outcome in outcomes:
        prints = [hypothetical_print(m, known[m.id], at, outcome) for m in macros]
        twin = copy_of(engine)
        alerts = twin.feed({}, prints)
        scenarios.append(Scenario(outcome, {p.macro: p.actual for p in prints}, tuple(alerts)))
        fired = {a.rule: a for a in alerts}
        for rule in rules:
            held, evidence = (True, fired[rule.name].evidence) if rule.name in fired \
                else _decide(twin, rule, at, frozenset(ids))
            fires.setdefault(rule.name, {})[outcome] = rule.name in fired
            why.setdefault(rule.name, {})[outcome] = "" if rule.name in fired else \
                _why_not(rule, engine.rule_states[rule.name], twin.rule_states[rule.name], held)
            # The release's own atoms differ by scenario; the rest is the state now, the same in each.
            now.setdefault(rule.name, {k: v for k, v in evidence.items() if k.split(" ", 1)[0] not in ids})
    verdicts = tuple(Verdict(r.name, fires[r.name], why[r.name], now[r.name]) for r in rules)
    chart = next((r.chart for r in rules if r.chart), None)
    return WhatIf(release_id, at, tuple(known.values()), tuple(scenarios), verdicts, chart)


def _decide(engine: Engine, rule: Rule, at: dt.datetime, released: frozenset[str]) -> tuple[bool, dict[str, Any]]:
    """The rule's condition at the release evaluation just fed, with what each atom saw: the view the engine builds
    at a release with no new close (engine/timeline.py: the levels and closes as they stand)."""
    levels = {lid: LevelView(m.state, None, m.price, m.last_close, m.now) for lid, m in engine.machines.items()}
    closes = {i: list(d) for i, d in engine.closes.items()}
    view = View(at, Trigger.RELEASE.value, engine.bar_index, levels, closes, engine.prints, released, {},
                extremes=engine.extremes)
    return holds(rule.when, view), dict(view.evidence or {})


def _why_not(rule: Rule, before: RuleState, after: RuleState, held: bool) -> str:
    """Why a rule would not fire at the release, in words."""
    if Trigger.RELEASE not in rule.on:
        return "it is not evaluated on releases (on: " + ", ".join(sorted(rule.on)) + ")"
    if not held:
        return "its condition would not hold"
    if after.phase is Phase.PENDING:
        return f"its condition would hold, but not yet for {rule.for_}"
    if before.phase is Phase.FIRING and after.since == before.since:
        return "its condition holds already: it fired on this stretch and fires again only once it stopped holding"
    return f"held back by its cooldown of {rule.cooldown}"


def to_data(w: WhatIf, macros: Mapping[str, Macro]) -> dict[str, Any]:
    """The what-if as plain data: the briefing's evidence (notify/briefing.py renders it; `briefing --format json`
    prints it). Dates and times stay objects here; the outbox keeps them as ISO text."""
    series = []
    for e in w.expectations:
        m = macros[e.macro]
        entry: dict[str, Any] = {"macro": e.macro, "series": m.series, "measure": m.measure.value,
                                 "ref_period": e.ref_period, "consensus": e.consensus, "source": e.source,
                                 "why": e.why, "prior": e.prior, "prior_period": e.prior_period,
                                 "beat_by": m.beat_by, "higher_is": m.higher_is}
        if e.consensus is not None:
            entry |= {k: list(v) for k, v in thresholds(m, e.consensus).items()}
        entry["values"] = {s.outcome.value: s.values[e.macro] for s in w.scenarios if e.macro in s.values}
        series.append(entry)
    return {
        "release": w.release, "at": w.at, "series": series,
        "scenarios": [{"outcome": s.outcome.value, "fires": list(s.fires)} for s in w.scenarios],
        "rules": [{"rule": v.rule,
                   "outcomes": {o.value: {"fires": v.fires[o], "why": v.why[o]} for o in v.fires},
                   "now": dict(v.now)} for v in w.verdicts],
        "chart": w.chart,
    }
