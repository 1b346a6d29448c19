"""`macrowatch status` tells the truth about a daemon that stopped, and reads a store it may not write.

A daemon stopped by SIGTERM used to look alive ("last heartbeat 29s ago") until minutes had passed: a clean stop
now records itself, by the leader only (a standby's stop, or a leadership lost, must not mark the leader's
daemon stopped), and a new start clears it. `status` on a store it could not write (another user's file, a
read-only directory) failed with "attempt to write a readonly database", and on a writable one it could leave
`-wal`/`-shm` files owned by the reader beside the service's store.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from macrowatch.clock import FakeClock
from macrowatch.commands.cli import cli
from macrowatch.config import load_config
from macrowatch.runtime import ha
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.scheduler import Runner
from macrowatch.store import Fenced, open_store
from macrowatch.store.schema import MIGRATIONS
from runtime.test_daemon_core import NY, Macro, Prices

T0 = dt.datetime(2019, 7, 1, 12, 0, tzinfo=NY)
# Intervals of an hour: a FakeClock's times are years before the wall clock's, and APScheduler counts an interval
# job's missed runs since then one by one. The jobs still run at once after the catch-up (their first run is now).
# No release: a burst job would poll the fake clock through hours of its schedule.
CONFIG = """\
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
levels:
  spx-100: {instrument: spx, price: 100}
rules:
  - {name: breakout, when: {level: spx-100, entered: breakout}}
