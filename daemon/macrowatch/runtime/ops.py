"""Ops alerts about the daemon's inputs: a source failing, an input still without its history.

Each failure is logged when it happens; an ops alert (`Alerts.ops`, to the `ops` channel) is raised once per
episode: for a source failing longer than SOURCE_DOWN (checked at each heartbeat: liveness.py), for an input
whose history cannot be fetched (at once). The sources' health is also what `status` and /healthz report.
The other ops alerts are raised where their episode is seen: a late close (polls.py), a late release
(bursts.py), a channel failing (alerts.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from macrowatch.runtime.alerts import Alerts
from macrowatch.runtime.core import Core

log = logging.getLogger("macrowatch.app")

SOURCE_DOWN = dt.timedelta(minutes=15)     # an ops alert when a source has failed this long


@dataclass
class SourceHealth:
    """A source's last success and the failure under way, for ops alerts, status and metrics."""

    last_ok: dt.datetime | None = None
    failing_since: dt.datetime | None = None
    error: str | None = None
    alerted: bool = False

    def ok(self, now: dt.datetime) -> None:
        self.last_ok, self.failing_since, self.error, self.alerted = now, None, None, False

    def fail(self, now: dt.datetime, error: str) -> None:
        self.failing_since = self.failing_since or now
        self.error = error

    def to_data(self) -> dict:
        return {"last_ok": _iso(self.last_ok), "failing_since": _iso(self.failing_since), "error": self.error}


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t else None


class Outages:
    """The sources' health and the inputs without their history, and the ops alerts they raise."""

    def __init__(self, core: Core, alerts: Alerts):
        self.core = core
        self.alerts = alerts
        self.health: dict[str, SourceHealth] = {"prices": SourceHealth(), "fred": SourceHealth()}

    def source_ok(self, name: str, now: dt.datetime) -> None:
        self.health.setdefault(name, SourceHealth()).ok(now)  # bls: tracked once the config uses it

    def source_failed(self, name: str, now: dt.datetime, reason: str) -> None:
        self.health.setdefault(name, SourceHealth()).fail(now, reason)
        log.warning("%s source: %s", name, reason)

    def sources_down(self, now: dt.datetime) -> None:
        """One ops alert per source failing longer than SOURCE_DOWN (the heartbeat asks)."""
        for name, h in self.health.items():
            if h.failing_since and now - h.failing_since > SOURCE_DOWN and not h.alerted:
                self.alerts.ops("source-down", f"{name} failing since {h.failing_since:%Y-%m-%d %H:%M %Z}: "
                                               f"{h.error}", f"{name}:{h.failing_since.isoformat()}", now)
                h.alerted = True  # once raised: an ops alert the store refused (a full disk) comes again

    def failing(self) -> list[str]:
        """The sources failing now."""
        return [n for n, h in self.health.items() if h.failing_since]

    def history_failed(self, keys: list[str], what: str, now: dt.datetime, reason: str) -> None:
        """Inputs whose history could not be fetched (one instrument, or the macros of one series): logged
        each time, one ops alert while it lasts."""
        items = [item for key in keys if (item := self.core.inputs.failed(key, now, reason)) is not None]
        if not items:
            return
        log.warning("no history for %s yet (%s): the rules that read it wait", what, reason)
        if not all(item.alerted for item in items):
            since = min(item.failing_since for item in items)
            self.alerts.ops("history-missing", f"no history for {what}: {reason}; the rules that read it stay "
                                               "silent until it is fetched (tried again every minute)",
                            f"{what}:{since.isoformat()}", now)
            for item in items:
                item.alerted = True
