"""What only the PostgreSQL backend does: the driver as an option, connecting and timeouts, reconnecting, the
dialect map, the schema on a shared server. The rest of the store's contract runs on both backends in
test_store.py and test_ha.py."""

from __future__ import annotations

import socket
import sys
import threading
import time

import pytest

from daemonproc import free_port
from macrowatch.store import SCHEMA_VERSION, StoreError, open_store
from macrowatch.store.postgres import PostgresDb, masked, to_postgres
from macrowatch.store.schema import MIGRATIONS


def admin(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True)


# ---- without a server ----------------------------------------------------------------------------------

def test_without_the_driver_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what `import psycopg` meets when it is not installed
    with pytest.raises(StoreError) as err:
        open_store("postgresql://mw:pw@127.0.0.1/mw")
    assert str(err.value) == ("a postgresql:// store needs the PostgreSQL driver psycopg 3, which is not installed: "
                              "pip install 'macrowatch[postgres]'")


def test_sqlite_needs_no_driver(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with open_store(tmp_path / "mw.sqlite") as s:
        s.save_state("x", {"ok": True})


@pytest.mark.parametrize("sql, expected", [
    pytest.param("SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = %s AND c = %s", id="params"),
    pytest.param("SELECT '?', ? FROM t WHERE x LIKE 'a%'", "SELECT '?', %s FROM t WHERE x LIKE 'a%%'",
                 id="quoted-and-percent"),
    pytest.param("CREATE TABLE t (a TEXT NOT NULL, b REAL, c INTEGER)",
                 'CREATE TABLE t (a TEXT COLLATE "C" NOT NULL, b DOUBLE PRECISION, c INTEGER)', id="ddl-types"),
    pytest.param("ALTER TABLE t ADD COLUMN d REAL", "ALTER TABLE t ADD COLUMN d DOUBLE PRECISION", id="alter"),
    pytest.param("SELECT CAST(x AS REAL) FROM t", "SELECT CAST(x AS REAL) FROM t", id="dml-untouched"),
])
def test_portable_sql_to_postgres(sql, expected):
    assert to_postgres(sql) == expected


@pytest.mark.parametrize("url, shown", [
    ("postgresql://mw:s3cret@db.example:5432/mw", "postgresql://mw:***@db.example:5432/mw"),
    ("postgresql://mw@db.example/mw?sslmode=require", "postgresql://mw@db.example/mw?sslmode=require"),
    ("postgres://mw:p%40ss@db/mw", "postgres://mw:***@db/mw"),
    ("postgresql://mw:p@ss/w@rd@db/mw", "postgresql://mw:***@db/mw"),  # unquoted, as a user may write it
])
def test_passwords_are_masked_in_names(url, shown):
    assert masked(url) == shown


def test_the_store_password_is_scrubbed_from_the_logs(tmp_path, monkeypatch):
    from macrowatch.config import load_config
    from macrowatch.runtime.service import secrets_of

    monkeypatch.setenv("MW_TEST_DB_PASSWORD", "p@ss/w0rd")
    (tmp_path / "mw.yaml").write_text(
        'store: "postgresql://mw:${MW_TEST_DB_PASSWORD}@db.internal/mw"\n'
        'instruments: {spx: {symbol: "^GSPC"}}\nlevels: {l: {instrument: spx, price: 1}}\n'
        "rules: [{name: r, when: {level: l, state: below}}]\n")
    config, _ = load_config(tmp_path / "mw.yaml")
    assert "p@ss/w0rd" in secrets_of(config)


def _driver():
    return pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[test]')",
                               exc_type=ImportError)


def test_a_refused_connection_fails_fast_and_names_the_store_without_its_password():
    _driver()
    port = free_port()  # nothing listens there, and no other test (xdist worker) is handed it meanwhile
    started = time.monotonic()
    with pytest.raises(StoreError) as err:
        open_store(f"postgresql://mw:s3cret@127.0.0.1:{port}/mw")
    assert time.monotonic() - started < 5
    text = str(err.value)
    assert text.startswith(f"store postgresql://mw:***@127.0.0.1:{port}/mw: connection failed")
    assert "s3cret" not in text


def test_a_server_that_never_answers_times_out_on_connect():
    _driver()
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (the kernel does), never speaks
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(StoreError, match="timeout"):
            PostgresDb(f"postgresql://mw@127.0.0.1:{port}/mw", connect_timeout=2)
        assert 1.5 < time.monotonic() - started < 8


# ---- on a server -------------------------------------------------------------------------------------------

