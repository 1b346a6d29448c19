"""`macrowatch notify-test` and `macrowatch replay --send`, the way a user runs them, against a local receiver."""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from macrowatch.commands.cli import cli
from stubs import webhook as webhook_stub

webhook = webhook_stub.webhook  # the receiver fixture
TOKEN = "s3cr3tT0KEN42xyz"

CONFIG = """\
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
levels:
  spx-100: {instrument: spx, price: 100, fail_within_bars: 2}
releases:
  es: {fred_release_id: 50, time: "08:30"}
macro:
  payrolls: {series: PAYEMS, release: es, measure: change, beat_by: 25}
channels:
  desk: ${MW_DESK_URLS}
  ops: ${MW_OPS_URLS}
rules:
  - name: breakout
    when: {level: spx-100, entered: breakout}
    severity: critical
    notify: [desk]
    chart: spx
    message: "{spx.name} {spx.close:.2f} above {spx-100.price:.0f}"
  - name: jobs-beat
    when: {release: payrolls, outcome: beat}
    notify: [desk, ops]
    message: "payrolls {payrolls.actual:+.0f}k vs {payrolls.consensus:+.0f}k"
  - name: confirmed
    when: {level: spx-100, entered: confirmed}
"""

# Sessions of July 2019 (3 July closes early, 4 July is a holiday); the breakout is on the 5th session.
DAYS = ["2019-07-01", "2019-07-02", "2019-07-03", "2019-07-05", "2019-07-08", "2019-07-09", "2019-07-10",
        "2019-07-11"]
CLOSES = [95, 96, 97, 98, 101, 102, 103, 104]


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "mw.yaml"
    path.write_text(CONFIG)
    monkeypatch.delenv("MW_DESK_URLS", raising=False)
    monkeypatch.delenv("MW_OPS_URLS", raising=False)
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """Closes 95..104 through a breakout of 100; payrolls +200k against a consensus of 150k on 2019-07-05."""
    root = tmp_path / "data"
    (root / "prices").mkdir(parents=True)
    rows = ["Date,Open,High,Low,Close,Adj Close,Volume"] + [f"{d},{c},{c + 1},{c - 1},{c},{c},1000"
                                                             for d, c in zip(DAYS, CLOSES, strict=True)]
    (root / "prices" / "GSPC.csv").write_text("\n".join(rows) + "\n")
    (root / "macro").mkdir()
    (root / "macro" / "PAYEMS.csv").write_text(textwrap.dedent("""\
        date,realtime_start,value
        2019-04-01,2019-06-07,1000
        2019-05-01,2019-06-07,1100
        2019-05-01,2019-07-05,1120
        2019-06-01,2019-07-05,1320
        """))
    (root / "macro" / "consensus.csv").write_text("series,date,consensus\nPAYEMS,2019-06-01,150\n")
    return root


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


# ---- notify-test ---------------------------------------------------------------------------------------

