"""A condition that holds on a one-off event holds anew on the next one, with nothing false in between.

Without this, a rule evaluated on releases alone would fire on the first release and never again, and
`any: [entered breakout, entered failed]` would miss the failure that follows a breakout by one close.
"""

from __future__ import annotations

import datetime as dt

from macrowatch.config.types import AnyOf, Duration, LevelEntered, Outcome, ReleaseOutcome, Trigger

from .test_rules import RELEASE_AT, Market, rule

BEAT = ReleaseOutcome("payrolls", Outcome.BEAT, None)
ON_RELEASES = frozenset({Trigger.RELEASE})


def test_a_rule_on_releases_alone_fires_on_every_release():
    m = Market(rule(BEAT, on=ON_RELEASES))
    fired = [len(m.release(RELEASE_AT + dt.timedelta(weeks=4 * i))) for i in range(3)]
    assert fired == [1, 1, 1]


def test_a_release_within_a_window_fires_once_per_print_not_per_evaluation():
    m = Market(rule(ReleaseOutcome("payrolls", Outcome.BEAT, Duration(2, "d"))))
    assert len(m.release()) == 1
    assert m.closes(100, start=RELEASE_AT.date()) == [0]  # the same print, still inside the window: no repeat
    assert len(m.release(RELEASE_AT + dt.timedelta(days=1))) == 1  # a new print inside the window: news again


def test_the_cooldown_still_holds_back_a_new_occurrence():
    m = Market(rule(BEAT, on=ON_RELEASES, cooldown=Duration(10, "d")))
    assert [len(m.release(RELEASE_AT + dt.timedelta(days=d))) for d in (0, 7, 14)] == [1, 0, 1]


def test_a_failure_the_close_after_a_breakout_fires_too():
    either = AnyOf((LevelEntered("spx-100", "breakout"), LevelEntered("spx-100", "failed")))
    m = Market(rule(either))
    assert m.closes(98, 101, 99.5) == [0, 1, 1]  # breakout, then failed at the next close: two alerts


def test_a_reused_decision_brings_no_new_occurrence():
    """A rule holding on a level's state alone keeps one stretch, fed bar by bar or all at once."""
    m = Market(rule(LevelEntered("spx-100", "breakout")))
    assert m.closes(98, 101, 102, 103) == [0, 1, 0, 0]
