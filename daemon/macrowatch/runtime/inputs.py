"""Which inputs have their whole history, and from when their events are news (issue [9]).

An input is an instrument (its daily bars), a level (its machine, fed by its instrument's bars) or a macro
(its series' vintages), keyed "instrument:ID", "level:ID" or "macro:ID". The daemon feeds the engine an
input's events only once its history is complete: the first fetch of `HISTORY_YEARS` of bars, or of every
vintage of the macro's series, has succeeded; a level is complete with its instrument. Until then its levels are not
known, and the rules that read it stay silent (an ops alert says so); a partial fetch (a few days of bars, a
few releases) must never pass for history, since levels such as an all-time high would be wrong for good.

Each input also has `watch_from`, the moment the daemon began watching it (the first start, or the start
or reload that added it to the config). An alert is news only when its event is later than the
`watch_from` of every input its rule reads: what happened before is history, evaluated to build the state
and never sent. What happened after, while the history could not be fetched yet, is sent once the history
is in, like any catch-up after an outage, and agrees with `macrowatch replay` over the same data.

When inputs complete, the engine is rebuilt from the store's whole history (the state replay would have),
and only the alerts of the rules that read one of them are taken from that rebuild; the others were
already evaluated live. So a level or a macro added to a running config (on an instrument or series the
store has for years) starts from the whole history too, not from the next bar: an all-time high is the
true one, and no old release reads as news.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from macrowatch.config.types import (
    AllOf,
    AnyOf,
    Condition,
    Config,
    LevelEntered,
    LevelIn,
    NarrowRange,
    NewExtreme,
    Not,
    ReleaseOutcome,
    Rule,
)
from macrowatch.model import Alert

INSTRUMENT, LEVEL, MACRO = "instrument", "level", "macro"
_EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)


def instrument_key(iid: str) -> str:
    return f"{INSTRUMENT}:{iid}"


def level_key(lid: str) -> str:
    return f"{LEVEL}:{lid}"


def macro_key(mid: str) -> str:
    return f"{MACRO}:{mid}"


@dataclass
class Input:
    """One input's history and watch state; the failure fields live in memory only."""

    watch_from: dt.datetime
    complete: bool = False
    failing_since: dt.datetime | None = None
    error: str | None = None
    alerted: bool = False

    def to_data(self) -> dict[str, Any]:
        return {"watch_from": self.watch_from.isoformat(), "complete": self.complete}


def rule_inputs(config: Config, rule: Rule) -> frozenset[str]:
    """The inputs a rule reads: those of its conditions and of its message's fields."""
    out: set[str] = set()
    for c in _atoms(rule.when):
        if isinstance(c, LevelIn | LevelEntered):
            out |= {level_key(c.level), instrument_key(config.levels[c.level].instrument)}
        elif isinstance(c, NarrowRange | NewExtreme):
            out.add(instrument_key(c.instrument))
        elif isinstance(c, ReleaseOutcome):
            out.add(macro_key(c.macro))
    for f in rule.message.fields if rule.message is not None else ():
        if f.id in config.instruments:
            out.add(instrument_key(f.id))
        elif f.id in config.levels:
            out |= {level_key(f.id), instrument_key(config.levels[f.id].instrument)}
        elif f.id in config.macro:
            out.add(macro_key(f.id))
    return frozenset(out)


def _atoms(c: Condition) -> Iterator[Condition]:
    if isinstance(c, AllOf | AnyOf):
        for item in c.items:
            yield from _atoms(item)
    elif isinstance(c, Not):
        yield from _atoms(c.item)
    else:
        yield c


def config_inputs(config: Config) -> list[str]:
    """Every input of a config: instruments, levels, macros."""
    return [instrument_key(i) for i in config.instruments] + [level_key(lid) for lid in config.levels] + \
        [macro_key(m) for m in config.macro]


