"""The briefing's what-if (engine/whatif.py): the hypothetical prints, and their agreement with the engine when the
real print arrives (hypothesis, over random states and prints)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from macrowatch.config.types import (
    AllOf,
    BreakoutParams,
    Config,
    Duration,
    Instrument,
    Level,
    LevelIn,
    LevelKind,
    Macro,
    Measure,
    NewExtreme,
    Not,
    Outcome,
    ReleaseOutcome,
    Rule,
    Side,
    Template,
)
from macrowatch.engine.evaluator import Engine
from macrowatch.engine.outcomes import judge
from macrowatch.engine.whatif import (
    Expectation,
    copy_of,
    hypothetical_actual,
    release_rules,
    step_of,
    thresholds,
    to_data,
    what_if,
)
from macrowatch.model import Bar, Bars, Print

NY = zoneinfo.ZoneInfo("America/New_York")
DAY0 = dt.date(2024, 1, 2)
PAYROLLS = Macro("payrolls", "PAYEMS", "es", Measure.CHANGE, beat_by=25.0)
RULES = (
    Rule("thesis", AllOf((LevelIn("res", ("approaching", "breakout")),
                          ReleaseOutcome("payrolls", Outcome.BEAT, Duration(2, "bars"))))),
    Rule("miss-pressing", AllOf((ReleaseOutcome("payrolls", Outcome.MISS, Duration(1, "d")),
                                 LevelIn("res", ("approaching",)))), cooldown=Duration(3, "d")),
    Rule("any-print", ReleaseOutcome("payrolls", Outcome.ANY), message=Template("{payrolls.actual}")),
    Rule("inline-held", ReleaseOutcome("payrolls", Outcome.INLINE, Duration(3, "d")), for_=Duration(1, "d")),
    Rule("no-miss-breakout", AllOf((Not(ReleaseOutcome("payrolls", Outcome.MISS, Duration(2, "bars"))),
                                    LevelIn("res", ("breakout", "confirmed"))))),
    Rule("beat-cooled", ReleaseOutcome("payrolls", Outcome.BEAT, Duration(5, "bars")), cooldown=Duration(4, "d")),
    Rule("record-on-jobs", AllOf((NewExtreme("spx", None), ReleaseOutcome("payrolls", Outcome.ANY, Duration(1, "d"))))),
    # Names no release, yet may fire at the release's evaluation: `for: 1d` is met by then.
    Rule("pressing-a-day", LevelIn("res", ("approaching",)), for_=Duration(1, "d")),
)


def config(macro: Macro = PAYROLLS) -> Config:
    return Config(files=(), instruments={"spx": Instrument("spx", "^GSPC", "S&P 500")},
                  levels={"res": Level("res", "spx", LevelKind.PRICE, Side.RESISTANCE, BreakoutParams(1.0, 0.0, 3),
                                       price=100.0)},
                  macro={macro.id: macro}, rules=RULES)


def bars(closes: list[float]) -> dict[str, Bars]:
    days = [DAY0 + dt.timedelta(days=i) for i in range(len(closes))]
    return {"spx": Bars.from_list([Bar(d, dt.datetime.combine(d, dt.time(16), NY), c, c, c, c)
                                   for d, c in zip(days, closes, strict=True)])}


def a_print(macro: Macro, at: dt.datetime, n: int, actual: float, consensus: float | None) -> Print:
    surprise, outcome = judge(actual, consensus, macro.beat_by, macro.higher_is)
    return Print(macro.id, at, dt.date(2023, 1, 1) + dt.timedelta(days=31 * n), actual, None, consensus,
                 "consensus (config)" if consensus is not None else "none", surprise, outcome)


def release_at(day: int) -> dt.datetime:
    return dt.datetime.combine(DAY0 + dt.timedelta(days=day), dt.time(8, 30), NY)


# ---- the values of each scenario ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "step"), [(211.0, 1.0), (4.4, 0.1), (0.25, 0.01), (175.33333333333334, 1e-6),
                                             (-701.0, 1.0), (1e-7, 1e-6), (293.5799865722656, 0.01)])
def test_a_step_is_one_unit_of_the_values_last_decimal(value, step):
    assert step_of(value) == pytest.approx(step)


@pytest.mark.parametrize(("beat_by", "higher_is", "consensus", "prior", "beat", "miss"), [
    (25.0, "better", 185.0, 98.0, 210.0, 160.0),       # payrolls: 25k either side
    (0.0, "better", 185.0, 98.0, 186.0, 184.0),        # beat_by 0: one step of the prior print (thousands)
    (0.0, "worse", 4.4, 4.5, 4.3, 4.5),                # unemployment: lower is better, steps of 0.1
    (0.1, "worse", 3.7, None, 3.6, 3.8),               # 3.8 - 3.7 is 0.0999...: still a miss
    (0.0, "better", 0.2, None, 0.3, 0.1),              # no prior print: the consensus's own step
])
def test_scenario_values_are_judged_as_their_outcome(beat_by, higher_is, consensus, prior, beat, miss):
    macro = dataclasses.replace(PAYROLLS, beat_by=beat_by, higher_is=higher_is)
    for outcome, want in ((Outcome.BEAT, beat), (Outcome.INLINE, consensus), (Outcome.MISS, miss)):
        got = hypothetical_actual(macro, consensus, outcome, prior)
        assert got == pytest.approx(want)
        assert judge(got, consensus, beat_by, higher_is)[1] is outcome


def test_thresholds_say_where_a_beat_and_a_miss_begin():
    assert thresholds(PAYROLLS, 185.0) == {"beat": (">=", 210.0), "miss": ("<=", 160.0)}
    worse = dataclasses.replace(PAYROLLS, beat_by=0.0, higher_is="worse")
    assert thresholds(worse, 4.4) == {"beat": ("<", 4.4), "miss": (">", 4.4)}


def test_the_rules_of_a_release_are_those_naming_one_of_its_series():
    assert [r.name for r in release_rules(RULES, {"payrolls"})] == [r.name for r in RULES[:-1]]
    assert release_rules(RULES, {"cpi"}) == []


# ---- the engine's own answer ----------------------------------------------------------------------------------

def test_a_beat_fires_the_thesis_and_says_why_the_others_do_not():
    cfg = config()
    engine = Engine(cfg)
    engine.feed(bars([95, 97, 99.5]))  # approaching 100 since the 3rd close
    before = engine.to_data()
    # A release the second morning after: 99.5 is still the latest close, a record, approaching for over a day.
    w = what_if(engine, "es", release_at(4), {"payrolls": Expectation("payrolls", dt.date(2024, 1, 1), 185.0,
                                                                        "consensus (config)", prior=150.0)})
    assert engine.to_data() == before  # a copy was fed, never the engine
    fires = {s.outcome: set(s.fires) for s in w.scenarios}
    always = {"any-print", "record-on-jobs", "pressing-a-day"}
    assert fires[Outcome.BEAT] == {"thesis", "beat-cooled"} | always
    assert fires[Outcome.INLINE] == always
    assert fires[Outcome.MISS] == {"miss-pressing"} | always
    verdict = {v.rule: v for v in w.verdicts}
    assert verdict["inline-held"].why[Outcome.INLINE] == "its condition would hold, but not yet for 1d"
    assert verdict["thesis"].why[Outcome.MISS] == "its condition would not hold"
    assert verdict["thesis"].now == {"res state in [approaching, breakout]": {
        "holds": True, "state": "approaching", "level": 100.0, "close": 99.5}}
    data = to_data(w, cfg.macro)
    assert data["series"][0]["values"] == {"beat": 210.0, "inline": 185.0, "miss": 160.0}
    assert data["rules"][0]["outcomes"]["beat"] == {"fires": True, "why": ""}


def test_a_rule_in_its_cooldown_is_said_to_be_held_back():
    cfg = config()
    engine = Engine(cfg)
    fired = engine.feed(bars([99.2, 99.5, 99.6]), [a_print(PAYROLLS, release_at(1), 0, 100.0, 180.0)])
    assert "miss-pressing" in [a.rule for a in fired]  # a miss two days before, while pressing on 100
    expected = {"payrolls": Expectation("payrolls", None, 185.0, "consensus (config)")}
    verdict = {v.rule: v for v in what_if(engine, "es", release_at(3), expected).verdicts}
    assert verdict["miss-pressing"].fires[Outcome.MISS] is False
    assert verdict["miss-pressing"].why[Outcome.MISS] == "held back by its cooldown of 3d"


def test_without_consensus_the_one_scenario_is_unknown():
    engine = Engine(config())
    engine.feed(bars([95, 97, 99.5]))
    w = what_if(engine, "es", release_at(3), {"payrolls": Expectation("payrolls", None, None, "none", "no source")})
    assert [(s.outcome, set(s.fires)) for s in w.scenarios] == [(Outcome.UNKNOWN, {"any-print", "record-on-jobs"})]


# ---- property: the scenario of the real print's outcome is what the engine then does --------------------------

closes_st = st.lists(st.integers(9400, 10600).map(lambda c: c / 100), min_size=1, max_size=25)
prints_st = st.lists(st.tuples(st.integers(0, 24), st.integers(-100, 400), st.one_of(st.none(), st.integers(0, 300))),
                     max_size=4)


@settings(max_examples=300, deadline=None)
@given(closes_st, prints_st, st.sampled_from([0.0, 25.0, 0.5]), st.sampled_from(["better", "worse"]),
       st.one_of(st.none(), st.integers(-50, 350).map(float), st.floats(-5, 5).map(lambda x: round(x, 2))),
       st.data())
def test_the_real_prints_scenario_is_what_the_engine_does_when_it_arrives(closes, earlier, beat_by, higher_is,
                                                                          consensus, data):
    macro = dataclasses.replace(PAYROLLS, beat_by=beat_by, higher_is=higher_is)
    cfg = config(macro)
    engine = Engine(cfg)
    days = len(closes)
    history = [a_print(macro, release_at(day), n, float(actual), None if cons is None else float(cons))
               for n, (day, actual, cons) in enumerate(sorted((e for e in earlier if e[0] < days), key=lambda e: e[0]))]
    history = [p for i, p in enumerate(history) if i == 0 or p.at > history[i - 1].at]
    engine.feed(bars(closes), history)
    at = release_at(days)  # the morning after the last close
    prior = history[-1].actual if history else None
    expected = Expectation("payrolls", dt.date(2024, 1, 1), consensus, "consensus (config)" if consensus is not None
                           else "none", prior=prior)
    w = what_if(engine, "es", at, {"payrolls": expected})
    # The real print: anywhere, or right on a threshold or the consensus.
    near = [] if consensus is None else [consensus + k * (beat_by or step_of(prior if prior is not None else
                                                                            consensus)) for k in (-2, -1, 0, 1, 2)]
    actual = data.draw(st.one_of(st.floats(-500, 500, allow_nan=False), *(st.just(x) for x in near)), label="actual")
    real = a_print(macro, at, 99, actual, consensus)
    fired = [a.rule for a in copy_of(engine).feed({}, [real])]
    [scenario] = [s for s in w.scenarios if s.outcome == real.outcome]
    assert list(scenario.fires) == fired
    for v in w.verdicts:
        assert v.fires[real.outcome] == (v.rule in fired)
        assert (v.why[real.outcome] == "") == v.fires[real.outcome]
