"""The engine: level machines, release prints and rule states for one config, fed events in time order.

The daemon, `replay` and `macrowatch test` all drive this one class through `feed` (closes and release prints
in time order, played by engine/timeline.py), and the daemon through `on_intraday` on intraday polls. Each
returns the alerts that fired. An event already applied (a session or a print seen before) is ignored, so a
catch-up cannot fire twice. State is saved and restored with `to_data` and `load`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import string
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from macrowatch.config.types import (
    TEMPLATE_FIELDS,
    Condition,
    Config,
    NarrowRange,
    NewExtreme,
    Outcome,
    Rule,
    Trigger,
)
from macrowatch.engine.alerting import FrozenLevel, RuleState, advance, level_name, render
from macrowatch.engine.breakout import LevelMachine, moved_on
from macrowatch.engine.conditions import LevelView, View, holds
from macrowatch.engine.timeline import Timeline
from macrowatch.model import Alert, Bars, Print

STATE_VERSION = 1
# A saved state of version N is rewritten by MIGRATIONS[N] into one of version N + 1, until STATE_VERSION: the next
# format adds its migration here. A state no migration reaches is not loaded (StateError): the daemon rebuilds the
# engine from the store's history instead (runtime/daemon.py), so that an upgrade never stops an install.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


class StateError(ValueError):
    """A saved engine state this macrowatch cannot read: another version no migration reaches, or garbled."""


def _conditions(rule: Rule) -> Iterable[Condition]:
    """Every condition of the rule, combinators and atoms."""
    stack = [rule.when]
    while stack:
        c = stack.pop()
        yield c
        stack.extend(getattr(c, "items", ()))
        if hasattr(c, "item"):
            stack.append(c.item)


def _closes_needed(rule: Rule) -> Iterable[tuple[str, int]]:
    """(instrument, how many of its latest closes an atom of the rule reads, this one included)."""
    for c in _conditions(rule):
        if isinstance(c, NarrowRange):
            yield c.instrument, c.bars
        elif isinstance(c, NewExtreme) and c.bars is not None:
            yield c.instrument, c.bars + 1


class Engine:
    """Evaluates one config's rules over a stream of closes, releases and intraday prices."""

    def __init__(self, config: Config):
        self.config = config
        self.machines = {lid: LevelMachine(lvl) for lid, lvl in config.levels.items()}
        self.by_instrument: dict[str, list[LevelMachine]] = {i: [] for i in config.instruments}
        for m in self.machines.values():
            self.by_instrument[m.level.instrument].append(m)
        keep = dict.fromkeys(config.instruments, 1)
        for r in config.rules:
            for iid, n in _closes_needed(r):
                keep[iid] = max(keep[iid], n)
        self.closes: dict[str, deque[float]] = {i: deque(maxlen=keep[i]) for i in config.instruments}
        # per instrument: the highest and lowest of all its closes before the latest one (`new_high: all`)
        self.extremes: dict[str, tuple[float, float]] = {}
        self.sessions: dict[str, dt.date] = {}              # the last session applied per instrument
        self.prints: dict[str, tuple[Print, int]] = {}       # the latest print per macro, with its bar index
        self.rule_states = {r.name: RuleState() for r in config.rules}
        self.bar_index = 0
        self._last_session: dt.date | None = None

    # ---- events -------------------------------------------------------------------------------------
    def feed(self, bars: Mapping[str, Bars], prints: Iterable[Print] = (),
             stamps: Mapping[int, dt.datetime] | None = None) -> list[Alert]:
        """Every close and release not seen yet, in time order (a release first at a tie); the alerts.

        Sessions already applied and prints no newer than the last of their series are skipped, so a
        catch-up fed everything again fires nothing twice.
        """
        timeline = Timeline(self.machines, self.closes, self.sessions, bars, prints, stamps, self.extremes)
        alerts: list[Alert] = []
        for kind, at, payload in timeline.play():
            if kind == "release":
                alerts += self._release(at, payload, timeline.levels(entered=False), timeline.closes(), timeline)
            else:
                if self._last_session is None or payload > self._last_session:
                    self.bar_index += 1
                    self._last_session = payload
                alerts += self._evaluate(Trigger.CLOSE, at, f"close:{payload.isoformat()}",
                                         timeline.levels(entered=True), frozenset(), timeline.closes(), timeline)
        for iid, b in timeline.cols.items():  # the machines are already there; the closes and sessions now
            self.extremes.update(timeline.extremes_after(iid))
            self.closes[iid].extend(float(x) for x in b.close[-self.closes[iid].maxlen:])
            self.sessions[iid] = b.session[-1].astype(dt.date)
        return alerts

    def _release(self, at: dt.datetime, prints: Iterable[Print], levels: Mapping[str, LevelView],
                 closes: Mapping[str, list[float]], timeline: Timeline) -> list[Alert]:
        released = []
        for p in prints:
            old = self.prints.get(p.macro)
            if old is None or p.at > old[0].at or (p.at == old[0].at and p.ref_period > old[0].ref_period):
                self.prints[p.macro] = (p, self.bar_index)
                released.append(p.macro)
        if not released:
            return []
        return self._evaluate(Trigger.RELEASE, at, f"release:{at.isoformat()}", levels, frozenset(released), closes,
                              timeline)

    def on_intraday(self, at: dt.datetime, prices: Mapping[str, float]) -> list[Alert]:
        """Intraday prices: provisional level states for the rules that ask for `intraday`."""
        views = {}
        for lid, m in self.machines.items():
            price = prices.get(m.level.instrument)
            if price is None:
                views[lid] = LevelView(m.state, None, m.price, m.last_close, m.now)
            else:
                state = m.provisional(price)
                views[lid] = LevelView(state, state if state != m.state else None, m.price, price,
                                       moved_on(state, m.price, m.value.value))
        closes = {i: [*d, prices[i]] if i in prices else list(d) for i, d in self.closes.items()}
        # An intraday price is judged against every close before it: the latest close included.
        extremes = {i: _widen(self.extremes.get(i), d[-1]) if i in prices and d else self.extremes[i]
                    for i, d in self.closes.items() if i in self.extremes or (i in prices and d)}
        return self._evaluate(Trigger.INTRADAY, at, f"intraday:{at.isoformat()}", views, frozenset(), closes,
                              extremes=extremes)

    # ---- evaluation ---------------------------------------------------------------------------------
    def _evaluate(self, trigger: Trigger, at: dt.datetime, event: str, levels: Mapping[str, LevelView],
                  released: frozenset[str], closes: Mapping[str, list[float]],
                  timeline: Timeline | None = None,
                  extremes: Mapping[str, tuple[float, float]] | None = None) -> list[Alert]:
        alerts = []
        rules = self.config.rules if timeline is None else timeline.awake(self.config.rules)
        if extremes is None:
            extremes = timeline.extremes() if timeline is not None else self.extremes
        for rule in rules:
            if trigger not in rule.on:
                continue
            old = self.rule_states[rule.name]
            ok = timeline.unchanged(rule) if timeline is not None else None
            # A decision reused from an earlier event holds on no new one-off event (see Timeline.unchanged).
            occurrence = old.occurrence if ok else None
            view = None
            if ok is None:
                view = View(at, trigger.value, self.bar_index, levels, closes, self.prints, released, None,
                            extremes=extremes)
                ok = holds(rule.when, view)
                occurrence = "; ".join(sorted(view.occurrences)) or None
            state, fire = advance(rule, old, ok, at, self.bar_index, trigger is Trigger.CLOSE, occurrence)
            self.rule_states[rule.name] = state
            if timeline is not None:
                timeline.decide(rule, ok, state)
            if fire:  # only now the evidence: the same pure decision again, recording what each atom saw
                view = View(at, trigger.value, self.bar_index, levels, closes, self.prints, released, {},
                            extremes=extremes)
                holds(rule.when, view)
                alerts.append(self._alert(rule, at, trigger, event, view))
        return alerts

    def _alert(self, rule: Rule, at: dt.datetime, trigger: Trigger, event: str, view: View) -> Alert:
        labels = dict(sorted(rule.labels.items()))
        key = "|".join([rule.name, ",".join(f"{k}={v}" for k, v in labels.items()), event])
        if rule.message is not None:
            message = render(rule.message, self._values(rule, view))
        else:
            held = [k for k, v in view.evidence.items() if v.get("holds")]
            message = "; ".join(held) if held else "condition holds"
        return Alert(rule.name, at, rule.severity.value, labels, message, dict(view.evidence), key,
                     rule.notify, rule.chart, trigger.value)

    def _values(self, rule: Rule, view: View) -> dict[tuple[str, str], Any]:
        """The values of the fields the rule's template names, as they were at this evaluation."""
        values: dict[tuple[str, str], Any] = {}
        for _literal, name, _spec, _conv in string.Formatter().parse(rule.message.text):
            if not name:
                continue
            ident, attr = name.rsplit(".", 1)
            if ident in self.config.instruments:
                inst = self.config.instruments[ident]
                closes = view.closes.get(ident) or []
                values[(ident, attr)] = {"close": closes[-1] if closes else None, "name": inst.name,
                                         "symbol": inst.symbol}.get(attr)
            elif ident in self.machines:
                lv = view.levels[ident]
                # The state by its name: `{id.state!r}` shows 'breakout', as the plain string it was.
                price = lv.price if lv.now is None else FrozenLevel(lv.price, lv.now,
                                                                     level_name(self.machines[ident].level))
                values[(ident, attr)] = price if attr == "price" else str(lv.state) if attr == "state" else None
            elif ident in self.prints and attr in TEMPLATE_FIELDS["macro"]:  # documented fields only
                values[(ident, attr)] = getattr(self.prints[ident][0], attr)
        return values

    # ---- saved state --------------------------------------------------------------------------------
    def to_data(self) -> dict[str, Any]:
        """All state as plain JSON-able data: restored with `load`, a run resumes where it stopped."""
        return {
            "version": STATE_VERSION,
            "bar_index": self.bar_index,
            "last_session": self._last_session.isoformat() if self._last_session else None,
            "levels": {lid: m.to_data() for lid, m in self.machines.items()},
            "closes": {i: list(d) for i, d in self.closes.items()},
            "extremes": {i: list(self.extremes[i]) for i in self.closes if i in self.extremes},
            "sessions": {i: d.isoformat() for i, d in self.sessions.items()},
            "prints": {mid: [_print_data(p), bar] for mid, (p, bar) in self.prints.items()},
            "rules": {name: s.to_data() for name, s in self.rule_states.items()},
        }

    def load(self, data: dict[str, Any]) -> None:
        """Restore state saved by `to_data` (an older version migrated first: MIGRATIONS); entries for ids the
        config no longer has are dropped.

        StateError, and this engine unchanged, for a state it cannot read (a version no migration reaches, or
        garbled).
        """
        data = migrate(data)
        if "extremes" not in data and data.get("sessions") and any(
                isinstance(c, NewExtreme) and c.bars is None for r in self.config.rules for c in _conditions(r)):
            raise StateError("saved engine state from before all-time highs and lows were kept, which a "
                             "`new_high: all` or `new_low: all` rule needs")
        restored = Engine(self.config)
        try:
            restored._restore(data)
        except (LookupError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"saved engine state garbled: {type(exc).__name__}: {exc}") from exc
        self.__dict__.update(restored.__dict__)

    def _restore(self, data: dict[str, Any]) -> None:
        self.bar_index = int(data["bar_index"])
        self._last_session = dt.date.fromisoformat(data["last_session"]) if data.get("last_session") else None
        for lid, d in data.get("levels", {}).items():
            if lid in self.machines:
                self.machines[lid] = LevelMachine.from_data(self.config.levels[lid], d)
        self.by_instrument = {i: [] for i in self.config.instruments}
        for m in self.machines.values():
            self.by_instrument[m.level.instrument].append(m)
        for iid, closes in data.get("closes", {}).items():
            if iid in self.closes:
                self.closes[iid].extend(closes)
        self.extremes = {i: (float(hi), float(lo)) for i, (hi, lo) in data.get("extremes", {}).items()
                         if i in self.closes}
        self.sessions = {i: dt.date.fromisoformat(d) for i, d in data.get("sessions", {}).items()
                         if i in self.closes}
        self.prints = {mid: (_print_from(p), bar) for mid, (p, bar) in data.get("prints", {}).items()
                       if mid in self.config.macro}
        for name, d in data.get("rules", {}).items():
            if name in self.rule_states:
                self.rule_states[name] = RuleState.from_data(d)


