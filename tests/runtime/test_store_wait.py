"""A PostgreSQL store that cannot be reached at start is waited for: the daemon stays up, says why, and leads once
the database answers; it never exits into systemd's restart loop (runtime/storewait.py, service.run).

The wait loop itself runs here with a fake opener; then `macrowatch run` as a process, pointed at a port where no
PostgreSQL listens yet, before and after one starts there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from daemonproc import STUB_SOURCES, Daemon, environment, free_port, healthz, wait_until
from macrowatch.runtime import storewait
from macrowatch.runtime.health import HealthServer, Metrics
from macrowatch.secrets import SecretFilter
from macrowatch.store import StoreError
from runtime.test_daemon_process import CLOSES, NY, bars
from stubs.fred import KEY
from stubs.postgres import SUPERUSER, _Cluster, find_bindir

PASSWORD = "Pw-s3cret-4242"  # the store's password: in no log line, no /healthz answer


def unreachable(reason: str = "connection refused") -> StoreError:
    """A store error as the driver raises it: with the driver's error behind it."""
    try:
        raise StoreError(f"store postgresql://mw:***@db/mw: {reason}") from OSError(reason)
    except StoreError as exc:
        return exc


class Opener:
    """Fails `failures` times with `error`, then returns "store"; records when it was called."""

    def __init__(self, failures: int, error: StoreError | None = None):
        self.failures, self.error, self.calls = failures, error or unreachable(), []

    def __call__(self) -> str:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.failures:
            raise self.error
        return "store"


# ---- the wait loop ------------------------------------------------------------------------------------------
def test_waits_with_a_doubling_backoff_until_the_store_opens(caplog):
    opener, reasons = Opener(3), []
    with caplog.at_level(logging.INFO, "macrowatch.service"):
        got = storewait.wait_for(opener, threading.Event(), reasons.append, first=0.05, cap=0.15, tick=0.01)
    assert got == "store"
    gaps = [b - a for a, b in zip(opener.calls, opener.calls[1:], strict=False)]
    assert all(0.9 * d <= g < d + 0.5 for g, d in zip(gaps, (0.05, 0.1, 0.15), strict=True)), gaps  # 0.2 capped
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and all("connection refused" in w for w in warnings)
    assert "waiting for the store (attempt 1)" in warnings[0] and "next try in 0.05 s" in warnings[0]
    assert "next try in 0.15 s" in warnings[2]  # capped
    assert set(reasons) == {"store postgresql://mw:***@db/mw: connection refused"}
    assert "store opened (attempt 4)" in caplog.text


def test_a_wrong_password_or_database_is_waited_for_and_called_a_config_mistake_each_time(caplog):
    opener = Opener(2, unreachable('FATAL: password authentication failed for user "mw"'))
    assert storewait.wait_for(opener, threading.Event(), lambda _r: None, first=0.01, tick=0.01) == "store"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all(storewait.CONFIG_HINT in e for e in errors)
    assert storewait.config_mistake('FATAL: database "mw" does not exist')
    assert not storewait.config_mistake("connection failed: Connection refused")


def test_an_error_no_database_raised_is_not_waited_for():
    opener = Opener(5, StoreError("a postgresql:// store needs the PostgreSQL driver psycopg 3"))
    with pytest.raises(StoreError, match="psycopg"):
        storewait.wait_for(opener, threading.Event(), lambda _r: None, first=0.01)
    assert len(opener.calls) == 1


def test_a_stop_ends_the_backoff_at_once():
    stopped, opener = threading.Event(), Opener(99)
    threading.Timer(0.2, stopped.set).start()
    t0 = time.monotonic()
    assert storewait.wait_for(opener, stopped, lambda _r: None, first=30) is None
    assert time.monotonic() - t0 < 1.0 and len(opener.calls) == 1


