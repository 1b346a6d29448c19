"""Briefings: `before` each release of a release with `briefing:`, what its rules would do on a beat, an inline print
or a miss, sent once through the outbox.

The content is the engine's own answer on a copy of its state (engine/whatif.py); what goes in is known before the
release: per macro series the consensus by the one precedence of `files.consensus_for` (`history.coming_consensus`
from the store; from a print's own consensus in a data directory), else the mean of the last 12 first prints, and
the latest first print. A briefing is an Alert (rule and trigger "briefing", labels {release}, its evidence the
what-if as data): its key names the release and its time, so the outbox sends it once per channel, across restarts
and failovers as any alert. notify/briefing.py renders it per service.

The daemon's scheduler runs `Briefings.send` at the release time less `before` (jobs.py: a one-shot job per
release, as the bursts; a start between that moment and the release sends it late, never after the release).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from macrowatch.config.types import Config, Macro
from macrowatch.engine.evaluator import Engine
from macrowatch.engine.outcomes import baseline
from macrowatch.engine.whatif import Expectation, WhatIf, copy_of, to_data, what_if
from macrowatch.model import Alert, Print
from macrowatch.runtime.calendars import SCHEDULE_STATE, moment, saved_times, times_from_data
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.history import coming_consensus, coming_period, macro_prints, stored_forecasts, unseen
from macrowatch.sources import files
from macrowatch.store import Store

log = logging.getLogger("macrowatch.app")

BRIEFING = "briefing"  # the rule name and the trigger of a briefing's Alert


# ---- what is known before the release -------------------------------------------------------------------

def _looked(macro: Macro, data: bool = False) -> str:
    """Where a consensus was looked for, in words."""
    where = ["the data's consensus.csv"] if data else []
    if macro.consensus_file is not None:
        where.append(f"the consensus file {macro.consensus_file.name}")
    elif macro.consensus:
        where.append("the config's values")
    where += [f"{f.feed.value} (nothing seen before the release)" for f in macro.feeds]
    return f"in {', '.join(where)}" if where else "(the macro names no file, values or feed)"


def fallback(macro: Macro, period: dt.date | None, firsts: list[float], data: bool = False,
             prior: Print | None = None) -> Expectation:
    """The expectation of a series with no consensus for the period: the mean of the last 12 first prints, or none."""
    value, source = baseline(firsts)
    month = f"{period:%Y-%m}" if period else "the period"
    why = f"no consensus for {month} {_looked(macro, data)}: " + (
        "the mean of the last 12 first prints stands in" if value is not None else
        f"{len(firsts)} first print{'s' if len(firsts) != 1 else ''} of the 12 whose mean would stand in: the "
        "print will be judged unknown")
    return Expectation(macro.id, period, value, source, why, *_prior(prior))


def _prior(p: Print | None) -> tuple[float | None, dt.date | None]:
    return (p.actual, p.ref_period) if p is not None else (None, None)


def from_store(config: Config, store: Store, release_id: str, at: dt.datetime) -> dict[str, Expectation]:
    """Per macro series of the release: the consensus its print at `at` would be judged against now, from the store
    (its vintages and the feeds' forecasts seen so far), and the latest first print."""
    times, seen = saved_times(store), stored_forecasts(config, store)
    out = {}
    for m in (m for m in config.macro.values() if m.release == release_id):
        vintages = store.vintages(m.series)
        try:
            firsts = [p for p in macro_prints(config, m, vintages, None, times, seen) if p.at < at]
            found = coming_consensus(m, at, vintages, seen)
        except files.DataError as exc:
            out[m.id] = Expectation(m.id, None, None, "none", f"the consensus file does not read: {exc}")
            continue
        prior = firsts[-1] if firsts else None
        if found is None:
            out[m.id] = fallback(m, coming_period(vintages, at), [p.actual for p in firsts], prior=prior)
        else:
            out[m.id] = Expectation(m.id, found[0], found[1], found[2], None, *_prior(prior))
    return out


def from_prints(config: Config, prints: Iterable[Print], release_id: str, at: dt.datetime,
                data: bool = True) -> dict[str, Expectation]:
    """Per macro series of the release: the consensus of its print at `at` among `prints` (a data directory's,
    judged by `files.consensus_for` as replay judges them: only what was known before it), its actual unread."""
    out = {}
    for m in (m for m in config.macro.values() if m.release == release_id):
        mine = [p for p in prints if p.macro == m.id]
        before = [p for p in mine if p.at < at]
        coming = next((p for p in mine if p.at == at), None)
        prior = before[-1] if before else None
        if coming is None:
            out[m.id] = Expectation(m.id, None, None, "none", f"the data has no print of {m.series} at this release",
                                    *_prior(prior))
        elif coming.consensus is None or coming.consensus_source.startswith("baseline"):
            out[m.id] = fallback(m, coming.ref_period, [p.actual for p in before], data, prior)
        else:
            out[m.id] = Expectation(m.id, coming.ref_period, coming.consensus, coming.consensus_source, None,
                                    *_prior(prior))
    return out


# ---- which release, and the engine now --------------------------------------------------------------------

def upcoming(config: Config, store: Store, now: dt.datetime) -> list[tuple[dt.datetime, str]]:
    """(time, release) of every release after `now` the store's schedule knows (the config's `dates:` for a release
    it has none of), soonest first."""
    saved = store.load_state(SCHEDULE_STATE) or {}
    schedule, times = saved.get("releases") or {}, times_from_data(saved.get("times") or {})
    out = []
    for rid, release in config.releases.items():
        days = [dt.date.fromisoformat(d) for d in schedule[rid]] if rid in schedule else list(release.dates)
        out += [(at, rid) for d in days if (at := moment(config, rid, d, times)) > now]
    return sorted(out)


def engine_now(config: Config, store: Store, now: dt.datetime) -> Engine:
    """The engine as the daemon saved it, with what the store holds since applied (nothing is written back)."""
    engine = Engine(config)
    saved = store.load_state("engine")
    if saved is not None:
        try:
            engine.load(saved)
        except ValueError as exc:  # a state of another version: rebuilt from the store's history
            log.warning("saved engine state not loaded (%s): rebuilt from the store's history", exc)
    new = unseen(config, store, engine, now, lambda _key: True)
    engine.feed(new.columns(), new.prints)
    return engine


# ---- the briefing as an alert ---------------------------------------------------------------------------------

def key(release_id: str, at: dt.datetime) -> str:
    """A briefing's identity, in the form of an alert's (rule|labels|event): one per release and release time."""
    return f"{BRIEFING}|release={release_id}|briefing:{at.isoformat()}"


def headline(w: WhatIf) -> str:
    """One line: the release, its time and which rules each outcome would fire."""
    said = "; ".join(f"{s.outcome.value}: {', '.join(s.fires) or 'nothing fires'}" for s in w.scenarios)
    return f"Briefing: {w.release} at {w.at:%Y-%m-%d %H:%M %Z}. If it came out now: {said}"


def briefing(config: Config, engine: Engine, release_id: str, at: dt.datetime, expected: dict[str, Expectation],
             now: dt.datetime) -> Alert:
    """The briefing of the release at `at`, as an Alert to its `briefing.notify` channels (none without one)."""
    w = what_if(engine, release_id, at, expected)
    brief = config.releases[release_id].briefing
    return Alert(BRIEFING, now, "info", {"release": release_id}, headline(w), to_data(w, config.macro),
                 key(release_id, at), brief.notify if brief else (), w.chart, BRIEFING)


class Briefings:
    """The daemon's briefings: built on a copy of its engine, submitted to its outbox, delivered."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon  # its config, store, engine and the engine's lock, alerts, bursts (their times)

    def send(self, release_id: str, day: dt.date, now: dt.datetime) -> list[Alert]:
        """Brief the release of `day` (once: the outbox drops a key it has); nothing once its time has come."""
        d = self.daemon
        config = d.config
        release = config.releases.get(release_id)
        if release is None or release.briefing is None:
            return []
        at = moment(config, release_id, day, d.bursts.times)
        if now >= at:
            log.warning("briefing of %s at %s not sent: the release time has come", release_id, at.isoformat())
            return []
        with d.lock:
            engine = copy_of(d.engine)
        alert = briefing(config, engine, release_id, at, from_store(config, d.store, release_id, at), now)
        fresh = d.alerts.submit([alert], now)
        d.alerts.announce(fresh)
        if fresh:
            d.alerts.deliver(now)
        return fresh
