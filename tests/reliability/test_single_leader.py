"""One leader per SQLite store: a second `macrowatch run` on the same file stands by (issue [9], item 5).

Two instances on one SQLite file both led: both caught up and sent, 27 posts instead of 24, and both
/healthz said 200. The first instance holds an exclusive lock on `<store>.lock` for as long as it leads; the
kernel drops it when the process ends, however it ends. The second says that it stands by (naming the
holder), /healthz says so too, and it takes the lock, and leads, when the first has gone.

The processes run the dense scenario of world.py: an alert to two channels at every close and every 08:30
release. FRED is held at a moment before the second release day's value is out, so that the value comes
out when the test says: after the takeover.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from daemonproc import free_port, healthz
from macrowatch.config import load_config
from macrowatch.runtime import ha
from macrowatch.store import Fenced

from .world import CHANNELS, WARM, Processes, Run, Scenario, release_at

HEALTH = 'health: {listen: "127.0.0.1:${MW_TEST_HEALTH_PORT}"}\n'
POLL = 0.05


def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.02)


# ---- the lock ---------------------------------------------------------------------------------------------

def test_a_second_lock_on_one_store_is_refused_until_the_first_is_released(tmp_path: Path):
    lock = tmp_path / "mw.sqlite.lock"
    first, second = ha.SingleInstance("host:1", lock, poll=POLL), ha.SingleInstance("host:2", lock, poll=POLL)
    first.start()
    try:
        assert first.term() == 0 and first.token() is None      # leads at once: no wait at a lone start
        assert lock.read_text().strip() == "host:1"               # the holder, for the other's log line
        second.start()
        time.sleep(5 * POLL)                                      # several polls: all refused
        assert second.term() is None and second.remaining() == 0
        with pytest.raises(Fenced):
            second.token()
        assert first.term() == 0
    finally:
        first.stop()
    wait_until(lambda: second.term() == 0, what="the second lock after the first was released")
    assert lock.read_text().strip() == "host:2"
    second.stop()


HOLD = textwrap.dedent("""\
    import sys, time
    from pathlib import Path
    from macrowatch.runtime import ha
    lock = ha.SingleInstance("other:" + sys.argv[2], Path(sys.argv[1]))
    lock.start()
    print("held" if lock.term() == 0 else "refused", flush=True)
    time.sleep(60)
""")


def test_the_lock_of_a_killed_holder_is_taken_and_a_path_without_a_store_holds_nothing(tmp_path: Path):
    lock = tmp_path / "mw.sqlite.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), "7"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        mine = ha.SingleInstance("host:2", lock, poll=POLL)
        mine.start()
        time.sleep(5 * POLL)
        assert mine.term() is None
        holder.kill()                                         # SIGKILL: the kernel drops its lock
        holder.wait(timeout=10)
        wait_until(lambda: mine.term() == 0, what="the lock of the killed holder")
        mine.stop()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    # lease_for: a lock beside a SQLite file; none for an in-memory store, which no other process can share.
    assert ha.lease_for(str(tmp_path / "mw.sqlite"), None).path == tmp_path / "mw.sqlite.lock"
    assert ha.lease_for(":memory:", None).path is None


def test_a_lock_file_that_cannot_be_made_is_a_store_error_and_a_read_only_one_still_locks(tmp_path: Path):
    from macrowatch.store import StoreError

    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot create it"):   # not a directory: even root cannot make it
        ha.SingleInstance("host:1", tmp_path / "file" / "mw.sqlite.lock").start()
    lock = tmp_path / "mw.sqlite.lock"
    lock.write_text("")
    lock.chmod(0o444)
    first = ha.SingleInstance("host:1", lock, poll=POLL)
    if os.access(lock, os.W_OK):  # root writes anyway: open it read-only the way a non-root process must
        first._fd = os.open(lock, os.O_RDONLY)
        assert first._try()
    else:
        first.start()
    second = ha.SingleInstance("host:2", lock, poll=POLL)
    second.start()
    try:
        assert first.term() == 0 and second.term() is None
    finally:
        first.stop()
        second.stop()


# ---- two `macrowatch run` on one store --------------------------------------------------------------------

def start(p: Processes, now: dt.datetime, port: int) -> Run:
    run = Run(p.config, {**p.env, "MW_TEST_HEALTH_PORT": str(port)}, p.tmp_path / f"run-{len(p.runs):03d}.log", now=now)
    p.runs.append(run)
    return run


def wait_for(run: Run, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert run.proc.poll() is None and time.monotonic() < deadline, run.output()[-3000:]
        time.sleep(0.05)


@pytest.fixture
def processes(tmp_path):
    world = Processes(tmp_path, Scenario(WARM + 4), extra=HEALTH)
    yield world
    world.close()


@pytest.mark.slow
def test_two_runs_on_one_sqlite_store_one_leads_the_other_stands_by_then_takes_over(processes, monkeypatch):
    p = processes
    warm_now = release_at(p.scenario.day(WARM)) - dt.timedelta(hours=2)
    warm = start(p, warm_now, free_port())
    warm.wait_for_line("warmed up")
    assert warm.stop() == 0

    # A day later, 3 s after the next release: the catch-up has a release and a close to deliver (4 posts);
    # the day's release is not out yet: FRED is held just before it.
    day = p.scenario.day(WARM + 1)
    now = release_at(day) + dt.timedelta(seconds=3)
    p.fred.now = lambda: release_at(day) - dt.timedelta(minutes=1)
    port_a, port_b = free_port(), free_port()
    a = start(p, now, port_a)
    a.wait_for_line("ready")                          # the lock is taken (or refused) before "ready"
    b = start(p, now + dt.timedelta(seconds=time.monotonic() - a.t0), port_b)
    b.wait_for_line("standing by", timeout=20)
    assert "leading" in a.output()
    assert f"held by {socket.gethostname()}:{a.proc.pid}" in b.output()   # it names the leader
    wait_for(a, lambda: sum(p.received().values()) == 4)
    status, body = healthz(port_b)
    assert (status, body.split(":")[0]) == (200, "standby"), body
    assert "standby" not in healthz(port_a)[1]
    time.sleep(1.0)                                   # room for a second leader's posts
    assert sum(p.received().values()) == 4 and set(p.received().values()) == {1}

    a.kill()                                           # SIGKILL: the lock goes with the process
    a.proc.wait(timeout=10)
    b.wait_for_line("leading", timeout=10)
    wait_for(b, lambda: not healthz(port_b)[1].startswith("standby"))
    p.fred.now = p.clock                              # the day's value comes out: only b is there to send it
    wait_for(b, lambda: sum(p.received().values()) == 6)
    time.sleep(1.0)
    assert b.stop() == 0

    monkeypatch.setenv("MW_TEST_HEALTH_PORT", str(port_b))
    config, _ = load_config(p.config)
    expected = p.scenario.expected(config, warm_now, b.clock())
    got = p.received()
    assert set(got) == {(alert.key, c) for alert in expected for c in CHANNELS}, got
    assert set(got.values()) == {1}
    assert len(expected) == 3                          # the release and the close of the first day, the release
    assert all("level=error" not in r.output() and "Traceback" not in r.output() for r in p.runs)
