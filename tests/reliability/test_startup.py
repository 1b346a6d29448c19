"""A start-up that fails is tried again until it succeeds: never a process that looks alive and does nothing.

The catch-up (`Runner._startup`, the first job: catchup.py) adds every other job once it is done. A catch-up that failed
(the SQLite store held by another connection, a full disk) used to leave the process up with no close,
release, delivery or heartbeat job, for good; /healthz answered 503 and nothing healed it. Now it is tried again
with a backoff, /healthz says why meanwhile, and the jobs start once it succeeds.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections import Counter

import pytest

from daemonproc import free_port, healthz
from macrowatch.runtime import catchup
from macrowatch.runtime.scheduler import Runner

from . import test_faults
from .test_faults import BREAKOUT, DAY, GAUGE, MINUTE
from .world import CHANNELS, WARM, Processes, Scenario, release_at

world, yf_cache = test_faults.world, test_faults.yf_cache  # its fixtures: the in-process world


# ---- in process: a full disk at the first try --------------------------------------------------------

def test_a_catch_up_failing_on_a_full_disk_is_tried_again_and_the_jobs_start(world, caplog):
    w = world
    w.clock.set(w.close + 2 * MINUTE)               # down over the 08:30 release and the 16:00 close
    w.store.failing = {"put_bars", "put_vintages", "save_state", "enqueue"}
    freed = w.clock.now() + dt.timedelta(seconds=0.5)
    w.clock.at(freed, lambda: w.store.failing.clear())  # space freed half a second into the first wait
    runner = Runner(w.daemon, closes_every=3600, deliver_every=3600, heartbeat_every=3600, intraday_every=0)
    runner.scheduler.start(paused=True)             # a real job store; nothing runs on its own
    try:
        assert runner.catch_up.status() == "starting: catching up"
        runner._startup()
        jobs = {job.id for job in runner.scheduler.get_jobs()}
    finally:
        runner.scheduler.shutdown(wait=False)
    assert sum(w.store.refused.values()) >= 1                     # the first try did meet the full disk
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("catch-up failed")]
    assert len(failed) == 1 and "database or disk is full" in failed[0] and "next try in 1 s" in failed[0]
    assert {"closes", "deliver", "heartbeat", "schedule"} <= jobs
    assert runner.catch_up.done.is_set() and runner.catch_up.status() is None
    assert sorted(w.news()) == sorted([GAUGE, BREAKOUT])          # the catch-up's alerts, each once
    assert w.delivered() == Counter({(rule, c): 1 for rule in ("gauge", "breakout") for c in CHANNELS})


def test_the_retries_back_off_up_to_a_minute_and_a_stop_ends_them(world, monkeypatch):
    w = world
    waits: list[float] = []
    monkeypatch.setattr(w.daemon, "start", lambda now: (_ for _ in ()).throw(OSError("No space left on device")))
    runner = Runner(w.daemon, intraday_every=0)
    real_wait = w.clock.wait

    def wait(seconds, event):
        waits.append(seconds)
        if len(waits) == 9:
            runner.stop()
        return real_wait(seconds, event)
    monkeypatch.setattr(w.clock, "wait", wait)
    runner._startup()                               # returns once stopped: no job added, never caught up
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert runner.scheduler.get_jobs() == [] and not runner.catch_up.done.is_set()
    assert runner.catch_up.status().startswith("starting: catch-up failed: OSError: No space left on device;")
    assert catchup.STARTUP_RETRY_MAX == 60


# ---- the real daemon: the store held by another connection during the catch-up ------------------------

def wait_until(check, timeout: float, run) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert run.proc.poll() is None and time.monotonic() < deadline, run.output()[-3000:]
        time.sleep(0.05)


@pytest.fixture
def processes(tmp_path):
    port = free_port()
    p = Processes(tmp_path, Scenario(WARM + 12), extra=f"health: {{listen: '127.0.0.1:{port}'}}\n")
    p.port = port
    yield p
    p.close()


@pytest.mark.slow
def test_process_a_store_locked_during_the_catch_up_heals_once_it_is_released(processes):
    p = processes
    run = p.start(release_at(p.scenario.day(DAY)) - dt.timedelta(hours=2))
    run.wait_for_line("warmed up")
    assert run.stop() == 0

    # The next start's catch-up fetches bars, then writes them: by then another connection holds the store.
    holder: list[sqlite3.Connection] = []
    lock = threading.Lock()
    answer = p.yahoo.answer

    def locking_answer(method, raw):
        with lock:
            if not holder and "/v8/finance/chart/" in raw:
                db = sqlite3.connect(p.store, timeout=10, isolation_level=None, check_same_thread=False)
                db.execute("BEGIN EXCLUSIVE")
                holder.append(db)
        return answer(method, raw)
    p.yahoo.answer = locking_answer

    run = p.start(p.scenario.days[DAY][1] + dt.timedelta(hours=2))   # down over DAY's release and close
    try:
        # SQLite's busy timeout (10 s) runs out: the catch-up fails, and says when it tries again.
        wait_until(lambda: "catch-up failed" in run.output() or "job startup failed" in run.output(), 30, run)
        status, reason = healthz(p.port)
    finally:
        with lock:
            for db in holder:
                db.rollback()
                db.close()
    assert status == 503 and reason.startswith("starting: catch-up failed: StoreError: store ") \
        and "database is locked; next try in " in reason, reason
    assert p.received() == Counter()

    # Released: the next try catches up, delivers DAY's release and close once to each channel, and runs on.
    wait_until(lambda: sum(p.received().values()) == 4, 20, run)
    wait_until(lambda: healthz(p.port)[0] == 200, 20, run)
    time.sleep(1.0)
    assert run.stop() == 0
    assert set(p.received().values()) == {1} and len(p.received()) == 4
    assert {key.split("|")[0] for key, _channel in p.received()} == {"gauge", "breakout"}
    out = run.output()
    assert out.count("catch-up failed") == 1 and "database is locked" in out
    assert "Traceback" not in out and "Logging error" not in out
