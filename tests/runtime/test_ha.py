"""Leadership in process: the lease row, fencing, claims and possible repeats, the Lease's timing and the
Supervisor's terms. Each store-level test runs on SQLite and on a real PostgreSQL server (the lease SQL is
portable; only the deployment keeps SQLite to one instance)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest

from macrowatch.model import Alert
from macrowatch.runtime import ha
from macrowatch.runtime.health import Metrics
from macrowatch.store import Fenced, Store, open_store

T0 = dt.datetime(2019, 8, 2, 12, 30, tzinfo=dt.UTC)


def alert(key: str = "jobs-beat||release:2019-08-02") -> Alert:
    return Alert("jobs-beat", T0, "warning", {}, "payrolls +200k", {}, key, ("trading",))


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


# ---- the lease row -------------------------------------------------------------------------------------

def test_lease_taken_renewed_released_and_taken_over(store: Store):
    assert store.lease() is None
    assert store.acquire_lease("a:1", 0.4) == 1
    row = store.lease()
    assert (row.holder, row.token, row.held) == ("a:1", 1, True)
    assert 0.2 < row.expires_at - row.now <= 0.4 + 1e-6
    assert store.acquire_lease("b:2", 10) is None            # held: the standby waits
    assert store.renew_lease("a:1", 1, 0.4) is True
    assert store.renew_lease("a:1", 2, 0.4) is False         # not its token
    assert store.acquire_lease("a:1", 0.4) == 1              # its own row: the token back, for the caller to judge
    time.sleep(0.5)
    assert store.renew_lease("a:1", 1, 0.4) is False         # expired: renewing is no longer allowed
    assert store.acquire_lease("b:2", 10) == 2               # taken over: the token grows
    assert store.lease().holder == "b:2"
    assert store.release_lease("a:1", 1) is False            # not a's to release any more
    assert store.release_lease("b:2", 2) is True
    row = store.lease()
    assert (row.holder, row.held, row.token) == (None, False, 2)
    assert store.acquire_lease("a:1", 10) == 3               # released: taken at once


def test_lease_times_come_from_the_database_clock(store: Store):
    store.acquire_lease("a:1", 5)
    row = store.lease()
    assert abs(row.now - time.time()) < 5  # the same machine here; in production the hosts' clocks do not matter
    assert row.since <= row.renewed_at <= row.now < row.expires_at


# ---- fencing ---------------------------------------------------------------------------------------------

def test_a_replaced_leader_cannot_write_and_its_claims_count_as_possible_repeats(store: Store):
    assert store.acquire_lease("a:1", 0.3) == 1
    a = store.with_fence(Fixed("a:1", 1))
    assert a.enqueue(alert("k1"), ["trading", "ops"], T0)
    a.save_state("engine", {"v": 1})
    assert a.claim("k1", "trading", T0)          # then a's process stalls between its send and the record
    time.sleep(0.4)
    assert store.acquire_lease("b:2", 10) == 2
    b = store.with_fence(Fixed("b:2", 2))
    writes = {
        "enqueue": lambda: a.enqueue(alert("k2"), ["trading"], T0),
        "save_state": lambda: a.save_state("engine", {"v": 0}),
        "claim": lambda: a.claim("k1", "ops", T0),
        "mark_sent": lambda: a.mark_sent("k1", "trading", T0),
        "mark_failed": lambda: a.mark_failed("k1", "ops", T0, "late", T0),
    }
    for name, write in writes.items():
        with pytest.raises(Fenced, match=r"a:1 \(token 1\) no longer leads; the lease is held by b:2 with token 2"):
            write()
        assert name  # each one refused, nothing written:
    assert store.load_state("engine") == {"v": 1}
    assert store.due(T0)[0].attempts == 0 and store.pending() == 2
    assert b.take_over() == [("k1", "trading", "a:1", T0)]
    assert store.repeats() == (1, [("k1", "trading", 1)])
    assert b.take_over() == []                   # counted once
    assert b.claim("k1", "trading", T0) and b.claim("k1", "ops", T0)
    b.mark_sent("k1", "trading", T0)
    b.mark_sent("k1", "ops", T0)
    assert store.pending() == 0 and store.repeats()[0] == 1


def test_a_late_record_of_a_claim_taken_over_is_refused(store: Store):
    """Same holder string, an older claim: once the next leadership has taken the delivery over, the old
    leadership's record is refused rather than hiding the repeat that was counted."""
    store.acquire_lease("a:1", 10)
    first = store.with_fence(Fixed("a:1", 1))
    first.enqueue(alert("k1"), ["trading"], T0)
    assert first.claim("k1", "trading", T0)
    # b takes the delivery over (a takeover after a's lease ended) and records its own send.
    store.release_lease("a:1", 1)
    store.acquire_lease("b:2", 10)
    b = store.with_fence(Fixed("b:2", 2))
    assert [c[:3] for c in b.take_over()] == [("k1", "trading", "a:1")]
    with pytest.raises(Fenced):
        first.mark_sent("k1", "trading", T0)
    assert b.claim("k1", "trading", T0)
    b.mark_sent("k1", "trading", T0 + dt.timedelta(seconds=1))
    assert store.sent_log(5) == [("k1", "trading", T0 + dt.timedelta(seconds=1))]


