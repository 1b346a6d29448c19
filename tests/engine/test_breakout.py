"""The breakout state machine (DESIGN.md, "The breakout state machine"): every transition, both sides.

The table uses a level L = 100 with approach_pct 1 and fail_within_bars 3, so for resistance band = 99 and
up = 100 (buffer 0) or 101 (buffer 1); for support band = 101 and up = 100 or 99. These are exact in floats.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from macrowatch.config.types import STATES, BreakoutParams, Level, LevelKind, Side
from macrowatch.engine.breakout import LevelMachine, LevelValue, Step, transition

P = BreakoutParams(approach_pct=1.0, buffer_pct=0.0, fail_within_bars=3)
BUF = BreakoutParams(approach_pct=1.0, buffer_pct=1.0, fail_within_bars=3)
ONE = BreakoutParams(approach_pct=1.0, buffer_pct=0.0, fail_within_bars=1)
R, S = Side.RESISTANCE, Side.SUPPORT
DAY0 = dt.date(2024, 1, 1)


def st_(state: str, frozen: float | None = None, bar: int = 0) -> Step:
    return Step(state, frozen, bar)


# (id, side, previous step, close, current value, params, dynamic, expected step)
TRANSITIONS = [
    # ---- resistance, static level 100 -----------------------------------------------------------------
    ("res below->approaching", R, st_("below"), 99.5, 100, P, False, st_("approaching")),
    ("res below->approaching at the band edge", R, st_("below"), 99.0, 100, P, False, st_("approaching")),
    ("res below stays below", R, st_("below"), 98.9, 100, P, False, st_("below")),
    ("res approaching->below", R, st_("approaching"), 98.5, 100, P, False, st_("below")),
    ("res approaching stays at L (close = L is no breakout)", R, st_("approaching"), 100.0, 100, P, False,
     st_("approaching")),
    ("res below->breakout straight through the band", R, st_("below"), 103.0, 100, P, False,
     st_("breakout", 100, 0)),
    ("res approaching->breakout", R, st_("approaching"), 100.5, 100, P, False, st_("breakout", 100, 0)),
    ("res buffer: inside L..up is approaching", R, st_("approaching"), 100.5, 100, BUF, False,
     st_("approaching")),
    ("res buffer: at up is approaching", R, st_("approaching"), 101.0, 100, BUF, False, st_("approaching")),
    ("res buffer: past up is breakout, frozen at L not up", R, st_("below"), 101.5, 100, BUF, False,
     st_("breakout", 100, 0)),
    ("res breakout->breakout (window continues)", R, st_("breakout", 100, 0), 100.5, 100, P, False,
     st_("breakout", 100, 1)),
    ("res breakout->breakout inside the buffer (above L)", R, st_("breakout", 100, 1), 100.5, 100, BUF, False,
     st_("breakout", 100, 2)),
    ("res breakout->failed at bar 1 (close = L)", R, st_("breakout", 100, 0), 100.0, 100, P, False,
     st_("failed", 100, 1)),
    ("res breakout->failed at bar N", R, st_("breakout", 100, 2), 99.5, 100, P, False, st_("failed", 100, 3)),
    ("res breakout->failed even below the band", R, st_("breakout", 100, 0), 90.0, 100, P, False,
     st_("failed", 100, 1)),
    ("res breakout not confirmed before bar N", R, st_("breakout", 100, 1), 101.0, 100, P, False,
     st_("breakout", 100, 2)),
    ("res breakout->confirmed on bar N", R, st_("breakout", 100, 2), 101.0, 100, P, False,
     st_("confirmed", 100, 3)),
    ("res breakout->confirmed on bar 1 when N = 1", R, st_("breakout", 100, 0), 101.0, 100, ONE, False,
     st_("confirmed", 100, 1)),
    ("res failed stays failed inside the band", R, st_("failed", 100, 1), 99.5, 100, P, False,
     st_("failed", 100, 2)),
    ("res failed stays failed at L", R, st_("failed", 100, 1), 100.0, 100, P, False, st_("failed", 100, 2)),
    ("res failed stays failed between L and up", R, st_("failed", 100, 1), 100.8, 100, BUF, False,
     st_("failed", 100, 2)),
    ("res failed->below", R, st_("failed", 100, 2), 98.5, 100, P, False, st_("below")),
    ("res failed->breakout (a new one)", R, st_("failed", 100, 2), 100.5, 100, P, False,
     st_("breakout", 100, 0)),
    ("res confirmed->confirmed", R, st_("confirmed", 100, 3), 104.0, 100, P, False, st_("confirmed", 100, 4)),
    ("res confirmed->approaching (close inside the band)", R, st_("confirmed", 100, 3), 99.5, 100, P, False,
     st_("approaching")),
    ("res confirmed->approaching (close = L)", R, st_("confirmed", 100, 3), 100.0, 100, P, False,
     st_("approaching")),
    ("res confirmed->below (close under the band)", R, st_("confirmed", 100, 3), 98.0, 100, P, False,
     st_("below")),
    # ---- resistance, dynamic level: old high 100, current value moved by the breakout's own closes -----
    ("res dyn breakout: L frozen at the old high", R, st_("breakout", 100, 0), 103.0, 105, P, True,
     st_("breakout", 100, 1)),
    ("res dyn failed: frozen band, not the current one", R, st_("failed", 100, 1), 99.5, 105, P, True,
     st_("failed", 100, 2)),
    # DESIGN keeps L frozen while failed, so a re-break of the old high (100) is a new breakout even though the
    # failed breakout's own closes raised the all-time high to 105: the level that failed is the one re-broken.
    ("res dyn failed->breakout past the frozen level", R, st_("failed", 100, 1), 101.0, 105, P, True,
     st_("breakout", 100, 0)),
    ("res dyn confirmed: a shallow dip stays confirmed", R, st_("confirmed", 100, 3), 108.0, 109, P, True,
     st_("confirmed", 100, 4)),
    ("res dyn confirmed: pullback below the current value->below", R, st_("confirmed", 100, 3), 107.0, 109, P,
     True, st_("below")),
    ("res dyn confirmed: pullback wins over approaching", R, st_("confirmed", 100, 3), 99.5, 109, P, True,
     st_("below")),
    ("res dyn confirmed->approaching when no pullback", R, st_("confirmed", 100, 3), 99.5, 100.4, P, True,
     st_("approaching")),
    ("res static confirmed: no pullback rule", R, st_("confirmed", 100, 3), 107.0, 109, P, False,
     st_("confirmed", 100, 4)),
    ("res dyn below: L follows the market", R, st_("below"), 103.0, 105, P, True, st_("below")),
    ("res dyn approaching: L follows the market", R, st_("approaching"), 104.5, 105, P, True,
     st_("approaching")),
    # ---- support, static level 100 (the mirror image) --------------------------------------------------
    ("sup above->approaching", S, st_("above"), 100.5, 100, P, False, st_("approaching")),
    ("sup above->approaching at the band edge", S, st_("above"), 101.0, 100, P, False, st_("approaching")),
    ("sup above stays above", S, st_("above"), 101.1, 100, P, False, st_("above")),
    ("sup approaching->above", S, st_("approaching"), 101.5, 100, P, False, st_("above")),
    ("sup approaching stays at L", S, st_("approaching"), 100.0, 100, P, False, st_("approaching")),
    ("sup above->breakdown straight through the band", S, st_("above"), 97.0, 100, P, False,
     st_("breakdown", 100, 0)),
    ("sup approaching->breakdown", S, st_("approaching"), 99.5, 100, P, False, st_("breakdown", 100, 0)),
    ("sup buffer: inside up..L is approaching", S, st_("approaching"), 99.5, 100, BUF, False,
     st_("approaching")),
    ("sup buffer: at up is approaching", S, st_("approaching"), 99.0, 100, BUF, False, st_("approaching")),
    ("sup buffer: past up is breakdown, frozen at L", S, st_("above"), 98.5, 100, BUF, False,
     st_("breakdown", 100, 0)),
    ("sup breakdown->breakdown (window continues)", S, st_("breakdown", 100, 0), 99.5, 100, P, False,
     st_("breakdown", 100, 1)),
    ("sup breakdown->failed at bar 1 (close = L)", S, st_("breakdown", 100, 0), 100.0, 100, P, False,
     st_("failed", 100, 1)),
    ("sup breakdown->failed at bar N", S, st_("breakdown", 100, 2), 100.5, 100, P, False,
     st_("failed", 100, 3)),
    ("sup breakdown not confirmed before bar N", S, st_("breakdown", 100, 1), 99.0, 100, P, False,
     st_("breakdown", 100, 2)),
    ("sup breakdown->confirmed on bar N", S, st_("breakdown", 100, 2), 99.0, 100, P, False,
     st_("confirmed", 100, 3)),
    ("sup failed stays failed inside the band", S, st_("failed", 100, 1), 100.5, 100, P, False,
     st_("failed", 100, 2)),
    ("sup failed stays failed between up and L", S, st_("failed", 100, 1), 99.2, 100, BUF, False,
     st_("failed", 100, 2)),
    ("sup failed->above", S, st_("failed", 100, 2), 101.5, 100, P, False, st_("above")),
    ("sup failed->breakdown (a new one)", S, st_("failed", 100, 2), 99.5, 100, P, False,
     st_("breakdown", 100, 0)),
    ("sup confirmed->confirmed", S, st_("confirmed", 100, 3), 96.0, 100, P, False, st_("confirmed", 100, 4)),
    ("sup confirmed->approaching (close inside the band)", S, st_("confirmed", 100, 3), 100.5, 100, P, False,
     st_("approaching")),
    ("sup confirmed->approaching (close = L)", S, st_("confirmed", 100, 3), 100.0, 100, P, False,
     st_("approaching")),
    ("sup confirmed->above (close past the band)", S, st_("confirmed", 100, 3), 102.0, 100, P, False,
     st_("above")),
    # ---- support, dynamic level: old low 100 ------------------------------------------------------------
    ("sup dyn breakdown: L frozen at the old low", S, st_("breakdown", 100, 0), 97.0, 95, P, True,
     st_("breakdown", 100, 1)),
    ("sup dyn failed: frozen band, not the current one", S, st_("failed", 100, 1), 100.5, 95, P, True,
     st_("failed", 100, 2)),
    ("sup dyn confirmed: a shallow bounce stays confirmed", S, st_("confirmed", 100, 3), 91.5, 91, P, True,
     st_("confirmed", 100, 4)),
    ("sup dyn confirmed: bounce above the current value->above", S, st_("confirmed", 100, 3), 93.0, 91, P,
     True, st_("above")),
    ("sup dyn confirmed: bounce rule wins over approaching", S, st_("confirmed", 100, 3), 100.5, 91, P, True,
     st_("above")),
    ("sup dyn above: L follows the market", S, st_("above"), 97.0, 95, P, True, st_("above")),
]


@pytest.mark.parametrize(("side", "prev", "close", "current", "params", "dynamic", "expected"),
                         [pytest.param(*row[1:], id=row[0]) for row in TRANSITIONS])
def test_transition(side, prev, close, current, params, dynamic, expected):
    assert transition(side, prev, close, current, params, dynamic) == expected


def test_every_state_of_each_side_is_covered_by_the_table():
    for side, states in STATES.items():
        rows = [row for row in TRANSITIONS if row[1] is side]
        assert {row[2].state for row in rows} == set(states)
        assert {row[7].state for row in rows} == set(states)


# ---- level values ---------------------------------------------------------------------------------------

def level(kind: LevelKind, side: Side = R, *, price=None, bars=None, since=None, params=P) -> Level:
    return Level("lvl", "spx", kind, side, params, price=price, since=since, bars=bars)


def values_before_each_bar(lvl: Level, closes: list[float]) -> list[float | None]:
    """The level's value as each bar sees it (from the bars before it), bar i on session DAY0 + i."""
    v = LevelValue(lvl)
    out = []
    for i, c in enumerate(closes):
        out.append(v.value)
        v.add(DAY0 + dt.timedelta(days=i), c)
    return out


