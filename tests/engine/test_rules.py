"""Rules through the Engine (DESIGN.md, "Evaluation and alerts"): conditions, for, cooldown, identity, messages.

The market: spx with a resistance at 100 and rut with a support at 50, both approach_pct 1, buffer 0 and
fail_within_bars 3, so spx closes 99..100 are `approaching` and above 100 a `breakout`.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo

import pytest

from engine.helpers import on_close, on_release
from macrowatch.config.types import (
    AllOf,
    AnyOf,
    BreakoutParams,
    Config,
    Duration,
    Instrument,
    Level,
    LevelEntered,
    LevelIn,
    LevelKind,
    Macro,
    Measure,
    NarrowRange,
    NewExtreme,
    Not,
    Outcome,
    ReleaseOutcome,
    Rule,
    Severity,
    Side,
    Template,
    Trigger,
)
from macrowatch.engine.alerting import Phase
from macrowatch.engine.evaluator import Engine, StateError
from macrowatch.model import Alert, Bar, Bars, Print

NY = zoneinfo.ZoneInfo("America/New_York")
PARAMS = BreakoutParams(approach_pct=1.0, buffer_pct=0.0, fail_within_bars=3)
MON = dt.date(2024, 3, 4)   # a Monday; the release below is on Friday 8 March at 08:30
THU, FRI, NEXT_MON = MON + dt.timedelta(days=3), MON + dt.timedelta(days=4), MON + dt.timedelta(days=7)
RELEASE_AT = dt.datetime(2024, 3, 8, 8, 30, tzinfo=NY)

INSTRUMENTS = {"spx": Instrument("spx", "^GSPC", "S&P 500"), "rut": Instrument("rut", "^RUT", "Russell 2000")}
LEVELS = {
    "spx-100": Level("spx-100", "spx", LevelKind.PRICE, Side.RESISTANCE, PARAMS, price=100.0),
    "rut-50s": Level("rut-50s", "rut", LevelKind.PRICE, Side.SUPPORT, PARAMS, price=50.0),
    "spx-hi5": Level("spx-hi5", "spx", LevelKind.HIGH_OF, Side.RESISTANCE, PARAMS, bars=5),
}
MACRO = {"payrolls": Macro("payrolls", "PAYEMS", "employment-situation", Measure.CHANGE, beat_by=25.0)}

APPROACHING = LevelIn("spx-100", ("approaching",))
BREAKOUT = LevelIn("spx-100", ("breakout",))


def at_close(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(16), NY)


class Market:
    """An Engine over the test market, fed one event at a time."""

    def __init__(self, *rules: Rule):
        self.engine = Engine(Config(files=(), instruments=INSTRUMENTS, levels=LEVELS, macro=MACRO,
                                    rules=tuple(rules)))

    def close(self, day: dt.date, spx: float | None = None, rut: float | None = None) -> list[Alert]:
        bars = {iid: Bar(day, at_close(day), c, c, c, c) for iid, c in (("spx", spx), ("rut", rut))
                if c is not None}
        return on_close(self.engine, at_close(day), bars)

    def closes(self, *spx: float, start: dt.date = MON, days: list[int] | None = None) -> list[int]:
        """spx closes on consecutive days (or on the given day offsets); the number of alerts after each."""
        days = days if days is not None else list(range(len(spx)))
        return [len(self.close(start + dt.timedelta(days=d), c)) for d, c in zip(days, spx, strict=True)]

    def release(self, at: dt.datetime = RELEASE_AT, outcome: str = "beat", actual: float = 187.0,
                consensus: float | None = 160.0) -> list[Alert]:
        surprise = None if consensus is None else actual - consensus
        p = Print("payrolls", at, dt.date(2024, 2, 1), actual, 150.0, consensus, "consensus (config)", surprise,
                  outcome)
        return on_release(self.engine, [p])

    def intraday(self, at: dt.datetime, spx: float) -> list[Alert]:
        return self.engine.on_intraday(at, {"spx": spx})

    def held(self, name: str) -> bool:
        """Whether the rule's condition held at its latest evaluation."""
        return self.engine.rule_states[name].phase is not Phase.INACTIVE


