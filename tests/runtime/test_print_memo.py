"""The macro prints the daemon rebuilds every minute are kept (runtime/history.py `macro_prints`): given again
while the vintages, the macro, the release times and the consensus found are the same, made anew when any of them
changes. Each case checks the kept path against the prints made from scratch, after the change."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

import pytest

from macrowatch.config import load_config
from macrowatch.config.types import Config
from macrowatch.engine import outcomes
from macrowatch.engine.evaluator import Engine
from macrowatch.engine.outcomes import SeriesHistory
from macrowatch.model import Print, Vintage
from macrowatch.runtime import history
from macrowatch.runtime.calendars import SCHEDULE_STATE, moment
from macrowatch.runtime.history import forecasts_seen, macro_prints, stored_forecasts, unseen
from macrowatch.sources import files
from macrowatch.store import open_store
from macrowatch.store.forecasts import ForecastRow

NY = zoneinfo.ZoneInfo("America/New_York")
EVENT = "Non-Farm Employment Change"
CONFIG = """\
timezone: {tz}
sources:
  consensus: {{forexfactory: {{url: "http://127.0.0.1:9/ff.json"}}}}
releases:
  es: {{time: "{time}", dates: [{days}]}}
macro:
  payrolls:
    series: PAYEMS
    release: es
    measure: {measure}
    beat_by: {beat_by}
    consensus:
      - {{feed: forexfactory, event: "{event}", unit: 1000}}
  level: {{series: PAYEMS, release: es, measure: level, consensus: {{2025-03: 150600}}}}
rules:
  - {{name: jobs, when: {{release: payrolls, outcome: any}}}}