def test_price_level_is_its_price():
    assert values_before_each_bar(level(LevelKind.PRICE, price=100.0), [90, 110]) == [100.0, 100.0]


def test_all_time_high_is_the_highest_close_before_the_bar():
    closes = [100, 104, 102, 107, 103]
    assert values_before_each_bar(level(LevelKind.ALL_TIME_HIGH), closes) == [None, 100, 104, 104, 107]


def test_all_time_low_is_the_lowest_close_before_the_bar():
    closes = [100, 96, 98, 93, 97]
    assert values_before_each_bar(level(LevelKind.ALL_TIME_LOW, S), closes) == [None, 100, 96, 96, 93]


def test_high_of_uses_the_prior_n_bars_only_and_is_unknown_until_n_exist():
    closes = [110, 100, 101, 99, 98, 97]
    # bar 3 sees 110, 100, 101; bar 4 sees 100, 101, 99: the old 110 has left the window
    assert values_before_each_bar(level(LevelKind.HIGH_OF, bars=3), closes) == [None, None, None, 110, 101, 101]


def test_low_of_uses_the_prior_n_bars_only():
    closes = [90, 100, 99, 101, 102, 103]
    assert values_before_each_bar(level(LevelKind.LOW_OF, S, bars=3), closes) == [None, None, None, 90, 99, 99]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(50, 150, allow_nan=False), max_size=40), st.integers(1, 8),
       st.sampled_from([(LevelKind.HIGH_OF, R, max), (LevelKind.LOW_OF, S, min)]))