"""


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Lease:
    """A lease the test hands out and takes back (the Supervisor's view of ha.Lease)."""

    enabled = True

    def __init__(self, holder: str) -> None:
        self.holder, self.current = holder, None

    def term(self) -> int | None:
        return self.current

    def token(self) -> int | None:
        if self.current is None:
            raise Fenced(f"{self.holder} does not lead")
        return self.current

    def remaining(self) -> float:
        return 60.0

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def step_down(self, term: int) -> None:
        pass


def status(config_path: Path, store: Path, now: dt.datetime, *args: str):
    return CliRunner().invoke(cli, ["status", "-c", str(config_path), "--store", str(store), *args],
                              env={"MACROWATCH_NOW": now.isoformat()})


def test_a_clean_stop_is_recorded_by_the_leader_and_by_no_standby_or_lost_leadership(tmp_path: Path):
    config_path = tmp_path / "mw.yaml"
    config_path.write_text(CONFIG)
    config, _ = load_config(config_path)
    clock, path = FakeClock(T0), tmp_path / "mw.sqlite"
    runners: list[Runner] = []

    def make_runner(store) -> Runner:
        runners.append(Runner(Daemon(config, store, clock, Prices(), Macro(clock)), closes_every=3600,
                              deliver_every=3600, heartbeat_every=3600, schedule_every=86400, intraday_every=0))
        return runners[-1]

    def daemon_state() -> dict:
        with open_store(path) as s:
            return s.load_state("daemon") or {}

    with open_store(path) as store:
        lease = Lease("a:1")
        leader = ha.Supervisor(lease, store, make_runner, check_every=0.01)
        leader.start()
        try:
            lease.current = store.acquire_lease("a:1", 60)
            wait_for(lambda: runners and runners[0].catch_up.done.is_set() and "catching_up" not in daemon_state())
            assert daemon_state()["every"] == 3600

            # The leadership is lost: its runner is abandoned, not stopped cleanly, and writes no stop.
            lease.current = None
            wait_for(lambda: leader.runner is None)
            assert "stopped" not in daemon_state()

            # Leading again: the new start is recorded, then its heartbeat.
            store.release_lease("a:1", 1)
            lease.current = store.acquire_lease("a:1", 60)
            wait_for(lambda: len(runners) == 2 and runners[1].catch_up.done.is_set()
                     and "catching_up" not in daemon_state())

            # A standby on the same store stops: the leader's record is untouched.
            standby = ha.Supervisor(Lease("b:2"), store, make_runner, check_every=0.01)
            standby.start()
            standby.shutdown()
            assert len(runners) == 2 and "stopped" not in daemon_state()
            clock.advance(dt.timedelta(seconds=7))
        finally:
            leader.shutdown()                     # SIGTERM: the jobs finish, then the stop is recorded
    state = daemon_state()
    assert state["stopped"] == state["heartbeat"] == (T0 + dt.timedelta(seconds=7)).isoformat()

    result = status(config_path, path, T0 + dt.timedelta(seconds=10))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == (f"daemon: pid {os.getpid()}, started 2019-07-01 12:00 EDT, "
                                             "stopped at 2019-07-01 12:00:07 EDT (a clean stop)")

    # The next start clears the stop, before its catch-up: status no longer says stopped.
    with open_store(path) as store:
        runner = make_runner(store)
        runner.start()
        try:
            wait_for(lambda: "stopped" not in daemon_state())
        finally:
            runner.shutdown()
        assert "stopped" in daemon_state()


def test_a_stop_refused_by_the_fence_is_logged_not_raised(tmp_path: Path, caplog):
    # A stop racing the loss of the lease: the store refuses the record (Fenced), the stop goes on.
    config_path = tmp_path / "mw.yaml"
    config_path.write_text(CONFIG)
    config, _ = load_config(config_path)
    clock = FakeClock(T0)
    with open_store(tmp_path / "mw.sqlite") as store:
        lease = Lease("a:1")
        lease.current = store.acquire_lease("a:1", 60)
        fenced = store.with_fence(ha.TermFence(lease, lease.current))
        runner = Runner(Daemon(config, fenced, clock, Prices(), Macro(clock)), closes_every=3600,
                        deliver_every=3600, heartbeat_every=3600, schedule_every=86400, intraday_every=0)
        runner.start()
        wait_for(runner.catch_up.done.is_set)
        lease.current = None
        runner.shutdown()
        assert "stopped" not in (store.load_state("daemon") or {})
    assert any("could not record the stop" in r.getMessage() for r in caplog.records)


# ---- a store the reader cannot write ---------------------------------------------------------------------

def _as_unprivileged(argv: list[str]) -> list[str]:
    """argv run without root's power to write any file: root's DAC override dropped (its files stay readable)."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): cannot drop the power to write any file")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", *argv]


def _listing(directory: Path) -> dict[str, tuple]:
    """Each file's mode and size, and the content of the store and its WAL. (The -shm is shared memory that a
    reader writes its read mark to when it may: only its presence is compared.)"""
    return {p.name: (p.stat().st_mode, p.stat().st_size, None if p.name.endswith("-shm") else p.read_bytes())
            for p in directory.iterdir()}


@pytest.mark.parametrize("writable_dir, daemon_open", [(False, False), (True, False), (False, True)],
                         ids=["read-only-dir", "read-only-file", "read-only-dir-daemon-running"])
def test_status_reads_a_store_it_cannot_write_and_leaves_nothing_beside_it(tmp_path: Path, writable_dir,
                                                                          daemon_open):
    config_path = tmp_path / "mw.yaml"
    config_path.write_text("store: state/mw.sqlite\n" + CONFIG)
    state = tmp_path / "state"
    state.mkdir()
    store = open_store(state / "mw.sqlite")
    try:
        # A daemon running keeps the store's -wal and -shm (here its last commit is in the -wal only).
        store.save_state("daemon", {"pid": 7, "started": T0.isoformat(), "heartbeat": T0.isoformat(),
                                    "every": 10.0, "sources": {}})
        if not daemon_open:
            store.close()
        (state / "mw.sqlite").chmod(0o444)
        state.chmod(0o755 if writable_dir else 0o555)
        before = _listing(state)
        try:
            argv = _as_unprivileged([str(Path(sys.executable).parent / "macrowatch"), "status", "-c",
                                     str(config_path), "--format", "json"])
            env = {**os.environ, "MACROWATCH_NOW": (T0 + dt.timedelta(seconds=5)).isoformat()}
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
            after = _listing(state)
        finally:
            state.chmod(0o755)
    finally:
        store.close()
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["daemon"]["pid"] == 7
    assert after == before                        # no -wal, -shm or journal left, the file untouched


def test_an_older_store_status_cannot_upgrade_is_an_error_that_says_why(tmp_path: Path):
    # A writable older store is upgraded, as before; one status may not write says what is needed.
    config_path = tmp_path / "mw.yaml"
    config_path.write_text("store: state/old.sqlite\n" + CONFIG)
    state = tmp_path / "state"
    state.mkdir()
    conn = sqlite3.connect(state / "old.sqlite")
    for sql in MIGRATIONS[0]:
        conn.execute(sql)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    conn.commit()
    conn.close()
    (state / "old.sqlite").chmod(0o444)
    state.chmod(0o555)
    try:
        argv = _as_unprivileged([str(Path(sys.executable).parent / "macrowatch"), "status", "-c", str(config_path)])
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    finally:
        state.chmod(0o755)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "attempt to write a readonly database (its schema, version 1, is older than this macrowatch's" \
        in result.stderr and "the next `macrowatch run` does it" in result.stderr