def rule(when, name: str = "r", **kw) -> Rule:
    return Rule(name, when, **kw)


# ---- level atoms -----------------------------------------------------------------------------------------

def test_level_state_fires_when_the_level_gets_there_with_evidence():
    m = Market(rule(APPROACHING))
    assert m.close(MON, 98.0) == []
    [alert] = m.close(MON + dt.timedelta(days=1), 99.5)
    assert alert.evidence == {"spx-100 approaching": {"holds": True, "state": "approaching", "level": 100.0,
                                                      "close": 99.5}}


def test_level_state_list_fires_once_while_any_of_its_states_holds():
    m = Market(rule(LevelIn("spx-100", ("approaching", "breakout"))))
    # approaching (fire), breakout, breakout (still true), failed, below (false), approaching (fire again)
    assert m.closes(99.5, 101.0, 102.0, 98.0, 97.0, 99.5) == [1, 0, 0, 0, 0, 1]


def test_level_state_list_evidence_names_all_states():
    m = Market(rule(LevelIn("spx-100", ("approaching", "breakout"))))
    [alert] = m.close(MON, 101.0)
    assert alert.evidence["spx-100 state in [approaching, breakout]"]["state"] == "breakout"


def test_entered_fires_at_each_change_into_the_state():
    m = Market(rule(LevelEntered("spx-100", "failed")))
    # approaching, breakout, failed (entered), failed (no change), breakout (a new one), failed (entered)
    assert m.closes(99.5, 101.0, 99.8, 99.9, 101.0, 99.0) == [0, 0, 1, 0, 0, 1]


def test_entered_holds_only_at_the_close_of_the_change():
    m = Market(rule(LevelEntered("spx-100", "breakout")))
    assert m.closes(101.0) == [1]
    assert m.release() == []
    assert not m.held("r")                     # a release is no close: nothing was entered there
    assert m.closes(101.5, start=MON + dt.timedelta(days=1)) == [0]
    assert not m.held("r")                     # still breakout, but not entered at this close


def test_support_level_states():
    m = Market(rule(LevelIn("rut-50s", ("breakdown",))))
    assert [len(m.close(MON + dt.timedelta(days=i), rut=c)) for i, c in enumerate([51.0, 50.2, 49.0])] == [0, 0, 1]
    assert m.engine.machines["rut-50s"].state == "breakdown"


# ---- release atoms ---------------------------------------------------------------------------------------

def test_release_without_within_holds_only_at_the_release_itself():
    m = Market(rule(ReleaseOutcome("payrolls", Outcome.BEAT)))
    [alert] = m.release()
    assert alert.trigger == "release"
    assert alert.evidence["payrolls beat"] == {
        "holds": True, "outcome": "beat", "actual": 187.0, "consensus": 160.0, "surprise": 27.0, "prior": 150.0,
        "ref_period": dt.date(2024, 2, 1), "released_at": RELEASE_AT, "consensus_source": "consensus (config)"}
    assert m.close(FRI, 99.0) == []
    assert not m.held("r")


@pytest.mark.parametrize(("wanted", "printed", "fires"), [
    pytest.param(Outcome.BEAT, "beat", True, id="beat is beat"),
    pytest.param(Outcome.MISS, "beat", False, id="beat is no miss"),
    pytest.param(Outcome.INLINE, "inline", True, id="inline is inline"),
    pytest.param(Outcome.ANY, "inline", True, id="any takes inline"),
    pytest.param(Outcome.ANY, "unknown", True, id="any takes unknown"),
    pytest.param(Outcome.BEAT, "unknown", False, id="unknown is no beat"),
])
def test_release_outcome(wanted, printed, fires):
    m = Market(rule(ReleaseOutcome("payrolls", wanted)))
    assert len(m.release(outcome=printed)) == (1 if fires else 0)


