"""A dense scenario for the reliability tests: an alert at every session close and at every release.

One instrument closes alternately above and just under a level of 100 (breakout, failed, breakout, ...),
and a series is released every session day at 08:30: each close and each release fires one alert, to two
channels. `TimedFred` publishes a day's value only once the daemon's time has passed its release, as FRED does.
`Receiver` is the webhook receiver with a hook on every request (the crash test kills the daemon from there).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import zoneinfo
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from daemonproc import STUB_SOURCES, Daemon, environment
from macrowatch.config.types import Config
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Alert, Bar, Vintage
from macrowatch.notify.render import Context, title_of, when_line
from macrowatch.runtime import history as replay
from macrowatch.runtime.history import History, macro_prints
from macrowatch.sources import calendar
from stubs.fred import KEY, FredStub
from stubs.webhook import Received, WebhookReceiver
from stubs.yahoo import YahooStub

NY = zoneinfo.ZoneInfo("America/New_York")
FIRST = dt.date(2019, 1, 2)
WARM = 30                                   # sessions of closes at 90 (below the level) before anything fires
SERIES = "GAUGE"
CHANNELS = ("trading", "desk")
RELEASE_TIME = dt.time(8, 30)

CONFIG = "store: {store}\n" + STUB_SOURCES + """\
levels:
  spx-100: {{instrument: spx, price: 100}}
releases:
  daily: {{dates: [{dates}], time: "08:30"}}
macro:
  gauge: {{series: {series}, release: daily, measure: level, beat_by: 1}}
channels:
  trading: ${{MW_TEST_TRADING}}
  desk: ${{MW_TEST_DESK}}
{extra}rules:
  - {{name: breakout, when: {{level: spx-100, entered: breakout}}, notify: [trading, desk],
     message: "{{spx.name}} {{spx.close:.2f}} broke {{spx-100.price:.0f}}"}}
  - {{name: failed, when: {{level: spx-100, entered: failed}}, notify: [trading, desk],
     message: "{{spx.name}} {{spx.close:.2f}} fell back under {{spx-100.price:.0f}}"}}
  - {{name: gauge, when: {{release: gauge, outcome: any}}, notify: [trading, desk],
     message: "gauge {{gauge.actual:.0f}}"}}
"""


def sessions(n: int) -> list[tuple[dt.date, dt.datetime]]:
    """The first n XNYS sessions from FIRST and their closes (UTC)."""
    closes = calendar.close_times("XNYS", FIRST, FIRST + dt.timedelta(days=2 * n + 30))
    return sorted(closes.items())[:n]


def close_of(i: int) -> float:
    """Session i's close: 90 while warming up, then 105.xx and 99.5 in turn (a breakout, then its failure)."""
    if i < WARM:
        return 90.0
    k = i - WARM
    return round(105.0 + 0.01 * (k % 400), 2) if k % 2 == 0 else 99.5


def release_at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, RELEASE_TIME, NY)


@dataclass
class Scenario:
    """n sessions of bars and one release per session day."""

    n: int

    def __post_init__(self) -> None:
        self.days = sessions(self.n)

    def day(self, i: int) -> dt.date:
        return self.days[i][0]

    def bars(self) -> list[Bar]:
        return [Bar(d, at, close_of(i), close_of(i) + 0.5, close_of(i) - 0.5, close_of(i))
                for i, (d, at) in enumerate(self.days)]

    def yahoo_rows(self) -> list[tuple]:
        return [(b.session, b.open, b.high, b.low, b.close, 1e9) for b in self.bars()]

    def vintages(self) -> list[Vintage]:
        return [Vintage(d, d, 1000.0 + i) for i, (d, _at) in enumerate(self.days)]

    def fred_rows(self) -> list[tuple]:
        return [(v.date, v.realtime_start, v.value) for v in self.vintages()]

    def config_text(self, fred: str, yahoo: str, store: str = "state/mw.sqlite", extra: str = "") -> str:
        dates = ", ".join(d.isoformat() for d, _ in self.days[WARM:])
        return CONFIG.format(store=store, fred=fred, yahoo=yahoo, dates=dates, series=SERIES, extra=extra)

    def expected(self, config: Config, after: dt.datetime, until: dt.datetime) -> list[Alert]:
        """The alerts `macrowatch replay` finds between two moments: the whole scenario in one go, no crash."""
        macro = config.macro["gauge"]
        history = History({"spx": [b for b in self.bars() if b.at <= until]},
                          [p for p in macro_prints(config, macro, self.vintages(), None) if p.at <= until])
        return [a for a in replay.run(Engine(config), history) if a.at > after]