def test_single_instance_counts_a_claim_left_by_a_crashed_run(store: Store):
    before = store.with_fence(ha.TermFence(ha.SingleInstance("host:100"), 0))
    before.enqueue(alert("k1"), ["trading"], T0)
    assert before.claim("k1", "trading", T0)     # then the process is killed mid-send
    after = store.with_fence(ha.TermFence(ha.SingleInstance("host:200"), 0))
    assert after.take_over() == [("k1", "trading", "host:100", T0)]
    assert after.claim("k1", "trading", T0)
    after.mark_sent("k1", "trading", T0)
    assert store.repeats() == (1, [("k1", "trading", 1)])


def test_without_a_fence_nothing_is_claimed_or_checked(store: Store):
    store.enqueue(alert("k1"), ["trading"], T0)
    assert store.claim("k1", "trading", T0) is True
    assert store.take_over() == []
    store.mark_sent("k1", "trading", T0)
    assert store.repeats() == (0, [])


# ---- the Lease: timing -----------------------------------------------------------------------------------

class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_timing_for_the_default_and_a_short_lease():
    assert (ha.Timing(10).poll, ha.Timing(10).ttl, ha.Timing(10).renew, ha.Timing(10).margin) == (1.0, 9.0, 2.0, 0.5)
    short = ha.Timing(3)
    assert (short.poll, short.ttl, short.renew, short.margin) == (pytest.approx(0.3), pytest.approx(2.7),
                                                                  pytest.approx(0.6), pytest.approx(0.15))
    for lease in (3, 10, 60, 600):
        t = ha.Timing(lease)
        assert t.ttl + t.poll == lease          # a standby sees the expiry within one poll: takeover <= lease
        assert t.ttl / t.renew >= 4             # several renewals may fail before the lease runs out


def test_the_leader_stops_trusting_its_lease_before_the_database_lets_another_take_it(target: str):
    clock = Clock()
    lease = ha.Lease(open_store(target), 3, "a:1", clock=clock)
    try:
        lease.tick()
        assert lease.term() == 1 and lease.token() == 1
        clock.t += lease.timing.ttl - lease.timing.margin - 0.01
        assert lease.term() == 1
        clock.t += 0.02                          # no renewal got through: past the local deadline
        assert lease.term() is None
        with pytest.raises(Fenced, match="a:1 does not lead"):
            lease.token()
        fence = ha.TermFence(lease, 1)
        with pytest.raises(Fenced):
            fence.token()
        with open_store(target) as other:       # the database has not let the lease go yet
            assert other.acquire_lease("b:2", 3) is None
    finally:
        lease.stop()


def test_a_stepped_down_term_is_never_led_with_again(target: str):
    clock = Clock()
    lease = ha.Lease(open_store(target), 3, "a:1", clock=clock)
    try:
        lease.tick()
        assert lease.term() == 1
        lease.step_down(1)                       # the Supervisor saw the term end (e.g. a renewal came late)
        assert lease.term() is None
        lease.tick()                             # releases it, then takes the lease again: a new term
        assert lease.term() == 2
    finally:
        lease.stop()
    with open_store(target) as s:
        assert s.lease().holder is None          # stop() released it


def test_a_standby_takes_over_within_the_lease_when_the_leader_stops_renewing(target: str):
    a = ha.Lease(open_store(target), 3, "a:1")
    b = ha.Lease(open_store(target), 3, "b:2")
    a.start()
    _wait(lambda: a.term() == 1)
    b.start()
    time.sleep(1.0)
    assert b.term() is None                      # a renews: b stands by
    a._stop.set()                                # a's process hangs: no renewal, no release
    a._thread.join()
    stalled = time.monotonic()
    _wait(lambda: b.term() == 2, timeout=5)
    took = time.monotonic() - stalled
    assert took <= 3.0 + 0.3, took
    assert a.term() is None                      # by then a no longer trusts its lease
    b.stop()
    a.stop()