def test_release_atom_before_any_print_is_false_with_its_evidence():
    m = Market(rule(Not(ReleaseOutcome("payrolls", Outcome.ANY, Duration(1, "d")))))
    [alert] = m.close(MON, 98.0)
    assert alert.evidence == {"payrolls any within 1d": {"holds": False, "print": None}}


# The release is on Friday 08:30; the closes are Thursday (before it), Friday 16:00 and Monday 16:00.
@pytest.mark.parametrize(("within", "friday", "monday"), [
    pytest.param(None, False, False, id="no within: not at a close"),
    pytest.param(Duration(1, "d"), True, False, id="1d: Friday's close, not Monday's"),
    pytest.param(Duration(3, "d"), True, False, id="3d: Monday 16:00 is 3d 7.5h later"),
    pytest.param(Duration(4, "d"), True, True, id="4d: Monday too"),
    pytest.param(Duration(8, "h"), True, False, id="8h: Friday's close is 7.5h later"),
    pytest.param(Duration(7, "h"), False, False, id="7h: too short for Friday's close"),
    pytest.param(Duration(450, "m"), True, False, id="450m: Friday's close exactly at the limit"),
    pytest.param(Duration(449, "m"), False, False, id="449m: a minute short"),
    pytest.param(Duration(1, "bars"), True, False, id="1 bars: the next close, not the one after"),
    pytest.param(Duration(2, "bars"), True, True, id="2 bars: two closes"),
])
def test_release_within(within, friday, monday):
    m = Market(rule(ReleaseOutcome("payrolls", Outcome.BEAT, within), on=frozenset({Trigger.CLOSE})))
    m.close(THU, 98.0)
    m.release()
    fired = m.close(FRI, 98.0)
    assert (m.held("r"), len(fired)) == (friday, 1 if friday else 0)
    m.close(NEXT_MON, 98.0)
    assert m.held("r") == monday


# ---- narrow range ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("closes", "holds"), [
    pytest.param([100, 100.5, 100.9], True, id="0.9% over 3 bars"),
    pytest.param([100, 100.5, 101.0], True, id="exactly 1%"),
    pytest.param([100, 100.5, 101.2], False, id="1.2%"),
    pytest.param([100.5, 100], False, id="fewer than 3 bars"),
    pytest.param([90, 100, 100.5, 100.8], True, id="only the last 3 bars count"),
    pytest.param([100, 100.5, 100.8, 90], False, id="this bar included"),
])
def test_narrow_range(closes, holds):
    m = Market(rule(NarrowRange("spx", bars=3, pct=1.0)))
    m.closes(*closes)
    assert m.held("r") == holds


def test_narrow_range_evidence():
    m = Market(rule(NarrowRange("spx", bars=3, pct=1.0)))
    m.closes(100, 100.5)
    [alert] = m.close(MON + dt.timedelta(days=2), 100.9)
    assert alert.evidence == {"spx narrow range 3 bars within 1%": {"holds": True, "range_pct": 0.9, "low": 100,
                                                                    "high": 100.9}}


def test_narrow_range_with_too_few_bars_says_how_many():
    m = Market(rule(Not(NarrowRange("spx", bars=3, pct=1.0))))
    [alert] = m.close(MON, 100.0)
    assert alert.evidence == {"spx narrow range 3 bars within 1%": {"holds": False, "bars": 1}}


