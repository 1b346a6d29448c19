"""A receiver that takes the POST but answers after the send timeout: the alert reaches it at most twice, counted.

Such a send's outcome is unknown (the request was written, no answer came in time): it is recorded as a failure
and counted as a possible repeat, then retried once after the usual backoff; a second unknown outcome is taken
as reached (recorded sent, unconfirmed), so there is never a third copy. A send that wrote nothing (a refused
connection) or that the receiver answered with an error is a plain failure, retried as before and not counted.
Everything goes through the real apprise to tests/stubs/webhook.py on 127.0.0.1, with a read timeout of 0.3 s.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import zoneinfo

import pytest

from macrowatch.clock import FakeClock
from macrowatch.config.types import Channel
from macrowatch.model import Alert
from macrowatch.notify.outbox import Dispatcher
from macrowatch.notify.send import send
from macrowatch.runtime.health import Metrics
from macrowatch.runtime.report import outbox
from macrowatch.store import open_store
from store.helpers import was_sent
from stubs import webhook as webhook_stub

from . import test_faults
from .test_faults import BREAKOUT, MINUTE, attempts

webhook = webhook_stub.webhook  # the receiver fixture
world, yf_cache = test_faults.world, test_faults.yf_cache  # the daemon with its stubs (yf_cache: world's own)
NY = zoneinfo.ZoneInfo("America/New_York")
T0 = dt.datetime(2019, 8, 2, 12, 30, tzinfo=dt.UTC)
TIMEOUT = 0.3            # the send's read timeout
LATE = 1.0               # the slow receiver answers after this: well past the timeout
PASS = dt.timedelta(minutes=16)  # longer than the longest backoff: every pass finds the delivery due
KEY = "payrolls-beat|2019-08-02"
TOKEN = "s3cr3tT0KEN42xyz"  # in the slow URL's path: never logged


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "mw.sqlite") as s:
        yield s


@pytest.fixture(params=["sqlite", "postgres"])
def any_store(request, tmp_path):
    """The store on either backend (PostgreSQL: a throwaway database, skipped where there is none)."""
    target = tmp_path / "mw.sqlite" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    with open_store(target) as s:
        yield s


@pytest.fixture
def other():
    receiver = webhook_stub.WebhookReceiver()
    yield receiver
    receiver.stop()


def alert() -> Alert:
    return Alert("payrolls-beat", dt.datetime(2019, 8, 2, 8, 30, tzinfo=NY), "info", {}, "payrolls +164k: beat",
                 {}, KEY, ("desk",), None)


def dispatcher(store, *urls: str) -> Dispatcher:
    d = Dispatcher(store, {"desk": Channel("desk", "$MW_DESK", tuple(urls))}, FakeClock(T0), timeout=TIMEOUT)
    d.submit([alert()], T0)
    return d


def passes(d: Dispatcher, n: int) -> list:
    """n delivery passes, each after the longest backoff; the outcomes of each."""
    out = []
    for _ in range(n):
        out.append(d.deliver_due(d.clock.now()))
        d.clock.advance(PASS)
    return out


def copies(receiver: webhook_stub.WebhookReceiver, expected: int) -> int:
    """The requests the receiver read in full, once the late answers are all given (bounded wait)."""
    receiver.wait_for(expected, timeout=10 * LATE)
    time.sleep(0.1)  # a further request, if any, would have arrived by now: the passes are over
    return receiver.arrived


def test_send_tells_an_unknown_outcome_from_a_plain_failure(webhook):
    webhook.slow(LATE)
    late = send([webhook.url("json")], "t", "b", None, timeout=TIMEOUT)
    assert not late.ok and late.unknown and "may have" in late.reason
    webhook.restore()
    webhook.fail(500)
    answered = send([webhook.url("json")], "t", "b", None, timeout=TIMEOUT)
    assert not answered.ok and not answered.unknown
    webhook.refuse()
    refused = send([webhook.url("json")], "t", "b", None, timeout=TIMEOUT)
    assert not refused.ok and not refused.unknown
    webhook.restore()
    assert send([webhook.url("json")], "t", "b", None, timeout=TIMEOUT).ok


def test_a_receiver_answering_after_the_timeout_gets_the_alert_at_most_twice_and_it_is_counted(
        webhook, other, any_store, caplog):
    store = any_store
    webhook.slow(LATE)
    d = dispatcher(store, webhook.url("json", f"/{TOKEN}/hook"), other.url("json"))
    with caplog.at_level(logging.INFO, logger="macrowatch"):
        first, second, *rest = passes(d, 6)
    assert copies(webhook, 2) == 2 and all(r.status == 200 for r in webhook.requests)  # it took both
    assert len(other.requests) == 1           # the channel's other URL answered at once: it had it once
    assert store.pending() == 0 and was_sent(store, KEY, "desk")
    assert store.repeats() == (1, [(KEY, "desk", 1)])
    # The first send's outcome is unknown: a failure, counted as a possible repeat, retried after the backoff.
    assert [(o.ok, o.repeats) for o in first] == [(False, 1)] and "may have" in first[0].reason
    # The retry's outcome is unknown again: taken as reached, recorded sent; no third copy, no endless retries.
    assert [(o.ok, o.repeats) for o in second] == [(True, 0)] and rest == [[]] * 4
    report = outbox(store)  # what `macrowatch status` and the dashboard show
    assert report["possible_repeats"] == 1 and report["repeated"] == [{"key": KEY, "channel": "desk", "repeats": 1}]
    assert any(r.getMessage().startswith(f"possible repeat: alert {KEY} to channel desk") for r in caplog.records)
    assert any("unconfirmed" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert TOKEN not in caplog.text


def test_a_refused_connection_is_no_possible_repeat_and_is_retried_until_the_receiver_answers(webhook, store):
    webhook.refuse()
    d = dispatcher(store, webhook.url("json"))
    refused = passes(d, 3)                    # nothing written: plain failures, retried as before
    assert [[(o.ok, o.repeats) for o in p] for p in refused] == [[(False, 0)]] * 3
    assert webhook.arrived == 0 and store.repeats() == (0, [])
    webhook.restore()
    webhook.slow(LATE)                        # now it takes the request and answers late: counted once
    (late,) = d.deliver_due(d.clock.now())
    assert (late.ok, late.repeats, late.attempts) == (False, 1, 3)
    d.clock.advance(PASS)
    webhook.restore()                         # then it answers in time: the second copy, already counted
    (ok,) = d.deliver_due(d.clock.now())
    assert ok.ok and store.pending() == 0
    assert copies(webhook, 2) == 2 and store.repeats() == (1, [(KEY, "desk", 1)])


def test_an_unknown_outcome_then_refusals_still_sends_no_third_copy(webhook, store):
    """After one unknown outcome, a refused retry is retried again; the next unknown one is taken as reached."""
    webhook.slow(LATE)
    d = dispatcher(store, webhook.url("json"))
    (late,) = d.deliver_due(d.clock.now())
    assert (late.ok, late.repeats) == (False, 1)
    webhook.wait_for(1, timeout=10 * LATE)
    webhook.refuse()
    d.clock.advance(PASS)
    (refused,) = d.deliver_due(d.clock.now())
    assert (refused.ok, refused.repeats) == (False, 0)
    webhook.restore()
    webhook.slow(LATE)
    d.clock.advance(PASS)
    (again,) = d.deliver_due(d.clock.now())
    assert (again.ok, again.repeats) == (True, 0)
    assert copies(webhook, 2) == 2 and store.repeats() == (1, [(KEY, "desk", 1)])
    assert passes(d, 2) == [[], []]


def test_the_daemon_counts_a_hung_receiver_once_per_channel_and_sends_it_no_third_copy(world):
    """The daemon end to end: its two channels post to a receiver that hangs beyond their 0.5 s read timeout."""
    w = world
    w.daemon.metrics = metrics = Metrics()
    w.clock.set(w.close + MINUTE)
    w.alerts.slow(30.0)                           # it takes every request and holds it: answered at restore()
    assert [(a.rule, a.message) for a in w.job(w.daemon.check_closes)] == [BREAKOUT]
    w.tick(20)                                    # every backoff passes: no endless retries
    assert w.daemon.alerts.dispatcher.pending() == 0 and attempts(w.store_path) == {"trading": 1, "desk": 1}
    w.alerts.restore()                            # the held requests are answered now (200): all were taken
    w.alerts.wait_for(4, timeout=5.0)
    assert w.delivered() == {("breakout", "trading"): 2, ("breakout", "desk"): 2}
    assert w.alerts.arrived == 4
    total, repeated = w.store.repeats()
    assert total == 2 and {(c, n) for _key, c, n in repeated} == {("trading", 1), ("desk", 1)}
    assert metrics.get("macrowatch_possible_repeats_total") == 2
    assert "macrowatch_possible_repeats_total 2" in metrics.render()
    assert w.ops_alerts() == [] and w.raised == []  # taken as sent: no "5 failed attempts"
