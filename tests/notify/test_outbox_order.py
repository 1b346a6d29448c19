"""The outbox delivers in the order the alerts fired: by their time, ties in the order they were queued.

Keys begin with the rule's name; ties used to fall to the keys, so that two alerts of one moment arrived in the
alphabetical order of their rules. Real apprise to the webhook receiver, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from macrowatch.clock import FakeClock
from macrowatch.config.types import Channel
from macrowatch.model import Alert
from macrowatch.notify.outbox import Dispatcher
from macrowatch.store import open_store
from stubs import webhook as webhook_stub

webhook = webhook_stub.webhook  # the receiver fixture
UTC = dt.UTC
NOW = dt.datetime(2019, 7, 8, 20, 5, tzinfo=UTC)
T0, T1, T2 = (dt.datetime(2019, 7, 8, 20, 0, tzinfo=UTC) + dt.timedelta(minutes=m) for m in (-60, 0, 1))


def alert(rule: str, at: dt.datetime) -> Alert:
    return Alert(rule, at, "info", {}, f"{rule} fired", {}, f"{rule}|{at:%Y-%m-%dT%H:%M}", ("desk",), None)


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path: Path) -> str:
    return str(tmp_path / "mw.sqlite") if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def test_alerts_queued_at_one_moment_arrive_in_time_order_ties_in_the_order_queued(target, webhook):
    # Queued in one pass, at one `now`, in this order; their keys (rule names) sort the other way round.
    first, second = alert("zz-confirmed", T1), alert("aa-breakout", T1)   # one moment: the engine's order
    later, earlier = alert("ab-later", T2), alert("zy-earlier", T0)       # queued in reverse time order
    with open_store(target) as store:
        d = Dispatcher(store, {"desk": Channel("desk", "$DESK_URLS", (webhook.url("json"),))}, FakeClock(NOW))
        assert len(d.submit([first, second, later, earlier], NOW)) == 4
        assert [o.ok for o in d.deliver_due(NOW)] == [True] * 4
    titles = [r.json()["title"].split("] ", 1)[1] for r in webhook.requests]
    assert titles == ["zy-earlier", "zz-confirmed", "aa-breakout", "ab-later"]
