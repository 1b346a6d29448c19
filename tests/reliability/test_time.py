"""Time: every XNYS session close and every release from 2019 to 2027 is evaluated exactly once, on time.

The daemon's real scheduling runs under a fake clock: `Runner._startup` registers its jobs (the level-triggered
close check every minute, the schedule refresh every 6 h, one-shot DateTriggers for release bursts) on a
paused APScheduler, and `step` runs the due ones as APScheduler would when it wakes up late (once, coalesced,
the next run from the trigger). Time jumps from one moment of interest to the next: a minute before, one and
two minutes after each close (a bar is served 20 s after its close), each release job's run date, and twice a
day in between, so nine years take about 14,000 steps (MACROWATCH_LONG_TESTS=1: every minute from ten
before to ten after each close and every hour of every day, about 130,000 steps).

Checked, on the engine's own evaluations (its `close:DAY` and `release:AT` events): each session from 2019-01-02
to 2027-12-31 (early closes at 13:00, holidays, DST nights, the closure of 2025-01-09) is evaluated once, at
most two minutes after its close and never before; each release (first Fridays and explicit `dates:`) is
evaluated once, just after 08:30 New York time whatever the UTC offset, its burst started by the DateTrigger
at that moment; a 01:30 release on the autumn fall-back night runs once (APScheduler's cron trigger
would run it twice, shown here); a 02:30 release on the spring-forward night, which does not exist, runs once
at 03:30; no cron trigger is ever used. About 17 s on 2 cores.
"""

from __future__ import annotations

import datetime as dt
import inspect
import math
import os
import textwrap
import zoneinfo
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from macrowatch.clock import FakeClock
from macrowatch.config import load_config
from macrowatch.config.types import Trigger
from macrowatch.model import Bar, Vintage
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.scheduler import Runner
from macrowatch.sources import calendar
from macrowatch.sources.base import LatestFetch, PriceFetch, Quote
from macrowatch.store import open_store

pytestmark = pytest.mark.slow  # nine years of scheduling under a fake clock

NY = zoneinfo.ZoneInfo("America/New_York")
UTC = dt.UTC
D = dt.date
FIRST, LAST = D(2019, 1, 2), D(2027, 12, 31)
START = dt.datetime(2018, 12, 31, 12, 0, tzinfo=NY)     # the daemon's first start: before any session
END = dt.datetime(2028, 1, 3, 12, 0, tzinfo=NY)
BAR_LAG = dt.timedelta(seconds=20)                     # a session's bar is served this long after its close
PRINT_LAG = dt.timedelta(seconds=2)                    # a release's value is served this long after its time
CHECK_EVERY = 60.0                                     # the Runner's close check
LONG = os.environ.get("MACROWATCH_LONG_TESTS") == "1"   # every minute around each close, every hour of each day

# Explicit dates beside the first Fridays: DST Sundays, a closure, an early close, holidays, the ends.
EXTRA_DATES = [D(2019, 1, 2), D(2019, 3, 10), D(2019, 11, 3), D(2020, 3, 8), D(2021, 11, 7), D(2024, 12, 24),
               D(2025, 1, 9), D(2025, 3, 9), D(2025, 11, 2), D(2026, 12, 25), D(2027, 3, 14), D(2027, 11, 7),
               D(2027, 12, 31)]
CONFIG = f"""\
timezone: America/New_York
calendar: XNYS
instruments:
  spx: {{symbol: "^GSPC", name: "S&P 500"}}
levels:
  spx-100: {{instrument: spx, price: 100}}
releases:
  jobs: {{fred_release_id: 50, time: "08:30", dates: [{", ".join(map(str, EXTRA_DATES))}]}}
  night: {{time: "01:30", dates: [2024-11-03]}}     # the autumn fall-back night: 01:30 happens twice
  spring: {{time: "02:30", dates: [2024-03-10]}}    # the spring-forward night: 02:30 never happens
macro:
  payrolls: {{series: PAYEMS, release: jobs, measure: level}}
  night: {{series: NIGHT, release: night, measure: level}}
  spring: {{series: SPRING, release: spring, measure: level}}
rules:
  - {{name: every-close, when: {{level: spx-100, state: [below, approaching, breakout, confirmed, failed]}}}}
  - {{name: every-release, when: {{any: [{{release: payrolls}}, {{release: night}}, {{release: spring}}]}}}}
"""


def first_fridays(start: D, end: D) -> list[D]:
    out = []
    for year in range(start.year, end.year + 1):
        for month in range(1, 13):
            day = D(year, month, 1)
            day += dt.timedelta(days=(4 - day.weekday()) % 7)
            if start <= day <= end:
                out.append(day)
    return out