def test_high_of_and_low_of_match_a_brute_force_window(closes, n, kind_side_fn):
    kind, side, extreme = kind_side_fn
    got = values_before_each_bar(level(kind, side, bars=n), closes)
    want = [extreme(closes[i - n:i]) if i >= n else None for i in range(len(closes))]
    assert got == want


def test_range_high_ignores_closes_before_since():
    since = DAY0 + dt.timedelta(days=2)
    closes = [120, 115, 100, 104, 102]  # the 120 and 115 are before `since`
    assert values_before_each_bar(level(LevelKind.RANGE_HIGH, since=since), closes) == [None, None, None, 100, 104]


def test_range_low_ignores_closes_before_since():
    since = DAY0 + dt.timedelta(days=2)
    closes = [80, 85, 100, 96, 98]
    assert values_before_each_bar(level(LevelKind.RANGE_LOW, S, since=since), closes) == [None, None, None, 100, 96]


# ---- the machine over sequences of closes ----------------------------------------------------------------

def run(machine: LevelMachine, closes: list[float], start: int = 0) -> list[tuple[str, float | None]]:
    """Feed closes (bar i on DAY0 + start + i); the (state, level) after each."""
    out = []
    for i, c in enumerate(closes):
        machine.close(DAY0 + dt.timedelta(days=start + i), c)
        out.append((machine.state, machine.price))
    return out