"""


def first_friday(year: int, month: int) -> dt.date:
    day = dt.date(year, month, 1)
    return day + dt.timedelta(days=(4 - day.weekday()) % 7)


# 2024-02 .. 2025-05: each first Friday publishes the month before (+150 a month) and revises the one before it.
DAYS = [first_friday(2024 + m // 12, m % 12 + 1) for m in range(1, 17)]


def period(day: dt.date) -> dt.date:
    m = day.year * 12 + day.month - 2
    return dt.date(m // 12, m % 12 + 1, 1)


def vintages(days: list[dt.date]) -> list[Vintage]:
    rows = []
    for i, day in enumerate(days):
        p = period(day)
        rows.append(Vintage(p, day, 150_000.0 + 150 * i))
        if i:
            rows.append(Vintage(period(days[i - 1]), day, 150_000.0 + 150 * (i - 1) + 10))  # the revision
    return sorted(rows, key=lambda v: (v.date, v.realtime_start))


def config(tmp_path: Path, tz: str = "America/New_York", time: str = "08:30", measure: str = "change",
           beat_by: float = 25, event: str = EVENT) -> Config:
    path = tmp_path / "mw.yaml"
    path.write_text(CONFIG.format(tz=tz, time=time, measure=measure, beat_by=beat_by, event=event,
                                  days=", ".join(map(str, DAYS))))
    return load_config(path)[0]


def from_scratch(cfg: Config, macro_id: str, rows: list[Vintage], times=None, seen=None) -> list[Print]:
    """The prints made anew, as `macro_prints` made them before they were kept."""
    macro = cfg.macro[macro_id]
    series = SeriesHistory.from_vintages(rows)
    release_at = {d: moment(cfg, macro.release, d, times or {}) for d in series.release_days()}
    consensus, label = files.consensus_for(macro, None, series.printed(release_at), seen)
    return outcomes.prints(macro, series, release_at, consensus, label)


def forecast(value: float, seen: dt.datetime, day: dt.date = DAYS[-1], event: str = EVENT) -> ForecastRow:
    return ForecastRow("forexfactory", event, "USD", dt.datetime.combine(day, dt.time(8, 30), NY), value, seen)


def kept(cfg: Config, macro_id: str, rows: list[Vintage], times=None, seen=None) -> list[Print]:
    """Twice: the second call is the kept path (the first makes the prints)."""
    macro_prints(cfg, cfg.macro[macro_id], rows, None, times, seen)
    return macro_prints(cfg, cfg.macro[macro_id], rows, None, times, seen)


@pytest.fixture
def made(monkeypatch) -> list[int]:
    """How many times the prints were made from the vintages (not given again)."""
    calls = [0]
    make = history.prints

    def counted(*args, **kwargs):
        calls[0] += 1
        return make(*args, **kwargs)

    monkeypatch.setattr(history, "prints", counted)
    return calls


def test_unchanged_inputs_are_not_made_again(tmp_path, made):
    cfg, rows = config(tmp_path), vintages(DAYS)
    first = macro_prints(cfg, cfg.macro["payrolls"], rows, None)
    for _ in range(3):  # the store read anew each minute: equal rows, other objects
        again = macro_prints(cfg, cfg.macro["payrolls"], [Vintage(v.date, v.realtime_start, v.value) for v in rows],
                             None)
        assert again == first == from_scratch(cfg, "payrolls", rows)
    assert made[0] == 1
    again.clear()  # a caller's list is its own
    assert macro_prints(cfg, cfg.macro["payrolls"], rows, None) == first


def test_a_new_vintage_makes_them_again(tmp_path, made):
    cfg, rows = config(tmp_path), vintages(DAYS[:-1])
    before = kept(cfg, "payrolls", rows)
    rows.append(Vintage(period(DAYS[-1]), DAYS[-1], 999_999.0))  # the same list, grown in place
    after = macro_prints(cfg, cfg.macro["payrolls"], rows, None)
    assert after == from_scratch(cfg, "payrolls", rows) and len(after) == len(before) + 1
    assert made[0] == 2


def test_a_revision_on_a_release_day_makes_them_again(tmp_path):
    """A row that changes the prior (and the change) of a release already printed, no new release day."""
    cfg, rows = config(tmp_path), vintages(DAYS)
    before = kept(cfg, "payrolls", rows)
    revised = sorted([*rows, Vintage(period(DAYS[-3]), DAYS[-1], 1.0)], key=lambda v: (v.date, v.realtime_start))
    after = macro_prints(cfg, cfg.macro["payrolls"], revised, None)
    assert after == from_scratch(cfg, "payrolls", revised)
    assert after[-1].prior != before[-1].prior and after[:-1] == before[:-1]


def test_a_new_forecast_seen_makes_them_again(tmp_path):
    cfg, rows = config(tmp_path), vintages(DAYS)
    early = dt.datetime.combine(DAYS[-1], dt.time(7), NY)
    sightings = [forecast(140, early - dt.timedelta(days=2))]
    before = kept(cfg, "payrolls", rows, seen=forecasts_seen(sightings))
    assert before[-1].consensus == 140
    sightings.append(forecast(175, early))  # a newer number, still before 08:30
    after = macro_prints(cfg, cfg.macro["payrolls"], rows, None, None, forecasts_seen(sightings))
    assert after == from_scratch(cfg, "payrolls", rows, seen=forecasts_seen(sightings))
    assert after[-1].consensus == 175 and after[-1].consensus_source != before[-1].consensus_source
    sightings.append(forecast(999, early + dt.timedelta(hours=2)))  # after the release: never counts
    late = macro_prints(cfg, cfg.macro["payrolls"], rows, None, None, forecasts_seen(sightings))
    assert late == after == from_scratch(cfg, "payrolls", rows, seen=forecasts_seen(sightings))


@pytest.mark.parametrize("change", [{"beat_by": 200}, {"measure": "level"}, {"time": "10:00"},
                                    {"tz": "America/Chicago"}, {"event": "Nonfarm Payrolls"}],
                         ids=["beat_by", "measure", "release-time", "timezone", "feed-event"])
def test_a_reloaded_config_makes_them_again(tmp_path, change):
    rows = vintages(DAYS)
    sightings = [forecast(60, dt.datetime.combine(DAYS[-1], dt.time(7), NY)),
                 forecast(60, dt.datetime.combine(DAYS[-1], dt.time(7), NY), event="Nonfarm Payrolls")]
    old, new = config(tmp_path), config(tmp_path, **change)
    seen = forecasts_seen(sightings[:1])
    before = kept(old, "payrolls", rows, seen=seen)
    after = macro_prints(new, new.macro["payrolls"], rows, None, None, seen)
    assert after == from_scratch(new, "payrolls", rows, seen=seen)
    assert after != before


def test_the_bls_time_of_a_day_makes_them_again(tmp_path):
    cfg, rows = config(tmp_path), vintages(DAYS)
    before = kept(cfg, "level", rows)
    times = {"es": {DAYS[-1]: dt.time(8, 31)}}
    after = macro_prints(cfg, cfg.macro["level"], rows, None, times)
    assert after == from_scratch(cfg, "level", rows, times)
    assert after[-1].at == dt.datetime.combine(DAYS[-1], dt.time(8, 31), NY) != before[-1].at


def test_two_macros_of_one_series_keep_their_own(tmp_path, made):
    cfg, rows = config(tmp_path), vintages(DAYS)
    for _ in range(2):
        assert macro_prints(cfg, cfg.macro["payrolls"], rows, None) == from_scratch(cfg, "payrolls", rows)
        assert macro_prints(cfg, cfg.macro["level"], rows, None) == from_scratch(cfg, "level", rows)
    assert made[0] == 2


def test_the_daemon_s_read_of_the_store_sees_each_change(tmp_path):
    """`unseen`, as each evaluation pass calls it: a new vintage, a forecast and the saved BLS times."""
    cfg = config(tmp_path)
    store = open_store(tmp_path / "mw.sqlite")
    engine = Engine(cfg)
    now = dt.datetime.combine(DAYS[-1], dt.time(12), NY)

    def expected(macro_id: str) -> list[Print]:
        times = history.saved_times(store)
        return from_scratch(cfg, macro_id, store.vintages("PAYEMS"), times, stored_forecasts(cfg, store))

    def check() -> list[Print]:
        got = unseen(cfg, store, engine, now, lambda key: True).prints
        assert got == sorted(expected("payrolls") + expected("level"), key=lambda p: (p.at, p.macro))
        return got

    store.put_vintages("PAYEMS", vintages(DAYS[:-1]))
    first = check()
    store.put_vintages("PAYEMS", [Vintage(period(DAYS[-1]), DAYS[-1], 151_000.0)])
    assert len(check()) == len(first) + 2
    store.put_forecast("forexfactory", EVENT, "USD", dt.datetime.combine(DAYS[-1], dt.time(8, 30), NY), 123,
                       dt.datetime.combine(DAYS[-1], dt.time(7), NY))
    assert [p.consensus for p in check() if p.macro == "payrolls"][-1] == 123
    store.save_state(SCHEDULE_STATE, {"times": {"es": {DAYS[-1].isoformat(): "08:30:05"}}})
    assert check()[-1].at.time() == dt.time(8, 30, 5)
    store.close()
