"""The dashboard: the thesis at a glance in a browser, served beside /healthz and /metrics (health.py).

    dashboard = Dashboard(lambda: config, lambda: open_reader(config.store), clock, mask=scrub.redact)
    HealthServer(host, port, metrics, healthy, pages=dashboard)

`GET /` is one server-rendered page (dashpage.py): the levels, the next releases, the last alerts with their
delivery per channel, the sources' health, the outbox and the leader. `GET /levels/ID.png` is a level's chart,
kept until the instrument's next close. Each request opens the store to read only (`reader`) and closes it: a
standby serves the page as well as the leader, and nothing behind it changes state. The work per request is
bounded by the config (its levels and releases) and by ALERTS_SHOWN; charts are drawn one at a time.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from macrowatch.clock import Clock
from macrowatch.config.types import Config, Level
from macrowatch.model import Bar
from macrowatch.notify.chart import draw
from macrowatch.runtime import report
from macrowatch.runtime.dashpage import View, render
from macrowatch.runtime.health import Page
from macrowatch.store import Store, StoreError

log = logging.getLogger("macrowatch.dashboard")

ALERTS_SHOWN = 50
CHARTS_KEPT = 64      # charts kept in memory (about 40 KB each), the least recently asked for dropped first
CHART_BARS = 250      # about a year of sessions on a chart
HTML = "text/html; charset=utf-8"
# Should markup ever slip through unescaped, the browser still runs no script and loads nothing from elsewhere.
POLICY = (("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                                      "form-action 'none'; frame-ancestors 'none'"),)
_CHART_PATH = re.compile(r"/levels/(?P<id>[^/]+)\.png\Z")


@dataclass(frozen=True)
class _Chart:
    level: Level   # as configured when drawn: a reload that changes it draws it again
    title: str     # likewise: a reload that renames its instrument draws it again
    last: Bar      # the instrument's newest bar when drawn: a new close (or a re-fetched one) draws it again
    png: bytes


def gather(config: Config, store: Store, now: dt.datetime) -> View:
    """Everything the page shows, read from the store (the same reads as `macrowatch status`)."""
    return View(config, now, store.name, report.engine_levels(config, store), report.releases(config, store, now),
                store.recent_alerts(ALERTS_SHOWN), report.daemon(store, now), report.outbox(store),
                report.leader(store))


class Dashboard:
    """The dashboard's pages (health.Pages): `/` and `/levels/ID.png`.

    `config` gives the running config (it changes at a reload); `reader` opens the store to read only; `mask`
    hides the known secrets in any text shown (the log's SecretFilter.redact).
    """

    def __init__(self, config: Callable[[], Config], reader: Callable[[], Store], clock: Clock,
                 mask: Callable[[str], str]):
        self._config = config
        self._reader = reader
        self._clock = clock
        self._mask = mask
        self._charts: OrderedDict[str, _Chart] = OrderedDict()
        self._drawing = threading.Lock()

    def page(self, path: str) -> Page | None:
        """The page at `path`, None for a path that has none."""
        if path in ("/", "/index.html"):
            return self.html()
        found = _CHART_PATH.match(path)
        return self.chart(unquote(found["id"])) if found else None

    def html(self) -> Page:
        """The dashboard page; 503 with the reason when the store cannot be read."""
        config, now = self._config(), self._clock.now()
        try:
            with self._reader() as store:
                view = gather(config, store, now)
        except StoreError as exc:
            log.warning("dashboard: %s", exc)
            return Page(503, "text/plain; charset=utf-8", self._mask(f"cannot read the store: {exc}\n").encode())
        return Page(200, HTML, render(view, self._mask).encode("utf-8"), headers=POLICY)

    def chart(self, level_id: str) -> Page | None:
        """The level's chart as PNG: drawn at the first request after each close of its instrument."""
        config = self._config()
        level = config.levels.get(level_id)
        if level is None:
            return None
        inst = config.instruments[level.instrument]
        with self._drawing:  # one chart at a time, whatever the number of requests
            try:
                png = self._png(level, f"{inst.name or inst.id}: {level.id}")
            except StoreError as exc:
                log.warning("dashboard chart %s: %s", level_id, exc)
                return Page(503, "text/plain; charset=utf-8", b"cannot read the store\n")
        if png is None:
            return Page(404, "text/plain; charset=utf-8", b"no bars stored for this level's instrument yet\n")
        return Page(200, "image/png", png, cache="max-age=30")

    def _png(self, level: Level, title: str) -> bytes | None:
        with self._reader() as store:
            cached = self._charts.get(level.id)
            if cached is not None and (cached.level, cached.title) == (level, title):
                newest = store.bars(level.instrument, since=cached.last.session)
                if newest and newest[-1] == cached.last:
                    self._charts.move_to_end(level.id)
                    return cached.png
            bars = store.bars(level.instrument)
        if not bars:
            return None
        png = draw(bars, [level], name=title, show=CHART_BARS).png
        self._charts[level.id] = _Chart(level, title, bars[-1], png)
        self._charts.move_to_end(level.id)
        while len(self._charts) > CHARTS_KEPT:
            self._charts.popitem(last=False)
        return png