def test_notify_test_sends_a_sample_with_a_chart(cfg, webhook, monkeypatch):
    monkeypatch.setenv("MW_DESK_URLS", f"{webhook.url('json')} {webhook.url('form')}")
    result = invoke("notify-test", "desk", "-c", str(cfg))
    assert result.exit_code == 0, result.output
    assert result.stdout == "notify-test: channel desk: sent to 2 URLs\n"
    as_json, as_form = webhook.requests
    body = as_json.json()
    assert body["title"] == "[INFO] notify-test"
    assert body["message"].startswith("Test alert from macrowatch: Sample index closed")
    assert "Sample index closed 101.20, above its level 100 (state breakout)" in body["message"]
    png = base64.b64decode(body["attachments"][0]["base64"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert as_form.files()["file01"].data == png  # the same chart, byte for byte, to both


def test_notify_test_reports_why_a_send_failed_masked(cfg, webhook, monkeypatch):
    monkeypatch.setenv("MW_DESK_URLS", webhook.url("json", f"/{TOKEN}/hook"))
    webhook.fail(500)
    result = invoke("notify-test", "desk", "-c", str(cfg))
    assert result.exit_code == 1
    assert "notify-test: channel desk: failed: json://127.0.0.1:" in result.stderr
    assert "error=500" in result.stderr and "/s...z/hook" in result.stderr
    assert TOKEN not in result.output


@pytest.mark.parametrize("env, channel, code, says", [
    ({}, "desk", 2, "channels.desk: environment variable MW_DESK_URLS is not set"),
    ({"MW_DESK_URLS": " "}, "desk", 2, "channels.desk: no URL after expanding the environment"),
    ({"MW_DESK_URLS": "json://127.0.0.1:9/x"}, "nosuch", 2, "no channel 'nosuch'"),
], ids=["unset-env", "empty-env", "unknown-channel"])
def test_notify_test_config_problems_exit_2(cfg, monkeypatch, env, channel, code, says):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    result = invoke("notify-test", channel, "-c", str(cfg))
    assert result.exit_code == code
    assert says in result.stderr
    assert "Traceback" not in result.output


def test_notify_test_other_channels_may_be_unset(cfg, webhook, monkeypatch):
    """Only the channel tested must be set: MW_OPS_URLS is unset here, and not mentioned (nothing goes to ops)."""
    monkeypatch.setenv("MW_DESK_URLS", webhook.url("json"))
    result = invoke("notify-test", "desk", "-c", str(cfg))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_notify_test_an_unset_variable_is_one_error_not_a_warning_as_well(cfg):
    result = invoke("notify-test", "desk", "-c", str(cfg))
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()  # it used to be a warning first, then the same as an error
    assert line.endswith("channels.desk: environment variable MW_DESK_URLS is not set") and "warning" not in line


def test_notify_test_prints_a_failed_send_once(cfg, webhook, tmp_path):
    """The console script, as a user runs it: the send's own log line used to repeat the reason on stderr."""
    webhook.fail(500)
    env = {**os.environ, "MW_DESK_URLS": webhook.url("json", f"/{TOKEN}/hook"), "MPLCONFIGDIR": str(tmp_path)}
    proc = subprocess.run([_console_script(), "notify-test", "desk", "-c", str(cfg)], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("error=500") == 1, proc.stderr
    assert proc.stderr.startswith("notify-test: channel desk: failed: json://127.0.0.1:")
    assert TOKEN not in proc.stderr


@pytest.mark.parametrize("command", [["replay", "--data", "{data}"], ["calendar", "--days", "3"]],
                         ids=["replay", "calendar"])
def test_commands_that_send_nothing_say_nothing_of_unset_channels(cfg, data, command):
    result = invoke(*[a.format(data=data) for a in command], "-c", str(cfg))
    assert result.exit_code == 0, result.output
    assert "is not set" not in result.stderr and "warning" not in result.stderr


def _console_script() -> str:
    exe = Path(sys.executable).with_name("macrowatch")
    return str(exe) if exe.exists() else (shutil.which("macrowatch") or pytest.skip("no macrowatch console script"))


# ---- replay --send ---------------------------------------------------------------------------------------

def test_replay_send_delivers_each_alert_through_its_channels(cfg, data, webhook, monkeypatch):
    other = webhook_stub.WebhookReceiver()
    try:
        monkeypatch.setenv("MW_DESK_URLS", webhook.url("json"))
        monkeypatch.setenv("MW_OPS_URLS", other.url("form"))
        result = invoke("replay", "-c", str(cfg), "--data", str(data), "--send")
        assert result.exit_code == 0, result.output
        printed = result.stdout.splitlines()
        assert [line.split("] ", 1)[1].split(":")[0] for line in printed] == ["jobs-beat", "breakout", "confirmed"]
        assert "send: channel desk: 2 of 2 sent" in result.stderr
        assert "send: channel ops: 1 of 1 sent" in result.stderr
        assert "send: 1 alert notify no channel (printed only)" in result.stderr
        by_title = {r.json()["title"]: r.json() for r in webhook.requests}
        assert set(by_title) == {"[WARNING] jobs-beat", "[CRITICAL] breakout"}
        breakout = by_title["[CRITICAL] breakout"]
        assert breakout["message"].startswith("S&P 500 101.00 above 100\n2019-07-08 16:00 EDT")
        assert base64.b64decode(breakout["attachments"][0]["base64"]).startswith(b"\x89PNG")
        assert by_title["[WARNING] jobs-beat"].get("attachments") in (None, [])  # no chart: for that rule
        assert "payrolls +200k vs consensus +150k: beat by 50k (consensus from data)" in \
            by_title["[WARNING] jobs-beat"]["message"]
        (ops,) = other.requests
        assert ops.form()["title"] == "[WARNING] jobs-beat"
    finally:
        other.stop()


def test_replay_send_reports_a_failing_channel_and_exits_1(cfg, data, webhook, monkeypatch):
    monkeypatch.setenv("MW_DESK_URLS", webhook.url("json"))
    webhook.fail(503)
    result = invoke("replay", "-c", str(cfg), "--data", str(data), "--from", "2019-07-01", "--format", "jsonl",
                    "--send")
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 3  # the alerts are printed before any send
    assert "send: channel desk: 0 of 2 sent; failed: json://127.0.0.1:" in result.stderr
    assert "send: channel ops: 0 of 1 sent; failed: environment variable MW_OPS_URLS is not set" in result.stderr
    assert result.stderr.count("MW_OPS_URLS is not set") == 1  # not a load warning first


def test_replay_send_says_each_failure_once(cfg, data, webhook, tmp_path):
    """The console script: the send's and the throwaway outbox's log lines ("next try at ...") used to repeat
    each channel's failure on stderr before the per-channel lines."""
    webhook.fail(503)
    env = {**os.environ, "MW_DESK_URLS": webhook.url("json"), "MPLCONFIGDIR": str(tmp_path)}
    proc = subprocess.run([_console_script(), "replay", "-c", str(cfg), "--data", str(data), "--send"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [
        "3 alerts",
        f"send: channel desk: 0 of 2 sent; failed: {webhook.url('json')}: Failed to send JSON POST notification: "
        "Servers are overloaded., error=503.",
        "send: channel ops: 0 of 1 sent; failed: environment variable MW_OPS_URLS is not set",
        "send: 1 alert notify no channel (printed only)"]


def test_replay_without_send_sends_nothing(cfg, data, webhook, monkeypatch):
    monkeypatch.setenv("MW_DESK_URLS", webhook.url("json"))
    result = invoke("replay", "-c", str(cfg), "--data", str(data))
    assert result.exit_code == 0 and webhook.requests == []
    assert dt.date(2019, 7, 8).isoformat() in result.stdout
