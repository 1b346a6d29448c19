"""The breakout state machine of one level, evaluated on session closes (DESIGN.md, "The breakout state machine").

Resistance and support are one machine: `sign` is +1 for resistance (breaks up) and -1 for support (breaks
down), and "beyond x" means past x in the breakout direction. States (`LevelState` in config/types.py), for
resistance (support in brackets):

- below [above]: the close is short of the approach band.
- approaching: the close is inside the band, at most `buffer_pct` past the level.
- breakout [breakdown]: a close past the level by more than `buffer_pct`; the level is frozen at its value.
- confirmed: every close of the watch window (bars 1..fail_within_bars after the breakout) stayed past the level.
- failed: a false breakout: a close back at or behind the level inside the watch window.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass
from typing import Any

from macrowatch.config.types import STATES, BreakoutParams, Level, LevelKind, LevelState, Side

APPROACHING, CONFIRMED, FAILED = LevelState.APPROACHING, LevelState.CONFIRMED, LevelState.FAILED
# The states that hold the level frozen at its value at the breakout.
FROZEN_STATES = frozenset({LevelState.BREAKOUT, LevelState.BREAKDOWN, CONFIRMED, FAILED})


@dataclass(frozen=True)
class Step:
    """The machine after one close: its state, the frozen level and the bar of the watch window."""

    state: LevelState
    frozen: float | None = None   # L at the breakout, kept while breakout/confirmed/failed
    window_bar: int = 0           # bars since the breakout bar (0 at the breakout)


def moved_on(state: LevelState, level: float | None, value: float | None) -> float | None:
    """The level's current value when a breakout holds it frozen at another one (a dynamic level that moved on
    since), else None: what a message says next to the frozen level, so that it does not read as wrong."""
    if state in FROZEN_STATES and level is not None and value is not None and value != level:
        return value
    return None


def _beyond(sign: int, x: float, y: float) -> bool:
    return x > y if sign > 0 else x < y


def transition(side: Side, prev: Step, close: float, current: float, params: BreakoutParams,
               dynamic: bool) -> Step:
    """The state after `close`; `current` is the level's value from the bars before this one."""
    sign = 1 if side is Side.RESISTANCE else -1
    quiet, _, breaking, _, _ = STATES[side]
    level = prev.frozen if prev.state in FROZEN_STATES and prev.frozen is not None else current
    band = level * (1 - sign * params.approach_pct / 100)
    up = level * (1 + sign * params.buffer_pct / 100)

    def settle() -> Step:  # below/approaching by the band, following the market again
        return Step(quiet) if _beyond(sign, band, close) else Step(APPROACHING)

    state = prev.state
    if state == breaking:
        bar = prev.window_bar + 1
        if not _beyond(sign, close, level):
            return Step(FAILED, level, bar)
        if bar >= params.fail_within_bars:
            return Step(CONFIRMED, level, bar)
        return Step(breaking, level, bar)
    if state == FAILED:
        if _beyond(sign, band, close):
            return Step(quiet)
        if _beyond(sign, close, up):
            return Step(breaking, level, 0)
        return Step(FAILED, level, prev.window_bar + 1)
    if state == CONFIRMED:
        pullback = current * (1 - sign * params.approach_pct / 100)
        if dynamic and _beyond(sign, pullback, close):
            return Step(quiet)  # a real pullback from the dynamic level: the next new extreme is a new breakout
        if not _beyond(sign, close, level):
            return settle()
        return Step(CONFIRMED, level, prev.window_bar + 1)
    # below / above / approaching (and the start)
    if _beyond(sign, close, up):
        return Step(breaking, level, 0)
    return settle()


