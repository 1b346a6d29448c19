"""A store as the daemon leaves it after two months, for the dashboard's tests: the bars of two instruments fed
through the engine one close at a time (as a replay does), a jobs report, the alerts they fired in the outbox with
their deliveries (sent, failing, a possible repeat), the release calendar and the daemon's heartbeat.

    config, store_path = build(tmp_path, monkeypatch)
    server = serve(config, store_path)        # the dashboard on 127.0.0.1, clock at NOW
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from engine.helpers import on_close, on_release
from macrowatch.clock import FakeClock
from macrowatch.config import Config, load_config
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Alert, Bar, Print, Vintage
from macrowatch.runtime.dashboard import Dashboard
from macrowatch.runtime.health import HealthServer, Metrics
from macrowatch.runtime.service import secrets_of
from macrowatch.secrets import SecretFilter
from macrowatch.store import open_reader, open_store

NY = ZoneInfo("America/New_York")
NOW = dt.datetime(2019, 8, 19, 10, 0, tzinfo=NY)          # a Monday morning
TOKEN = "Sup3rS3cretT0kenDash"
TRADING_URL = f"json://127.0.0.1:9/hook?token={TOKEN}"
OPS_URL = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/987654321"
FRED_KEY = "abcdef0123456789abcdef0123456789"

CONFIG = f"""\
store: mw.sqlite
sources:
  fred: {{api_key: "{FRED_KEY}"}}
instruments:
  spx: {{symbol: "^GSPC", name: "S&P 500"}}
  rut: {{symbol: "^RUT", name: "Russell 2000"}}
levels:
  spx-3000: {{instrument: spx, price: 3000}}
  spx-20d: {{instrument: spx, kind: high_of, bars: 20}}
  spx-2850s: {{instrument: spx, price: 2850, side: support}}
  rut-1550: {{instrument: rut, price: 1550, fail_within_bars: 3}}
releases:
  es: {{fred_release_id: 50, time: "08:30", dates: [2019-08-02, 2019-09-06]}}
  cpi: {{time: "08:30", dates: [2019-09-12]}}
macro:
  payrolls: {{series: PAYEMS, release: es, measure: change, consensus: {{2019-07: 150, 2019-08: 158}}}}
channels:
  trading: ${{MW_DASH_TRADING}}
  ops: ${{MW_DASH_OPS}}
rules:
  - name: spx-breakout
    when: {{level: spx-3000, entered: breakout}}
    severity: critical
    notify: [trading, ops]
    chart: spx
    message: "{{spx.name}} {{spx.close:.2f}} above {{spx-3000.price:.0f}}"
  - name: spx-false-breakout
    when: {{level: spx-3000, entered: failed}}
    severity: warning
    notify: [trading]
  - name: rut-confirmed
    when: {{level: rut-1550, entered: confirmed}}
    notify: [trading]
  - name: jobs-beat
    when: {{release: payrolls, outcome: beat}}
    notify: [trading]
    message: "payrolls {{payrolls.actual:+.0f}}k vs {{payrolls.consensus:+.0f}}k"
