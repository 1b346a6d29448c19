"""A level's state machine over many closes at once: the same transitions as `breakout.transition`, fast.

Replaying 500 instruments x 20 years one close at a time costs microseconds per close in Python; here the
long quiet stretches (below/approaching, and the time spent `failed` or `confirmed`) are found with numpy,
and only the bars where the state can change go through the scalar code's rules one by one. Resistance and
support share one path: prices are multiplied by the side's sign (+1 or -1), which is exact in floating
point, so "beyond" is always ">" here. tests/engine/test_batch.py checks, on random series of every level
kind and side, that this gives the very states, levels and saved state of `LevelMachine.close` bar by bar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from macrowatch.config.types import STATES, LevelKind, LevelState, Side
from macrowatch.engine.breakout import FROZEN_STATES, LevelMachine, Step

# State codes: the index of the state in its side's `STATES` (the codes are the arrays' int8 values).
QUIET, APPROACHING, BREAKING, CONFIRMED, FAILED = range(5)


@dataclass(frozen=True)
class Track:
    """A level over a run of bars: per bar its state code, whether it changed there, and the level."""

    names: tuple[LevelState, ...]  # the state of each code
    state: np.ndarray              # int8 codes, after each bar
    changed: np.ndarray            # bool: the state differs from the bar before (the level "entered" it)
    price: np.ndarray              # float: the level after each bar (frozen during a breakout), NaN if none yet
    value: np.ndarray              # float: the level's value from the bars before each bar (its close's judge)


def _values(m: LevelMachine, sessions: np.ndarray, closes: np.ndarray, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """The level's value before and after each bar (NaN while undefined), in real prices."""
    lv, n = m.value, len(closes)
    if lv.kind is LevelKind.PRICE:
        v = np.full(n, float(m.level.price))
        return v, v
    if lv.kind in (LevelKind.HIGH_OF, LevelKind.LOW_OF):
        size = int(lv.bars)
        ext = np.concatenate([np.asarray(lv.window, dtype=float), closes]) * sign
        prior = len(lv.window)
        best = np.full(len(ext) + 1, np.nan)  # best[k]: the extreme of ext[k-size:k]
        if len(ext) >= size:
            best[size:] = _window_max(ext, size)
        idx = prior + np.arange(n)
        return best[idx] * sign, best[idx + 1] * sign
    eligible = np.ones(n, dtype=bool) if lv.since is None else sessions >= np.datetime64(lv.since, "D")
    start = -np.inf if lv.extreme is None else lv.extreme * sign
    run = np.maximum.accumulate(np.concatenate([[start], np.where(eligible, closes * sign, -np.inf)]))
    run[np.isneginf(run)] = np.nan
    return run[:-1] * sign, run[1:] * sign