def _widen(extremes: tuple[float, float] | None, close: float) -> tuple[float, float]:
    """The highest and lowest close with one more close among them."""
    return (close, close) if extremes is None else (max(extremes[0], close), min(extremes[1], close))


def migrate(data: Any) -> dict[str, Any]:
    """A saved state in this version's format: migrated from an older one (MIGRATIONS), else StateError."""
    if not isinstance(data, dict):
        raise StateError(f"saved engine state is not a mapping but {type(data).__name__}")
    version = data.get("version")
    while isinstance(version, int) and version < STATE_VERSION and version in MIGRATIONS:
        data = MIGRATIONS[version](data)
        if not isinstance(data, dict) or data.get("version") != version + 1:
            raise StateError(f"the migration of saved engine state version {version} gave no version {version + 1}")
        version = data["version"]
    if version != STATE_VERSION:
        raise StateError(f"saved engine state has version {version}; this macrowatch reads {STATE_VERSION}")
    return data


def _print_data(p: Print) -> dict[str, Any]:
    d = dataclasses.asdict(p)
    d["at"], d["ref_period"] = p.at.isoformat(), p.ref_period.isoformat()
    return d


def _print_from(d: dict[str, Any]) -> Print:
    return Print(**{**d, "at": dt.datetime.fromisoformat(d["at"]),
                    "ref_period": dt.date.fromisoformat(d["ref_period"]), "outcome": Outcome(d["outcome"])})
