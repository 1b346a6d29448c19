"""The daemon's briefing before a release: scheduled `before` it, sent once through the outbox (a restart between
the briefing and the release sends nothing again), and the engine then does what it said for the real print."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest

from macrowatch.clock import FakeClock
from macrowatch.config import load_config
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.scheduler import Runner
from macrowatch.store import open_store
from runtime.test_daemon_core import NY, WORLD, Macro, Prices

DAY = dt.date(2019, 8, 2)  # the July jobs report: 1300 - 1100 = +200k against a consensus of 150k
CONFIG = WORLD + """\
releases:
  es:
    fred_release_id: 50
    time: "08:30"
    briefing: {before: 30m, notify: [desk]}
macro:
  payrolls: {series: PAYEMS, release: es, measure: change, consensus: {2019-06: 50, 2019-07: 150}, beat_by: 25}
channels:
  desk: %s
rules:
  - {name: jobs-beat, when: {release: payrolls, outcome: beat}}
  - name: thesis
    when:
      all:
        - {level: spx-100, state: [approaching, breakout, confirmed]}
        - {release: payrolls, outcome: beat, within: 1d}
    chart: spx
  - name: miss-above-100
    when: {all: [{release: payrolls, outcome: miss}, {level: spx-100, state: confirmed}]}
"""


@pytest.fixture
def setup(tmp_path, webhook):
    path = tmp_path / "mw.yaml"
    path.write_text(textwrap.dedent(CONFIG) % webhook.url("json"))
    config, _ = load_config(path)
    return config, FakeClock(dt.datetime(2019, 8, 2, 7, 0, tzinfo=NY)), tmp_path / "mw.sqlite"


def start(setup) -> tuple[Daemon, Runner]:
    config, clock, store_path = setup
    d = Daemon(config, open_store(store_path), clock, Prices(), Macro(clock))
    d.start(clock.now())
    runner = Runner(d)  # not started: its jobs wait in the scheduler and are run here by hand
    runner.releases.schedule()
    return d, runner


def run_job(runner: Runner, job_id: str) -> None:
    job = runner.scheduler.get_job(job_id)
    job.func(*job.args)
    runner.scheduler.remove_job(job_id)  # a one-off job is removed once run


def test_the_briefing_is_sent_once_before_the_release_and_the_engine_then_does_what_it_said(setup, webhook):
    config, clock, _ = setup
    d, runner = start(setup)
    job = runner.scheduler.get_job(f"briefing:es:{DAY}")
    assert job.trigger.run_date == dt.datetime(2019, 8, 2, 8, 0, tzinfo=NY)  # 30 minutes before 08:30
    clock.set(dt.datetime(2019, 8, 2, 8, 0, tzinfo=NY))
    run_job(runner, job.id)
    [got] = webhook.wait_for(1)
    body = got.json()
    assert body["title"] == "Briefing: es at Fri 2019-08-02 08:30 EDT"
    assert "payrolls (PAYEMS change) for 2019-07: consensus +150k (consensus from config); prior first print " \
           "+100k (2019-06)" in body["message"]
    assert "  beat (+175k): jobs-beat, thesis fire\n  inline (+150k): nothing fires\n" \
           "  miss (+125k): miss-above-100 fires\n" in body["message"]
    assert [a["mimetype"] for a in body["attachments"]] == ["image/png"]  # the thesis's chart: spx
    [stored] = [s for s in d.store.recent_alerts(10) if s.alert.rule == "briefing"]
    said = {s["outcome"]: s["fires"] for s in stored.alert.evidence["scenarios"]}
    d.store.close()

    # A restart at 08:10: the job comes again (its moment has passed, the release has not come), and sends nothing.
    clock.set(dt.datetime(2019, 8, 2, 8, 10, tzinfo=NY))
    d2, runner2 = start(setup)
    run_job(runner2, f"briefing:es:{DAY}")
    assert len(webhook.requests) == 1
    # The release: +200k against 150k, a beat; the engine fires what the briefing said a beat would fire.
    clock.set(dt.datetime(2019, 8, 2, 8, 30, tzinfo=NY))
    fired = d2.bursts.burst("es", DAY, clock.now())
    assert [a.rule for a in fired] == said["beat"] == ["jobs-beat", "thesis"]
    # After the release time no briefing job is added any more.
    runner2.releases.schedule()
    assert runner2.scheduler.get_job(f"briefing:es:{DAY}") is None
    d2.store.close()


def test_a_briefing_after_its_release_time_is_not_sent(setup, webhook):
    config, clock, _ = setup
    d, runner = start(setup)
    clock.set(dt.datetime(2019, 8, 2, 8, 30, tzinfo=NY))
    assert runner.releases.briefings.send("es", DAY, clock.now()) == []
    assert webhook.requests == []
    d.store.close()


def test_before_is_elapsed_time_across_a_dst_change(tmp_path, webhook):
    # 12 hours before 08:30 EDT on 2019-03-10 (the spring-forward day) is 19:30 EST the evening before, not 20:30.
    path = tmp_path / "mw.yaml"
    path.write_text((textwrap.dedent(CONFIG) % webhook.url("json")).replace("before: 30m", "before: 12h"))
    config, _ = load_config(path)
    clock = FakeClock(dt.datetime(2019, 3, 9, 7, 0, tzinfo=NY))
    d, runner = start((config, clock, tmp_path / "mw.sqlite"))
    day = dt.date(2019, 3, 10)
    runner.releases._briefing_job("es", day, dt.datetime(2019, 3, 10, 8, 30, tzinfo=NY), clock.now())
    run_date = runner.scheduler.get_job(f"briefing:es:{day}").trigger.run_date
    assert run_date == dt.datetime(2019, 3, 9, 19, 30, tzinfo=NY)
    assert run_date.astimezone(NY).strftime("%H:%M %Z") == "19:30 EST"
    d.store.close()


@pytest.mark.parametrize(("months", "consensus", "why"), [
    (3, None, "no consensus for 2019-04 (the macro names no file, values or feed): 2 first prints of the 12 whose "
              "mean would stand in: the print will be judged unknown"),
    (14, 100.0, "no consensus for 2020-03 (the macro names no file, values or feed): the mean of the last 12 first "
                "prints stands in"),
])
def test_without_a_consensus_the_store_briefing_says_what_stands_in(tmp_path, webhook, months, consensus, why):
    from macrowatch.model import Vintage
    from macrowatch.runtime.briefings import from_store

    path = tmp_path / "mw.yaml"
    path.write_text((textwrap.dedent(CONFIG) % webhook.url("json")).replace(
        ", consensus: {2019-06: 50, 2019-07: 150}", ""))
    config, _ = load_config(path)
    # A period a month, each first published on the 5th of the next at 1000 + 100 per month: every change is +100.
    periods = [dt.date(2019 + (m // 12), m % 12 + 1, 1) for m in range(months)]
    with open_store(tmp_path / "mw.sqlite") as store:
        store.put_vintages("PAYEMS", [Vintage(p, (p + dt.timedelta(days=35)).replace(day=5), 1000.0 + 100 * i)
                                      for i, p in enumerate(periods)])
        last = periods[-1]
        at = dt.datetime.combine((last + dt.timedelta(days=66)).replace(day=5), dt.time(8, 30), NY)
        [(mid, expected)] = from_store(config, store, "es", at).items()
    assert (mid, expected.consensus, expected.why, expected.prior) == ("payrolls", consensus, why, 100.0)