def test_a_stop_does_not_wait_for_an_attempt_under_way_and_the_wait_is_reported_meanwhile():
    stopped, hang, reasons = threading.Event(), threading.Event(), []

    def connect_that_hangs() -> str:  # a blackholed network: the connect waits for its timeout
        hang.wait(30)
        return "store"

    threading.Timer(0.3, stopped.set).start()
    t0 = time.monotonic()
    assert storewait.wait_for(connect_that_hangs, stopped, reasons.append, tick=0.05) is None
    hang.set()
    assert time.monotonic() - t0 < 1.0
    assert reasons and set(reasons) == {"connecting"}  # the watchdog and /healthz are fed during the attempt


# ---- /healthz serves no secret ------------------------------------------------------------------------------
@pytest.mark.parametrize("raises", [False, True], ids=["reason", "failing-check"])
def test_a_healthz_reason_holding_a_secret_is_masked(raises):
    scrub = SecretFilter([PASSWORD])

    def check() -> tuple[bool, str]:
        if raises:
            raise RuntimeError(f"cannot reach postgresql://mw:{PASSWORD}@db/mw")
        return False, f"waiting for the store: password {PASSWORD} refused"

    server = HealthServer("127.0.0.1", 0, Metrics(), check, redact=scrub.redact)
    server.start()
    try:
        status, body = healthz(server.port)
    finally:
        server.stop()
    assert status == 503
    assert PASSWORD not in body and "***" in body
    assert body.startswith("health check failed: RuntimeError" if raises else "waiting for the store: password ***")


# ---- `macrowatch run` ---------------------------------------------------------------------------------------
CONFIG = """\
store: "{store}"
ha: {{lease: 3s}}
health: {{listen: "127.0.0.1:{health}"}}
""" + STUB_SOURCES + """\
levels:
  spx-100: {{instrument: spx, price: 100, fail_within_bars: 3}}
channels:
  trading: "json://127.0.0.1:9/hook"
rules:
  - name: spx-breakout
    when: {{level: spx-100, entered: breakout}}
    notify: [trading]
"""


@pytest.fixture
def start(tmp_path: Path, yahoo_stub, fred_stub):
    """Start `macrowatch run` on a PostgreSQL store at 127.0.0.1:port/database, with the password (or on `store`);
    returns the daemon and its /healthz port."""
    yahoo_stub.add_daily("^GSPC", bars(CLOSES))
    started: list[Daemon] = []

    def start(port: int = 0, database: str = "postgres", *, user: str = SUPERUSER, store: str = "",
              **extra_env: str) -> tuple[Daemon, int]:
        health = free_port()
        config = tmp_path / "mw.yaml"
        store = store or f"postgresql://{user}:${{MW_TEST_DB_PASSWORD}}@127.0.0.1:{port}/{database}"
        config.write_text(CONFIG.format(store=store, health=health, fred=fred_stub.base_url, yahoo=yahoo_stub.url))
        env = environment(tmp_path, MW_TEST_FRED_KEY=KEY, MW_TEST_DB_PASSWORD=PASSWORD, **extra_env)
        daemon = Daemon(config, env, tmp_path / f"daemon-{len(started)}.log",
                        now=dt.datetime(2019, 8, 1, 18, 0, tzinfo=NY))
        started.append(daemon)
        return daemon, health

    yield start
    for daemon in started:
        daemon.close()


def serving(port: int) -> bool:
    try:
        healthz(port, timeout=1)
    except OSError:
        return False
    return True


