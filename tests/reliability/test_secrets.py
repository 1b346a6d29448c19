"""Secrets: channel tokens and the FRED key never reach logs, errors, `status`, `check --show` or alerts.

Known tokens are put where users put them (the environment): a Slack webhook, a Telegram bot, a json:// webhook
with a token in its path and an X-Api-Key header, a mailto:// password, and the FRED API key. Every path that
might echo them is driven to failure: FRED answers 500, HTML, garbage, 429 and "bad key" and then refuses
connections; every trading URL fails (the json:// receiver answers 500 with the token in its error body; Slack
and Telegram go to a dead proxy, never the internet; the mail server refuses); the ops channel works, so the
ops alerts those failures raise are delivered and read. Then every output is searched for every token: the
log records (DEBUG, apprise's and urllib3's included), the alerts and what the ops receiver got, the store's
every table, `macrowatch status` (text and JSON), `check` and `check --show`, config errors that would echo
an expanded variable, a refused reload, and the stdout of `macrowatch run` as a process against the stubs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sqlite3
import time
import zoneinfo
from pathlib import Path

import pytest
from click.testing import CliRunner

import daemonproc
from macrowatch.clock import FakeClock
from macrowatch.commands.cli import cli
from macrowatch.commands.status import collect, render
from macrowatch.config import ConfigError, load_config
from macrowatch.model import Bar
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.scheduler import Runner
from macrowatch.sources import calendar
from macrowatch.sources.base import LatestFetch, PriceFetch, Quote
from macrowatch.sources.fred import FredClient
from macrowatch.store import open_store
from stubs.fred import FredStub
from stubs.webhook import WebhookReceiver
from stubs.yahoo import YahooStub

NY = zoneinfo.ZoneInfo("America/New_York")
FRED_KEY = "fredsecretkey0123456789abcdef012"   # 32 lower-case alphanumerics, as FRED's keys are
SLACK = "slack://T0SECRETA/B0SECRETB/slackSecretTokenC0123456789"
TGRAM = "tgram://123456789:AAsecretTelegramBotToken_0123456789/987654321"
MAILTO = "mailto://user:MailPassw0rdSecret@example.com?smtp=127.0.0.1&port=9&to=ops@example.com"
PATH_TOKEN, HEADER_TOKEN = "pathSecretTok3n", "HeaderSecret42"
SECRETS = [FRED_KEY, "T0SECRETA", "B0SECRETB", "slackSecretTokenC0123456789", "AAsecretTelegramBotToken_0123456789",
           PATH_TOKEN, HEADER_TOKEN, "MailPassw0rdSecret"]
DEAD_PROXY = "http://127.0.0.1:9"  # Slack and Telegram requests go here, and are refused: never the internet

CONFIG = """\
store: state/mw.sqlite
sources:
  fred: {{api_key: "${{MW_SECRET_FRED_KEY}}", url: "{fred}"}}
  yahoo: {{url: "{yahoo}"}}
instruments:
  spx: {{symbol: "^GSPC", name: "S&P 500"}}
levels:
  spx-100: {{instrument: spx, price: 100, fail_within_bars: 3}}
releases:
  es: {{fred_release_id: 50, dates: [2019-08-02], time: "{time}"}}
macro:
  payrolls: {{series: PAYEMS, release: es, measure: change, consensus: {{2019-07: 150}}, beat_by: 25}}
  claims: {{series: ICSA, release: es, measure: level}}
channels:
  trading: ${{MW_SECRET_TRADING}}
  ops: ${{MW_SECRET_OPS}}
rules:
  - name: breakout
    when: {{level: spx-100, entered: breakout}}
    notify: [trading, ops]
    message: "{{spx.name}} {{spx.close:.2f}} above {{spx-100.price:.0f}}"
  - name: jobs-beat
    when: {{release: payrolls, outcome: beat}}
    notify: [trading, ops]
    message: "payrolls {{payrolls.actual:+.0f}}k vs {{payrolls.consensus:+.0f}}k"
