"""The store on real SQLite files and a real PostgreSQL server: round trips, write semantics, location, schema
versions, crashes. The `store` and `target` fixtures run each test on both backends (PostgreSQL is skipped,
saying why, where no server can start); tests of files and pragmas are SQLite's alone."""

from __future__ import annotations

import datetime as dt
import signal
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from macrowatch.model import Alert, Bar, Vintage
from macrowatch.store import ERROR_MAX, SCHEMA_VERSION, Delivery, Store, StoreError, default_path, open_store
from store.helpers import was_sent

NY = ZoneInfo("America/New_York")
UTC = dt.UTC
T0 = dt.datetime(2019, 8, 2, 12, 0, tzinfo=UTC)


def bar(day: int, close: float = 2950.0, month: int = 8) -> Bar:
    """A bar of 2019-MM-DD closing at 16:00 New York time."""
    session = dt.date(2019, month, day)
    at = dt.datetime.combine(session, dt.time(16, 0), NY)
    return Bar(session, at, close - 10, close + 5, close - 20, close, 1.5e9)


def vintage(month: int, published: str, value: float) -> Vintage:
    """A value for 2019-MM-01 as known from `published` on."""
    return Vintage(dt.date(2019, month, 1), dt.date.fromisoformat(published), value)


def alert(key: str = "spx-breakout|2019-08-02", rule: str = "spx-breakout", **kw) -> Alert:
    """An alert whose evidence is already plain JSON, so that it round-trips to an equal Alert."""
    fields = dict(rule=rule, at=dt.datetime(2019, 8, 2, 16, 0, tzinfo=NY), severity="critical",
                  labels={"desk": "us"}, message="S&P 500 3010.25", key=key,
                  evidence={"spx-3000": {"state": "breakout", "close": 3010.25}, "payrolls": {"actual": 164.0}},
                  notify=("trading", "ops"), chart="spx", trigger="close")
    return Alert(**(fields | kw))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "mw.sqlite"


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, path: Path) -> str:
    """Where a store lives: a SQLite file path, or a fresh PostgreSQL database's URL."""
    return str(path) if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def store(target: str):
    with open_store(target) as s:
        yield s


def rows(target: str, sql: str) -> list[tuple]:
    """Query a store's database through a second connection of its own backend."""
    with open_store(target) as s:
        return [tuple(r) for r in s._db.query(sql)]