CLOSES = calendar.close_times("XNYS", FIRST, LAST)          # session -> close (UTC): what the exchange does
HISTORY = calendar.close_times("XNYS", D(2018, 12, 3), FIRST - dt.timedelta(days=1))  # warm-up before START
RELEASE_TIMES = {"jobs": dt.time(8, 30), "night": dt.time(1, 30), "spring": dt.time(2, 30)}
SCHEDULE = {"jobs": sorted(set(first_fridays(FIRST, LAST)) | set(EXTRA_DATES)),
            "night": [D(2024, 11, 3)], "spring": [D(2024, 3, 10)]}
SERIES = {"jobs": "PAYEMS", "night": "NIGHT", "spring": "SPRING"}


def release_at(rid: str, day: D) -> dt.datetime:
    return dt.datetime.combine(day, RELEASE_TIMES[rid], NY)


def utc(t: dt.datetime) -> dt.datetime:
    """In UTC: a time in a DST gap or fold never compares equal to one in another zone (PEP 495)."""
    return t.astimezone(UTC)


class Prices:
    """The exchange: each session's bar, served BAR_LAG after its close."""

    def __init__(self):
        sessions = sorted({**HISTORY, **CLOSES}.items())
        self.bars = [Bar(d, at, 100.0, 101.0, 99.0, 100.0 + (i % 7) - 3) for i, (d, at) in enumerate(sessions)]

    def daily(self, instruments, start, now, calendar_for):
        ready = [b for b in self.bars if start <= b.session and b.at + BAR_LAG <= now]
        return PriceFetch({i: ready for i in instruments})

    def latest(self, instruments, now, calendar_for):
        last = [b for b in self.bars if b.at <= now][-1:]
        return LatestFetch({i: Quote(last[0].close, last[0].at) for i in instruments} if last else {})


class Macro:
    """FRED: a vintage per release day (its own period), served PRINT_LAG after the release time."""

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.calls = 0
        self.rows = {SERIES[rid]: [(release_at(rid, d), Vintage(d, d, 1000.0 + i)) for i, d in enumerate(days)]
                     for rid, days in SCHEDULE.items()}

    def vintages(self, series, since=None, *, today=None):
        self.calls += 1
        now = self.clock.now()
        return [v for at, v in self.rows[series] if at + PRINT_LAG <= now and (since is None or v.date >= since)]

    def release_schedule(self, release, start, end):
        return [d for d in SCHEDULE[release.id] if start <= d <= end]


def _interval_next(trigger: IntervalTrigger, previous: dt.datetime, now: dt.datetime) -> dt.datetime:
    """The first run of the interval's grid after `now` (APScheduler's coalesced catch-up, computed at once)."""
    step = trigger.interval
    return previous + step * max(1, math.floor((now - previous) / step) + 1)


def step(scheduler, now: dt.datetime) -> list[str]:
    """Run every job due at `now` once, as a woken scheduler does; return their ids."""
    ran = []
    for job in sorted(scheduler.get_jobs(), key=lambda j: (j.next_run_time, j.id)):
        if job.next_run_time is None or job.next_run_time > now:
            continue
        fire_time = job.next_run_time
        job.func(*job.args, **job.kwargs)
        ran.append(job.id)
        if scheduler.get_job(job.id) is not job:
            continue  # replaced while it ran (a schedule refresh re-adds release jobs) or removed
        if isinstance(job.trigger, IntervalTrigger):
            job.modify(next_run_time=_interval_next(job.trigger, fire_time, now))
        else:
            nxt = job.trigger.get_next_fire_time(fire_time, now)
            if nxt is None:
                scheduler.remove_job(job.id)
            else:
                job.modify(next_run_time=nxt)
    return ran


def probes() -> list[dt.datetime]:
    """Moments of interest: around each close, twice a day, and the DST nights' small hours."""
    out = set()
    around = range(-10, 11) if LONG else (-1, 1, 2)  # minutes from each close
    for close in [*HISTORY.values(), *CLOSES.values()]:
        out |= {close + dt.timedelta(minutes=m) for m in around}
    day = START.date()
    while day <= END.date():
        for hour in range(24) if LONG else (3, 12):
            out.add(dt.datetime.combine(day, dt.time(hour), NY).astimezone(UTC))
        day += dt.timedelta(days=1)
    for night in (D(2024, 11, 3), D(2024, 3, 10)):
        for minutes in range(0, 4 * 60, 15):
            out.add(dt.datetime.combine(night, dt.time(0), UTC) + dt.timedelta(hours=4, minutes=minutes))
    return sorted(t for t in out if START < t <= END)