"""


def sessions(first: dt.date, n: int) -> list[dt.date]:
    """`n` weekdays from `first` (holidays do not matter to the engine)."""
    out, day = [], first
    while len(out) < n:
        if day.weekday() < 5:
            out.append(day)
        day += dt.timedelta(days=1)
    return out


DAYS = sessions(dt.date(2019, 6, 17), 45)          # to Friday 2019-08-16
SPX = [2880 + 3.2 * i for i in range(30)] + [2990, 2995, 3012, 3020, 3004, 2998, 2985, 2978, 2984, 2990, 2981,
                                             2975, 2988, 2986, 2984.5]
RUT = [1500 + 1.5 * i for i in range(32)] + [1556, 1562, 1565, 1570, 1566, 1560, 1558, 1561, 1564, 1559, 1555,
                                             1557, 1560]
PUBLISHED = dt.datetime(2019, 8, 2, 8, 30, tzinfo=NY)


def bar(day: dt.date, close: float) -> Bar:
    at = dt.datetime.combine(day, dt.time(16, 0), NY)
    return Bar(day, at, close - 4, close + 6, close - 8, close, 1e9)


def build(tmp_path: Path, monkeypatch, extra: list[Alert] = ()) -> tuple[Config, Path]:
    """The config (written to tmp_path/mw.yaml) and its store, filled; `extra` alerts are enqueued as well."""
    monkeypatch.setenv("MW_DASH_TRADING", TRADING_URL)
    monkeypatch.setenv("MW_DASH_OPS", OPS_URL)
    path = tmp_path / "mw.yaml"
    path.write_text(CONFIG)
    config, _ = load_config(path)
    engine, alerts = Engine(config), []
    spx, rut = [bar(d, c) for d, c in zip(DAYS, SPX, strict=True)], [bar(d, c) for d, c in zip(DAYS, RUT, strict=True)]
    for s, r in zip(spx, rut, strict=True):
        if s.session == PUBLISHED.date():  # the jobs report comes out before that day's close
            alerts += on_release(engine, [Print("payrolls", PUBLISHED, dt.date(2019, 7, 1), 164.0, 193.0, 150.0,
                                                "file", 14.0, "beat")])
        alerts += on_close(engine, s.at, {"spx": s, "rut": r})
    store_path = tmp_path / "mw.sqlite"
    with open_store(store_path) as store:
        store.put_bars("spx", spx)
        store.put_bars("rut", rut)
        store.put_vintages("PAYEMS", [Vintage(dt.date(2019, 6, 1), dt.date(2019, 7, 5), 151269),
                                      Vintage(dt.date(2019, 7, 1), dt.date(2019, 8, 2), 151433)])
        store.save_state("engine", engine.to_data())
        _schedule_and_heartbeat(store)
        _deliveries(store, [*alerts, *extra])
    return config, store_path


def _schedule_and_heartbeat(store) -> None:
    now = NOW.astimezone(dt.UTC)
    store.save_state("schedule", {"updated": (now - dt.timedelta(hours=2)).isoformat(),
                                  "releases": {"es": ["2019-08-02", "2019-09-06", "2019-10-04"]}})
    store.save_state("daemon", {
        "started": (now - dt.timedelta(days=3)).isoformat(), "heartbeat": (now - dt.timedelta(seconds=12)).isoformat(),
        "pid": 4242, "every": 10.0,
        "sources": {"prices": {"last_ok": (now - dt.timedelta(seconds=40)).isoformat(), "failing_since": None,
                               "error": None},
                    "fred": {"last_ok": (now - dt.timedelta(hours=3)).isoformat(),
                             "failing_since": (now - dt.timedelta(minutes=29)).isoformat(),
                             "error": f"HTTP 500 from FRED for api_key={FRED_KEY}"}}})


def _deliveries(store, alerts: list[Alert]) -> None:
    """Every alert in the outbox: the trading channel has them all, ops fails on the latest breakout, and the first
    alert's delivery was taken over once (a possible repeat)."""
    for i, alert in enumerate(sorted(alerts, key=lambda a: a.at)):
        channels = list(alert.notify) or ["trading"]
        store.enqueue(alert, channels, alert.at)
        if i == 0:
            store.mark_failed(alert.key, "trading", alert.at, "timed out", alert.at, unsure=["f1"], repeats=1)
        store.mark_sent(alert.key, "trading", alert.at + dt.timedelta(seconds=2))
        if "ops" in channels:
            store.mark_failed(alert.key, "ops", alert.at + dt.timedelta(seconds=3), f"HTTP 401 from {OPS_URL}",
                              alert.at + dt.timedelta(minutes=5))


def serve(config: Config, store_path: Path, host: str = "127.0.0.1") -> HealthServer:
    """The dashboard of the store on an ephemeral port, as `macrowatch run` serves it (its mask: the log's)."""
    dashboard = Dashboard(lambda: config, lambda: open_reader(store_path), FakeClock(NOW),
                          SecretFilter(secrets_of(config)).redact)
    server = HealthServer(host, 0, Metrics(), lambda: (True, "ok"), pages=dashboard)
    server.start()
    return server