# ---- new high / new low ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("when", "closes", "holds"), [
    pytest.param(NewExtreme("spx", 3), [100, 101, 102, 103], True, id="above the 3 closes before"),
    pytest.param(NewExtreme("spx", 3), [100, 101, 102, 102], False, id="equal to the high: strictly above"),
    pytest.param(NewExtreme("spx", 3), [105, 101, 102, 103], False, id="below the oldest of the 3"),
    pytest.param(NewExtreme("spx", 3), [105, 101, 102, 103, 104], True, id="only the 3 bars before count"),
    pytest.param(NewExtreme("spx", 3), [100, 101, 102], False, id="fewer than 3 bars before"),
    pytest.param(NewExtreme("spx", 3, low=True), [100, 99, 98, 97], True, id="low: below the 3 before"),
    pytest.param(NewExtreme("spx", 3, low=True), [97, 99, 98, 97], False, id="low: equal to the low"),
    pytest.param(NewExtreme("spx", None), [100, 99, 101], True, id="all: above every close before"),
    pytest.param(NewExtreme("spx", None), [100, 105, 99, 101, 104], False, id="all: the oldest high counts"),
    pytest.param(NewExtreme("spx", None), [100, 105, 99, 101, 104, 106], True, id="all: a new all-time high"),
    pytest.param(NewExtreme("spx", None), [100], False, id="all: no close before"),
    pytest.param(NewExtreme("spx", None, low=True), [100, 95, 99, 101, 94], True, id="all: a new all-time low"),
])
def test_new_high_and_low(when, closes, holds):
    m = Market(rule(when))
    m.closes(*closes)
    assert m.held("r") == holds
    whole = Market(rule(when))  # the same closes in one feed, as replay gives them
    whole.engine.feed({"spx": Bars.from_list([Bar(MON + dt.timedelta(days=i), at_close(MON + dt.timedelta(days=i)),
                                                  c, c, c, c) for i, c in enumerate(closes)])})
    assert whole.held("r") == holds


def test_a_run_of_new_highs_fires_once_and_again_after_a_close_that_is_none():
    m = Market(rule(NewExtreme("spx", 2)))
    assert m.closes(100, 101, 102, 103, 102.5, 104) == [0, 0, 1, 0, 0, 1]


def test_new_high_evidence_says_the_close_and_the_high_it_beat():
    m = Market(rule(NewExtreme("spx", 3)))
    m.closes(100, 102, 101)
    [alert] = m.close(MON + dt.timedelta(days=3), 103.0)
    assert alert.evidence == {"spx new 3-bar high": {"holds": True, "close": 103.0, "high": 102.0}}
    m = Market(rule(NewExtreme("spx", None, low=True)))
    m.closes(100, 98, 101)
    [alert] = m.close(MON + dt.timedelta(days=3), 97.5)
    assert alert.evidence == {"spx new all-time low": {"holds": True, "close": 97.5, "low": 98.0}}


def test_new_high_with_too_few_bars_says_how_many():
    m = Market(rule(Not(NewExtreme("spx", 3))))
    [alert] = m.close(MON, 100.0)
    assert alert.evidence == {"spx new 3-bar high": {"holds": False, "bars": 1}}


def test_new_high_holds_from_its_close_to_the_next_so_a_release_in_between_sees_it():
    m = Market(rule(AllOf((NewExtreme("spx", 2), ReleaseOutcome("payrolls", Outcome.BEAT)))))
    m.closes(100, 101, 102, 103)  # Mon..Thu, each a new high from Wednesday; no release yet
    [alert] = m.release()        # Friday 08:30: Thursday's close is still the latest
    assert alert.evidence["spx new 2-bar high"] == {"holds": True, "close": 103.0, "high": 102.0}


def test_a_new_high_within_two_sessions_after_a_beat_on_closes_only():
    """README's example: the new high must come after the beat, so the rule runs on closes only."""
    m = Market(rule(AllOf((NewExtreme("spx", 2), ReleaseOutcome("payrolls", Outcome.BEAT, Duration(2, "bars")))),
                    on=frozenset({Trigger.CLOSE})))
    assert m.closes(100, 101, 102, 103) == [0, 0, 0, 0]  # new highs, but no beat yet
    assert m.release() == []                            # Friday 08:30: no evaluation on releases
    assert m.closes(104, start=FRI) == [1]               # Friday's close: a new high after the beat