class Run:
    """One simulation of 2019..2027 and what it recorded."""

    def __init__(self, tmp_path: Path):
        path = tmp_path / "mw.yaml"
        path.write_text(textwrap.dedent(CONFIG))
        config, _ = load_config(path)
        self.clock = FakeClock(START)
        self.macro = Macro(self.clock)
        self.alerts = []
        self.daemon = Daemon(config, open_store(tmp_path / "mw.sqlite"), self.clock, Prices(), self.macro,
                             on_alert=self.alerts.append)
        self.closes: dict[D, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)  # session -> (at, when)
        self.prints: dict[tuple[str, dt.datetime], list[dt.datetime]] = defaultdict(list)  # (macro, UTC) -> when
        self.bursts: Counter[tuple[str, D]] = Counter()
        self.burst_starts: dict[tuple[str, D], list[dt.datetime]] = defaultdict(list)
        self.triggers: set[type] = set()
        self._wrap()
        # heartbeat and delivery once a day: nothing to deliver here, and each run costs a store write
        self.runner = Runner(self.daemon, closes_every=CHECK_EVERY, deliver_every=86400.0, heartbeat_every=86400.0,
                             intraday_every=0)

    def _wrap(self) -> None:
        """Record each evaluation the engine makes (its event: `close:DAY` or `release:AT`) and each burst."""
        engine, bursts, clock = self.daemon.engine, self.daemon.bursts, self.clock
        evaluate, burst = engine._evaluate, bursts.burst
        signature = inspect.signature(evaluate)

        def counted_evaluate(*args, **kwargs):
            call = signature.bind(*args, **kwargs)
            trigger, at, event = call.arguments["trigger"], call.arguments["at"], call.arguments["event"]
            if trigger is Trigger.CLOSE:
                self.closes[D.fromisoformat(event.removeprefix("close:"))].append((at, clock.now()))
            elif trigger is Trigger.RELEASE:
                for macro in call.arguments["released"]:
                    self.prints[(macro, utc(at))].append(clock.now())
            return evaluate(*args, **kwargs)

        def counted_burst(rid, day, now):
            self.bursts[(rid, day)] += 1
            self.burst_starts[(rid, day)].append(clock.now())
            return burst(rid, day, now)

        engine._evaluate, bursts.burst = counted_evaluate, counted_burst

    def run(self) -> None:
        scheduler = self.runner.scheduler
        scheduler.start(paused=True)  # a real job store and real triggers; nothing runs on its own
        try:
            self.runner._startup()
            for t in probes():
                # Release jobs wake the scheduler at their run date, between the probes.
                while True:
                    due = [j.next_run_time for j in scheduler.get_jobs() if isinstance(j.trigger, DateTrigger)]
                    self.triggers |= {type(j.trigger) for j in scheduler.get_jobs()}
                    early = min([d for d in due if d < t], default=None)
                    if early is None:
                        break
                    self.clock.set(max(early, self.clock.now()))
                    step(scheduler, self.clock.now())
                self.clock.set(max(t, self.clock.now()))
                step(scheduler, self.clock.now())
        finally:
            scheduler.shutdown(wait=False)
            self.daemon.store.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    r = Run(tmp_path_factory.mktemp("time"))
    r.run()
    return r


def test_every_session_is_evaluated_once_after_its_close(run):
    assert sorted(run.closes) == sorted({**HISTORY, **CLOSES}), "sessions evaluated differ from the exchange's"
    twice = {d: v for d, v in run.closes.items() if len(v) != 1}
    assert not twice, f"sessions evaluated more than once: {list(twice.items())[:5]}"
    for session, [(at, when)] in run.closes.items():
        close = {**HISTORY, **CLOSES}[session]
        assert at == close, session
        assert close <= when, (session, when)  # never before the close
        if close > START:  # (the history before the first start is warm-up, evaluated at the start)
            assert when <= close + BAR_LAG + dt.timedelta(seconds=CHECK_EVERY), (session, when)
    assert run.daemon.engine.bar_index == len(HISTORY) + len(CLOSES)
    assert run.daemon.engine.sessions["spx"] == max(CLOSES)
    assert not [a for a in run.alerts if a.rule.startswith("ops-")]  # no close reported late, no source down
    print(f"\n{len(CLOSES)} sessions evaluated once each, 2019-01-02..2027-12-31")