def test_schema_types_and_byte_order(postgres_url):
    with open_store(postgres_url) as s:
        assert s._db.tables() == {"meta", "bars", "vintages", "state", "alerts", "deliveries", "lease", "forecasts",
                                  "queries", "print_sources"}
        assert s._db.query("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
        types = dict(s._db.query("SELECT column_name, data_type FROM information_schema.columns "
                                 "WHERE table_name = 'bars'"))
        assert types["close"] == "double precision" and types["session"] == "text"
        s.save_state("b", {})
        s.save_state("B", {})
        s.save_state("a", {})
        # Byte order, as SQLite sorts: upper case first, whatever the database's locale.
        assert [r[0] for r in s._db.query("SELECT name FROM state ORDER BY name")] == ["B", "a", "b"]


def test_prices_and_epochs_keep_full_precision(postgres_url):
    with open_store(postgres_url) as s:
        s.acquire_lease("a:1", 2.5)
        row = s.lease()
        assert row.expires_at - row.renewed_at == pytest.approx(2.5, abs=1e-5)  # a 4-byte REAL would be off by minutes


def test_a_database_of_another_application_is_refused(postgres_url):
    with admin(postgres_url) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
    with pytest.raises(StoreError, match=r"the database has other tables \(orders\) and no macrowatch meta table"):
        open_store(postgres_url)


def test_a_newer_store_is_refused(postgres_url):
    open_store(postgres_url).close()
    with admin(postgres_url) as conn:
        conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match=f"has schema version {SCHEMA_VERSION + 1}; this macrowatch knows up to"):
        open_store(postgres_url)


def test_a_version_1_store_is_migrated_keeping_its_outbox(postgres_url):
    db = PostgresDb(postgres_url)
    with db.transaction() as tx:
        for sql in MIGRATIONS[0]:
            tx.execute(sql)
        tx.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
        tx.execute("INSERT INTO alerts VALUES ('k', 'r', '2019-08-02T12:30:00.000000+00:00', '{}', "
                   "'2019-08-02T12:30:00.000000+00:00')")
        tx.execute("INSERT INTO deliveries (alert_key, channel, next_at) VALUES "
                   "('k', 'trading', '2019-08-02T12:30:00.000000+00:00')")
    db.close()
    with open_store(postgres_url) as s:
        assert s._db.query("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
        assert s.pending() == 1 and s.repeats() == (0, [])


def test_a_lost_connection_is_replaced_for_the_next_call(postgres_url):
    with open_store(postgres_url) as s, admin(postgres_url) as conn:
        s.save_state("x", {"n": 1})
        kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'macrowatch'"
        conn.execute(kill)
        assert s.load_state("x") == {"n": 1}          # a read: retried at once on a new connection
        conn.execute(kill)
        s.save_state("x", {"n": 2})                   # a write whose BEGIN found the connection gone: retried
        assert s.load_state("x") == {"n": 2}


def test_a_call_that_hangs_is_cut_at_its_deadline_and_the_next_call_works(postgres_url):
    open_store(postgres_url).close()
    with open_store(postgres_url, call_timeout=1.0) as s, admin(postgres_url) as conn:
        conn.execute("BEGIN")
        conn.execute("LOCK TABLE state IN ACCESS EXCLUSIVE MODE")  # a statement on it now waits
        started = time.monotonic()
        with pytest.raises(StoreError, match="no answer from the server within 1 s"):
            s.save_state("x", {})
        assert 0.9 < time.monotonic() - started < 3
        conn.execute("ROLLBACK")
        s.save_state("x", {"ok": True})
        assert s.load_state("x") == {"ok": True}


def test_every_write_is_one_transaction(postgres_url):
    """A write that fails half-way leaves nothing: the alert and its deliveries come together or not at all."""
    import datetime as dt

    from macrowatch.model import Alert
    at = dt.datetime(2019, 8, 2, 12, 30, tzinfo=dt.UTC)
    with open_store(postgres_url) as s, admin(postgres_url) as conn:
        conn.execute("CREATE FUNCTION no_ops() RETURNS trigger AS $$ BEGIN IF NEW.channel = 'ops' THEN "
                     "RAISE EXCEPTION 'ops refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
        conn.execute("CREATE TRIGGER no_ops BEFORE INSERT ON deliveries FOR EACH ROW EXECUTE FUNCTION no_ops()")
        with pytest.raises(StoreError, match="ops refused"):
            s.enqueue(Alert("r", at, "info", {}, "m", {}, "k"), ["trading", "ops"], at)
        assert s._db.query("SELECT COUNT(*) FROM alerts") == [(0,)] and s.pending() == 0


def test_instances_migrating_at_once_take_turns(postgres_url):
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            open_store(postgres_url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