def raw(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Query the file behind the store's back, the way an operator with the sqlite3 shell would."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# ---- round trips ---------------------------------------------------------------------------------------

def test_bars_round_trip_in_session_order_with_tz_aware_times(store: Store):
    given = [bar(5, 2844.74), bar(1, 2953.56), bar(2, 2932.05)]
    assert store.put_bars("spx", given) == 3
    got = store.bars("spx")
    assert got == sorted(given, key=lambda b: b.session)
    assert all(b.at.tzinfo is not None and b.at.utcoffset() == dt.timedelta(0) for b in got)
    assert got[0].at == dt.datetime(2019, 8, 1, 20, 0, tzinfo=UTC)  # 16:00 EDT is 20:00 UTC


def test_bars_since_and_per_instrument(store: Store):
    store.put_bars("spx", [bar(1), bar(2), bar(5)])
    store.put_bars("rut", [bar(2, 1550.0)])
    assert [b.session.day for b in store.bars("spx", since=dt.date(2019, 8, 2))] == [2, 5]
    assert [b.close for b in store.bars("rut")] == [1550.0]
    assert store.bars("nope") == []


def test_vintages_round_trip_ordered_by_date_then_realtime_start(store: Store):
    given = [vintage(7, "2019-09-06", 151.75), vintage(6, "2019-07-05", 151.5), vintage(7, "2019-08-02", 151.6)]
    assert store.put_vintages("PAYEMS", given) == 3
    assert store.vintages("PAYEMS") == sorted(given, key=lambda v: (v.date, v.realtime_start))
    assert store.vintages("UNRATE") == []


@pytest.mark.parametrize("data", [
    pytest.param({}, id="empty"),
    pytest.param({"version": 1, "levels": {"spx-3000": {"state": "breakout", "frozen": 3000.0}}}, id="nested"),
    pytest.param({"closes": {"spx": [2950.5, 2960.25]}, "last_session": None, "flag": True}, id="lists-and-null"),
    pytest.param({"name": "S&P 500 — ünïcode"}, id="unicode"),
])
def test_state_round_trip(store: Store, data: dict):
    store.save_state("engine", data)
    assert store.load_state("engine") == data


def test_state_is_replaced_whole_and_missing_is_none(store: Store):
    assert store.load_state("engine") is None
    store.save_state("engine", {"a": 1, "b": 2})
    store.save_state("engine", {"c": 3})
    assert store.load_state("engine") == {"c": 3}


def test_state_that_is_not_json_is_refused_and_the_old_state_kept(store: Store):
    store.save_state("engine", {"a": 1})
    with pytest.raises(StoreError, match="not plain JSON"):
        store.save_state("engine", {"when": dt.date(2019, 8, 2)})
    assert store.load_state("engine") == {"a": 1}


def test_alert_round_trips_through_the_outbox(store: Store):
    a = alert()
    assert store.enqueue(a, ["trading"], T0)
    [d] = store.due(T0)
    assert d == Delivery(a.key, "trading", 0, T0, None, a)
    assert d.alert.at.utcoffset() == dt.timedelta(hours=-4)  # the alert keeps its own offset
    assert (d.alert.notify, d.alert.chart, d.alert.trigger) == (("trading", "ops"), "spx", "close")


def test_summary_lists_instruments_then_series(store: Store):
    assert store.summary() == []
    store.put_bars("spx", [bar(1), bar(5), bar(2)])
    store.put_bars("rut", [bar(2)])
    store.put_vintages("PAYEMS", [vintage(6, "2019-07-05", 1.0), vintage(7, "2019-08-02", 2.0),
                                  vintage(7, "2019-09-06", 3.0)])
    assert store.summary() == [
        ("instrument", "rut", 1, "2019-08-02", "2019-08-02"),
        ("instrument", "spx", 3, "2019-08-01", "2019-08-05"),
        ("series", "PAYEMS", 3, "2019-06-01", "2019-07-01"),
    ]


# ---- write semantics -----------------------------------------------------------------------------------

@pytest.mark.parametrize("second, written, closes", [
    pytest.param([bar(2, 2999.0)], 1, [2950.0, 2999.0], id="refetched-session-replaces"),
    pytest.param([bar(1), bar(2)], 2, [2950.0, 2950.0], id="same-bars-rewritten"),
    pytest.param([bar(5, 2844.0)], 1, [2950.0, 2950.0, 2844.0], id="new-session-added"),
    pytest.param([], 0, [2950.0, 2950.0], id="nothing"),
])
def test_put_bars_upserts_by_session(store: Store, second, written, closes):
    assert store.put_bars("spx", [bar(1), bar(2)]) == 2
    assert store.put_bars("spx", second) == written
    assert [b.close for b in store.bars("spx")] == closes


@pytest.mark.parametrize("second, new, count", [
    pytest.param([vintage(7, "2019-08-02", 164.0)], 0, 1, id="same-vintage-ignored"),
    pytest.param([vintage(7, "2019-08-02", 999.0)], 0, 1, id="same-key-other-value-ignored"),
    pytest.param([vintage(7, "2019-09-06", 159.0)], 1, 2, id="revision-is-new"),
    pytest.param([vintage(8, "2019-09-06", 130.0)], 1, 2, id="new-observation-is-new"),
    pytest.param([vintage(7, "2019-08-02", 164.0), vintage(7, "2019-09-06", 159.0),
                  vintage(8, "2019-09-06", 130.0)], 2, 3, id="mixed-counts-only-new"),
])
def test_put_vintages_inserts_only_new(store: Store, second, new, count):
    assert store.put_vintages("PAYEMS", [vintage(7, "2019-08-02", 164.0)]) == 1
    assert store.put_vintages("PAYEMS", second) == new
    assert len(store.vintages("PAYEMS")) == count
    assert store.vintages("PAYEMS")[0].value == 164.0  # the first print is never overwritten


@pytest.mark.parametrize("call, message", [
    pytest.param(lambda s: s.put_bars("spx", [replace(bar(1), close=float("nan"))]), "close is nan", id="nan-close"),
    pytest.param(lambda s: s.put_vintages("X", [vintage(1, "2019-02-01", float("inf"))]), "value is inf",
                 id="inf-vintage"),
    pytest.param(lambda s: s.put_bars("spx", [Bar(dt.date(2019, 8, 1), dt.datetime(2019, 8, 1, 16), 1, 1, 1, 1)]),
                 "naive datetime", id="naive-bar-time"),
    pytest.param(lambda s: s.due(dt.datetime(2019, 8, 1)), "naive datetime", id="naive-now"),
])
def test_bad_values_are_refused_before_writing(store: Store, call, message):
    store.put_bars("spx", [bar(2)])
    with pytest.raises(ValueError, match=message):
        call(store)
    assert [b.session.day for b in store.bars("spx")] == [2]


def test_a_batch_with_one_bad_bar_writes_none_of_it(store: Store):
    with pytest.raises(ValueError):
        store.put_bars("spx", [bar(1), bar(2, float("nan"))])
    assert store.bars("spx") == []


# ---- outbox --------------------------------------------------------------------------------------------

def test_enqueue_twice_is_refused_and_changes_nothing(store: Store):
    assert store.enqueue(alert(), ["trading", "ops"], T0) is True
    assert store.enqueue(alert(message="other text"), ["trading", "ops", "pager"], T0 + dt.timedelta(hours=1)) is False
    assert store.pending() == 2
    assert {d.channel for d in store.due(T0 + dt.timedelta(days=1))} == {"trading", "ops"}
    assert store.due(T0)[0].alert.message == "S&P 500 3010.25"


def test_a_next_try_beyond_the_latest_is_due_at_once(store: Store):
    """A next try later than `latest` (the backoff's cap from now) was set before the clock stepped back."""
    store.enqueue(alert("a"), ["trading"], T0)
    store.mark_failed("a", "trading", T0, "500", T0 + dt.timedelta(seconds=10))
    back = T0 - dt.timedelta(hours=1)  # the clock stepped back an hour
    assert store.due(back) == []
    assert [d.channel for d in store.due(back, back + dt.timedelta(minutes=15))] == ["trading"]
    assert store.due(back, back + dt.timedelta(hours=2)) == []


def test_a_channel_named_twice_is_one_delivery(store: Store):
    store.enqueue(alert(), ["trading", "trading"], T0)
    assert store.pending() == 1


def test_delivery_flow_with_retries_and_times(store: Store):
    a, b = alert("a"), alert("b", rule="other")
    assert store.enqueue(a, ["trading", "ops"], T0)
    assert store.enqueue(b, ["trading"], T0 + dt.timedelta(minutes=1))
    assert store.due(T0 - dt.timedelta(seconds=1)) == []
    assert [(d.key, d.channel) for d in store.due(T0)] == [("a", "ops"), ("a", "trading")]

    t1 = T0 + dt.timedelta(minutes=2)
    assert [(d.key, d.channel) for d in store.due(t1)] == [("a", "ops"), ("a", "trading"), ("b", "trading")]
    store.mark_sent("a", "trading", t1)
    store.mark_failed("a", "ops", t1, "HTTP 503 from <masked>", next_at=t1 + dt.timedelta(minutes=5))
    assert [(d.key, d.channel) for d in store.due(t1)] == [("b", "trading")]
    assert (store.pending(), was_sent(store, "a", "trading"), was_sent(store, "a", "ops")) == (2, True, False)

    t2 = t1 + dt.timedelta(minutes=5)
    [retry, waiting] = store.due(t2)  # the retry waited since t1 + 5 min, b since T0 + 1 min: b first
    assert (waiting.key, retry.key) == ("a", "b")
    assert (waiting.attempts, waiting.next_at, waiting.last_error) == (1, t2, "HTTP 503 from <masked>")
    store.mark_failed("a", "ops", t2, "timeout", next_at=t2 + dt.timedelta(minutes=10))
    assert store.due(t2 + dt.timedelta(minutes=10))[-1].attempts == 2

    t3 = t2 + dt.timedelta(minutes=10)
    store.mark_sent("a", "ops", t3)
    store.mark_sent("b", "trading", t3 + dt.timedelta(seconds=1))
    assert (store.pending(), store.due(t3 + dt.timedelta(days=1))) == (0, [])
    assert store.sent_log(10) == [("b", "trading", t3 + dt.timedelta(seconds=1)), ("a", "ops", t3),
                                  ("a", "trading", t1)]
    assert store.sent_log(1) == [("b", "trading", t3 + dt.timedelta(seconds=1))]


def test_a_late_result_does_not_undo_a_send(store: Store):
    store.enqueue(alert("a"), ["trading"], T0)
    store.mark_sent("a", "trading", T0)
    store.mark_failed("a", "trading", T0 + dt.timedelta(seconds=1), "late", T0 + dt.timedelta(minutes=1))
    store.mark_sent("a", "trading", T0 + dt.timedelta(seconds=2))
    assert store.sent_log(5) == [("a", "trading", T0)]
    assert store.pending() == 0


@pytest.mark.parametrize("call", [
    pytest.param(lambda s: s.mark_sent("nope", "trading", T0), id="sent-unknown-key"),
    pytest.param(lambda s: s.mark_failed("a", "pager", T0, "x", T0), id="failed-unknown-channel"),
])
def test_marking_an_unknown_delivery_is_an_error(store: Store, call):
    store.enqueue(alert("a"), ["trading"], T0)
    with pytest.raises(StoreError, match="no delivery"):
        call(store)


@pytest.mark.parametrize("error, stored", [
    pytest.param("HTTP 500", "HTTP 500", id="short-kept"),
    pytest.param("first line\nTraceback...\n  more", "first line", id="first-line-only"),
    pytest.param("POST https://hooks.slack.com/services/T0/B0/secret failed", "POST <url> failed", id="url-blanked"),
    pytest.param("x" * 1000, "x" * (ERROR_MAX - 1) + "…", id="truncated"),
    pytest.param("", "unknown error", id="empty"),
])
def test_stored_errors_are_short_and_carry_no_urls(store: Store, error, stored):
    store.enqueue(alert("a"), ["trading"], T0)
    store.mark_failed("a", "trading", T0, error, T0)
    [d] = store.due(T0)
    assert d.last_error == stored
    assert len(d.last_error) <= ERROR_MAX


# ---- location and opening ------------------------------------------------------------------------------

def test_default_location_under_systemd(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path / 'state'}:{tmp_path / 'other'}")
    assert default_path() == tmp_path / "state" / "macrowatch.sqlite"
    with open_store(None) as s:
        s.save_state("x", {"ok": True})
    assert (tmp_path / "state" / "macrowatch.sqlite").is_file()


def test_default_location_in_home(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = tmp_path / ".local" / "state" / "macrowatch" / "macrowatch.sqlite"
    assert default_path() == expected
    with open_store(None) as s:
        s.save_state("x", {"ok": True})
    assert expected.is_file()


def test_parent_directories_are_created(tmp_path: Path):
    target = tmp_path / "a" / "b" / "c" / "mw.sqlite"
    open_store(str(target)).close()
    assert target.is_file()


def test_wal_and_connection_settings(path: Path):
    store = open_store(path)
    assert raw(path, "PRAGMA journal_mode") == [("wal",)]
    db = store._db  # per-connection settings are visible only on the store's own connection
    assert db.query("PRAGMA foreign_keys") == [(1,)]
    assert db.query("PRAGMA synchronous") == [(1,)]  # NORMAL
    assert db.query("PRAGMA busy_timeout")[0][0] > 0
    store.close()


def test_migration_from_an_empty_file(path: Path):
    path.parent.mkdir(parents=True)
    path.touch()
    open_store(path).close()
    assert raw(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    tables = {r[0] for r in raw(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "bars", "vintages", "state", "alerts", "deliveries"} <= tables


def test_a_version_2_store_is_migrated_keeping_its_outbox(path: Path):
    """Version 3 keeps which URLs of a channel have an alert: a version-2 delivery has none reached yet."""
    from macrowatch.store.base import utc_text
    from macrowatch.store.outbox import _payload
    from macrowatch.store.schema import MIGRATIONS

    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    for sql in MIGRATIONS[0] + MIGRATIONS[1]:
        conn.execute(sql)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '2')")
    alert = Alert("r", T0, "info", {}, "m", {}, "k")
    conn.execute("INSERT INTO alerts VALUES ('k', 'r', ?, ?, ?)", (utc_text(T0), _payload(alert), utc_text(T0)))
    conn.execute("INSERT INTO deliveries (alert_key, channel, next_at) VALUES ('k', 'desk', ?)", (utc_text(T0),))
    conn.commit()
    conn.close()
    with open_store(path) as s:
        (d,) = s.due(T0 + dt.timedelta(seconds=1))
        assert (d.key, d.channel, d.reached) == ("k", "desk", frozenset())
        s.mark_failed("k", "desk", T0, "one URL failed", T0 + dt.timedelta(seconds=10), reached=["ab12", "cd34"])
        s.mark_failed("k", "desk", T0, "still failing", T0 + dt.timedelta(seconds=20))  # none new: kept
        (d,) = s.due(T0 + dt.timedelta(seconds=30))
        assert d.reached == frozenset({"ab12", "cd34"}) and d.attempts == 2
    assert raw(path, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]


def test_reopening_a_current_store_changes_nothing(path: Path):
    with open_store(path) as s:
        s.put_bars("spx", [bar(1)])
    with open_store(path) as s:
        assert len(s.bars("spx")) == 1
    assert raw(path, "SELECT COUNT(*) FROM meta") == [(2,)]


def test_a_newer_store_is_refused_and_left_unchanged(path: Path):
    with open_store(path) as s:
        s.put_bars("spx", [bar(1)])
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError) as err:
        open_store(path)
    assert str(err.value) == (f"store {path} has schema version {SCHEMA_VERSION + 1}; this macrowatch knows up "
                              f"to {SCHEMA_VERSION}: upgrade macrowatch")
    assert path.read_bytes() == before


def _foreign_sqlite(path: Path, *sql: str) -> None:
    conn = sqlite3.connect(path)
    for s in sql:
        conn.execute(s)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("make, message", [
    pytest.param(lambda p: p.write_text("timezone: America/New_York\n"), "the file is not an SQLite database",
                 id="yaml-text"),
    pytest.param(lambda p: p.write_bytes(bytes(range(256)) * 40), "the file is not an SQLite database",
                 id="binary-garbage"),
    pytest.param(lambda p: _foreign_sqlite(p, "CREATE TABLE moz_places (id INTEGER)"),
                 r"the database has other tables \(moz_places\) and no macrowatch meta table", id="other-app-sqlite"),
    pytest.param(lambda p: _foreign_sqlite(p, "CREATE TABLE meta (key TEXT, value TEXT)",
                                           "INSERT INTO meta VALUES ('application', 'grafana')"),
                 "its meta table names no macrowatch", id="other-app-meta"),
    pytest.param(lambda p: _foreign_sqlite(p, "CREATE TABLE meta (key TEXT, value TEXT)",
                                           "INSERT INTO meta VALUES ('application', 'macrowatch')",
                                           "INSERT INTO meta VALUES ('schema_version', 'two')"),
                 "bad schema version 'two'", id="bad-version"),
])
def test_a_file_that_is_not_a_macrowatch_store_is_refused_clearly(path: Path, make, message):
    path.parent.mkdir(parents=True)
    make(path)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=message) as err:
        open_store(path)
    assert str(path) in str(err.value)
    assert path.read_bytes() == before


def test_a_directory_is_refused(tmp_path: Path):
    with pytest.raises(StoreError, match="is not a file"):
        open_store(tmp_path)


def test_context_manager_closes(target: str):
    with open_store(target) as s:
        pass
    with pytest.raises(StoreError, match="closed"):
        s.pending()


# ---- restarts and crashes ------------------------------------------------------------------------------

def test_a_restart_sees_everything_the_first_store_wrote(target: str):
    first = open_store(target)
    first.put_bars("spx", [bar(1), bar(2)])
    first.put_vintages("PAYEMS", [vintage(7, "2019-08-02", 164.0)])
    first.save_state("engine", {"bar_index": 7})
    first.enqueue(alert("a"), ["trading", "ops"], T0)
    first.mark_sent("a", "trading", T0)
    second = open_store(target)  # the first is still open: WAL readers see committed writes
    assert len(second.bars("spx")) == 2
    assert second.vintages("PAYEMS") == [vintage(7, "2019-08-02", 164.0)]
    assert second.load_state("engine") == {"bar_index": 7}
    assert (second.pending(), was_sent(second, "a", "trading")) == (1, True)
    assert second.enqueue(alert("a"), ["trading", "ops"], T0) is False  # a restart never repeats an alert
    second.put_bars("spx", [bar(5)])
    assert len(first.bars("spx")) == 3
    first.close()
    second.close()


OPENER = "import sys; from macrowatch.store import open_store; open_store(sys.argv[1]).save_state(sys.argv[2], {})"


def test_processes_opening_a_new_store_at_once_all_succeed(target: str):
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, target, f"p{i}"], stderr=subprocess.PIPE, text=True)
             for i in range(8)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    for p in procs:
        p.stderr.close()
    assert results == [(0, "")] * 8
    assert rows(target, "SELECT COUNT(*) FROM state") == [(8,)]


