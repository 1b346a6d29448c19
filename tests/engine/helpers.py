"""One event at a time into an Engine, through its one entry point `feed` (the daemon and replay feed batches)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping

from macrowatch.engine.evaluator import Engine
from macrowatch.engine.timeline import ns
from macrowatch.model import Alert, Bar, Bars, Print


def on_close(engine: Engine, at: dt.datetime, bars: Mapping[str, Bar]) -> list[Alert]:
    """A session close at `at`: each instrument's bar moves its levels; then the close rules are evaluated."""
    return engine.feed({i: Bars.from_list([dataclasses.replace(b, at=at)]) for i, b in bars.items()},
                       stamps={ns(at): at})


def on_release(engine: Engine, prints: Iterable[Print]) -> list[Alert]:
    """New prints (each at its own `at`); then the release rules are evaluated."""
    return engine.feed({}, prints)
