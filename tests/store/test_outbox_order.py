"""The outbox's due order: next try, then the alert's time, then the order the alerts were queued (never the key);
and the migration that numbers the alerts of an older store. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from macrowatch.model import Alert
from macrowatch.store import SCHEMA_VERSION, open_store
from macrowatch.store.base import utc_text
from macrowatch.store.outbox import _payload
from macrowatch.store.schema import MIGRATIONS
from store.helpers import raw_db

UTC = dt.UTC
T0 = dt.datetime(2019, 7, 8, 20, 0, tzinfo=UTC)


def alert(key: str, at: dt.datetime = T0) -> Alert:
    return Alert(key.split("|")[0], at, "info", {}, "", {}, key, ("desk",))


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path: Path) -> str:
    return str(tmp_path / "mw.sqlite") if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def test_due_is_by_next_try_then_alert_time_then_the_order_queued(target):
    now = T0 + dt.timedelta(minutes=5)
    with open_store(target) as s:
        for a in (alert("zz|1"), alert("aa|1"), alert("mm|late", T0 + dt.timedelta(minutes=1)),
                  alert("yy|early", T0 - dt.timedelta(hours=1))):
            assert s.enqueue(a, ["desk"], now)
        assert s.enqueue(alert("ab|waited"), ["desk"], now - dt.timedelta(seconds=1))  # due longer: first
        assert [d.key for d in s.due(now)] == ["ab|waited", "yy|early", "zz|1", "aa|1", "mm|late"]


def test_a_version_5_store_numbers_its_alerts_in_the_order_queued_then_by_key(target):
    assert SCHEMA_VERSION >= 6
    e1, e2 = T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(seconds=2)
    db = raw_db(target)
    with db.transaction() as tx:
        for step in MIGRATIONS[:5]:
            for sql in step:
                tx.execute(sql)
        tx.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '5')")
        # Inserted in another order than they were queued (enqueued_at), which is all a version 5 store knows.
        for key, enqueued in (("a|1", e2), ("c|1", e1), ("b|1", e1)):
            tx.execute("INSERT INTO alerts VALUES (?, ?, ?, ?, ?)",
                       (key, key[0], utc_text(T0), _payload(alert(key)), utc_text(enqueued)))
            tx.execute("INSERT INTO deliveries (alert_key, channel, next_at) VALUES (?, 'desk', ?)",
                       (key, utc_text(e2)))
    db.close()
    with open_store(target) as s:
        assert s._db.query("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
        assert [d.key for d in s.due(e2)] == ["b|1", "c|1", "a|1"]
        assert s.enqueue(alert("0|1"), ["desk"], e2)  # queued after them: after them
        assert [d.key for d in s.due(e2)] == ["b|1", "c|1", "a|1", "0|1"]
        s.mark_sent("b|1", "desk", e2)
    with open_store(target) as s:  # reopened: nothing migrated twice
        assert [d.key for d in s.due(e2)] == ["c|1", "a|1", "0|1"]