def _wait(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# ---- the Supervisor ----------------------------------------------------------------------------------------

class FakeLease:
    """A lease the test hands out and takes back."""

    enabled = True
    holder = "a:1"

    def __init__(self) -> None:
        self.current: int | None = None
        self.stepped: list[int] = []
        self.stopped = False

    def term(self) -> int | None:
        return self.current

    def token(self) -> int | None:
        if self.current is None:
            raise Fenced("no")
        return self.current

    def remaining(self) -> float:
        return 60.0

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True

    def step_down(self, term: int) -> None:
        self.stepped.append(term)


class FakeRunner:
    def __init__(self, store: Store):
        self.store = store
        self.events: list[str] = []

    def start(self) -> None:
        self.events.append("start")

    def stop(self) -> None:
        self.events.append("stop")

    def shutdown(self, wait: bool = True) -> None:
        self.events.append(f"shutdown(wait={wait})")


def test_supervisor_runs_a_fresh_runner_per_term_and_abandons_a_lost_one(tmp_path: Path):
    lease, runners = FakeLease(), []
    metrics = Metrics()
    with open_store(tmp_path / "mw.sqlite") as store:
        sup = ha.Supervisor(lease, store, lambda s: runners.append(FakeRunner(s)) or runners[-1], metrics=metrics,
                            check_every=0.01)
        sup.start()
        time.sleep(0.1)
        assert runners == [] and sup.runner is None
        lease.current = store.acquire_lease("a:1", 60)
        assert lease.current == 1
        _wait(lambda: sup.runner is not None)
        assert metrics.get("macrowatch_leader") == 1
        lease.current = None                     # lost
        _wait(lambda: sup.runner is None)
        assert runners[0].events == ["start", "stop", "shutdown(wait=False)"]
        assert lease.stepped == [1] and metrics.get("macrowatch_leader") == 0
        with pytest.raises(Fenced):              # the first term's store view writes no more
            runners[0].store.save_state("engine", {})
        store.release_lease("a:1", 1)
        lease.current = store.acquire_lease("a:1", 60)
        assert lease.current == 2
        _wait(lambda: len(runners) == 2 and sup.runner is runners[1])
        sup.shutdown()                           # a clean stop: the jobs under way finish
        assert runners[1].events == ["start", "stop", "shutdown(wait=True)"]
        assert lease.stopped


def test_supervisor_on_sqlite_leads_at_once_and_counts_repeats(tmp_path: Path):
    path = tmp_path / "mw.sqlite"
    with open_store(path) as s:
        s.enqueue(alert("k1"), ["trading"], T0)
        s.with_fence(ha.TermFence(ha.SingleInstance("host:1"), 0)).claim("k1", "trading", T0)
    metrics = Metrics()
    started = threading.Event()

    def make(store: Store) -> FakeRunner:
        started.set()
        return FakeRunner(store)

    with open_store(path) as store:
        sup = ha.Supervisor(ha.SingleInstance("host:2"), store, make, metrics=metrics, check_every=0.01)
        sup.start()
        assert started.wait(5)
        sup.shutdown()
        assert metrics.get("macrowatch_possible_repeats_total") == 1
        assert store.repeats() == (1, [("k1", "trading", 1)])


# ---- macrowatch status ----------------------------------------------------------------------------------

STATUS_CONFIG = """\
store: "{store}"
instruments: {{spx: {{symbol: "^GSPC"}}}}
levels: {{l: {{instrument: spx, price: 1}}}}
rules: [{{name: r, when: {{level: l, state: breakout}}}}]
"""


def _status(tmp_path: Path, store: str, *args: str):
    from click.testing import CliRunner

    from macrowatch.commands.cli import cli

    (tmp_path / "mw.yaml").write_text(STATUS_CONFIG.format(store=store))
    result = CliRunner().invoke(cli, ["status", "-c", str(tmp_path / "mw.yaml"), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_status_shows_the_leader_and_the_possible_repeats(tmp_path: Path, postgres_url: str):
    import json

    assert "leader: none yet (no instance has taken the lease on this store)" in _status(tmp_path, postgres_url)
    with open_store(postgres_url) as s:
        s.acquire_lease("host-a:4242", 9)
        a = s.with_fence(Fixed("host-a:4242", 1))
        a.enqueue(alert("k1"), ["trading"], T0)
        a.claim("k1", "trading", T0)
        a.take_over()
    lines = _status(tmp_path, postgres_url).splitlines()
    assert lines[1].startswith("leader: host-a:4242 since ") and " (token 1), lease renewed " in lines[1]
    assert lines[1].endswith(("expires in 8s", "expires in 7s"))
    assert ("possible repeats: 1 (a send whose record was lost in a crash or a failover, or that had no answer in "
            "time, sent again): k1 to trading" in lines)
    report = json.loads(_status(tmp_path, postgres_url, "--format", "json"))
    assert (report["leader"]["holder"], report["leader"]["held"], report["leader"]["token"]) == ("host-a:4242", True, 1)
    assert report["outbox"]["possible_repeats"] == 1
    with open_store(postgres_url) as s:
        s.release_lease("host-a:4242", 1)
    assert _status(tmp_path, postgres_url).splitlines()[1].startswith(
        "leader: none: the last leader released the lease (token 1) ")


def test_status_on_sqlite_shows_no_leader(tmp_path: Path):
    path = tmp_path / "mw.sqlite"
    open_store(path).close()
    out = _status(tmp_path, str(path))
    assert "leader" not in out and "possible repeats" not in out