def _window_max(x: np.ndarray, size: int) -> np.ndarray:
    """The max of every window of `size` consecutive values (van Herk / Gil-Werman: O(n) for any size).

    In blocks of `size`, a window is the tail of one block and the head of the next: the max of a running
    max from the right (of the first) and from the left (of the second). Max is exact: the same values as
    taking each window's max directly.
    """
    n = len(x)
    blocks = np.full(-(-n // size) * size, -np.inf)
    blocks[:n] = x
    blocks = blocks.reshape(-1, size)
    ahead = np.maximum.accumulate(blocks, axis=1).ravel()
    behind = np.maximum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    return np.maximum(behind[:n - size + 1], ahead[size - 1:n])


def _next_true(mask: np.ndarray) -> np.ndarray:
    """next[i]: the first j >= i where mask[j], or len(mask)."""
    n = len(mask)
    idx = np.where(mask, np.arange(n), n)
    return np.minimum.accumulate(idx[::-1])[::-1] if n else idx


def run_level(m: LevelMachine, sessions: np.ndarray, closes: np.ndarray) -> Track:
    """Advance the machine over the closes (sessions as datetime64[D]); returns the per-bar track.

    The walk records only where a stretch of one state starts (with its frozen level); the per-bar arrays are
    painted from those starts at the end. Quiet stretches (below/approaching) take their state from the
    approach band bar by bar, found with numpy; the short watch windows and exits are read as Python floats.
    """
    n = len(closes)
    names = STATES[m.level.side]
    if n == 0:
        return Track(names, np.empty(0, np.int8), np.empty(0, bool), np.empty(0), np.empty(0))
    sign = 1 if m.level.side is Side.RESISTANCE else -1
    p = m.level.breakout
    k_band, k_up = 1 - sign * p.approach_pct / 100, 1 + sign * p.buffer_pct / 100
    before, after = _values(m, sessions, closes, sign)
    c = closes * sign
    with np.errstate(invalid="ignore"):
        band_q, up_q = before * k_band * sign, before * k_up * sign   # NaN while the level is undefined
        breaks = c > up_q
        under = c < band_q
    next_break = _next_true(breaks)
    defined = int(np.argmax(~np.isnan(band_q))) if (~np.isnan(band_q)).any() else n  # the value's first bar
    dynamic = m.level.kind is not LevelKind.PRICE
    first_code = code = names.index(m.step.state)
    first_frozen = frozen = m.step.frozen
    w = m.step.window_bar
    cl = c.tolist()
    bq = band_q.tolist() if dynamic else None
    fail_within = p.fail_within_bars
    # Stretches: (first bar, state code or SETTLE for "by the band", frozen level or NaN).
    starts: list[int] = []
    codes: list[int] = []
    levels: list[float] = []
    nan = float("nan")
    i = 0
    while i < n:
        if code in (QUIET, APPROACHING):
            j = int(next_break[i])
            if i < defined:  # no value yet: no transition
                starts.append(i), codes.append(code), levels.append(nan)
                if j > defined:
                    starts.append(defined), codes.append(SETTLE), levels.append(nan)
            elif j > i:
                starts.append(i), codes.append(SETTLE), levels.append(nan)
            if j >= n:
                break
            code, frozen, w = BREAKING, float(before[j]), 0
            starts.append(j), codes.append(code), levels.append(frozen)
            i = j + 1
            continue
        fq = frozen * sign
        if code == BREAKING:  # the watch window: at most fail_within bars
            while i < n:
                w += 1
                if not cl[i] > fq:
                    code = FAILED
                elif w >= fail_within:
                    code = CONFIRMED
                else:
                    i += 1
                    continue
                starts.append(i), codes.append(code), levels.append(frozen)
                i += 1
                break
            continue
        band_f, up_f = frozen * k_band * sign, frozen * k_up * sign
        j = _exit(cl, bq, c, band_q, i, n, code == FAILED, fq, band_f, up_f)
        w += j - i
        if j == n:
            break
        x = cl[j]
        if code == FAILED:
            code, frozen, w = (QUIET, None, 0) if x < band_f else (BREAKING, frozen, 0)
        elif dynamic and x < bq[j]:
            code, frozen, w = QUIET, None, 0
        else:
            code, frozen, w = (QUIET if x < band_f else APPROACHING), None, 0
        starts.append(j), codes.append(code), levels.append(nan if frozen is None else frozen)
        i = j + 1
    first = (first_code, nan if first_code < BREAKING or first_frozen is None else first_frozen)
    states, froz = _paint(n, starts, codes, levels, first, np.where(under, QUIET, APPROACHING))
    prev = np.concatenate([[first_code], states[:-1]])
    track = Track(names, states, states != prev, np.where(np.isnan(froz), after, froz), before)
    _finish(m, closes, track, frozen, w, after[-1])
    return track


SETTLE = -1  # a quiet stretch: below or approaching bar by bar, by the approach band


def _paint(n: int, starts: list[int], codes: list[int], levels: list[float], first: tuple[int, float],
           settle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-bar states and frozen levels from the stretches' starts (before the first: the state before)."""
    if not starts or starts[0] != 0:
        starts, codes, levels = [0, *starts], [first[0], *codes], [first[1], *levels]
    at = np.asarray(starts)
    lengths = np.diff(np.append(at, n))
    states = np.repeat(np.asarray(codes, dtype=np.int8), lengths)
    states = np.where(states == SETTLE, settle, states).astype(np.int8)
    return states, np.repeat(np.asarray(levels, dtype=float), lengths)


def _exit(cl: list[float], bq: list[float] | None, c: np.ndarray, band_q: np.ndarray, i: int, n: int,
          failed: bool, fq: float, band_f: float, up_f: float) -> int:
    """The first bar from i that ends a failed or confirmed stretch, or n.

    The next bars are read one by one as Python floats (most stretches end within a few bars); a longer
    stretch is searched with numpy in growing chunks.
    """
    stop = min(n, i + 24)
    if failed:
        for j in range(i, stop):
            x = cl[j]
            if x < band_f or x > up_f:
                return j
        return _first(lambda a, b: (c[a:b] < band_f) | (c[a:b] > up_f), stop, n)
    if bq is None:
        for j in range(i, stop):
            if cl[j] <= fq:
                return j
        return _first(lambda a, b: c[a:b] <= fq, stop, n)
    for j in range(i, stop):
        x = cl[j]
        if x <= fq or x < bq[j]:
            return j
    return _first(lambda a, b: (c[a:b] <= fq) | (c[a:b] < band_q[a:b]), stop, n)


def _first(exits, i: int, n: int) -> int:
    """The first bar from i where `exits(a, b)` (a mask of bars a..b-1) is true, or n.

    Looked for in growing chunks: a mask of the whole rest of a 20-year series at every episode would cost
    more than the episodes themselves.
    """
    a, size = i, 64
    while a < n:
        b = min(n, a + size)
        mask = exits(a, b)
        if mask.any():
            return a + int(np.argmax(mask))
        a, size = b, size * 8
    return n


def _finish(m: LevelMachine, closes: np.ndarray, track: Track, frozen: float | None, w: int,
            value_after: float) -> None:
    """Leave the machine as `close()` bar by bar would have: state, running value, last close, entered."""
    name = track.names[int(track.state[-1])]
    m.step = Step(name, frozen if name in FROZEN_STATES else None, w if name in FROZEN_STATES else 0)
    lv = m.value
    if lv.kind in (LevelKind.HIGH_OF, LevelKind.LOW_OF):
        keep = (list(lv.window) + [float(x) for x in closes[-int(lv.bars):]])[-int(lv.bars):]
        lv.load({"window": keep})
    elif lv.kind is not LevelKind.PRICE:
        lv.extreme = None if np.isnan(value_after) else float(value_after)
    m.last_close = float(closes[-1])
    m.entered = name if bool(track.changed[-1]) else None
