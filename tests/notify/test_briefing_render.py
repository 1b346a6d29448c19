"""A briefing rendered per kind of service, from its evidence as the outbox keeps it (JSON data)."""

from __future__ import annotations

import datetime as dt

from macrowatch.model import Alert
from macrowatch.notify.briefing import render, text
from macrowatch.notify.render import TELEGRAM_LIMIT, Context, Kind, MacroFormat, wire_len

CONTEXT = Context(macros={"payrolls": MacroFormat("change", "k")}, tz="America/New_York")


OUTCOMES = {"beat": {"fires": True, "why": ""}, "inline": {"fires": False, "why": "its condition would not hold"},
            "miss": {"fires": False, "why": "held back by its cooldown of 3d"}}


def evidence(rules: int = 1) -> dict:
    return {
        "release": "employment-situation", "at": "2017-05-05T08:30:00-04:00", "chart": "spx",
        "series": [{"macro": "payrolls", "series": "PAYEMS", "measure": "change", "ref_period": "2017-04-01",
                    "consensus": 185.0, "source": "consensus (data)", "why": None, "prior": 98.0,
                    "prior_period": "2017-03-01", "beat_by": 25.0, "higher_is": "better", "beat": [">=", 210.0],
                    "miss": ["<=", 160.0], "values": {"beat": 210.0, "inline": 185.0, "miss": 160.0}}],
        "scenarios": [{"outcome": "beat", "fires": ["a<b"]}, {"outcome": "inline", "fires": []},
                      {"outcome": "miss", "fires": []}],
        "rules": [{"rule": f"a<b{i or ''}", "outcomes": OUTCOMES,
                   "now": {"spx-2400 approaching": {"holds": True, "state": "approaching", "level": 2400.0,
                                                    "close": 2389.52}}} for i in range(rules)],
    }


def alert(rules: int = 1) -> Alert:
    return Alert("briefing", dt.datetime(2017, 5, 5, 12, tzinfo=dt.UTC), "info", {"release": "employment-situation"},
                 "headline", evidence(rules), "briefing|release=employment-situation|briefing:x", ("desk",), "spx",
                 "briefing")


def test_plain_text_says_it_all():
    assert text(evidence(), CONTEXT) == "\n".join([
        "Briefing: employment-situation at Fri 2017-05-05 08:30 EDT",
        "payrolls (PAYEMS change) for 2017-04: consensus +185k (consensus from data); prior first print +98k (2017-03)",
        "  beat at +210k or more, miss at +160k or less, inline between",
        "If it came out now:",
        "  beat (+210k): a<b fires",
        "  inline (+185k): nothing fires",
        "  miss (+160k): nothing fires",
        "Rules on this release:",
        "  a<b: beat FIRES, inline no, miss no (held back by its cooldown of 3d)",
        "    spx-2400 approaching (met): spx-2400 approaching (2389.52, 0.44 % below)",
    ])
    message = render(alert(), Kind.PLAIN, CONTEXT)
    assert message.title == "Briefing: employment-situation at Fri 2017-05-05 08:30 EDT"
    assert message.body == text(evidence(), CONTEXT).split("\n", 1)[1]


def test_slack_and_telegram_mark_it_up():
    slack = render(alert(), Kind.SLACK, CONTEXT)
    assert slack.markup == "native" and slack.body.startswith("*Briefing: employment-situation at")
    assert "  `a<b`: beat FIRES" in slack.body
    telegram = render(alert(), Kind.TELEGRAM, CONTEXT)
    assert telegram.markup == "html" and telegram.title == ""
    assert telegram.body.startswith("<b>Briefing: employment-situation at Fri 2017-05-05 08:30 EDT</b>")
    assert "  <code>a&lt;b</code>: beat FIRES" in telegram.body and "a<b" not in telegram.body


def test_a_long_briefing_is_cut_to_fit_telegram():
    telegram = render(alert(rules=60), Kind.TELEGRAM, CONTEXT)
    assert wire_len(telegram.body) <= TELEGRAM_LIMIT and telegram.cut > 0
