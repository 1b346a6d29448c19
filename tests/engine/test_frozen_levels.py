"""A dynamic level frozen at a breakout while its value moved on: the alert says both numbers (issue [14]).

The market: a 5-bar high over closes 100 x5, then 101 (a breakout of 100), 99.5 (failed), 101.5: a new breakout
straight out of `failed` keeps the frozen 100 while the 5-bar high the close was judged by is 101 (and after that
close 101.5). The batch path (all bars in one feed) and the bar-by-bar path (one feed per close) say the same.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from engine.helpers import on_close, on_release
from macrowatch.config.types import (
    BreakoutParams,
    Config,
    Instrument,
    Level,
    LevelEntered,
    LevelIn,
    LevelKind,
    LevelState,
    Macro,
    Measure,
    Outcome,
    ReleaseOutcome,
    Rule,
    Side,
    Template,
    Trigger,
)
from macrowatch.engine.alerting import level_name
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Bar, Bars, Print

NY = zoneinfo.ZoneInfo("America/New_York")
PARAMS = BreakoutParams(approach_pct=1.0, buffer_pct=0.0, fail_within_bars=3)
CLOSES = [100.0] * 5 + [101.0, 99.5, 101.5]
DAYS = [dt.date(2024, 3, 4) + dt.timedelta(days=i) for i in range(len(CLOSES))]  # every day a session here
LEVEL = Level("spx-hi5", "spx", LevelKind.HIGH_OF, Side.RESISTANCE, PARAMS, bars=5)
MESSAGE = "{spx.name} closed {spx.close:.2f}, above its 5-bar high {spx-hi5.price:.2f}"
BREAKOUT = Rule("breakout", LevelEntered("spx-hi5", LevelState.BREAKOUT), message=Template(MESSAGE))
AT_RELEASE = Rule("at-release", ReleaseOutcome("payrolls", Outcome.ANY), on=frozenset({Trigger.RELEASE}),
                  message=Template("{spx-hi5.price} {spx-hi5.state}"))
HELD = Rule("held", LevelIn("spx-hi5", (LevelState.BREAKOUT, LevelState.FAILED)),
            on=frozenset({Trigger.RELEASE, Trigger.INTRADAY}))


def engine(*rules: Rule) -> Engine:
    return Engine(Config(files=(), instruments={"spx": Instrument("spx", "^GSPC", "S&P 500")},
                         levels={"spx-hi5": LEVEL},
                         macro={"payrolls": Macro("payrolls", "PAYEMS", "es", Measure.CHANGE)}, rules=rules))


def at(day: dt.date, hour: int = 16) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), NY)


def bar(i: int) -> Bar:
    return Bar(DAYS[i], at(DAYS[i]), CLOSES[i], CLOSES[i], CLOSES[i], CLOSES[i])


def release(day: dt.date) -> Print:
    return Print("payrolls", at(day, 8), dt.date(2024, 2, 1), 200.0, 150.0, 180.0, "config", 20.0, "beat")


def one_by_one(e: Engine, n: int = len(CLOSES)) -> list:
    return [a for i in range(n) for a in on_close(e, at(DAYS[i]), {"spx": bar(i)})]


def test_a_new_breakout_out_of_failed_says_the_frozen_level_and_the_level_now():
    first, again = one_by_one(engine(BREAKOUT))
    assert first.message == "S&P 500 closed 101.00, above its 5-bar high 100.00"  # frozen = its value: as before
    assert first.evidence["spx-hi5 entered breakout"] == {"holds": True, "state": "breakout", "level": 100.0,
                                                          "close": 101.0}
    assert again.message == ("S&P 500 closed 101.50, above its 5-bar high 100.00 "
                             "(frozen at the breakout; the 5-bar high is now 101.00)")
    assert again.evidence["spx-hi5 entered breakout"] == {"holds": True, "state": "breakout", "level": 100.0,
                                                          "close": 101.5, "level_now": 101.0}


def test_the_batch_path_says_what_the_bar_by_bar_path_says():
    batch = engine(BREAKOUT).feed({"spx": Bars.from_list([bar(i) for i in range(len(CLOSES))])})
    assert [(a.key, a.message, a.evidence) for a in batch] == \
        [(a.key, a.message, a.evidence) for a in one_by_one(engine(BREAKOUT))]
    assert batch[1].evidence["spx-hi5 entered breakout"]["level_now"] == 101.0


@pytest.mark.parametrize("batch", [True, False], ids=["batch", "bar-by-bar"])
def test_after_the_close_the_level_now_counts_that_close(batch):
    """At a release the next morning the 5-bar high includes the breakout close: 101.5."""
    e = engine(AT_RELEASE, HELD)
    day = DAYS[-1] + dt.timedelta(days=1)
    if batch:  # the bars and the release in one feed: the release's view is read from the track
        alerts = e.feed({"spx": Bars.from_list([bar(i) for i in range(len(CLOSES))])}, [release(day)])
    else:  # the release alone: its view is the machine as the last close left it
        one_by_one(e)
        alerts = on_release(e, [release(day)])
    by_rule = {a.rule: a for a in alerts}
    assert by_rule["at-release"].message == "100.0 (frozen at the breakout; the 5-bar high is now 101.5) breakout"
    assert by_rule["held"].evidence["spx-hi5 state in [breakout, failed]"]["level_now"] == 101.5


def test_a_release_between_closes_of_one_feed_sees_the_level_as_the_close_before_left_it():
    alerts = engine(AT_RELEASE).feed({"spx": Bars.from_list([bar(i) for i in range(len(CLOSES))])},
                                     [release(DAYS[7])])  # the morning after the failure
    assert [a.message for a in alerts] == ["100.0 (frozen at the breakout; the 5-bar high is now 101.0) failed"]


def test_failed_and_an_intraday_breakout_from_it_keep_saying_both():
    e = engine(HELD)
    one_by_one(e, 7)  # through the failure: frozen at 100, the 5-bar high 101
    [alert] = e.on_intraday(at(DAYS[7], 11), {"spx": 100.8})
    assert alert.evidence["spx-hi5 state in [breakout, failed]"] == {
        "holds": True, "state": "breakout", "level": 100.0, "close": 100.8, "level_now": 101.0}


def test_a_static_level_never_says_a_second_number():
    static = Level("spx-hi5", "spx", LevelKind.PRICE, Side.RESISTANCE, PARAMS, price=100.0)
    e = Engine(Config(files=(), instruments={"spx": Instrument("spx", "^GSPC", "S&P 500")},
                      levels={"spx-hi5": static}, rules=(BREAKOUT,)))
    alerts = one_by_one(e)
    assert [a.message for a in alerts] == ["S&P 500 closed 101.00, above its 5-bar high 100.00",
                                           "S&P 500 closed 101.50, above its 5-bar high 100.00"]
    assert all("level_now" not in a.evidence["spx-hi5 entered breakout"] for a in alerts)


@pytest.mark.parametrize("level, words", [
    (Level("x", "spx", LevelKind.HIGH_OF, Side.RESISTANCE, PARAMS, bars=252), "52-week high"),
    (Level("x", "spx", LevelKind.LOW_OF, Side.SUPPORT, PARAMS, bars=20), "20-bar low"),
    (Level("x", "spx", LevelKind.ALL_TIME_HIGH, Side.RESISTANCE, PARAMS), "all-time high"),
    (Level("x", "spx", LevelKind.RANGE_LOW, Side.SUPPORT, PARAMS, since=dt.date(2017, 3, 1)), "low since 2017-03-01"),
    (Level("x", "spx", LevelKind.PRICE, Side.SUPPORT, PARAMS, price=2320.0), "level"),
])
def test_level_names_in_plain_words(level, words):
    assert level_name(level) == words
