"""The only reader of the wall clock. Everything else is handed `now`; tests hand it a FakeClock."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable


class Clock:
    """Real time, tz-aware (UTC)."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def wait(self, seconds: float, event: threading.Event) -> bool:
        """Sleep `seconds`, or less when `event` is set meanwhile (a stop); True when it is set."""
        return event.wait(max(0.0, seconds))

    def to_wall(self, when: dt.datetime) -> dt.datetime:
        """The wall-clock moment at which this clock reads `when` (a scheduler waits on the wall clock)."""
        return when


class FakeClock(Clock):
    """Time that moves only when told to (sleep advances it at once): for tests and accelerated demos."""

    def __init__(self, start: dt.datetime):
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a tz-aware start")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._now.timestamp()

    def sleep(self, seconds: float) -> None:
        self.advance(dt.timedelta(seconds=max(0.0, seconds)))

    def wait(self, seconds: float, event: threading.Event) -> bool:
        """`sleep` (fake time passes at once, through a subclass's `sleep` too), unless `event` is already set."""
        if not event.is_set():
            self.sleep(seconds)
        return event.is_set()

    def advance(self, delta: dt.timedelta) -> None:
        with self._lock:
            self._now += delta

    def set(self, when: dt.datetime) -> None:
        with self._lock:
            self._now = when


class OffsetClock(Clock):
    """Real time shifted to start at a given moment: `MACROWATCH_NOW` for tests and demos of past days."""

    def __init__(self, start: dt.datetime):
        self._start = start
        self._t0 = time.monotonic()
        self._wall0 = dt.datetime.now(dt.UTC)

    def now(self) -> dt.datetime:
        return self._start + dt.timedelta(seconds=time.monotonic() - self._t0)

    def to_wall(self, when: dt.datetime) -> dt.datetime:
        return self._wall0 + (when - self._start)


def system_clock() -> Clock:
    """The process clock: real time, or real time from `MACROWATCH_NOW` (ISO-8601 with offset) when set."""
    start = os.environ.get("MACROWATCH_NOW")
    if not start:
        return Clock()
    when = dt.datetime.fromisoformat(start)
    if when.tzinfo is None:
        raise ValueError(f"MACROWATCH_NOW={start!r} needs a UTC offset, e.g. 2019-08-02T08:29:00-04:00")
    return OffsetClock(when)


class AcceleratedClock(Clock):
    """Scenario time running `speed` times faster than the wall clock, from `start` (the demo).

    `to_wall` maps a scenario moment to the wall-clock moment it is reached, for schedulers that wait on
    real time; `sleep` sleeps the scaled-down real time.
    """

    def __init__(self, start: dt.datetime, speed: float):
        if start.tzinfo is None or speed <= 0:
            raise ValueError("AcceleratedClock needs a tz-aware start and a positive speed")
        self.start, self.speed = start, speed
        self._t0 = time.monotonic()
        self._wall0 = dt.datetime.now(dt.UTC)

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    def to_wall(self, when: dt.datetime) -> dt.datetime:
        return self._wall0 + (when - self.start) / self.speed

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) / self.speed)

    def wait(self, seconds: float, event: threading.Event) -> bool:
        return event.wait(max(0.0, seconds) / self.speed)


def stop_aware_sleep(event: threading.Event) -> Callable[[float], bool]:
    """A real-time `sleep(seconds)` for the sources' retries and rate limit that ends when `event` is set.

    It returns True when cut short that way (and at once from then on): the sources then stop retrying or
    waiting for their rate limit, so that a stop is never stuck behind their backoff. `time.sleep` returns
    None, so a source given it waits out every delay as before.
    """
    def sleep(seconds: float) -> bool:
        return event.wait(max(0.0, seconds))
    return sleep
