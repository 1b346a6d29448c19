"""`macrowatch replay --send` delivers the replayed alerts in their time order, to every channel (issue [14]).

The throwaway outbox hands out what is due oldest first; every replayed alert used to be submitted at one moment,
so the ties fell to the alert keys, which begin with the rule's name: alphabetical order, not the order of events.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from commands import test_notify_cli
from macrowatch.commands.cli import cli
from stubs import webhook as webhook_stub

webhook = webhook_stub.webhook  # the receiver fixture

# Rule names in the reverse of their time order; two rules fire on the same close (the same minute).
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
  - name: zz-jobs-beat
    when: {release: payrolls, outcome: beat}
    notify: [desk, ops]
  - name: m-breakout
    when: {level: spx-100, entered: breakout}
    notify: [desk, ops]
  - name: b-breakout-too
    when: {level: spx-100, state: breakout}
    notify: [desk, ops]
  - name: a-confirmed
    when: {level: spx-100, entered: confirmed}
    notify: [ops, desk]
"""

data = test_notify_cli.data  # the data directory fixture: closes 95..104 through 100, payrolls beat on 2019-07-05


@pytest.fixture
def setup(tmp_path: Path, data: Path) -> tuple[Path, Path]:
    """Payrolls beat on 2019-07-05 08:30; the close breaks 100 on 2019-07-08; confirmed two closes later."""
    cfg = tmp_path / "mw.yaml"
    cfg.write_text(CONFIG)
    return cfg, data


def test_replay_send_delivers_in_time_order_to_every_channel(setup, webhook, monkeypatch):
    cfg, data = setup
    other = webhook_stub.WebhookReceiver()
    try:
        monkeypatch.setenv("MW_DESK_URLS", webhook.url("json"))
        monkeypatch.setenv("MW_OPS_URLS", other.url("json"))
        result = CliRunner().invoke(cli, ["replay", "-c", str(cfg), "--data", str(data), "--send"])
        assert result.exit_code == 0, result.output
        printed = [line.split("] ", 1)[1].split(":")[0] for line in result.stdout.splitlines()]
        stamps = [line[:16] for line in result.stdout.splitlines()]
        assert stamps == sorted(stamps)                                   # replay prints in time order
        assert printed[0] == "zz-jobs-beat" and printed[-1] == "a-confirmed"
        assert {"m-breakout", "b-breakout-too"} == set(printed[1:3])      # the same close, the same minute
        assert stamps[1] == stamps[2]
        for receiver in (webhook, other):
            titles = [r.json()["title"].split("] ", 1)[1] for r in receiver.requests]
            assert titles == printed
    finally:
        other.stop()