def test_every_release_is_evaluated_once_at_its_local_time(run):
    expected = {(m, utc(release_at(rid, d))) for rid, m in (("jobs", "payrolls"), ("night", "night"),
                                                      ("spring", "spring")) for d in SCHEDULE[rid]}
    assert set(run.prints) == expected
    assert all(len(v) == 1 for v in run.prints.values()), [k for k, v in run.prints.items() if len(v) != 1][:5]
    for (macro, at), [when] in run.prints.items():
        assert at <= when <= at + PRINT_LAG + dt.timedelta(seconds=2), (macro, at, when)
    jobs = sorted(at for m, at in run.prints if m == "payrolls")
    assert all(at.astimezone(NY).time() == dt.time(8, 30) for at in jobs)
    offsets = Counter(at.astimezone(UTC).hour for at in jobs)
    assert set(offsets) == {12, 13}  # 08:30 EDT is 12:30 UTC, 08:30 EST 13:30 UTC: the offset follows DST
    for (rid, day), starts in run.burst_starts.items():
        assert utc(starts[0]) == utc(release_at(rid, day)), (rid, day, starts)  # the DateTrigger's moment
    assert set(run.bursts) == {(rid, d) for rid, days in SCHEDULE.items() for d in days}
    print(f"\n{len(run.prints)} releases evaluated once each ({len(jobs)} at 08:30 New York time; "
          f"{sum(run.bursts.values())} burst runs)")


def test_the_fall_back_night_runs_a_0130_release_once(run):
    at = release_at("night", D(2024, 11, 3))
    assert at.astimezone(UTC) == dt.datetime(2024, 11, 3, 5, 30, tzinfo=UTC)  # the first 01:30 (EDT)
    assert utc(run.burst_starts[("night", D(2024, 11, 3))][0]) == utc(at)
    assert len(run.prints[("night", utc(at))]) == 1
    # What a cron trigger would have done: 01:30 EDT and again 01:30 EST, an hour later.
    cron = CronTrigger(hour=1, minute=30, timezone=NY)
    start = dt.datetime(2024, 11, 2, 12, 0, tzinfo=NY)
    first = cron.get_next_fire_time(None, start)
    second = cron.get_next_fire_time(first, first)
    assert (first.astimezone(UTC).hour, second.astimezone(UTC).hour, second.date()) == (5, 6, D(2024, 11, 3)), \
        "APScheduler's cron no longer fires twice on the fall-back night: LIBRARIES.md needs updating"


def test_the_spring_forward_night_runs_a_0230_release_once_at_0330(run):
    at = release_at("spring", D(2024, 3, 10))
    assert at.astimezone(UTC) == dt.datetime(2024, 3, 10, 7, 30, tzinfo=UTC)  # 02:30 does not exist: 03:30 EDT
    assert utc(run.burst_starts[("spring", D(2024, 3, 10))][0]) == utc(at)
    assert len(run.prints[("spring", utc(at))]) == 1


def test_no_cron_trigger_is_used(run):
    assert run.triggers and run.triggers <= {IntervalTrigger, DateTrigger}, run.triggers
    package = Path(__import__("macrowatch").__file__).parent
    for source in package.rglob("*.py"):
        text = source.read_text()
        assert "CronTrigger" not in text and '"cron"' not in text and "'cron'" not in text, source


# ---- the calendar's facts, checked by hand ------------------------------------------------------------------

SESSIONS_PER_YEAR = {2019: 252, 2020: 253, 2021: 252, 2022: 251, 2023: 250, 2024: 252, 2025: 250}
HOLIDAYS = [D(2019, 1, 21), D(2019, 12, 25), D(2020, 4, 10), D(2021, 12, 24), D(2022, 6, 20), D(2022, 12, 26),
            D(2023, 6, 19), D(2024, 3, 29), D(2024, 6, 19), D(2025, 1, 9), D(2025, 4, 18), D(2026, 7, 3),
            D(2027, 7, 5), D(2027, 12, 24)]
EARLY_CLOSES = [D(2019, 7, 3), D(2019, 11, 29), D(2019, 12, 24), D(2020, 11, 27), D(2020, 12, 24),
                D(2021, 11, 26), D(2022, 11, 25), D(2023, 7, 3), D(2023, 11, 24), D(2024, 7, 3), D(2024, 11, 29),
                D(2024, 12, 24), D(2025, 7, 3), D(2025, 11, 28), D(2025, 12, 24), D(2026, 11, 27), D(2026, 12, 24),
                D(2027, 11, 26)]


def test_the_calendar_the_daemon_follows(run):
    years = Counter(d.year for d in run.closes if d >= FIRST)
    assert {y: years[y] for y in SESSIONS_PER_YEAR} == SESSIONS_PER_YEAR
    assert not set(HOLIDAYS) & set(run.closes)
    local = {d: at.astimezone(NY).time() for d, ((at, _when),) in run.closes.items() if d >= FIRST}
    assert sorted(d for d, t in local.items() if t != dt.time(16)) == EARLY_CLOSES
    assert all(local[d] == dt.time(13) for d in EARLY_CLOSES)
    # DST: the same 16:00 close is 21:00 UTC in winter and 20:00 UTC in summer.
    for day, hour in ((D(2019, 3, 8), 21), (D(2019, 3, 11), 20), (D(2024, 11, 1), 20), (D(2024, 11, 4), 21)):
        assert run.closes[day][0][0].astimezone(UTC).hour == hour, day