WRITER = textwrap.dedent("""
    import datetime as dt, sys
    from zoneinfo import ZoneInfo
    from macrowatch.model import Alert, Bar, Vintage
    from macrowatch.store import open_store

    store = open_store(sys.argv[1])
    t0 = dt.datetime(2019, 1, 1, 21, tzinfo=dt.UTC)
    for i in range(10**9):
        day = dt.date(2000, 1, 1) + dt.timedelta(days=i)
        at = dt.datetime.combine(day, dt.time(16), ZoneInfo("America/New_York"))
        store.put_bars("spx", [Bar(day, at, 1.0, 2.0, 0.5, 1.5 + i, 10.0)])
        store.put_vintages("PAYEMS", [Vintage(day, day, float(i))])
        a = Alert("r", at, "info", {"i": str(i)}, "m" * 500, {"i": i}, f"k{i}")
        store.enqueue(a, ["trading", "ops", "pager"], t0)
        store.save_state("engine", {"i": i, "pad": "x" * 2000})
        if i == 50:
            print("ready", flush=True)
""")


def test_a_killed_writer_leaves_a_clean_store(target: str):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, target], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    with open_store(target) as s:
        if s.dialect == "sqlite":
            assert raw(Path(target), "PRAGMA integrity_check") == [("ok",)]
        state = s.load_state("engine")
        assert state is not None and state["i"] >= 50
        assert len(s.bars("spx")) >= state["i"] + 1  # each write landed whole, in order
        alerts = rows(target, "SELECT COUNT(*) FROM alerts")[0][0]
        assert alerts >= state["i"] + 1
        assert s.pending() == 3 * alerts  # never an alert without all its deliveries
        s.put_bars("spx", [bar(1)])  # and it takes writes again