def test_dynamic_level_has_no_state_change_before_it_has_a_value():
    m = LevelMachine(level(LevelKind.ALL_TIME_HIGH))
    assert m.close(DAY0, 100.0) is None
    assert m.state == "below"


def test_close_returns_the_state_entered_or_none():
    m = LevelMachine(level(LevelKind.PRICE, price=100.0))
    assert m.close(DAY0, 99.5) == "approaching"
    assert m.close(DAY0 + dt.timedelta(days=1), 99.6) is None
    assert m.close(DAY0 + dt.timedelta(days=2), 101.0) == "breakout"


def test_all_time_high_breakout_freezes_the_old_high_not_the_breakout_close():
    m = LevelMachine(level(LevelKind.ALL_TIME_HIGH))
    states = run(m, [100, 99.5, 99.8, 103, 104, 101])
    assert states == [
        ("below", 100),        # no value before the first bar: no transition
        ("approaching", 100),
        ("approaching", 100),
        ("breakout", 100),     # frozen at the old high 100, not at the breakout close 103
        ("breakout", 100),
        ("breakout", 100),     # 101 is under the new high 104 but above the frozen 100: no failure
    ]


def test_dynamic_level_follows_the_market_again_after_below():
    m = LevelMachine(level(LevelKind.ALL_TIME_HIGH))
    states = run(m, [100, 105, 99.5, 98.0, 103.0])
    assert [s for s, _ in states] == ["below", "breakout", "failed", "below", "below"]
    assert states[2][1] == 100      # failed: still frozen at the old high
    assert states[3][1] == 105      # below: the level is the all-time high 105 again
    # 103 would break the old 100, but measured against 105 (band 103.95) it is just below


