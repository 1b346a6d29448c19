"""Many closes and releases at once, in time order, for `Engine.feed` (replay, catch-up, and single events).

The levels run over all their new closes first (engine/batch.py); then the events are walked in time order
and each rule is evaluated at each event, reading the level states of that moment from the per-bar tracks.
Views are built only for what a rule looks at, so an event costs what its rules cost, not what the 500
instruments of a config cost. A rule of level, narrow-range and new-high/low conditions is evaluated again only
where one of its inputs changed (`unchanged`), and one whose condition is false sleeps until then (`decide`,
`awake`).
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from macrowatch.config.types import NarrowRange, NewExtreme, Rule
from macrowatch.engine.alerting import Phase, RuleState
from macrowatch.engine.batch import Track, _window_max, run_level
from macrowatch.engine.breakout import LevelMachine, moved_on
from macrowatch.engine.conditions import LevelView
from macrowatch.model import Bars, Print

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _utc(ns: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=int(ns) // 1000)


def ns(t: dt.datetime) -> int:
    """A moment as integer nanoseconds since the epoch (the key of the event timeline)."""
    return (t - _EPOCH) // dt.timedelta(microseconds=1) * 1000


class Timeline:
    """The new bars and prints of one `feed`, the level tracks over them, and the events in time order.

    It runs the engine's level machines over the new bars, and only reads the engine's recent closes and last
    sessions (`closes`, `sessions`): the engine moves them on by `cols`, the new bars, after the feed.
    """

    def __init__(self, machines: Mapping[str, LevelMachine], closes: Mapping[str, deque[float]],
                 sessions: Mapping[str, dt.date], bars: Mapping[str, Bars], prints: Iterable[Print],
                 stamps: Mapping[int, dt.datetime] | None = None,
                 extremes: Mapping[str, tuple[float, float]] | None = None):
        self.machines, self.kept = machines, closes
        self.kept_extremes = extremes or {}  # per instrument: of all closes before the latest kept one
        self.stamps = stamps or {}  # a close's moment as the caller wrote it (its time zone kept)
        self.cols: dict[str, Bars] = {}  # the new bars per instrument (after its last session)
        for iid, b in bars.items():
            if iid in closes and len(b := b.after(sessions.get(iid))):
                self.cols[iid] = b
        # What a view shows of a level before its instrument's first new bar: the state before this feed.
        self.before = {lid: LevelView(m.state, None, m.price, m.last_close, m.now) for lid, m in machines.items()}
        self.prior = {iid: list(closes[iid]) for iid in self.cols}
        self.tracks: dict[str, Track] = {lid: run_level(m, self.cols[m.level.instrument].session,
                                                        self.cols[m.level.instrument].close)
                                         for lid, m in machines.items() if m.level.instrument in self.cols}
        self.releases: dict[int, list[Print]] = {}
        for p in sorted(prints, key=lambda p: (p.at, p.macro)):
            self.releases.setdefault(ns(p.at), []).append(p)
        # Instruments of one calendar share their close times: the positions are worked out once per set.
        shared: dict[tuple[int, int, int], list[tuple[np.ndarray, np.ndarray, list[str]]]] = {}
        for iid, b in self.cols.items():
            at = b.at.view(np.int64)
            same = shared.setdefault((len(at), int(at[0]), int(at[-1])), [])
            for at_, session_, members in same:
                if np.array_equal(at_, at) and np.array_equal(session_, b.session):
                    members.append(iid)
                    break
            else:
                same.append((at, b.session, [iid]))
        groups = [g for same in shared.values() for g in same]
        closes = np.unique(np.concatenate([at for at, _, _ in groups] or [np.empty(0, np.int64)]))
        # A release comes first at a tie with a close (it is known at its moment; the close after it).
        self.events = sorted([(t, 0) for t in self.releases] + [(int(t), 1) for t in closes])
        times = np.array([t for t, _ in self.events], dtype=np.int64)
        self.pos: dict[str, np.ndarray] = {}
        self.present: dict[str, np.ndarray] = {}
        kinds = np.array([k for _, k in self.events], dtype=np.int8)
        session = np.full(len(times), np.datetime64("NaT"), dtype="datetime64[D]")
        for at, sessions, members in groups:
            pos = np.searchsorted(at, times, side="right") - 1
            present = (kinds == 1) & (pos >= 0) & (at[np.maximum(pos, 0)] == times)
            for iid in members:
                self.pos[iid], self.present[iid] = pos, present
            mine = sessions[pos[present]]
            session[present] = np.where(np.isnat(session[present]), mine, np.maximum(session[present], mine))
        self.session = session
        self.e = 0
        self._hits: dict[str, np.ndarray | None] = {}
        self._narrow: dict[tuple[str, int, float], np.ndarray] = {}
        self._new: dict[tuple[str, int | None, bool], np.ndarray] = {}
        self._records: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.decided: dict[str, tuple[bool, int]] = {}
        self._asleep: set[str] = set()
        self._wake: dict[int, set[str]] = {}  # event index -> rules that wake up there
        self._rules: Sequence[Rule] | None = None

    def play(self) -> Iterator[tuple[str, dt.datetime, object]]:
        """("release", at, [Print]) and ("close", at, session) in time order, with `self.e` the event index."""
        for e, (t, kind) in enumerate(self.events):
            self.e = e
            if kind == 0:
                group = self.releases[t]
                yield "release", group[0].at, group
            else:
                yield "close", self.stamps.get(t) or _utc(t), self.session[self.e].astype(dt.date)

    def unchanged(self, rule) -> bool | None:
        """The rule's last decision in this feed when none of its inputs changed since, else None.

        Only for rules made of level, narrow-range and new-high/low atoms: their decision can change only at an
        event where one of their levels changed state (or, one event later, stopped having "just entered" it)
        or a test of closes flipped.
        """
        hits = self._hits.get(rule.name, _UNSET)
        if hits is _UNSET:
            hits = self._hits[rule.name] = self._rule_hits(rule)
        last = self.decided.get(rule.name)
        if hits is None or last is None:
            return None
        held, at = last
        before = hits[at - 1] if at > 0 else 0
        return held if hits[self.e] == before else None

    def decide(self, rule, held: bool, state: RuleState) -> None:
        """Note the rule's decision at this event; a false one that no input can change sends it to sleep.

        A sleeping rule is not evaluated until the next event where one of its inputs changes: with its
        condition false and its state at rest, each evaluation in between would change nothing.
        """
        self.decided[rule.name] = (held, self.e)
        if held or state.phase is not Phase.INACTIVE or state.since is not None or state.true_closes:
            return
        hits = self._hits.get(rule.name)
        if hits is None:
            return
        before = hits[self.e - 1] if self.e > 0 else 0
        wake = max(int(np.searchsorted(hits, before, side="right")), self.e + 1)
        self._asleep.add(rule.name)
        self._rules = None
        if wake < len(self.events):
            self._wake.setdefault(wake, set()).add(rule.name)

    def awake(self, rules: Sequence[Rule]) -> Sequence[Rule]:
        """The rules to evaluate at this event, in config order: all but the sleeping ones (see `decide`)."""
        woken = self._wake.pop(self.e, None)
        if woken:
            self._asleep -= woken
            self._rules = None
        if self._rules is None:
            self._rules = [r for r in rules if r.name not in self._asleep] if self._asleep else rules
        return self._rules

    def _rule_hits(self, rule):
        """Cumulative count of the events where one of the rule's inputs changed, or None if it has others."""
        atoms = _atoms(rule.when)
        if atoms is None:
            return None
        levels, tests = atoms
        hit = np.zeros(len(self.events), dtype=np.int64)
        for lid in levels:
            track = self.tracks.get(lid)
            if track is None:
                continue
            iid = self.machines[lid].level.instrument
            pos, present = self.pos[iid], self.present[iid]
            hit += present & track.changed[np.maximum(pos, 0)]
        for c in tests:
            if c.instrument not in self.cols:
                continue  # no new bar: its closes, so the test, cannot change in this feed
            ok = self.narrow_ok(c.instrument, c.bars, c.pct) if isinstance(c, NarrowRange) \
                else self.new_extreme_ok(c.instrument, c.bars, c.low)
            flips = np.concatenate([[True], ok[1:] != ok[:-1]])  # the first new bar may differ from before
            pos, present = self.pos[c.instrument], self.present[c.instrument]
            hit += present & flips[np.maximum(pos, 0)]
        return np.cumsum(hit)

    def narrow_ok(self, iid: str, bars: int, pct: float) -> np.ndarray:
        """Per new bar of the instrument: whether its last `bars` closes lie within `pct`% of their low."""
        key = (iid, bars, pct)
        if key not in self._narrow:
            prior = self.prior[iid]
            closes = np.concatenate([np.asarray(prior, dtype=float), self.cols[iid].close])
            ok = np.zeros(len(self.cols[iid].close), dtype=bool)
            if len(closes) >= bars:
                windows = np.lib.stride_tricks.sliding_window_view(closes, bars)
                low, high = windows.min(axis=1), windows.max(axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    width = np.where(low > 0, 100.0 * (high - low) / low, np.inf)
                # window k ends at closes[k + bars - 1], which is new bar k + bars - 1 - len(prior)
                first = bars - 1 - len(prior)
                fits = width <= pct
                ok[max(first, 0):] = fits[max(-first, 0):]
            self._narrow[key] = ok
        return self._narrow[key]

    def new_extreme_ok(self, iid: str, bars: int | None, low: bool) -> np.ndarray:
        """Per new bar of the instrument: whether its close is above the highest (`low`: below the lowest) of
        the `bars` closes before it (None: of all before it); false with fewer closes before it."""
        key = (iid, bars, low)
        if key not in self._new:
            new = self.cols[iid].close
            if bars is None:
                high, lowest = self.records(iid)
                with np.errstate(invalid="ignore"):  # NaN (no close before): false
                    ok = new < lowest if low else new > high
            else:
                prior = self.prior[iid]
                # lows as highs of the negated closes (exact in floating point)
                x = np.concatenate([np.asarray(prior, dtype=float), new]) * (-1.0 if low else 1.0)
                ok = np.zeros(len(new), dtype=bool)
                first = max(len(prior), bars)  # the first position in x with `bars` closes before it
                if len(x) > first:
                    best = _window_max(x[:-1], bars)  # best[k]: the max of x[k:k + bars]
                    j = np.arange(first, len(x))
                    ok[j - len(prior)] = x[j] > best[j - bars]
            self._new[key] = ok
        return self._new[key]

    def records(self, iid: str) -> tuple[np.ndarray, np.ndarray]:
        """Per new bar of the instrument: the highest and the lowest of all its closes before it (NaN: none)."""
        if iid not in self._records:
            new = self.cols[iid].close
            high, low = self.kept_extremes.get(iid, (-np.inf, np.inf))
            if self.prior[iid]:
                high, low = max(high, self.prior[iid][-1]), min(low, self.prior[iid][-1])
            highs = np.maximum.accumulate(np.concatenate([[high], new[:-1]]))
            lows = np.minimum.accumulate(np.concatenate([[low], new[:-1]]))
            self._records[iid] = (np.where(np.isinf(highs), np.nan, highs), np.where(np.isinf(lows), np.nan, lows))
        return self._records[iid]

    def extremes_after(self, iid: str) -> dict[str, tuple[float, float]]:
        """The highest and lowest of all the instrument's closes before its last new one (empty if none)."""
        seen = np.concatenate([self.prior[iid][-1:], self.cols[iid].close[:-1]])
        extremes = self.kept_extremes.get(iid)
        if len(seen):
            high, low = float(seen.max()), float(seen.min())
            extremes = (high, low) if extremes is None else (max(extremes[0], high), min(extremes[1], low))
        return {iid: extremes} if extremes is not None else {}

    def levels(self, entered: bool) -> Levels:
        return Levels(self, self.e, entered)

    def closes(self) -> Closes:
        return Closes(self, self.e)

    def extremes(self) -> Extremes:
        return Extremes(self, self.e)


_UNSET = object()


def _atoms(condition) -> tuple[set[str], list] | None:
    """The level ids and the atoms on closes (narrow range, new high/low) of a condition made of those and
    combinators only, else None."""
    from macrowatch.config.types import AllOf, AnyOf, LevelEntered, LevelIn, Not

    if isinstance(condition, LevelIn | LevelEntered):
        return {condition.level}, []
    if isinstance(condition, NarrowRange | NewExtreme):
        return set(), [condition]
    if isinstance(condition, Not):
        return _atoms(condition.item)
    if isinstance(condition, AllOf | AnyOf):
        levels: set[str] = set()
        narrows: list = []
        for item in condition.items:
            got = _atoms(item)
            if got is None:
                return None
            levels |= got[0]
            narrows += got[1]
        return levels, narrows
    return None


class Levels(Mapping[str, LevelView]):
    """The level views at one event, built on first look."""

    def __init__(self, timeline: Timeline, e: int, entered: bool):
        self.t, self.e, self.entered = timeline, e, entered
        self.cache: dict[str, LevelView] = {}

    def __getitem__(self, lid: str) -> LevelView:
        view = self.cache.get(lid)
        if view is None:
            view = self.cache[lid] = self._view(lid)
        return view

    def _view(self, lid: str) -> LevelView:
        t = self.t
        track = t.tracks.get(lid)
        if track is None:
            return t.before[lid]
        iid = t.machines[lid].level.instrument
        i = int(t.pos[iid][self.e])
        if i < 0:
            return t.before[lid]
        state = track.names[int(track.state[i])]
        changed = self.entered and bool(t.present[iid][self.e]) and bool(track.changed[i])
        price = None if np.isnan(track.price[i]) else float(track.price[i])
        # The level's value now: at its own close the one that close was judged by; after it, the next bar's.
        value = track.value[i] if t.present[iid][self.e] else track.value[i + 1] if i + 1 < len(track.value) \
            else t.machines[lid].value.value
        value = None if value is None or np.isnan(value) else float(value)
        return LevelView(state, state if changed else None, price, float(t.cols[iid].close[i]),
                         moved_on(state, price, value))

    def __iter__(self) -> Iterator[str]:
        return iter(self.t.machines)

    def __len__(self) -> int:
        return len(self.t.machines)


class Closes(Mapping[str, list[float]]):
    """The recent closes of each instrument at one event (as many as narrow_range conditions need)."""

    def __init__(self, timeline: Timeline, e: int):
        self.t, self.e = timeline, e

    def __getitem__(self, iid: str) -> list[float]:
        t = self.t
        keep = t.kept[iid].maxlen
        if iid not in t.cols:
            return list(t.kept[iid])
        i = int(t.pos[iid][self.e])
        new = [float(x) for x in t.cols[iid].close[max(0, i + 1 - keep):i + 1]]
        return (t.prior[iid] + new)[-keep:]

    def new_extreme(self, iid: str, bars: int | None, low: bool) -> bool | None:
        """The new-high/low test at this event from the precomputed windows; None where there is none."""
        t = self.t
        if iid not in t.cols or (bars is not None and bars >= t.kept[iid].maxlen):
            return None
        i = int(t.pos[iid][self.e])
        return None if i < 0 else bool(t.new_extreme_ok(iid, bars, low)[i])

    def narrow(self, iid: str, bars: int, pct: float) -> bool | None:
        """The narrow-range test at this event from precomputed windows; None where there is none."""
        t = self.t
        if iid not in t.cols or bars > t.kept[iid].maxlen:
            return None
        i = int(t.pos[iid][self.e])
        return None if i < 0 else bool(t.narrow_ok(iid, bars, pct)[i])

    def __iter__(self) -> Iterator[str]:
        return iter(self.t.kept)

    def __len__(self) -> int:
        return len(self.t.kept)


class Extremes(Mapping[str, tuple[float, float]]):
    """Per instrument at one event: the highest and lowest of all its closes before the latest one."""

    def __init__(self, timeline: Timeline, e: int):
        self.t, self.e = timeline, e

    def __getitem__(self, iid: str) -> tuple[float, float]:
        t = self.t
        i = int(t.pos[iid][self.e]) if iid in t.cols else -1
        if i < 0:  # no new close yet: as before this feed
            return t.kept_extremes[iid]
        high, low = t.records(iid)
        if np.isnan(high[i]):
            raise KeyError(iid)
        return float(high[i]), float(low[i])

    def __iter__(self) -> Iterator[str]:
        return iter([iid for iid in self.t.kept if iid in self])

    def __len__(self) -> int:
        return sum(1 for _ in self)