def test_intraday_new_high_is_judged_against_every_close_before_the_price():
    m = Market(rule(NewExtreme("spx", None), on=frozenset({Trigger.INTRADAY})))
    m.closes(100, 103, 101)
    noon = at_close(MON + dt.timedelta(days=3)) - dt.timedelta(hours=4)
    assert m.intraday(noon, 102.5) == []  # above the last close, below Tuesday's 103
    [alert] = m.intraday(noon + dt.timedelta(hours=1), 103.5)
    assert alert.evidence == {"spx new all-time high": {"holds": True, "close": 103.5, "high": 103.0}}


def test_all_time_highs_and_lows_survive_a_restart():
    m = Market(rule(NewExtreme("spx", None)))
    m.closes(100, 105, 99, 101)
    again = Market(rule(NewExtreme("spx", None)))
    again.engine.load(json.loads(json.dumps(m.engine.to_data())))
    assert again.closes(104, 106, start=MON + dt.timedelta(days=4)) == [0, 1]  # 104 is below Tuesday's 105


def test_a_state_without_all_time_highs_is_not_loaded_for_a_rule_that_needs_them():
    """A state saved before they were kept: the daemon rebuilds from the store's history instead."""
    m = Market(rule(NewExtreme("spx", 3)))
    m.closes(100, 105, 99)
    old = {k: v for k, v in m.engine.to_data().items() if k != "extremes"}
    again = Market(rule(NewExtreme("spx", 3)))
    again.engine.load(old)  # a lookback of N bars needs only the closes the state has
    assert list(again.engine.closes["spx"]) == [100, 105, 99]
    with pytest.raises(StateError, match="new_high: all"):
        Market(rule(NewExtreme("spx", None))).engine.load(old)


# ---- combinators -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("when", "spx", "rut", "holds"), [
    pytest.param(AllOf((APPROACHING, LevelIn("rut-50s", ("above",)))), 99.5, 52.0, True, id="all: both hold"),
    pytest.param(AllOf((APPROACHING, LevelIn("rut-50s", ("above",)))), 99.5, 50.2, False, id="all: one fails"),
    pytest.param(AnyOf((BREAKOUT, LevelIn("rut-50s", ("breakdown",)))), 98.0, 49.0, True, id="any: the second"),
    pytest.param(AnyOf((BREAKOUT, LevelIn("rut-50s", ("breakdown",)))), 101.0, 52.0, True, id="any: the first"),
    pytest.param(AnyOf((BREAKOUT, LevelIn("rut-50s", ("breakdown",)))), 98.0, 52.0, False, id="any: neither"),
    pytest.param(Not(LevelIn("spx-100", ("below",))), 99.5, 52.0, True, id="not: false atom"),
    pytest.param(Not(LevelIn("spx-100", ("below",))), 98.0, 52.0, False, id="not: true atom"),
    pytest.param(AllOf((Not(BREAKOUT), AnyOf((APPROACHING, LevelIn("rut-50s", ("approaching",)))))),
                 98.0, 50.2, True, id="nested"),
])
def test_combinators(when, spx, rut, holds):
    m = Market(rule(when))
    fired = m.close(MON, spx, rut)
    assert (m.held("r"), len(fired)) == (holds, 1 if holds else 0)


def test_evidence_has_every_atom_even_when_the_answer_is_known_early():
    m = Market(rule(AnyOf((APPROACHING, LevelIn("rut-50s", ("breakdown",))))))
    [alert] = m.close(MON, 99.5, 52.0)
    assert alert.evidence["spx-100 approaching"]["holds"] is True
    assert alert.evidence["rut-50s breakdown"] == {"holds": False, "state": "above", "level": 50.0, "close": 52.0}


def test_all_with_a_release_fires_when_its_last_atom_comes_true():
    m = Market(rule(AllOf((APPROACHING, ReleaseOutcome("payrolls", Outcome.BEAT, Duration(1, "d"))))))
    assert m.close(THU, 99.5) == []
    [alert] = m.release()
    assert alert.key.endswith("release:2024-03-08T08:30:00-05:00")
    assert set(alert.evidence) == {"spx-100 approaching", "payrolls beat within 1d"}


# ---- firing: once, again, for, cooldown ------------------------------------------------------------------