@pytest.mark.slow
def test_the_daemon_waits_for_a_database_not_up_yet_then_leads(start):
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no initdb): no server to start on the daemon's port")
    cluster = _Cluster(bindir)  # its port is chosen now; nothing listens on it until start()
    try:
        daemon, health = start(cluster.port)
        daemon.wait_for_line("waiting for the store (attempt 1)")
        wait_until(lambda: serving(health), timeout=10, what="/healthz")
        time.sleep(3)  # a daemon that exits (into systemd's restart loop) would be gone by now
        assert daemon.proc.poll() is None
        status, reason = healthz(health)
        assert status == 503
        assert reason.startswith(f"waiting for the store: store postgresql://{SUPERUSER}:***@127.0.0.1:")
        assert "Connection refused" in reason
        assert daemon.output().count("waiting for the store (attempt") >= 2  # one line per attempt
        try:
            cluster.start()
        except (RuntimeError, OSError) as exc:
            pytest.skip(f"a PostgreSQL server could not start here ({exc})")
        daemon.wait_for_line("leading: ", timeout=60)  # the next try, at most 30 s later
        wait_until(lambda: healthz(health) == (200, "ok"), timeout=60, what="/healthz ok")
        assert daemon.stop() == 0
        out = daemon.output()
        assert "store opened (attempt" in out and "ready" in out
        assert PASSWORD not in out and "Traceback" not in out
    finally:
        cluster.stop()


@pytest.mark.slow
def test_sigterm_while_waiting_exits_0_at_once_and_systemd_hears_ready_and_the_watchdog(start):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = f"/tmp/mw-notify-{time.monotonic_ns()}"  # AF_UNIX paths are short; tmp_path may be long
    notify.bind(path)
    notify.settimeout(0.1)
    try:
        daemon, _health = start(free_port(), NOTIFY_SOCKET=path)  # nothing listens on that port
        daemon.wait_for_line("waiting for the store (attempt 2)")
        messages = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "WATCHDOG=1" not in messages:
            with contextlib.suppress(TimeoutError):
                messages.append(notify.recv(4096).decode())
        ready = [m for m in messages if m.startswith("READY=1")]
        assert ready and ready[0].startswith(f"READY=1\nSTATUS=waiting for the store: store postgresql://{SUPERUSER}:***@")
        assert "WATCHDOG=1" in messages
        assert all(PASSWORD not in m for m in messages)
        t0 = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 2.0
        assert "stopped while waiting for the store" in daemon.output()
        assert PASSWORD not in daemon.output() and "Traceback" not in daemon.output()
    finally:
        notify.close()
        Path(path).unlink(missing_ok=True)


@pytest.mark.slow
def test_a_missing_database_is_waited_for_said_to_be_a_config_mistake_and_healthz_masks_secrets(start,
                                                                                                  postgres_server):
    if postgres_server.host not in ("127.0.0.1", "localhost"):
        pytest.skip("the daemon's URL here names 127.0.0.1")
    # The database is named like the FRED key, a secret the daemon knows: the server's answer quotes it.
    daemon, health = start(postgres_server.port, database=KEY, user=postgres_server.user)
    daemon.wait_for_line("does not exist")
    wait_until(lambda: serving(health), timeout=10, what="/healthz")
    status, reason = healthz(health)
    assert status == 503 and reason.startswith("waiting for the store:")
    assert 'database "***" does not exist' in reason and KEY not in reason
    out = daemon.output()
    assert "level=error" in out and storewait.CONFIG_HINT in out
    assert KEY not in out and PASSWORD not in out
    assert daemon.stop() == 0


@pytest.mark.slow
def test_a_database_of_another_application_is_refused_at_once_with_exit_2(start, postgres_url):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id integer)")
    daemon, _health = start(store=postgres_url)  # waiting cannot change what the database holds
    assert daemon.proc.wait(timeout=60) == 2
    out = daemon.output()
    assert "is not a macrowatch store" in out and "waiting would not change this" in out
    assert "waiting for the store (attempt" not in out and "Traceback" not in out


@pytest.mark.slow
def test_a_sqlite_store_that_cannot_be_opened_is_still_an_error_at_once(start, tmp_path):
    (tmp_path / "not-a-dir").write_text("")
    daemon, _health = start(store=str(tmp_path / "not-a-dir" / "mw.sqlite"))
    assert daemon.proc.wait(timeout=60) == 1
    out = daemon.output()
    assert "macrowatch: error: StoreError:" in out and "not-a-dir" in out
    assert "waiting for the store" not in out and "Traceback" not in out