class LevelValue:
    """A level's value from the bars before the current one: a fixed price or a running extreme."""

    __slots__ = ("kind", "sign", "bars", "since", "extreme", "window", "_mono", "_seen")

    def __init__(self, level: Level):
        self.kind = level.kind
        self.sign = 1 if level.side is Side.RESISTANCE else -1
        self.bars = level.bars
        self.since = level.since
        self.extreme: float | None = level.price if level.kind is LevelKind.PRICE else None
        self.window: deque[float] = deque(maxlen=level.bars or 1)
        self._mono: deque[tuple[int, float]] | None = deque()  # monotonic queue: the window's extreme in O(1)
        self._seen = 0

    @property
    def value(self) -> float | None:
        if self.kind in (LevelKind.HIGH_OF, LevelKind.LOW_OF):
            if len(self.window) < (self.bars or 1):
                return None
            return self._queue()[0][1]
        return self.extreme

    def _queue(self) -> deque[tuple[int, float]]:
        """The monotonic queue, rebuilt from the window after a `load` (built only when it is needed)."""
        if self._mono is None:
            closes, self.window, self._mono, self._seen = list(self.window), deque(maxlen=self.bars or 1), deque(), 0
            for close in closes:
                self._push(close)
        return self._mono

    def add(self, session: dt.date, close: float) -> None:
        """Take a close into the running value (after the bar was evaluated against the old value)."""
        k = self.kind
        if k is LevelKind.PRICE:
            return
        if k in (LevelKind.HIGH_OF, LevelKind.LOW_OF):
            self._push(close)
            return
        if self.since is not None and session < self.since:
            return
        if self.extreme is None or _beyond(self.sign, close, self.extreme):
            self.extreme = close

    def _push(self, close: float) -> None:
        self._queue()
        self._seen += 1
        self.window.append(close)
        while self._mono and not _beyond(self.sign, self._mono[-1][1], close):
            self._mono.pop()
        self._mono.append((self._seen, close))
        if self._mono[0][0] <= self._seen - len(self.window):
            self._mono.popleft()

    def to_data(self) -> dict[str, Any]:
        return {"extreme": self.extreme, "window": list(self.window)}

    def load(self, data: dict[str, Any]) -> None:
        if self.kind is not LevelKind.PRICE:
            self.extreme = data.get("extreme")
        window = data.get("window", [])
        if window:  # the queue is rebuilt from the window when first needed: a replay may never need it
            self.window = deque(window, maxlen=self.bars or 1)
            self._mono = None


class LevelMachine:
    """A level's state machine with its running value; mutable, saved and restored as plain data."""

    __slots__ = ("level", "value", "step", "last_close", "entered")

    def __init__(self, level: Level):
        self.level = level
        self.value = LevelValue(level)
        self.step = Step(level.states[0])  # below [above]
        self.last_close: float | None = None
        self.entered: LevelState | None = None  # the state entered at the latest close, None if unchanged

    @property
    def state(self) -> LevelState:
        return self.step.state

    @property
    def price(self) -> float | None:
        """The level as the machine sees it now: frozen during a breakout, else its current value."""
        if self.step.state in FROZEN_STATES and self.step.frozen is not None:
            return self.step.frozen
        return self.value.value

    @property
    def now(self) -> float | None:
        """The level's current value when it differs from the frozen one (see `moved_on`), else None."""
        return moved_on(self.step.state, self.price, self.value.value)

    def close(self, session: dt.date, close: float) -> LevelState | None:
        """Evaluate a session close; return the state entered, or None when the state did not change."""
        current = self.value.value
        before = self.step.state
        if current is not None:
            self.step = transition(self.level.side, self.step, close, current, self.level.breakout,
                                   self.level.kind is not LevelKind.PRICE)
        self.value.add(session, close)
        self.last_close = close
        self.entered = self.step.state if self.step.state != before else None
        return self.entered

    def provisional(self, price: float) -> LevelState:
        """The state an intraday price would give if it were the close; changes nothing."""
        current = self.value.value
        if current is None:
            return self.step.state
        return transition(self.level.side, self.step, price, current, self.level.breakout,
                          self.level.kind is not LevelKind.PRICE).state

    def to_data(self) -> dict[str, Any]:
        return {"state": self.step.state.value, "frozen": self.step.frozen, "window_bar": self.step.window_bar,
                "last_close": self.last_close, "value": self.value.to_data()}

    @classmethod
    def from_data(cls, level: Level, data: dict[str, Any]) -> LevelMachine:
        m = cls(level)
        if data.get("state") in level.states:  # saved as its name: a plain string
            m.step = Step(LevelState(data["state"]), data.get("frozen"), int(data.get("window_bar", 0)))
        m.last_close = data.get("last_close")
        m.value.load(data.get("value", {}))
        return m
