"""What the store keeps for the live sources (schema 5), on SQLite and a real PostgreSQL server: consensus forecasts
point in time, query counts against the publishers' quotas, and which source showed each first print first."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from macrowatch.model import Alert
from macrowatch.store import SCHEMA_VERSION, Fenced, ForecastRow, Store, open_store
from macrowatch.store.base import utc_text
from macrowatch.store.outbox import _payload
from macrowatch.store.schema import MIGRATIONS
from store.helpers import raw_db

NY = ZoneInfo("America/New_York")
UTC = dt.UTC
RELEASE = dt.datetime(2026, 12, 4, 8, 30, tzinfo=NY)  # 13:30 UTC
NFP = ("forexfactory", "Non-Farm Employment Change", "USD")
DAY = dt.date(2026, 12, 4)
US = dt.timedelta(microseconds=1)


def hours(n: float) -> dt.datetime:
    """`n` hours after (negative: before) the release."""
    return RELEASE + dt.timedelta(hours=n)


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, tmp_path: Path) -> str:
    return str(tmp_path / "mw.sqlite") if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def store(target: str):
    with open_store(target) as s:
        yield s


class Fixed:
    """A fence with a fixed holder and token (what a TermFence gives while its term lasts)."""

    def __init__(self, holder: str, token: int | None):
        self.holder, self._token = holder, token

    def token(self) -> int | None:
        return self._token


# ---- forecasts -------------------------------------------------------------------------------------------

def test_polling_the_same_value_all_week_stores_one_row_and_each_change_one_more(store: Store):
    polls = [(-72, 185000.0, True), (-48, 185000.0, False), (-24, 185000.0, False), (-2, 190000.0, True),
             (-1, 190000.0, False), (-0.5, 185000.0, True)]
    assert [store.put_forecast(*NFP, RELEASE, value, hours(h), note=f"{value / 1000:g}K") for h, value, _ in polls] \
        == [stored for _, _, stored in polls]
    assert [(r.value, r.seen_at, r.note) for r in store.forecasts()] == [
        (185000.0, hours(-72), "185K"), (190000.0, hours(-2), "190K"), (185000.0, hours(-0.5), "185K")]


def test_each_release_and_feed_keeps_its_own_history(store: Store):
    store.put_forecast(*NFP, RELEASE, 185000.0, hours(-24))
    # The same number for another release, feed, event or country is a row of its own.
    assert store.put_forecast(*NFP, RELEASE + dt.timedelta(days=28), 185000.0, hours(-24))
    assert store.put_forecast("nasdaq", NFP[1], "USD", RELEASE, 185000.0, hours(-24))
    assert store.put_forecast("forexfactory", "Unemployment Rate", "USD", RELEASE, 185000.0, hours(-24))
    assert store.put_forecast("forexfactory", NFP[1], "CAD", RELEASE, 185000.0, hours(-24))
    assert len(store.forecasts()) == 5
    assert store.forecast_before("nasdaq", "Unemployment Rate", "USD", RELEASE, RELEASE) is None


def test_the_outcome_takes_the_newest_value_seen_strictly_before_the_release(store: Store):
    store.put_forecast(*NFP, RELEASE, 185000.0, hours(-24))
    store.put_forecast(*NFP, RELEASE, 190000.0, RELEASE - US)
    store.put_forecast(*NFP, RELEASE, 200000.0, RELEASE)          # seen at the release second: too late
    assert store.forecast_before(*NFP, RELEASE, RELEASE) == (190000.0, RELEASE - US)
    assert store.forecast_before(*NFP, RELEASE, RELEASE - US) == (185000.0, hours(-24))
    assert store.forecast_before(*NFP, RELEASE, hours(1)) == (200000.0, RELEASE)
    assert store.forecast_before(*NFP, RELEASE, hours(-24)) is None


def test_a_forecast_first_seen_after_the_release_never_counts(store: Store):
    store.put_forecast(*NFP, RELEASE, 185000.0, hours(0.25))     # the daemon started after 08:30
    assert store.forecast_before(*NFP, RELEASE, RELEASE) is None
    assert [r.seen_at for r in store.forecasts()] == [hours(0.25)]


def test_listed_without_a_forecast_is_kept_as_none(store: Store):
    assert store.put_forecast(*NFP, RELEASE, None, hours(-48), note="")
    assert store.put_forecast(*NFP, RELEASE, None, hours(-24)) is False
    assert store.forecast_before(*NFP, RELEASE, RELEASE) == (None, hours(-48))
    assert store.put_forecast(*NFP, RELEASE, 185000.0, hours(-2))
    assert store.put_forecast(*NFP, RELEASE, None, hours(-1))    # the feed dropped its number again
    assert store.forecast_before(*NFP, RELEASE, RELEASE) == (None, hours(-1))
    assert store.forecast_before(*NFP, RELEASE, hours(-1.5)) == (185000.0, hours(-2))


def test_a_sighting_recorded_late_is_placed_by_its_seen_time(store: Store):
    store.put_forecast(*NFP, RELEASE, 185000.0, hours(-2))
    assert store.put_forecast(*NFP, RELEASE, 185000.0, hours(-3))  # nothing seen before it: stored
    assert store.put_forecast(*NFP, RELEASE, 185000.0, hours(-1)) is False
    assert store.forecast_before(*NFP, RELEASE, hours(-2.5)) == (185000.0, hours(-3))
    # Two values at the same instant: the later call is the newer knowledge.
    assert store.put_forecast(*NFP, RELEASE, 190000.0, hours(-1))
    assert store.forecast_before(*NFP, RELEASE, RELEASE) == (190000.0, hours(-1))
    assert len(store.forecasts()) == 3


def test_forecasts_come_back_as_aware_utc_oldest_sighting_first_and_since_filters_by_release(store: Store):
    earlier = RELEASE - dt.timedelta(days=28)
    store.put_forecast(*NFP, RELEASE, 185000.0, hours(-48))
    store.put_forecast(*NFP, earlier, 150123.456789, earlier - dt.timedelta(hours=2), note="150K")
    store.put_forecast("nasdaq", NFP[1], "USD", RELEASE, 180000.0, hours(-50))
    got = store.forecasts()
    assert [(r.feed, r.value) for r in got] == [("forexfactory", 150123.456789), ("nasdaq", 180000.0),
                                                ("forexfactory", 185000.0)]
    assert got[0] == ForecastRow(*NFP, earlier, 150123.456789, earlier - dt.timedelta(hours=2), "150K")
    assert all(r.release_at.utcoffset() == dt.timedelta(0) == r.seen_at.utcoffset() for r in got)
    assert got[2].release_at == dt.datetime(2026, 12, 4, 13, 30, tzinfo=UTC)
    assert [r.value for r in store.forecasts(since=RELEASE)] == [180000.0, 185000.0]
    assert store.forecasts(since=RELEASE + US) == []


@pytest.mark.parametrize("value, release_at, seen_at, error", [
    pytest.param(float("nan"), RELEASE, hours(-1), "finite numbers only", id="nan"),
    pytest.param(float("inf"), RELEASE, hours(-1), "finite numbers only", id="inf"),
    pytest.param(1.0, RELEASE.replace(tzinfo=None), hours(-1), "naive datetime", id="naive-release"),
    pytest.param(1.0, RELEASE, hours(-1).replace(tzinfo=None), "naive datetime", id="naive-seen"),
])
def test_bad_forecasts_are_refused_before_writing(store: Store, value, release_at, seen_at, error):
    with pytest.raises(ValueError, match=error):
        store.put_forecast(*NFP, release_at, value, seen_at)
    assert store.forecasts() == []


# ---- query budgets ---------------------------------------------------------------------------------------

def test_queries_are_counted_per_source_and_day(store: Store):
    assert store.queries("bls", DAY) == 0
    assert store.count_queries("bls", DAY) == 1
    assert store.count_queries("bls", DAY, 5) == 6
    assert store.count_queries("bls", DAY + dt.timedelta(days=1)) == 1
    assert store.count_queries("fred", DAY, 2) == 2
    assert (store.queries("bls", DAY), store.queries("fred", DAY)) == (6, 2)


def test_counting_from_two_instances_at_once_loses_nothing(target: str):
    per_thread = 60
    totals: list[int] = []
    errors: list[BaseException] = []
    stores = [open_store(target), open_store(target)]  # two connections, as two instances have

    def count(s: Store) -> None:
        try:
            for _ in range(per_thread):
                totals.append(s.count_queries("bls", DAY))
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=count, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == []
    # Every increment landed, and each saw a total of its own: no two read the same count.
    assert sorted(totals) == list(range(1, 2 * per_thread + 1))
    with open_store(target) as s:
        assert s.queries("bls", DAY) == 2 * per_thread


# ---- first prints ------------------------------------------------------------------------------------------

def test_the_first_source_to_show_a_print_stays_recorded(store: Store):
    bls_at = RELEASE + dt.timedelta(seconds=0.4)
    store.put_print_source("PAYEMS", dt.date(2026, 11, 1), "bls", bls_at)
    store.put_print_source("PAYEMS", dt.date(2026, 11, 1), "fred", RELEASE + dt.timedelta(minutes=3))
    store.put_print_source("UNRATE", dt.date(2026, 11, 1), "fred", RELEASE + dt.timedelta(minutes=2))
    assert store.print_sources() == {("PAYEMS", dt.date(2026, 11, 1)): ("bls", bls_at),
                                     ("UNRATE", dt.date(2026, 11, 1)): ("fred", RELEASE + dt.timedelta(minutes=2))}
    assert store.print_sources("PAYEMS") == {("PAYEMS", dt.date(2026, 11, 1)): ("bls", bls_at)}
    assert store.print_sources("CPIAUCSL") == {}
    (_source, seen), = store.print_sources("PAYEMS").values()
    assert seen.utcoffset() == dt.timedelta(0)


def test_an_earlier_sighting_recorded_late_wins(store: Store):
    """Two pollers racing: FRED's sighting is recorded first, though BLS's answer came earlier."""
    store.put_print_source("PAYEMS", dt.date(2026, 11, 1), "fred", RELEASE + dt.timedelta(seconds=2))
    store.put_print_source("PAYEMS", dt.date(2026, 11, 1), "bls", RELEASE + dt.timedelta(seconds=1))
    store.put_print_source("PAYEMS", dt.date(2026, 11, 1), "fred", RELEASE + dt.timedelta(seconds=1))  # a tie
    assert store.print_sources() == {("PAYEMS", dt.date(2026, 11, 1)): ("bls", RELEASE + dt.timedelta(seconds=1))}


# ---- fencing -----------------------------------------------------------------------------------------------

def test_a_replaced_leader_cannot_write_forecasts_counts_or_print_sources(store: Store):
    assert store.acquire_lease("a:1", 10) == 1
    a = store.with_fence(Fixed("a:1", 1))
    assert a.put_forecast(*NFP, RELEASE, 185000.0, hours(-24))
    assert a.count_queries("bls", DAY) == 1
    a.put_print_source("PAYEMS", dt.date(2026, 11, 1), "fred", hours(0.1))
    store.release_lease("a:1", 1)
    assert store.acquire_lease("b:2", 10) == 2
    writes = {
        "put_forecast": lambda: a.put_forecast(*NFP, RELEASE, 190000.0, hours(-1)),
        "count_queries": lambda: a.count_queries("bls", DAY, 10),
        "put_print_source": lambda: a.put_print_source("PAYEMS", dt.date(2026, 11, 1), "bls", hours(0.01)),
    }
    for name, write in writes.items():
        with pytest.raises(Fenced, match=r"a:1 \(token 1\) no longer leads; the lease is held by b:2 with token 2"):
            write()
        assert name  # each one refused, nothing written:
    assert store.forecast_before(*NFP, RELEASE, RELEASE) == (185000.0, hours(-24))
    assert store.queries("bls", DAY) == 1
    assert store.print_sources() == {("PAYEMS", dt.date(2026, 11, 1)): ("fred", hours(0.1))}
    b = store.with_fence(Fixed("b:2", 2))
    assert b.put_forecast(*NFP, RELEASE, 190000.0, hours(-1))
    assert b.count_queries("bls", DAY, 10) == 11


# ---- schema ------------------------------------------------------------------------------------------------

def test_a_version_4_store_is_migrated_to_5_keeping_its_data(target: str):
    assert SCHEMA_VERSION >= 5
    t0 = dt.datetime(2026, 11, 6, 13, 30, tzinfo=UTC)
    alert = Alert("jobs-beat", t0, "warning", {}, "payrolls +200k", {}, "k")
    db = raw_db(target)
    with db.transaction() as tx:
        for step in MIGRATIONS[:4]:
            for sql in step:
                tx.execute(sql)
        tx.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '4')")
        tx.execute("INSERT INTO state (name, data) VALUES ('engine', '{\"v\": 4}')")
        tx.execute("INSERT INTO alerts VALUES ('k', 'jobs-beat', ?, ?, ?)", (utc_text(t0), _payload(alert),
                                                                             utc_text(t0)))
        tx.execute("INSERT INTO deliveries (alert_key, channel, next_at) VALUES ('k', 'trading', ?)", (utc_text(t0),))
    assert "forecasts" not in db.tables()
    db.close()
    with open_store(target) as s:
        assert s._db.query("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
        assert {"forecasts", "queries", "print_sources"} <= s._db.tables()
        assert s.load_state("engine") == {"v": 4}
        assert s.pending() == 1 and s.due(t0)[0].alert == alert
        assert s.put_forecast(*NFP, RELEASE, 185000.0, hours(-1))
        assert s.count_queries("bls", DAY) == 1
        s.put_print_source("PAYEMS", dt.date(2026, 11, 1), "bls", RELEASE)
    with open_store(target) as s:  # reopened at 5: nothing migrated twice
        assert [r.value for r in s.forecasts()] == [185000.0]
        assert s.queries("bls", DAY) == 1 and len(s.print_sources()) == 1