class Inputs:
    """The inputs of the running config: complete or not, watched from when; saved as the state "inputs"."""

    def __init__(self, config: Config, saved: dict[str, Any] | None, engine_state: dict[str, Any] | None,
                 now: dt.datetime):
        self.items: dict[str, Input] = {}
        self.fresh: set[str] = set()  # completed since the engine last rebuilt: the next pass rebuilds
        if saved is not None:
            for key, d in saved.get("inputs", {}).items():
                self.items[key] = Input(dt.datetime.fromisoformat(d["watch_from"]), bool(d.get("complete")))
        elif engine_state is not None:
            # A store from before this record: what the engine has seen had its history then.
            for iid in engine_state.get("sessions", {}):
                self.items[instrument_key(iid)] = Input(_EARLIEST, True)
            for lid in engine_state.get("levels", {}):
                self.items[level_key(lid)] = Input(_EARLIEST, True)
            for mid in engine_state.get("prints", {}):
                self.items[macro_key(mid)] = Input(_EARLIEST, True)
        self._rules: dict[str, frozenset[str]] = {}
        self._config: Config | None = None
        self.sync(config, now)

    def sync(self, config: Config, now: dt.datetime) -> None:
        """Watch the config's inputs: a new one from `now`, with no history yet; forget the ones it dropped.

        An input dropped and added again is new again: the engine dropped its state with it. A new level on
        an instrument with its history is complete at once: the next evaluation rebuilds the engine with it.
        """
        if config is self._config:
            return
        self._config = config
        wanted = config_inputs(config)
        for key in wanted:
            if key not in self.items:
                self.items[key] = Input(now)
        for key in set(self.items) - set(wanted):
            del self.items[key]
            self.fresh.discard(key)
        self._rules = {r.name: rule_inputs(config, r) for r in config.rules}
        self.levels = {level_key(lid): instrument_key(lvl.instrument) for lid, lvl in config.levels.items()}
        self.settle_levels()

    def settle_levels(self) -> None:
        """A level is complete once its instrument is (its machine is rebuilt from the instrument's bars)."""
        for key, instrument in self.levels.items():
            if not self.complete(key) and self.complete(instrument):
                self.completed(key)

    # ---- history ----------------------------------------------------------------------------------------
    def complete(self, key: str) -> bool:
        item = self.items.get(key)
        return item is not None and item.complete

    def settled(self) -> set[str]:
        """The inputs the engine has in full: complete, and not waiting for the next rebuild."""
        return {k for k, v in self.items.items() if v.complete} - self.fresh

    def missing(self, kind: str) -> list[str]:
        """The ids (without the kind) of the inputs of one kind whose history is not complete."""
        prefix = f"{kind}:"
        return [k[len(prefix):] for k, v in self.items.items() if k.startswith(prefix) and not v.complete]

    def completed(self, key: str) -> None:
        """The input's history is in the store now: the next evaluation rebuilds the engine with it."""
        item = self.items.get(key)
        if item is not None and not item.complete:
            item.complete, item.failing_since, item.error, item.alerted = True, None, None, False
            self.fresh.add(key)
            if key.startswith(f"{INSTRUMENT}:"):
                self.settle_levels()

    def failed(self, key: str, now: dt.datetime, error: str) -> Input | None:
        """A history fetch failed; the input when it is still missing (for the ops alert)."""
        item = self.items.get(key)
        if item is None or item.complete:
            return None
        item.failing_since = item.failing_since or now
        item.error = error
        return item

    # ---- alerts -----------------------------------------------------------------------------------------
    def rule_inputs(self, rule: str) -> frozenset[str]:
        return self._rules.get(rule, frozenset())

    def news(self, alert: Alert, allowed: Iterable[str] | None = None) -> bool:
        """Whether an alert is worth sending: every input of its rule complete (and in `allowed`, when given),
        and its event later than the moment each of them began to be watched."""
        keys = self.rule_inputs(alert.rule)
        allowed = None if allowed is None else set(allowed)
        for key in keys:
            item = self.items.get(key)
            if item is None or not item.complete or (allowed is not None and key not in allowed):
                return False
            if alert.at <= item.watch_from:
                return False
        return True

    def to_data(self) -> dict[str, Any]:
        return {"inputs": {k: v.to_data() for k, v in sorted(self.items.items())}}

    def missing_text(self) -> list[str]:
        """"spx (Yahoo server error)" for each instrument or macro whose history is missing, for logs and status."""
        return [f"{k.split(':', 1)[1]}" + (f" ({v.error})" if v.error else "")
                for k, v in self.items.items() if not v.complete and not k.startswith(f"{LEVEL}:")]