def test_fires_once_while_true_and_again_after_false():
    m = Market(rule(APPROACHING))
    assert m.closes(99.5, 99.6, 99.7, 98.0, 99.5) == [1, 0, 0, 0, 1]


def test_for_bars_fires_at_the_nth_consecutive_close():
    m = Market(rule(APPROACHING, for_=Duration(3, "bars")))
    assert m.closes(99.5, 99.5, 99.5, 99.5) == [0, 0, 1, 0]


def test_for_bars_counts_again_after_a_false_close():
    m = Market(rule(APPROACHING, for_=Duration(3, "bars")))
    assert m.closes(99.5, 99.5, 98.0, 99.5, 99.5, 99.5) == [0, 0, 0, 0, 0, 1]


def test_for_bars_counts_closes_not_releases():
    m = Market(rule(APPROACHING, for_=Duration(2, "bars")))
    assert m.close(THU, 99.5) == []
    assert m.release() == []           # the condition holds at the release, but it is no bar
    [alert] = m.close(FRI, 99.5)
    assert alert.key.endswith("close:2024-03-08")


def test_for_bars_is_not_reset_by_a_false_intraday_evaluation():
    # DESIGN: `for: N bars` is "the condition held at N consecutive evaluations on closes"; an intraday dip that
    # recovers by the close is no close at which it failed to hold.
    m = Market(rule(APPROACHING, for_=Duration(3, "bars"), on=frozenset({Trigger.CLOSE, Trigger.INTRADAY})))
    assert m.close(MON, 99.5) == []
    assert m.intraday(at_close(MON) + dt.timedelta(hours=20), 98.0) == []
    assert not m.held("r")
    assert m.closes(99.5, 99.5, start=MON + dt.timedelta(days=1)) == [0, 1]


@pytest.mark.parametrize(("for_", "fires_on_day"), [
    pytest.param(Duration(1, "d"), 1, id="1d"),
    pytest.param(Duration(24, "h"), 1, id="24h"),
    pytest.param(Duration(25, "h"), 2, id="25h"),
    pytest.param(Duration(2, "d"), 2, id="2d"),
])
def test_for_time_fires_once_the_time_has_passed(for_, fires_on_day):
    m = Market(rule(APPROACHING, for_=for_))
    fired = m.closes(99.5, 99.5, 99.5, 99.5)
    assert fired == [1 if d == fires_on_day else 0 for d in range(4)]


@pytest.mark.parametrize(("cooldown", "days", "spx", "fired"), [
    pytest.param(None, [0, 1, 2], [99.5, 98, 99.5], [1, 0, 1], id="no cooldown: again after false"),
    pytest.param(Duration(3, "d"), [0, 1, 2, 3, 4], [99.5, 98, 99.5, 98, 99.5], [1, 0, 0, 0, 1],
                 id="3d: held back inside, fires after"),
    pytest.param(Duration(3, "d"), [0, 1, 3], [99.5, 98, 99.5], [1, 0, 1], id="3d: fires exactly at 3d"),
    # DESIGN: a rule fires on the evaluation where its condition *becomes* true. A return inside the cooldown
    # is held back for that whole stretch: it does not fire later in the stretch when the cooldown runs out.
    pytest.param(Duration(3, "d"), [0, 1, 2, 3, 4], [99.5, 98, 99.5, 99.5, 99.5], [1, 0, 0, 0, 0],
                 id="3d: a stretch that began inside stays silent"),
    pytest.param(Duration(3, "bars"), [0, 1, 2, 3, 4], [99.5, 98, 99.5, 98, 99.5], [1, 0, 0, 0, 1],
                 id="3 bars: held back 2 bars later, fires 4 bars later"),
    pytest.param(Duration(3, "bars"), [0, 1, 3], [99.5, 98, 99.5], [1, 0, 0],
                 id="3 bars: days do not count, bars do"),
])
def test_cooldown(cooldown, days, spx, fired):
    m = Market(rule(APPROACHING, cooldown=cooldown))
    assert m.closes(*spx, days=days) == fired


