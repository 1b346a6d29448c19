"""The batch level runner gives exactly what `LevelMachine.close` gives bar by bar, for every kind and side."""

from __future__ import annotations

import datetime as dt
import json
import math
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from macrowatch.config.types import BreakoutParams, Level, LevelKind, Side
from macrowatch.engine.batch import run_level
from macrowatch.engine.breakout import LevelMachine

START = dt.date(2020, 1, 1)

KINDS = [
    (LevelKind.PRICE, Side.RESISTANCE, {"price": 100.0}),
    (LevelKind.PRICE, Side.SUPPORT, {"price": 100.0}),
    (LevelKind.ALL_TIME_HIGH, Side.RESISTANCE, {}),
    (LevelKind.ALL_TIME_LOW, Side.SUPPORT, {}),
    (LevelKind.HIGH_OF, Side.RESISTANCE, {"bars": 5}),
    (LevelKind.LOW_OF, Side.SUPPORT, {"bars": 3}),
    (LevelKind.RANGE_HIGH, Side.RESISTANCE, {"since": START + dt.timedelta(days=4)}),
    (LevelKind.RANGE_LOW, Side.SUPPORT, {"since": START + dt.timedelta(days=2)}),
]


def level(kind_index: int, approach: float, buffer: float, window: int) -> Level:
    kind, side, extra = KINDS[kind_index]
    return Level("l", "i", kind, side, BreakoutParams(approach, buffer, window), **extra)


def scalar(m: LevelMachine, days: list[dt.date], closes: list[float]):
    out = []
    for d, c in zip(days, closes, strict=True):
        entered = m.close(d, c)
        out.append((m.state, entered, m.price))
    return out


def same_price(a, b) -> bool:
    return (a is None and (b is None or math.isnan(b))) or (a is not None and b is not None and a == b)


@settings(max_examples=300, deadline=None)
@given(kind=st.integers(0, len(KINDS) - 1), approach=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
       buffer=st.sampled_from([0.0, 0.2, 1.0]), window=st.integers(1, 4),
       closes=st.lists(st.integers(90, 110).map(float), min_size=1, max_size=60),
       split=st.integers(0, 60))
def test_batch_equals_bar_by_bar(kind, approach, buffer, window, closes, split):
    lvl = level(kind, approach, buffer, window)
    days = [START + dt.timedelta(days=i) for i in range(len(closes))]
    expected = scalar(LevelMachine(lvl), days, closes)
    # The batch runs in two pieces, the second from the first's saved state (as a restart would).
    split = min(split, len(closes))
    m = LevelMachine(lvl)
    got = []
    for part in (slice(0, split), slice(split, None)):
        track = run_level(m, np.array(days[part], dtype="datetime64[D]"), np.array(closes[part]))
        got += [(track.names[s], track.names[s] if ch else None, p)
                for s, ch, p in zip(track.state, track.changed, track.price, strict=True)]
        m = LevelMachine.from_data(lvl, json.loads(json.dumps(m.to_data())))
    assert [(s, e) for s, e, _ in got] == [(s, e) for s, e, _ in expected]
    assert all(same_price(e, g) for (_, _, e), (_, _, g) in zip(expected, got, strict=True))
    reference = LevelMachine(lvl)
    scalar(reference, days, closes)
    assert m.to_data() == reference.to_data()


@settings(max_examples=200, deadline=None)
@given(prior=st.lists(st.integers(1, 30).map(float), max_size=12),
       new=st.lists(st.integers(1, 30).map(float), min_size=1, max_size=40),
       bars=st.integers(2, 8), pct=st.sampled_from([1.0, 5.0, 20.0, 50.0]))
def test_narrow_range_from_windows_equals_the_closes_themselves(prior, new, bars, pct):
    """The precomputed test of a replay gives, at each bar, what the condition computes from the closes."""
    from types import SimpleNamespace

    from macrowatch.engine.timeline import Timeline

    fake = SimpleNamespace(prior={"i": prior}, cols={"i": SimpleNamespace(close=np.array(new))}, _narrow={})
    got = Timeline.narrow_ok(fake, "i", bars, pct)
    history = prior + new
    for k in range(len(new)):
        window = history[:len(prior) + k + 1][-bars:]
        expected = len(window) == bars and 100.0 * (max(window) - min(window)) / min(window) <= pct
        assert bool(got[k]) == expected, (k, window)


