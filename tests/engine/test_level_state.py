"""One `LevelState` enum for both sides' machines, one `Outcome` enum for releases: what the engine produces
is a member, each member says what it means, and what is saved or shown stays the plain name."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from engine.helpers import on_release
from macrowatch.config.types import (
    RULE_OUTCOMES,
    STATES,
    BreakoutParams,
    Config,
    Level,
    LevelKind,
    LevelState,
    Macro,
    Measure,
    Outcome,
    Side,
)
from macrowatch.engine.batch import run_level
from macrowatch.engine.breakout import LevelMachine
from macrowatch.engine.evaluator import Engine
from macrowatch.engine.outcomes import judge
from macrowatch.model import Print

START = dt.date(2024, 1, 1)
PARAMS = BreakoutParams(approach_pct=1.0, buffer_pct=0.0, fail_within_bars=2)
# Resistance at 100 through every state: below, approaching, breakout, (watch) confirmed, approaching,
# breakout, failed, below. Support takes the mirror image (200 - x) through its own.
TOUR = [90.0, 99.5, 102.0, 103.0, 104.0, 99.5, 102.0, 99.0, 90.0]
KINDS = [(LevelKind.PRICE, Side.RESISTANCE, {"price": 100.0}), (LevelKind.PRICE, Side.SUPPORT, {"price": 100.0}),
         (LevelKind.ALL_TIME_HIGH, Side.RESISTANCE, {}), (LevelKind.HIGH_OF, Side.RESISTANCE, {"bars": 5}),
         (LevelKind.RANGE_HIGH, Side.RESISTANCE, {"since": START}), (LevelKind.ALL_TIME_LOW, Side.SUPPORT, {}),
         (LevelKind.LOW_OF, Side.SUPPORT, {"bars": 3}), (LevelKind.RANGE_LOW, Side.SUPPORT, {"since": START})]


def tour(side: Side) -> list[float]:
    return TOUR if side is Side.RESISTANCE else [200.0 - c for c in TOUR]


def days(n: int) -> list[dt.date]:
    return [START + dt.timedelta(days=i) for i in range(n)]


def scalar_states(lvl: Level, closes: list[float]) -> list[LevelState]:
    """Every state the scalar machine gives: after each close, entered, and provisional for each price."""
    m, out = LevelMachine(lvl), []
    for d, c in zip(days(len(closes)), closes, strict=True):
        out.append(m.provisional(c))
        entered = m.close(d, c)
        out += [m.state] + ([entered] if entered is not None else [])
    return out


def batch_states(lvl: Level, closes: list[float]) -> list[LevelState]:
    """Every state the batch runner gives: per bar from its track, and the machine's state it leaves."""
    m = LevelMachine(lvl)
    track = run_level(m, np.array(days(len(closes)), dtype="datetime64[D]"), np.array(closes))
    return [track.names[int(code)] for code in track.state] + [m.state] + ([m.entered] if m.entered else [])


@pytest.mark.parametrize("side", list(Side), ids=str)
@pytest.mark.parametrize("run", [scalar_states, batch_states], ids=["scalar machine", "batch runner"])
def test_a_tour_of_a_level_visits_every_state_of_its_side_each_a_member_of_the_enum(side, run):
    lvl = Level("l", "i", LevelKind.PRICE, side, PARAMS, price=100.0)
    states = run(lvl, tour(side))
    assert all(type(s) is LevelState for s in states), {s: type(s) for s in states}
    assert set(states) == set(STATES[side])


@pytest.mark.parametrize("kind, side, extra", KINDS, ids=[f"{k.value} {s.value}" for k, s, _ in KINDS])
@pytest.mark.parametrize("run", [scalar_states, batch_states], ids=["scalar machine", "batch runner"])
def test_random_walks_of_every_kind_give_members_of_their_sides_states_only(kind, side, extra, run):
    rng = np.random.default_rng(7)
    closes = (100.0 + np.cumsum(rng.normal(0.0, 1.5, 400))).round(2).tolist()
    lvl = Level("l", "i", kind, side, PARAMS, **extra)
    states = run(lvl, closes)
    assert all(type(s) is LevelState for s in states)
    assert set(states) <= set(STATES[side]) and len(set(states)) >= 3