# ---- alert identity and content --------------------------------------------------------------------------

def test_alert_identity_is_rule_labels_and_event():
    r = rule(APPROACHING, name="spx-looming", labels={"desk": "macro", "book": "us"}, severity=Severity.CRITICAL,
             notify=("trading",), chart="spx")
    m = Market(r)
    [alert] = m.close(MON, 99.5)
    assert alert.key == "spx-looming|book=us,desk=macro|close:2024-03-04"
    assert (alert.rule, alert.at, alert.severity, dict(alert.labels), alert.notify, alert.chart, alert.trigger) == (
        "spx-looming", at_close(MON), "critical", {"book": "us", "desk": "macro"}, ("trading",), "spx", "close")


def test_alert_keys_differ_by_event_and_by_rule():
    m = Market(rule(APPROACHING, name="a"), rule(Not(BREAKOUT), name="b"))
    first = m.close(MON, 99.5)
    m.close(MON + dt.timedelta(days=1), 98.0)
    again = m.close(MON + dt.timedelta(days=2), 99.5)
    assert [a.key for a in first] == ["a||close:2024-03-04", "b||close:2024-03-04"]
    assert [a.key for a in again] == ["a||close:2024-03-06"]


def test_the_alert_json_line():
    m = Market(rule(APPROACHING, labels={"desk": "macro"}))
    [alert] = m.close(MON, 99.5)
    assert json.loads(json.dumps(alert.to_json())) == {
        "rule": "r", "at": "2024-03-04T16:00:00-05:00", "severity": "warning", "labels": {"desk": "macro"},
        "message": "spx-100 approaching",
        "evidence": {"spx-100 approaching": {"holds": True, "state": "approaching", "level": 100.0, "close": 99.5}}}


# ---- messages --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("{spx.name} ({spx.symbol}) {spx.close:.2f} vs {spx-100.price:.0f}: {spx-100.state}",
                 "S&P 500 (^GSPC) 99.50 vs 100: approaching", id="instrument and level"),
    pytest.param("rut {rut.close}", "rut n/a", id="an instrument without a close yet"),
    pytest.param("hi5 {spx-hi5.price:.1f}", "hi5 n/a", id="a level without a value yet"),
    # A missing value is a plain "n/a": the unit written next to its field goes with it (it was "n/ak").
    pytest.param("payrolls {payrolls.actual:+.0f}k vs {payrolls.consensus:+.0f}k", "payrolls n/a vs n/a",
                 id="a release not printed yet"),
    pytest.param("({payrolls.surprise:+.1f}%, ${rut.close:.2f}bn) {spx.close:.1f}k", "(n/a, n/a) 99.5k",
                 id="units around missing values, and a known value keeps its own"),
])
def test_message_at_a_close(text, expected):
    m = Market(rule(APPROACHING, message=Template(text)))
    [alert] = m.close(MON, 99.5)
    assert alert.message == expected


def test_message_from_a_release():
    text = "payrolls {payrolls.actual:+.0f}k vs {payrolls.consensus:+.0f}k ({payrolls.surprise:+.0f}k), " \
           "prior {payrolls.prior:+.0f}k, {payrolls.ref_period:%B %Y}"
    m = Market(rule(ReleaseOutcome("payrolls", Outcome.BEAT), message=Template(text)))
    [alert] = m.release()
    assert alert.message == "payrolls +187k vs +160k (+27k), prior +150k, February 2024"


def test_message_of_a_release_without_consensus():
    m = Market(rule(ReleaseOutcome("payrolls", Outcome.ANY),
                    message=Template("{payrolls.consensus} vs {payrolls.actual}")))
    [alert] = m.release(outcome="unknown", consensus=None)
    assert alert.message == "n/a vs 187.0"


def test_default_message_lists_the_atoms_that_held():
    m = Market(rule(AllOf((APPROACHING, Not(LevelIn("rut-50s", ("breakdown",)))))))
    [alert] = m.close(MON, 99.5, 52.0)
    assert alert.message == "spx-100 approaching"