def test_dynamic_level_follows_the_market_again_after_approaching():
    m = LevelMachine(level(LevelKind.ALL_TIME_HIGH))
    # breakout over 100, confirmed on bar 3 (100.1), then back to 99.5: within 1% of the current high 100.4 too,
    # so no pullback: approaching; from then on L is 100.4, and 100.35 is no breakout
    states = run(m, [100, 100.2, 100.3, 100.4, 100.1, 99.5, 100.35])
    assert [s for s, _ in states] == ["below", "breakout", "breakout", "breakout", "confirmed", "approaching",
                                      "approaching"]
    assert [p for _, p in states[1:5]] == [100, 100, 100, 100]
    assert states[5][1] == 100.4


def test_dynamic_pullback_then_new_high_is_a_new_breakout():
    m = LevelMachine(level(LevelKind.ALL_TIME_HIGH))
    states = run(m, [100, 101, 103, 105, 109, 107, 110])
    assert [s for s, _ in states] == ["below", "breakout", "breakout", "breakout", "confirmed", "below",
                                      "breakout"]
    assert states[-1][1] == 109     # the new breakout is frozen at the high before it


def test_support_breakdown_and_failure_with_all_time_low():
    m = LevelMachine(level(LevelKind.ALL_TIME_LOW, S))
    states = run(m, [100, 97, 98, 100.5, 101.5])
    assert [s for s, _ in states] == ["above", "breakdown", "breakdown", "failed", "above"]
    assert [p for _, p in states[1:4]] == [100, 100, 100]
    assert states[4][1] == 97


WINDOW_CASES = [
    pytest.param(level(LevelKind.PRICE, price=100.0), [99.5, 101, 102], [101.5, 99.8, 103, 104, 98], id="price"),
    pytest.param(level(LevelKind.HIGH_OF, bars=3), [97, 99, 100, 101, 102], [103, 100.5, 99, 104, 106, 107, 96],
                 id="high_of"),
    pytest.param(level(LevelKind.ALL_TIME_LOW, S), [100, 98, 98.5], [97, 99, 101, 96, 95, 94, 93], id="atl"),
    pytest.param(level(LevelKind.RANGE_HIGH, since=DAY0 + dt.timedelta(days=1)), [120, 100, 101],
                 [102, 103, 100.5, 104, 105, 101], id="range_high"),
]


@pytest.mark.parametrize(("lvl", "before", "after"), WINDOW_CASES)
def test_saved_and_restored_mid_window_gives_the_same_future(lvl, before, after):
    m = LevelMachine(lvl)
    run(m, before)
    assert m.state in ("breakout", "breakdown")  # the save is inside a watch window
    data = json.loads(json.dumps(m.to_data()))
    restored = LevelMachine.from_data(lvl, data)
    assert (restored.state, restored.price, restored.step) == (m.state, m.price, m.step)
    assert run(restored, after, len(before)) == run(m, after, len(before))


def test_from_data_ignores_a_state_of_the_other_side():
    lvl = level(LevelKind.PRICE, price=100.0)
    m = LevelMachine.from_data(lvl, {"state": "breakdown", "frozen": 100.0, "window_bar": 1})
    assert m.state == "below"


@pytest.mark.parametrize(("price", "would_be"), [(98.0, "failed"), (100.0, "failed"), (100.5, "breakout"),
                                                 (103.0, "breakout")])
def test_provisional_changes_nothing(price, would_be):
    m = LevelMachine(level(LevelKind.HIGH_OF, bars=2))
    run(m, [99, 100, 100.5, 100.8])  # a breakout over 100 on bar 2; bar 3 is window bar 1
    before = json.dumps(m.to_data())
    assert m.provisional(price) == would_be
    assert json.dumps(m.to_data()) == before
    assert (m.state, m.step.window_bar, m.entered, m.last_close) == ("breakout", 1, None, 100.8)


def test_provisional_gives_the_state_the_close_would_give():
    m = LevelMachine(level(LevelKind.PRICE, price=100.0))
    run(m, [99.5])
    assert m.provisional(101.0) == "breakout"
    assert m.provisional(98.0) == "below"
    assert m.state == "approaching"
