"""Crash consistency: `macrowatch run` killed with SIGKILL at random moments, restarted, and nothing lost or doubled.

The daemon runs as a real subprocess against the stub Yahoo, a stub FRED that publishes each value just after
its release time, and a webhook receiver with two channels. The scenario (tests/reliability/world.py) fires an
alert at every session close and at every 08:30 release, so every run has alerts to evaluate, enqueue and
deliver. Run k starts the daemon on the k-th release day (MACROWATCH_NOW), either a moment before 08:30 (the
release burst fires the alert) or just after (the catch-up does); it always catches up the previous close.
Each run is killed with SIGKILL, from a seeded RNG, either at a uniformly random moment of its life or just
as the receiver takes the j-th request of the run (the kill that lands between a send and its record).

After every kill the store must pass `PRAGMA integrity_check` and open with macrowatch's own opener; the
requests the receiver got in that run but the store does not record as sent are counted: a kill leaves at
most one (sends are serialised), and those, and only those, may be repeated after the restart, once per such
kill. A last, clean run delivers the rest; then every alert the engine fires over the scenario (fed in one
go, no crash) has reached each channel, none other has, and repeats <= kills between a send and its record.
The summary line (seed, runs, kills, kills between send and record, repeats) is printed even without -s.

Default: 50 runs (about a minute on 2 cores). MACROWATCH_LONG_TESTS=1: 300 runs; MACROWATCH_CRASH_RUNS=N
and MACROWATCH_CRASH_SEED=S override the count and the seed.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
from collections import Counter

import pytest

from macrowatch.config import load_config
from macrowatch.store import open_store

from .world import (
    CHANNELS,
    WARM,
    Processes,
    Receiver,
    Run,
    Scenario,
    integrity,
    pending,
    read_alerts,
    received,
    release_at,
    sent,
)

pytestmark = pytest.mark.slow  # 50 `macrowatch run` processes killed with SIGKILL

LONG = os.environ.get("MACROWATCH_LONG_TESTS") == "1"
RUNS = int(os.environ.get("MACROWATCH_CRASH_RUNS") or (300 if LONG else 50))
SEED = int(os.environ.get("MACROWATCH_CRASH_SEED") or 20190802)
LIFE = 2.8          # seconds: a run is killed at the latest this long after its start (it is idle by then)


@pytest.fixture
def processes(tmp_path):
    world = Processes(tmp_path, Scenario(WARM + RUNS + 8))
    yield world
    world.close()


def kill_at_random(run: Run, receiver: Receiver, rng: random.Random) -> str:
    """SIGKILL the run at a random moment of its life, or as the receiver takes its j-th request; say which."""
    if rng.random() < 0.5:
        time.sleep(rng.uniform(0.2, LIFE))
        run.kill()
        return "uniform"
    j, delay, before = rng.randint(1, 4), rng.uniform(0, 0.004), len(receiver.requests)

    def hook(n: int) -> None:
        if n - before == j:
            time.sleep(delay)  # 0 ms: before the answer leaves; a few ms: around the daemon's record
            run.kill()
    receiver.on_request = hook
    deadline = time.monotonic() + LIFE
    while run.killed_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    receiver.on_request = None
    run.kill()  # fewer than j requests in its life: killed at its end
    return "at-send"


def test_sigkill_at_random_moments_loses_nothing_and_repeats_only_an_unrecorded_send(processes, capsys):
    scenario, start, receiver, store = processes.scenario, processes.start, processes.receiver, processes.store
    rng = random.Random(SEED)

    # A clean first start warms up on the history before the first release day: alerts count from then on.
    warm_now = release_at(scenario.day(WARM)) - dt.timedelta(hours=2)
    first = start(warm_now)
    first.wait_for_line("warmed up")
    assert first.stop() == 0

    kills = 0
    unrecorded: list[tuple[str, str]] = []     # sends the receiver took and a kill kept the store from recording
    modes: Counter = Counter()
    for k in range(RUNS):
        burst = rng.random() < 0.5  # start before 08:30 (the burst fires the release) or after (the catch-up does)
        now = release_at(scenario.day(WARM + k)) + dt.timedelta(seconds=-1.5 if burst else 3)
        before = len(receiver.requests)
        run = start(now)
        modes["burst" if burst else "catch-up", kill_at_random(run, receiver, rng)] += 1
        run.proc.wait(timeout=10)
        kills += run.killed_at is not None
        assert integrity(store) == "ok", f"run {k}: the store after the kill: {integrity(store)}"
        open_store(store).close()  # macrowatch's own opener (schema check, WAL) accepts it too
        recorded = sent(store)
        lost = [p for p in received(receiver.requests[before:], store) if p not in recorded]
        assert len(lost) <= 1, f"run {k}: one kill left {len(lost)} sends unrecorded: {lost}"
        unrecorded += lost
        so_far = received(receiver.requests, store)
        assert all(n <= 1 + unrecorded.count(p) for p, n in so_far.items()), f"run {k}: a repeat no kill explains"
        assert "level=error" not in run.output() and "Traceback" not in run.output(), run.output()[-3000:]

    # A last run, not killed, delivers what is left.
    final_now = release_at(scenario.day(WARM + RUNS)) + dt.timedelta(seconds=3)
    last = start(final_now)
    config, _ = load_config(processes.config)
    expected = scenario.expected(config, warm_now, final_now)
    want = {(a.key, c) for a in expected for c in CHANNELS}
    deadline = time.monotonic() + 60
    while not (want <= set(received(receiver.requests, store)) and pending(store) == 0):
        assert last.proc.poll() is None and time.monotonic() < deadline, last.output()[-3000:]
        time.sleep(0.1)
    time.sleep(1.0)  # room for a wrong extra send
    assert last.stop() == 0
    assert integrity(store) == "ok"

    got = received(receiver.requests, store)
    repeats = sum(n - 1 for n in got.values())
    with capsys.disabled():
        print(f"\ncrash consistency: seed {SEED}: {RUNS} runs, {kills} SIGKILLs, {len(unrecorded)} of them between "
              f"a send and its record, {repeats} repeated sends; {len(expected)} alerts x {len(CHANNELS)} channels "
              f"delivered; runs by start and kill: {dict(sorted(modes.items()))}")
    assert kills == RUNS
    assert set(got) == want, f"missing {sorted(want - set(got))[:5]}, unexpected {sorted(set(got) - want)[:5]}"
    stored = {key for key, p in read_alerts(store).items() if not p["rule"].startswith("ops-")}
    assert stored == {a.key for a in expected}
    assert repeats <= len(unrecorded)
    assert {p for p, n in got.items() if n > 1} <= set(unrecorded), "a send repeated with no kill to explain it"
    assert all(got[p] <= 1 + unrecorded.count(p) for p in got)
