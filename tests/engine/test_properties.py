"""Properties of the engine over random close series around a level (hypothesis)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import zoneinfo
from collections.abc import Iterator

from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.helpers import on_close, on_release
from macrowatch.config.types import (
    AllOf,
    AnyOf,
    BreakoutParams,
    Config,
    Duration,
    Instrument,
    Level,
    LevelEntered,
    LevelIn,
    LevelKind,
    Macro,
    Measure,
    NarrowRange,
    NewExtreme,
    Not,
    Outcome,
    ReleaseOutcome,
    Rule,
    Side,
    Template,
    Trigger,
)
from macrowatch.engine.breakout import LevelMachine
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Bar, Print
from macrowatch.runtime.history import History, run

NY = zoneinfo.ZoneInfo("America/New_York")
DAY0 = dt.date(2024, 1, 2)
BREAKING = {Side.RESISTANCE: "breakout", Side.SUPPORT: "breakdown"}

# closes in cents between 94 and 106: around a level of 100, hitting its band edges exactly now and then
closes_st = st.lists(st.integers(9400, 10600).map(lambda c: c / 100), min_size=1, max_size=40)



def events(history: History) -> Iterator[tuple[dt.datetime, str, object]]:
    """("release", [Print]) and ("close", {instrument: Bar}) in time order; a release first at a tie."""
    timeline: dict[tuple[dt.datetime, int], object] = {}
    for p in history.prints:
        timeline.setdefault((p.at, 0), []).append(p)
    for iid in history.bars:
        for bar in history.bar_list(iid):
            timeline.setdefault((bar.at, 1), {})[iid] = bar
    for at, kind in sorted(timeline):
        yield at, ("release" if kind == 0 else "close"), timeline[(at, kind)]

def _level(lid: str, kind: LevelKind, side: Side, params: BreakoutParams, **kw) -> Level:
    return Level(lid, "spx", kind, side, params, **kw)


LEVELS = {
    "res": _level("res", LevelKind.PRICE, Side.RESISTANCE, BreakoutParams(1.0, 0.5, 3), price=100.0),
    "sup": _level("sup", LevelKind.PRICE, Side.SUPPORT, BreakoutParams(1.0, 0.0, 2), price=100.0),
    "ath": _level("ath", LevelKind.ALL_TIME_HIGH, Side.RESISTANCE, BreakoutParams(1.0, 0.0, 3)),
    "lo4": _level("lo4", LevelKind.LOW_OF, Side.SUPPORT, BreakoutParams(2.0, 0.0, 2), bars=4),
}

# Level-only rules, whose condition the tests can compute on their own from the machines' states.
LEVEL_RULES = {
    "up": LevelIn("res", ("breakout", "confirmed")),
    "pressing": LevelIn("res", ("approaching",)),
    "false-break": LevelEntered("res", "failed"),
    "new-high": LevelEntered("ath", "breakout"),
    "sup-broken": LevelIn("sup", ("breakdown",)),
}

CONFIG = Config(
    files=(),
    instruments={"spx": Instrument("spx", "^GSPC", "S&P 500")},
    levels=LEVELS,
    macro={"payrolls": Macro("payrolls", "PAYEMS", "employment-situation", Measure.CHANGE, beat_by=25.0)},
    rules=(
        Rule("up", LEVEL_RULES["up"]),
        Rule("pressing", LEVEL_RULES["pressing"], for_=Duration(2, "bars"), cooldown=Duration(3, "bars")),
        Rule("false-break", LEVEL_RULES["false-break"]),
        Rule("new-high", LEVEL_RULES["new-high"], cooldown=Duration(2, "d")),
        Rule("sup-broken", LEVEL_RULES["sup-broken"], for_=Duration(1, "d")),
        Rule("thesis", AllOf((LevelIn("res", ("approaching", "breakout")),
                              ReleaseOutcome("payrolls", Outcome.BEAT, Duration(2, "bars"))))),
        Rule("jobs-miss", ReleaseOutcome("payrolls", Outcome.MISS)),
        Rule("coil", NarrowRange("spx", 3, 1.0), labels={"desk": "macro"},
             message=Template("{spx.close:.2f} {res.state} {payrolls.actual}")),
        Rule("high-3", NewExtreme("spx", 3), cooldown=Duration(2, "bars")),
        Rule("record-low", NewExtreme("spx", None, low=True)),
        Rule("record-high-on-jobs", AllOf((NewExtreme("spx", None),
                                           ReleaseOutcome("payrolls", Outcome.ANY, Duration(2, "bars"))))),
    ),
)


def history(closes: list[float], releases: dict[int, str]) -> History:
    """spx closes on consecutive days at 16:00; a payrolls print at 08:30 on the days in `releases`."""
    bars = []
    for i, c in enumerate(closes):
        day = DAY0 + dt.timedelta(days=i)
        bars.append(Bar(day, dt.datetime.combine(day, dt.time(16), NY), c, c, c, c))
    prints = []
    for n, (i, outcome) in enumerate(sorted(releases.items())):
        at = dt.datetime.combine(DAY0 + dt.timedelta(days=i), dt.time(8, 30), NY)
        prints.append(Print("payrolls", at, dt.date(2023, 1 + n, 1), 180.0, 150.0, 160.0, "consensus (config)", 20.0,
                            outcome))
    return History({"spx": bars}, prints)


releases_st = st.dictionaries(st.integers(0, 39), st.sampled_from(["beat", "miss", "inline", "unknown"]),
                              max_size=5)


def feed(engine: Engine, evs) -> list:
    out = []
    for at, kind, payload in evs:
        out += on_release(engine, payload) if kind == "release" else on_close(engine, at, payload)
    return out


def identities(alerts) -> list:
    return [(a.key, a.to_json()) for a in alerts]


# ---- (a) and (c): the machine alone ---------------------------------------------------------------------

def any_level(kind_side: tuple[LevelKind, Side], params: BreakoutParams, n: int) -> Level:
    kind, side = kind_side
    if kind is LevelKind.PRICE:
        return _level("x", kind, side, params, price=100.0)
    if kind in (LevelKind.HIGH_OF, LevelKind.LOW_OF):
        return _level("x", kind, side, params, bars=n)
    if kind in (LevelKind.RANGE_HIGH, LevelKind.RANGE_LOW):
        return _level("x", kind, side, params, since=DAY0 + dt.timedelta(days=2))
    return _level("x", kind, side, params)


level_st = st.builds(
    any_level,
    st.sampled_from([(LevelKind.PRICE, Side.RESISTANCE), (LevelKind.PRICE, Side.SUPPORT),
                     (LevelKind.ALL_TIME_HIGH, Side.RESISTANCE), (LevelKind.ALL_TIME_LOW, Side.SUPPORT),
                     (LevelKind.HIGH_OF, Side.RESISTANCE), (LevelKind.LOW_OF, Side.SUPPORT),
                     (LevelKind.RANGE_HIGH, Side.RESISTANCE), (LevelKind.RANGE_LOW, Side.SUPPORT)]),
    st.builds(BreakoutParams, st.sampled_from([0.5, 1.0, 2.0]), st.sampled_from([0.0, 0.5]), st.integers(1, 5)),
    st.integers(1, 5),
)


@settings(max_examples=300, deadline=None)
@given(level_st, closes_st)
def test_failed_only_inside_the_window_and_confirmed_only_on_its_last_bar(lvl, closes):
    m = LevelMachine(lvl)
    n = lvl.breakout.fail_within_bars
    for i, c in enumerate(closes):
        before = m.step
        entered = m.close(DAY0 + dt.timedelta(days=i), c)
        if entered == "failed":
            assert before.state == BREAKING[lvl.side]
            assert 1 <= m.step.window_bar <= n
        if entered == "confirmed":
            assert before.state == BREAKING[lvl.side]
            assert m.step.window_bar == n
        if entered == BREAKING[lvl.side]:
            assert m.step.window_bar == 0


@settings(max_examples=300, deadline=None)
@given(level_st, closes_st, st.integers(9400, 10600).map(lambda c: c / 100))
def test_states_are_always_the_sides_states(lvl, closes, intraday):
    m = LevelMachine(lvl)
    for i, c in enumerate(closes):
        assert m.provisional(intraday) in lvl.states
        m.close(DAY0 + dt.timedelta(days=i), c)
        assert m.state in lvl.states
        if m.state in ("breakout", "breakdown", "confirmed", "failed"):
            assert m.price is not None


# ---- (b), (c), (d): the engine over a replay ------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(closes_st, releases_st, st.data())
def test_a_replay_split_anywhere_and_resumed_from_saved_state_gives_the_same_alerts(closes, releases, data):
    h = history(closes, releases)
    evs = list(events(h))
    whole = Engine(CONFIG)
    expected = run(whole, h)
    k = data.draw(st.integers(0, len(evs)), label="split after event")
    first = Engine(CONFIG)
    got = feed(first, evs[:k])
    saved = json.loads(json.dumps(first.to_data()))
    resumed = Engine(CONFIG)
    resumed.load(saved)
    got += feed(resumed, evs[k:])
    assert identities(got) == identities(expected)
    assert json.dumps(resumed.to_data()) == json.dumps(whole.to_data())


@settings(max_examples=150, deadline=None)
@given(closes_st, releases_st)
def test_engine_states_stay_on_their_side_and_rules_fire_once_per_true_stretch(closes, releases):
    engine = Engine(CONFIG)
    armed = dict.fromkeys(LEVEL_RULES, True)  # the condition was false (or never evaluated) since the last fire
    for at, kind, payload in events(history(closes, releases)):
        before = {lid: m.state for lid, m in engine.machines.items()}
        alerts = on_release(engine, payload) if kind == "release" else on_close(engine, at, payload)
        states = {lid: m.state for lid, m in engine.machines.items()}
        for lid, lvl in LEVELS.items():
            assert states[lid] in lvl.states
        fired = {a.rule for a in alerts}
        for name, cond in LEVEL_RULES.items():
            if isinstance(cond, LevelIn):
                holds = states[cond.level] in cond.states
            else:  # entered: only at a close, and only when the state changed to it
                holds = kind == "close" and before[cond.level] != cond.state == states[cond.level]
            if name in fired:
                assert holds, f"{name} fired while its condition was false"
                assert armed[name], f"{name} fired twice without its condition turning false in between"
                armed[name] = False
            if not holds:
                armed[name] = True


# ---- (e) one replay at once gives what the same events give one at a time -------------------------------

TWO = dataclasses.replace(
    CONFIG,
    instruments={**CONFIG.instruments, "ndx": Instrument("ndx", "^NDX", "Nasdaq 100")},
    levels={**LEVELS, "ndx-hi": Level("ndx-hi", "ndx", LevelKind.HIGH_OF, Side.RESISTANCE,
                                      BreakoutParams(1.0, 0.0, 2), bars=3)},
    rules=())
_STATES = {lid: lvl.states for lid, lvl in TWO.levels.items()}
atom_st = st.one_of(
    st.sampled_from(sorted(_STATES)).flatmap(
        lambda lid: st.lists(st.sampled_from(_STATES[lid]), min_size=1, max_size=2, unique=True)
        .map(lambda states: LevelIn(lid, tuple(states)))),
    st.sampled_from(sorted(_STATES)).flatmap(
        lambda lid: st.sampled_from(_STATES[lid]).map(lambda state: LevelEntered(lid, state))),
    st.builds(NarrowRange, st.sampled_from(["spx", "ndx"]), st.integers(2, 4), st.sampled_from([1.0, 3.0])),
    st.builds(NewExtreme, st.sampled_from(["spx", "ndx"]), st.sampled_from([None, 1, 2, 4]), st.booleans()),
    st.builds(ReleaseOutcome, st.just("payrolls"), st.sampled_from(list(Outcome)),
              st.sampled_from([None, Duration(2, "bars")])),
)
condition_st = st.recursive(atom_st, lambda kids: st.one_of(
    st.lists(kids, min_size=1, max_size=3).map(lambda items: AllOf(tuple(items))),
    st.lists(kids, min_size=1, max_size=3).map(lambda items: AnyOf(tuple(items))),
    kids.map(Not)), max_leaves=4)
rule_st = st.builds(
    lambda when, for_, cooldown, on: (when, for_, cooldown, on), condition_st,
    st.sampled_from([None, Duration(2, "bars"), Duration(1, "d")]),
    st.sampled_from([None, Duration(3, "bars"), Duration(2, "d")]),
    st.sampled_from([frozenset({Trigger.CLOSE, Trigger.RELEASE}), frozenset({Trigger.CLOSE}),
                     frozenset({Trigger.RELEASE})]))


@settings(max_examples=200, deadline=None)
@given(closes_st, closes_st, releases_st, st.lists(rule_st, min_size=1, max_size=5),
       st.sets(st.integers(0, 39), max_size=20))
# false at a release after true at a close: the next close still resets the `for:` count (no sleep before it)
@example([99.0, 101.0, 101.0, 101.0, 101.0], [100.0], {2: "beat"},
         [(AnyOf((LevelEntered("res", "breakout"), LevelIn("res", ("confirmed",)))), Duration(2, "bars"), None,
           frozenset({Trigger.CLOSE, Trigger.RELEASE}))], set())
def test_any_rule_set_replayed_at_once_fires_what_it_fires_event_by_event(spx, ndx, releases, rules, gaps):
    """Replay evaluates a rule only where one of its inputs changed (Timeline.unchanged, a sleeping rule):
    the alerts must be those of evaluating every rule at every event, one event at a time. `gaps`: sessions
    ndx has no bar for (its closes then come at other events than spx's)."""
    config = dataclasses.replace(TWO, rules=tuple(
        Rule(f"r{k}", when, for_=for_, cooldown=cooldown, on=on) for k, (when, for_, cooldown, on) in enumerate(rules)))
    h = history(spx, releases)
    h.bars["ndx"] = [Bar(DAY0 + dt.timedelta(days=i), dt.datetime.combine(DAY0 + dt.timedelta(days=i),
                                                                           dt.time(17), NY), c, c, c, c)
                     for i, c in enumerate(ndx) if i not in gaps]
    whole = Engine(config)
    expected = run(whole, h)
    one_by_one = Engine(config)
    got = feed(one_by_one, list(events(h)))
    assert identities(got) == identities(expected)
    assert json.dumps(one_by_one.to_data()) == json.dumps(whole.to_data())


# ---- (f) new highs and lows: what the definition says, one close at a time or all at once ---------------

@settings(max_examples=200, deadline=None)
@given(closes_st, st.sampled_from([None, 1, 2, 5]), st.booleans(), st.data())
def test_new_high_and_low_hold_exactly_where_the_close_beats_the_bars_before_it(closes, bars, low, data):
    """Fed partly one close at a time (the bar-by-bar path) and the rest at once (the batch path a replay takes),
    the rule fires exactly where the condition, computed from the closes themselves, turns true."""
    def beats(i: int) -> bool:
        before = closes[:i] if bars is None else closes[max(0, i - bars):i]
        if not before or (bars is not None and len(before) < bars):
            return False
        return closes[i] < min(before) if low else closes[i] > max(before)

    config = dataclasses.replace(CONFIG, levels={}, rules=(Rule("x", NewExtreme("spx", bars, low)),))
    h = history(closes, {})
    evs = list(events(h))
    k = data.draw(st.integers(0, len(evs)), label="one at a time before")
    engine = Engine(config)
    fired = [i for i, ev in enumerate(evs[:k]) if feed(engine, [ev])]
    rest = History({"spx": h.bars["spx"][k:]}, [])
    fired += [(a.at.date() - DAY0).days for a in run(engine, rest)]
    held = [beats(i) for i in range(len(closes))]
    assert fired == [i for i, ok in enumerate(held) if ok and (i == 0 or not held[i - 1])]
