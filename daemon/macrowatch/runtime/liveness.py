"""The daemon's record in the store (state "daemon"), for `macrowatch status`: a start, its heartbeat, a clean stop.

The record says when the daemon started, its last heartbeat and the seconds between two (`every`: `status` tells
a silent daemon from a running one), its pid, the sources' health and the inputs still without their history.
The heartbeat also raises the source-down ops alerts (ops.py) and sets the heartbeat and data age gauges.
"""

from __future__ import annotations

import datetime as dt
import os
import time

from macrowatch.runtime.core import Core
from macrowatch.runtime.ops import Outages


class Liveness:
    """Writes the daemon's record: at a start under way, at each heartbeat, at a clean stop."""

    def __init__(self, core: Core, outages: Outages):
        self.core = core
        self.outages = outages
        self.started: dt.datetime | None = None  # when the catch-up began (Daemon.start)

    def heartbeat(self, now: dt.datetime, every: float | None = None) -> dict:
        """Record liveness and the sources' health in the store (for `macrowatch status`); `every`, the seconds
        between heartbeats, lets `status` tell a silent daemon from a running one."""
        self.outages.sources_down(now)
        # The gauges first: the record below is what makes /healthz say ok, and a scrape that follows an ok
        # must find the data ages of this heartbeat, not none.
        self._data_ages(now)
        self.core.gauge("last_heartbeat_timestamp_seconds", now.timestamp())
        data = self._record(now, every)
        self.core.store.save_state("daemon", data)
        return data

    def record_start(self, now: dt.datetime, every: float | None = None) -> None:
        """Record a start under way, before its catch-up (no heartbeat until that is done): a stop recorded
        earlier is over."""
        self.core.progress = time.monotonic()
        self.core.store.save_state("daemon", {**self._record(now, every), "catching_up": True})

    def record_stop(self, now: dt.datetime, every: float | None = None) -> None:
        """Record a clean stop, so that `status` says "stopped at ..." instead of reading a recent heartbeat as
        a running daemon. A fenced store refuses it once this instance no longer leads (the leader's stands)."""
        self.core.store.save_state("daemon", {**self._record(now, every), "stopped": now.isoformat()})

    def _record(self, now: dt.datetime, every: float | None) -> dict:
        return {"started": (self.started or now).isoformat(), "heartbeat": now.isoformat(), "pid": os.getpid(),
                "every": every, "sources": {n: h.to_data() for n, h in self.outages.health.items()},
                "history_missing": self.core.inputs.missing_text()}

    def _data_ages(self, now: dt.datetime) -> None:
        """The age of each instrument's last bar (from its close) and each series' last release."""
        core = self.core
        if core.metrics is None:
            return
        for kind, ident, _rows, _first, last in core.store.summary():
            if kind == "instrument" and last:
                bars = core.store.bars(ident, dt.date.fromisoformat(last[:10]))
                if bars:
                    core.gauge("data_age_seconds", (now - bars[-1].at).total_seconds(), instrument=ident)
        for mid, (p, _bar) in core.engine.prints.items():
            if mid in core.config.macro:
                core.gauge("data_age_seconds", (now - p.at).total_seconds(), series=core.config.macro[mid].series)