# ---- on: triggers ----------------------------------------------------------------------------------------

def test_a_rule_without_release_in_on_is_not_evaluated_at_releases():
    m = Market(rule(ReleaseOutcome("payrolls", Outcome.BEAT, Duration(1, "d")), on=frozenset({Trigger.CLOSE})))
    assert m.release() == []
    assert m.engine.rule_states["r"].since is None          # untouched by the release
    assert len(m.close(FRI, 98.0)) == 1                       # its first evaluation is the close


def test_a_rule_without_close_in_on_is_not_evaluated_at_closes():
    m = Market(rule(APPROACHING, on=frozenset({Trigger.RELEASE})))
    assert m.close(THU, 99.5) == []
    [alert] = m.release()
    assert alert.evidence["spx-100 approaching"]["state"] == "approaching"


def test_intraday_rule_sees_the_provisional_state_and_changes_nothing():
    m = Market(rule(BREAKOUT, name="intra", on=frozenset({Trigger.INTRADAY}),
                    message=Template("{spx.close} {spx-100.state}")),
               rule(BREAKOUT, name="daily"))
    m.close(MON, 99.5)
    levels = json.dumps(m.engine.to_data()["levels"])
    [alert] = m.intraday(at_close(MON + dt.timedelta(days=1)) - dt.timedelta(hours=3), 100.5)
    assert (alert.rule, alert.trigger, alert.message) == ("intra", "intraday", "100.5 breakout")
    assert alert.key == "intra||intraday:2024-03-05T13:00:00-05:00"
    assert alert.evidence["spx-100 breakout"] == {"holds": True, "state": "breakout", "level": 100.0,
                                                  "close": 100.5}
    assert json.dumps(m.engine.to_data()["levels"]) == levels   # no state moved on an intraday price
    assert m.engine.machines["spx-100"].state == "approaching"
    assert m.engine.rule_states["daily"].phase is Phase.INACTIVE  # a close rule is not evaluated intraday


def test_intraday_entered_is_the_provisional_change():
    m = Market(rule(LevelEntered("spx-100", "breakout"), on=frozenset({Trigger.INTRADAY})))
    m.close(MON, 99.5)
    assert len(m.intraday(at_close(MON) + dt.timedelta(hours=18), 101.0)) == 1


def test_an_intraday_rule_is_not_evaluated_at_closes():
    m = Market(rule(BREAKOUT, on=frozenset({Trigger.INTRADAY})))
    assert m.close(MON, 101.0) == []


# ---- replays: nothing twice ------------------------------------------------------------------------------

def test_the_same_close_twice_is_ignored():
    m = Market(rule(LevelEntered("spx-100", "approaching")))
    assert len(m.close(MON, 99.5)) == 1
    state = json.dumps(m.engine.to_data())
    assert m.close(MON, 99.5) == []
    assert json.dumps(m.engine.to_data()) == state


def test_an_older_session_is_ignored():
    m = Market(rule(APPROACHING))
    m.close(MON + dt.timedelta(days=1), 98.0)
    state = json.dumps(m.engine.to_data())
    assert m.close(MON, 99.5) == []
    assert json.dumps(m.engine.to_data()) == state


def test_the_same_release_twice_is_ignored():
    m = Market(rule(ReleaseOutcome("payrolls", Outcome.BEAT)))
    assert len(m.release()) == 1
    assert m.release() == []


def test_the_same_close_after_a_restart_is_ignored():
    r = rule(LevelEntered("spx-100", "approaching"))
    m = Market(r)
    assert len(m.close(MON, 99.5)) == 1
    again = Market(r)
    again.engine.load(json.loads(json.dumps(m.engine.to_data())))
    assert again.close(MON, 99.5) == []
    assert again.close(MON + dt.timedelta(days=1), 98.0) == []   # the restored engine goes on from there
    assert len(again.close(MON + dt.timedelta(days=2), 99.5)) == 1