@settings(max_examples=300, deadline=None)
@given(earlier=st.lists(st.integers(1, 30).map(float), max_size=12),
       prior=st.lists(st.integers(1, 30).map(float), max_size=12),
       new=st.lists(st.integers(1, 30).map(float), min_size=1, max_size=40),
       bars=st.sampled_from([None, 1, 2, 3, 8]), low=st.booleans())
def test_new_high_and_low_from_windows_equal_the_closes_themselves(earlier, prior, new, bars, low):
    """The precomputed test of a replay, and the record of all-time highs and lows the engine keeps, give at each
    bar what the definition gives from the closes: `earlier` closes are known only by their extremes (as after a
    restart), `prior` ones are the engine's kept closes, `new` ones this feed's."""
    from macrowatch.engine.timeline import Extremes, Timeline

    before_kept = earlier + prior[:-1]  # what the engine's record covers: every close before its latest kept one
    t = Timeline.__new__(Timeline)
    t.prior, t.cols, t._new, t._records = {"i": prior}, {"i": SimpleNamespace(close=np.array(new))}, {}, {}
    t.kept_extremes = {"i": (max(before_kept), min(before_kept))} if before_kept else {}
    t.kept, t.pos = {"i": None}, {"i": np.arange(len(new))}
    got = t.new_extreme_ok("i", bars, low)
    history = earlier + prior + new
    for k in range(len(new)):
        at = len(earlier) + len(prior) + k
        window = history[:at] if bars is None else history[max(0, at - bars):at]
        if bars is not None and len(prior) + k < bars:  # the engine keeps only `prior`: too few it knows of
            window = []
        expected = bool(window) and (history[at] < min(window) if low else history[at] > max(window))
        assert bool(got[k]) == expected, (k, window)
        seen = history[:at]
        assert dict(Extremes(t, k)) == ({"i": (max(seen), min(seen))} if seen else {})
    seen = history[:-1]
    assert t.extremes_after("i") == ({"i": (max(seen), min(seen))} if seen else {})


@settings(max_examples=60, deadline=None)
@given(kind=st.integers(0, len(KINDS) - 1), window=st.integers(1, 4),
       runs=st.lists(st.tuples(st.sampled_from([97.0, 98.5, 99.5, 100.0, 100.5, 101.5, 103.0]),
                               st.integers(1, 300)), min_size=2, max_size=12))
def test_batch_equals_bar_by_bar_over_long_stretches(kind, window, runs):
    """Long stretches in one state: the growing-chunk search must find every exit at any distance."""
    closes = [value for value, repeat in runs for _ in range(repeat)]
    lvl = level(kind, 1.0, 0.0, window)
    days = [START + dt.timedelta(days=i) for i in range(len(closes))]
    expected = scalar(LevelMachine(lvl), days, closes)
    m = LevelMachine(lvl)
    track = run_level(m, np.array(days, dtype="datetime64[D]"), np.array(closes))
    got = [(track.names[s], track.names[s] if ch else None) for s, ch in zip(track.state, track.changed, strict=True)]
    assert got == [(s, e) for s, e, _ in expected]
    assert all(same_price(e, g) for (_, _, e), g in zip(expected, track.price, strict=True))
    reference = LevelMachine(lvl)
    scalar(reference, days, closes)
    assert m.to_data() == reference.to_data()


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80), size=st.integers(1, 80))
def test_window_max_equals_the_max_of_each_window(values, size):
    from macrowatch.engine.batch import _window_max

    x = np.array(values)
    size = min(size, len(x))
    assert np.array_equal(_window_max(x, size), np.lib.stride_tricks.sliding_window_view(x, size).max(axis=1))