def test_the_two_sides_states_are_the_whole_enum_in_the_order_the_batch_runner_numbers_them():
    assert set(STATES[Side.RESISTANCE]) | set(STATES[Side.SUPPORT]) == set(LevelState)
    for side, (quiet, approaching, breaking, confirmed, failed) in STATES.items():
        assert (approaching, confirmed, failed) == (LevelState.APPROACHING, LevelState.CONFIRMED, LevelState.FAILED)
        assert (quiet, breaking) == ((LevelState.BELOW, LevelState.BREAKOUT) if side is Side.RESISTANCE
                                     else (LevelState.ABOVE, LevelState.BREAKDOWN))


@pytest.mark.parametrize("member", [*LevelState, *Outcome], ids=lambda m: f"{type(m).__name__}.{m.name}")
def test_every_member_says_what_it_means(member):
    doc = member.__doc__
    assert doc and doc != type(member).__doc__ and len(doc.split()) >= 4
    assert member == member.value and str(member) == member.value and f"{member}" == member.value


def test_each_member_has_a_meaning_of_its_own():
    for enum in (LevelState, Outcome):
        docs = [m.__doc__ for m in enum]
        assert len(set(docs)) == len(docs)


def test_a_state_saved_by_the_previous_version_loads_and_saves_as_the_same_plain_json():
    lvl = Level("l", "i", LevelKind.PRICE, Side.SUPPORT, PARAMS, price=100.0)
    saved = {"state": "breakdown", "frozen": 100.0, "window_bar": 1, "last_close": 98.0,
             "value": {"extreme": 100.0, "window": []}}
    m = LevelMachine.from_data(lvl, json.loads(json.dumps(saved)))
    assert m.state is LevelState.BREAKDOWN
    data = m.to_data()
    assert type(data["state"]) is str
    assert json.dumps(data, sort_keys=True) == json.dumps(saved, sort_keys=True)
    assert m.close(START, 97.0) is LevelState.CONFIRMED and m.to_data()["state"] == "confirmed"


@pytest.mark.parametrize("actual, consensus, higher_is, expected", [
    pytest.param(200.0, 160.0, "better", Outcome.BEAT, id="beat"),
    pytest.param(120.0, 160.0, "better", Outcome.MISS, id="miss"),
    pytest.param(165.0, 160.0, "better", Outcome.INLINE, id="inline"),
    pytest.param(200.0, 160.0, "worse", Outcome.MISS, id="higher is worse: a miss"),
    pytest.param(120.0, 160.0, "worse", Outcome.BEAT, id="higher is worse: a beat"),
    pytest.param(200.0, None, "better", Outcome.UNKNOWN, id="no consensus: unknown"),
])
def test_a_release_outcome_is_a_member_of_the_one_outcome_enum(actual, consensus, higher_is, expected):
    _surprise, outcome = judge(actual, consensus, 25.0, higher_is)
    assert outcome is expected


def test_a_rule_asks_for_any_outcome_but_unknown_which_only_any_matches():
    assert [o.value for o in RULE_OUTCOMES] == ["beat", "miss", "inline", "any"]
    assert set(Outcome) - set(RULE_OUTCOMES) == {Outcome.UNKNOWN}


def test_a_saved_print_loads_back_with_its_outcome_a_member_and_saves_as_the_plain_name():
    config = Config(files=(), macro={"payrolls": Macro("payrolls", "PAYEMS", "employment-situation",
                                                       Measure.CHANGE, beat_by=25.0)})
    at = dt.datetime(2024, 3, 8, 13, 30, tzinfo=dt.UTC)
    engine = Engine(config)
    on_release(engine, [Print("payrolls", at, dt.date(2024, 2, 1), 200.0, 150.0, 160.0, "consensus (config)", 40.0,
                              Outcome.BEAT)])
    saved = json.loads(json.dumps(engine.to_data()))
    assert saved["prints"]["payrolls"][0]["outcome"] == "beat"
    restored = Engine(config)
    restored.load(saved)
    assert restored.prints["payrolls"][0].outcome is Outcome.BEAT
    assert json.dumps(restored.to_data()) == json.dumps(engine.to_data())