class TimedFred(FredStub):
    """The stub FRED, publishing each value `lag` after its release time as read on `now()`."""

    def __init__(self, now: Callable[[], dt.datetime], lag: dt.timedelta = dt.timedelta(seconds=1)):
        super().__init__()
        self.now, self.lag = now, lag

    def _window(self, series, query):
        cutoff = self.now()
        return [r for r in super()._window(series, query) if release_at(r[1]) + self.lag <= cutoff]


def quiet(server) -> None:
    """No traceback on stderr when a killed daemon resets a kept-alive connection to a stub."""
    server.handle_error = lambda request, address: None


class Receiver(WebhookReceiver):
    """The webhook receiver with `on_request(n)` called after the n-th request is logged, before it is answered."""

    def __init__(self) -> None:
        self.on_request: Callable[[int], None] | None = None
        self._hook_lock = threading.Lock()
        super().__init__()

    def _listen(self, port: int = 0) -> None:
        super()._listen(port)
        quiet(self._server)

    def _answer(self, method, path, headers, body):
        status, answer = super()._answer(method, path, headers, body)
        hook = self.on_request
        if hook is not None:
            with self._hook_lock:
                hook(len(self.requests))
        return status, answer


Run = Daemon  # one `macrowatch run` process of a scenario, with its clock (tests/daemonproc.py)


class Processes:
    """`macrowatch run` processes on one config and store, against a stub Yahoo, a TimedFred reading the newest
    process's clock, and a receiver taking both channels (at /trading and /desk)."""

    def __init__(self, tmp_path: Path, scenario: Scenario, extra: str = ""):
        self.tmp_path, self.scenario = tmp_path, scenario
        self.runs: list[Run] = []
        self.fred = TimedFred(self.clock).start()
        self.yahoo = YahooStub()
        self.receiver = Receiver()
        for server in (self.fred._server, self.yahoo._server):
            quiet(server)
        self.fred.add_series(SERIES, scenario.fred_rows())
        self.yahoo.add_daily("^GSPC", scenario.yahoo_rows())
        self.config = tmp_path / "mw.yaml"
        self.config.write_text(scenario.config_text(self.fred.base_url, self.yahoo.url, extra=extra))
        self.store = tmp_path / "state" / "mw.sqlite"
        self.env = environment(tmp_path, MW_TEST_FRED_KEY=KEY,
                               **{f"MW_TEST_{c.upper()}": self.receiver.url("json", f"/{c}") for c in CHANNELS})

    def clock(self) -> dt.datetime:
        return self.runs[-1].clock() if self.runs else dt.datetime(1990, 1, 1, tzinfo=dt.UTC)

    def start(self, now: dt.datetime) -> Run:
        run = Run(self.config, self.env, self.tmp_path / f"run-{len(self.runs):03d}.log", now=now)
        self.runs.append(run)
        return run

    def received(self) -> Counter:
        return received(self.receiver.requests, self.store)

    def close(self) -> None:
        for run in self.runs:
            run.close()
        self.receiver.stop()
        self.yahoo.stop()
        self.fred.stop()


def received(requests: list[Received], store: Path) -> Counter:
    """(alert key, channel) -> how many of these requests delivered it; every request must be a stored alert."""
    by_text = {}
    for key, payload in read_alerts(store).items():
        a = SimpleNamespace(**{**payload, "at": dt.datetime.fromisoformat(payload["at"])})
        by_text[(title_of(a), when_line(a, Context(tz="America/New_York")))] = key
    out: Counter = Counter()
    for r in requests:
        if not 200 <= r.status < 300:
            continue
        data = r.json()
        text = (data["title"], data["message"].splitlines()[1])
        assert text in by_text, f"the receiver got an alert the store does not have: {text}"
        out[(by_text[text], r.path.strip("/"))] += 1
    return out


def read_alerts(store: Path) -> dict[str, dict]:
    with _connect(store) as db:
        return {key: json.loads(payload) for key, payload in db.execute("SELECT key, payload FROM alerts")}


def sent(store: Path) -> set[tuple[str, str]]:
    """(alert key, channel) of every delivery the store records as sent."""
    with _connect(store) as db:
        return set(db.execute("SELECT alert_key, channel FROM deliveries WHERE sent_at IS NOT NULL"))


def pending(store: Path) -> int:
    with _connect(store) as db:
        return db.execute("SELECT COUNT(*) FROM deliveries WHERE sent_at IS NULL").fetchone()[0]


def integrity(store: Path) -> str:
    """PRAGMA integrity_check of the store (after a crash: this also replays its WAL)."""
    with _connect(store) as db:
        return ";".join(r[0] for r in db.execute("PRAGMA integrity_check"))


class _connect:
    """A short-lived connection that is closed (not only committed) on exit."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, timeout=10)

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc) -> None:
        self.db.close()