"""
PAYEMS = [("2019-05-01", "2019-06-07", 151000), ("2019-06-01", "2019-07-05", 151200),
          ("2019-05-01", "2019-07-05", 151010)]
AUGUST = ("2019-07-01", "2019-08-02", 151400)
ICSA = [("2019-06-01", "2019-06-07", 220000)]


def leaks(text: str) -> list[str]:
    """The secrets found in `text`."""
    return [s for s in SECRETS if s in text]


@pytest.fixture
def env(monkeypatch, webhook: WebhookReceiver):
    """The secrets in the environment; the json:// receiver failing and naming its tokens; a working ops one."""
    ops = WebhookReceiver()
    webhook.reply(500, f"invalid token {PATH_TOKEN}, header {HEADER_TOKEN}".encode())
    trading = " ".join([SLACK, TGRAM, webhook.url("json", f"/hook/{PATH_TOKEN}", f"-X-Api-Key={HEADER_TOKEN}"),
                        MAILTO])
    values = {"MW_SECRET_FRED_KEY": FRED_KEY, "MW_SECRET_TRADING": trading, "MW_SECRET_OPS": ops.url("json", "/ops"),
              "HTTPS_PROXY": DEAD_PROXY, "HTTP_PROXY": DEAD_PROXY, "NO_PROXY": "127.0.0.1,localhost"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    yield values, webhook, ops
    ops.stop()


@pytest.fixture
def fred():
    stub = FredStub(api_key=FRED_KEY).start()
    stub.add_series("PAYEMS", PAYEMS).add_series("ICSA", ICSA).add_release(50, ["2019-07-05", "2019-08-02"])
    yield stub
    stub.stop()


def write_config(tmp_path: Path, fred: FredStub, yahoo: str = "http://127.0.0.1:9", time_: str = "08:30") -> Path:
    path = tmp_path / "mw.yaml"
    path.write_text(CONFIG.format(fred=fred.base_url, yahoo=yahoo, time=time_))
    return path


# ---- the daemon in-process, under a fake clock ----------------------------------------------------------------

CLOSES = [95.0] * 20 + [96, 97, 98, 99.5, 99.6, 101, 102, 103, 104, 105, 106]


class Prices:
    """Bars from 2019-06-03 that break 100 on 2019-07-09; never a bar before its close."""

    def __init__(self):
        sessions = sorted(calendar.close_times("XNYS", dt.date(2019, 6, 3), dt.date(2019, 8, 30)).items())
        self.bars = [Bar(d, at, c, c, c, c) for (d, at), c in zip(sessions, CLOSES, strict=False)]

    def daily(self, instruments, start, now, calendar_for):
        return PriceFetch({i: [b for b in self.bars if start <= b.session and b.at <= now] for i in instruments})

    def latest(self, instruments, now, calendar_for):
        last = [b for b in self.bars if b.at <= now][-1]
        return LatestFetch({i: Quote(last.close, last.at) for i in instruments})


def test_secrets_never_leave_the_daemon(tmp_path, env, fred, caplog):
    values, failing, ops = env
    caplog.set_level(logging.DEBUG)
    path = write_config(tmp_path, fred)
    config, warnings = load_config(path, for_run=True)
    clock = FakeClock(dt.datetime(2019, 7, 1, 12, 0, tzinfo=NY))
    client = FredClient.from_config(config.fred, timeout=2.0, retries=0, sleep=lambda _s: None)
    alerts = []
    daemon = Daemon(config, open_store(config.store), clock, Prices(), client, on_alert=alerts.append)
    fred.fault("bad_key", "ICSA")  # one series always refused: the source fails on and on
    fred.fault("500", "50", times=1)  # the release calendar, once
    daemon.start(clock.now())

    # FRED's other failures, one refresh each; then a close that fires an alert to every channel.
    for fault in ("500", "html", "malformed", "429", "empty", "bad_key"):
        fred.fault(fault, "PAYEMS", times=1)
        daemon.polls.refresh_vintages(clock.now())
    daemon.bursts.refresh_schedule(clock.now())
    clock.set(dt.datetime(2019, 7, 9, 16, 1, tzinfo=NY))
    daemon.check_closes(clock.now())
    # Retries with backoff until the trading channel has failed 5 times (an ops alert), then the source-down alert.
    for _ in range(8):
        clock.advance(dt.timedelta(minutes=16))
        daemon.alerts.deliver(clock.now())
        daemon.liveness.heartbeat(clock.now())
    fred.stop()  # and FRED goes away altogether: down for longer than an ops alert waits
    for _ in range(2):
        daemon.polls.refresh_vintages(clock.now())
        daemon.liveness.heartbeat(clock.now())
        daemon.alerts.deliver(clock.now())
        clock.advance(dt.timedelta(minutes=16))

    # It did fail everywhere, and said so: the test is not vacuous.
    log = caplog.text + "\n".join(f"{r.getMessage()} {r.exc_info!r}" for r in caplog.records)
    rules = sorted({a.rule for a in alerts})
    assert {"breakout", "ops-delivery-failing", "ops-source-down"} <= set(rules), rules
    assert "send to slack://" in log and "send to tgram://" in log and "send to json://" in log, log[-3000:]
    assert "fred source" in log
    assert any("failed attempts" in r.body.decode() for r in ops.delivered())
    assert failing.requests and all(r.status == 500 for r in failing.requests)

    outputs = {"log": log,
               "alerts": "\n".join(json.dumps(a.to_json()) + a.key + repr(a) for a in alerts),
               "ops receiver": "\n".join(r.body.decode(errors="replace") + r.path for r in ops.requests),
               "warnings": "\n".join(map(str, warnings)),
               "status": "\n".join(render(collect(config, daemon.store, clock.now()), config.timezone))
               + json.dumps(collect(config, daemon.store, clock.now())),
               "daemon state": json.dumps(daemon.liveness.heartbeat(clock.now())) + daemon.status_line()}
    daemon.store.close()
    outputs["store"] = _dump_database(Path(config.store))
    runner = CliRunner()
    for args in (["status"], ["status", "--format", "json"], ["check"], ["check", "--show"]):
        result = runner.invoke(cli, [*args, "-c", str(path)])
        assert result.exit_code == 0, result.output
        outputs[" ".join(args)] = result.output
    found = {name: leaks(text) for name, text in outputs.items() if leaks(text)}
    assert not found, found


def _dump_database(path: Path) -> str:
    """Every value of every table of the store, as text."""
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return "\n".join(repr(row) for t in tables for row in db.execute(f'SELECT * FROM "{t}"'))  # noqa: S608


# ---- config errors never echo an expanded value -------------------------------------------------------------

# (text of the good config, what it becomes): an expanded variable where its value is reported as wrong.
BREAKOUT = "    when: {level: spx-100, entered: breakout}\n"
WRONG_PLACES = {
    "timezone": ("store:", 'timezone: "${MW_SECRET_FRED_KEY}"\nstore:'),
    "calendar": ("store:", 'calendar: "${MW_SECRET_FRED_KEY}"\nstore:'),
    "store": ("store: state/mw.sqlite", 'store: "x://${MW_SECRET_FRED_KEY}"'),
    "health": ("store:", 'health: {listen: "${MW_SECRET_FRED_KEY}"}\nstore:'),
    "fred url": ('url: "http://127.0.0.1:9/fred"', 'url: "ftp://${MW_SECRET_FRED_KEY}"'),
    "yahoo url": ('url: "http://127.0.0.1:9"}', 'url: "${MW_SECRET_TRADING}"}'),
    "symbol": ('symbol: "^GSPC"', 'symbol: "${MW_SECRET_TRADING}"'),
    "calendar of an instrument": ('name: "S&P 500"', 'name: "S&P 500", calendar: "${MW_SECRET_FRED_KEY}"'),
    "channel scheme": ("trading: ${MW_SECRET_TRADING}", 'trading: "-${MW_SECRET_TRADING}"'),
    "level instrument": ("{instrument: spx, price: 100", '{instrument: "${MW_SECRET_FRED_KEY}", price: 100'),
    "macro series": ("series: ICSA, release: es", 'series: "${MW_SECRET_FRED_KEY}", release: "${MW_SECRET_TRADING}"'),
    "release time": ('time: "08:30"', 'time: "${MW_SECRET_FRED_KEY}"'),
    "rule name": ("name: breakout", 'name: "${MW_SECRET_TRADING}"'),
    "notify": ('notify: [trading, ops]\n    message: "{spx',
               'notify: [trading, "${MW_SECRET_TRADING}"]\n    message: "{spx'),
    "message": ('message: "{spx.name}', 'message: "{${MW_SECRET_FRED_KEY}} {spx.name}'),
    "chart": (BREAKOUT, BREAKOUT + '    chart: "${MW_SECRET_FRED_KEY}"\n'),
    "state": ("entered: breakout", 'entered: "${MW_SECRET_FRED_KEY}"'),
    "on": (BREAKOUT, BREAKOUT + '    on: ["${MW_SECRET_TRADING}"]\n'),
    "severity": (BREAKOUT, BREAKOUT + '    severity: "${MW_SECRET_FRED_KEY}"\n'),
}


def _wrong(place: str, tmp_path: Path) -> Path:
    old, new = WRONG_PLACES[place]
    base = CONFIG.format(fred="http://127.0.0.1:9/fred", yahoo="http://127.0.0.1:9", time="08:30")
    assert base.count(old) == 1, old
    path = tmp_path / "wrong.yaml"
    path.write_text(base.replace(old, new))
    return path


@pytest.mark.parametrize("place", WRONG_PLACES)
def test_config_errors_show_the_variable_not_its_value(tmp_path, env, place):
    path = _wrong(place, tmp_path)
    for args in (["check"], ["check", "--show"]):
        result = CliRunner().invoke(cli, [*args, "-c", str(path)])
        assert result.exit_code == 2, result.output
        assert not leaks(result.output), result.output
    with pytest.raises(ConfigError) as err:
        load_config(path, for_run=True, calendars=calendar.calendar_names)
    assert not leaks(str(err.value)), str(err.value)


def test_a_refused_reload_logs_no_secret(tmp_path, env, fred, caplog):
    path = write_config(tmp_path, fred)
    config, _ = load_config(path, for_run=True)
    daemon = Daemon(config, open_store(config.store), FakeClock(dt.datetime(2019, 7, 1, tzinfo=NY)), Prices(),
                    FredClient.from_config(config.fred, retries=0))
    bad = _wrong("timezone", tmp_path)
    try:
        assert Runner(daemon).reload(lambda: load_config(bad, for_run=True)[0]) is False
    finally:
        daemon.store.close()
    assert "reload refused" in caplog.text
    assert not leaks(caplog.text)


# ---- `macrowatch run` as a process -------------------------------------------------------------------------

@pytest.mark.slow
def test_the_daemon_process_logs_no_secret(tmp_path, env, fred, yahoo_stub: YahooStub):
    values, failing, ops = env
    sessions = sorted(calendar.close_times("XNYS", dt.date(2019, 7, 22), dt.date(2019, 8, 1)))
    yahoo_stub.add_daily("^GSPC", [(d, 95.0, 96.0, 94.0, 95.0, 1e9) for d in sessions])
    fred.fault("bad_key", "ICSA")
    path = write_config(tmp_path, fred, yahoo=yahoo_stub.url)
    start = dt.datetime(2019, 8, 2, 8, 29, 56, tzinfo=NY)  # the daemon's clock: 4 s before the release
    process_env = {**os.environ, **values, "HOME": str(tmp_path), "MACROWATCH_NOW": start.isoformat(),
                   "MACROWATCH_LOG_LEVEL": "DEBUG", "MACROWATCH_LOG_FORMAT": "kv"}
    process_env.pop("MACROWATCH_DEBUG", None)
    out = tmp_path / "daemon.log"
    daemon = daemonproc.Daemon(path, process_env, out)
    try:
        daemon.wait_for_line("release burst started")  # after 08:30: the burst is polling
        fred.add_series("PAYEMS", [*PAYEMS, AUGUST])  # published: the burst sees it, the alert fails to send
        daemon.wait_for_line("send to json://", timeout=40)
        ops.wait_for(1, timeout=20)
        time.sleep(1)
    finally:
        daemon.stop()
    text = out.read_text()
    assert "Traceback" not in text
    assert "send to slack://" in text and "send to tgram://" in text, text[-3000:]
    assert not leaks(text), [line for line in text.splitlines() if leaks(line)][:5]
    assert not leaks("\n".join(r.body.decode(errors="replace") for r in ops.requests))
    result = CliRunner().invoke(cli, ["status", "-c", str(path)])
    assert result.exit_code == 0 and not leaks(result.output), result.output
