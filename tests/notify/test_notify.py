"""Delivery: rendering per service, the chart, apprise end to end against a local receiver, the outbox.

Every send goes through the real apprise to tests/stubs/webhook.py on 127.0.0.1; Slack and Telegram go
through apprise's own plugins with their endpoints pointed at the receiver.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import logging
import signal
import subprocess
import sys
import textwrap
import zoneinfo
from pathlib import Path

import pytest

from macrowatch.clock import FakeClock
from macrowatch.config.types import BreakoutParams, Channel, Config, Instrument, Level, LevelKind, Side
from macrowatch.model import Alert, Bar
from macrowatch.notify import chart as chart_mod
from macrowatch.notify.outbox import Dispatcher, backoff, deliver
from macrowatch.notify.render import (
    TELEGRAM_LIMIT,
    Context,
    Kind,
    MacroFormat,
    describe,
    kind_of,
    render,
    wire_len,
)
from macrowatch.notify.send import mask, send
from macrowatch.store import open_store
from store.helpers import was_sent
from stubs import webhook as webhook_stub

webhook = webhook_stub.webhook  # the receiver fixture
NY = zoneinfo.ZoneInfo("America/New_York")
T0 = dt.datetime(2017, 1, 6, 21, 0, tzinfo=dt.UTC)
TOKEN = "s3cr3tT0KEN42xyz"
SLACK_URL = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
TELEGRAM_URL = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/987654321"
CONTEXT = Context({"spx": "S&P 500", "spx-2400": "S&P 500", "spx-2320s": "S&P 500"},
                  {"payrolls": MacroFormat("change", "k"), "cpi": MacroFormat("yoy_pct", "%")}, "America/New_York")
LEVEL_ENTRY = {"holds": True, "state": "breakout", "level": 2400.0, "close": 2410.25}
PAYROLLS_ENTRY = {"holds": True, "outcome": "beat", "actual": 250.0, "consensus": 180.0, "surprise": 70.0,
                  "prior": 150.0, "ref_period": dt.date(2016, 12, 1),
                  "released_at": dt.datetime(2017, 1, 6, 8, 30, tzinfo=NY), "consensus_source": "consensus (file)"}
LEVEL_WORDS = "S&P 500 closed 2410.25, above its level 2400 (state breakout)"
PAYROLLS_WORDS = "payrolls +250k vs consensus +180k: beat by 70k (consensus from file)"


def make_alert(key: str = "spx-breakout|2017-01-06", notify: tuple[str, ...] = ("desk",), evidence=None,
               message: str = "S&P 500 broke 2400 at 2410.25; payrolls +250k vs +180k", chart: str | None = "spx",
               ) -> Alert:
    evidence = {"spx-2400 breakout": LEVEL_ENTRY, "payrolls beat within 1d": PAYROLLS_ENTRY} if evidence is None \
        else evidence
    return Alert("spx-breakout-with-jobs", dt.datetime(2017, 1, 6, 16, 0, tzinfo=NY), "critical", {"desk": "macro"},
                 message, evidence, key, notify, chart)


def make_bars(closes: list[float], start: dt.date = dt.date(2016, 11, 1)) -> list[Bar]:
    """One bar per weekday from `start`, closing at 16:00 New York time."""
    bars, day = [], start
    for c in closes:
        while day.weekday() >= 5:
            day += dt.timedelta(days=1)
        bars.append(Bar(day, dt.datetime.combine(day, dt.time(16), NY), c - 1, c + 4, c - 5, c))
        day += dt.timedelta(days=1)
    return bars


LEVEL = Level("spx-2400", "spx", LevelKind.PRICE, Side.RESISTANCE, BreakoutParams(fail_within_bars=3), price=2400.0)
# 20 closes climbing to 2390, a breakout (2410), a failure (2395), then a breakout that holds.
CLOSES = [2300 + 4.5 * i for i in range(20)] + [2410, 2415, 2395, 2380, 2405, 2420, 2430, 2440]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8  # a stand-in where only the bytes matter


def channel(cid: str, *urls: str) -> Channel:
    return Channel(cid, f"${{{cid.upper()}_URLS}}", tuple(urls))


@pytest.fixture
def store(tmp_path: Path):
    with open_store(tmp_path / "mw.sqlite") as s:
        yield s


# ---- rendering ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, kind", [
    ("slack://T1/B2/C3", Kind.SLACK), ("SLACK://T1/B2/C3", Kind.SLACK), ("tgram://1:abc/42", Kind.TELEGRAM),
    ("json://127.0.0.1/hook", Kind.PLAIN), ("form://host/x", Kind.PLAIN), ("mailto://u:p@example.com", Kind.PLAIN),
], ids=["slack", "slack-upper", "telegram", "json", "form", "mailto"])
def test_kind_of_url_scheme(url, kind):
    assert kind_of(url) is kind


@pytest.mark.parametrize("kind, title, starts, contains, absent", [
    (Kind.PLAIN, "[CRITICAL] spx-breakout-with-jobs", "S&P 500 broke 2400",
     ["2017-01-06 16:00 EST (close evaluation, desk=macro)", "Evidence:",
      f"- spx-2400 breakout (met): {LEVEL_WORDS}", f"- payrolls beat within 1d (met): {PAYROLLS_WORDS}"],
     ["<b>", "*S&P"]),
    (Kind.SLACK, "[CRITICAL] spx-breakout-with-jobs", "*S&P 500 broke 2400 at 2410.25; payrolls +250k vs +180k*\n",
     ["_2017-01-06 16:00 EST (close evaluation, desk=macro)_", f"• `spx-2400 breakout` (met): {LEVEL_WORDS}",
      f"• `payrolls beat within 1d` (met): {PAYROLLS_WORDS}"],
     ["<b>", "&amp;", "**"]),  # mrkdwn, no HTML; apprise escapes & < > for Slack itself
    (Kind.TELEGRAM, "", "<b>[CRITICAL] spx-breakout-with-jobs</b>\n<b>S&amp;P 500 broke 2400",
     ["<i>2017-01-06 16:00 EST (close evaluation, desk=macro)</i>",
      "• <code>spx-2400 breakout</code> (met): S&amp;P 500 closed 2410.25, above its level 2400 (state breakout)",
      "payrolls +250k vs consensus +180k: beat by 70k (consensus from file)"],
     ["S&P"]),  # every & escaped for Telegram's HTML
], ids=["plain", "slack-mrkdwn", "telegram-html"])
def test_render_per_kind(kind, title, starts, contains, absent):
    m = render(make_alert(), kind, CONTEXT)
    assert m.kind is kind and m.title == title and m.cut == 0
    assert m.body.startswith(starts)
    for text in contains:
        assert text in m.body
    for text in absent:
        assert text not in m.body


@pytest.mark.parametrize("key, entry, words", [
    ("spx-2400 breakout", LEVEL_ENTRY, LEVEL_WORDS),
    ("spx-2400 approaching", {"holds": True, "state": "approaching", "level": 2400.0, "close": 2391.5},
     "S&P 500 closed 2391.50, below its level 2400 (state approaching)"),
    ("spx-2320s entered breakdown", {"holds": True, "state": "breakdown", "level": 2320.0, "close": 2301.0},
     "S&P 500 closed 2301.00, below its level 2320 (state breakdown)"),
    ("ndx-ath entered breakout", {"holds": False, "state": "below", "level": None, "close": 15000.0},
     "ndx-ath closed 15000.00; its level is not known yet (state below)"),
    ("spx-2400 breakout", {"holds": False, "state": "below", "level": 2400.0, "close": None},
     "S&P 500: no close yet (state below)"),
    ("payrolls beat within 1d", PAYROLLS_ENTRY,
     f"{PAYROLLS_WORDS}; for 2016-12, released 2017-01-06 08:30 EST"),
    ("payrolls miss", {"holds": True, "outcome": "miss", "actual": 98.0, "consensus": 175.0, "surprise": -77.0,
                       "consensus_source": "baseline: mean of the last 12 first prints"},
     "payrolls +98k vs consensus +175k: missed by 77k (consensus: baseline: mean of the last 12 first prints)"),
    ("payrolls any", {"holds": True, "outcome": "inline", "actual": 190.0, "consensus": 180.0, "surprise": 10.0,
                      "consensus_source": "inline"},
     "payrolls +190k vs consensus +180k: in line (off by 10k) (consensus from inline)"),
    ("payrolls any", {"holds": True, "outcome": "unknown", "actual": -20.0, "consensus": None, "surprise": None,
                      "consensus_source": "none"},
     "payrolls -20k: no consensus to judge it by"),
    ("cpi beat", {"holds": True, "outcome": "beat", "actual": 2.5, "consensus": 2.7, "surprise": -0.2,
                  "consensus_source": "consensus (data)"},
     "cpi +2.5% vs consensus +2.7%: beat by 0.2% (consensus from data)"),
    ("payrolls beat", {"holds": False, "print": None}, "payrolls: no release seen yet"),
    ("spx narrow range 10 bars within 1%", {"holds": True, "range_pct": 0.8512, "low": 2380.1, "high": 2400.3},
     "S&P 500: closes within 0.85% of their low (2380.10 to 2400.30)"),
    ("spx narrow range 10 bars within 1%", {"holds": False, "bars": 4}, "S&P 500: only 4 closes so far"),
    # As read back from the outbox: dates are ISO text.
    ("payrolls beat within 1d", {**PAYROLLS_ENTRY, "ref_period": "2016-12-01",
                                 "released_at": "2017-01-06T13:30:00+00:00"},
     f"{PAYROLLS_WORDS}; for 2016-12, released 2017-01-06 08:30 EST"),
], ids=["breakout", "approaching", "support-breakdown", "dynamic-no-value", "no-close", "payrolls-beat",
        "payrolls-miss-baseline", "inline", "no-consensus", "cpi-pct", "no-print", "narrow-range",
        "narrow-range-short", "from-store-text"])
def test_evidence_in_words(key, entry, words):
    assert describe(key, entry, CONTEXT) == words


@pytest.mark.parametrize("levels, words", [
    ({"spx-52w": "52-week high"}, "S&P 500 closed 2430.00, above its frozen 52-week high 2400 "
                                  "(the 52-week high is now 2420.5; state breakout)"),
    ({}, "S&P 500 closed 2430.00, above its frozen level 2400 (the level is now 2420.5; state breakout)"),
], ids=["named", "as-read-back-without-the-config"])
def test_a_frozen_level_that_moved_on_says_both_numbers(levels, words):
    entry = {"holds": True, "state": "breakout", "level": 2400.0, "close": 2430.0, "level_now": 2420.5}
    context = Context({"spx-52w": "S&P 500"}, levels=levels)
    assert describe("spx-52w breakout", entry, context) == words


def test_the_config_names_its_levels_in_words():
    config = Config(files=(), instruments={"spx": Instrument("spx", "^GSPC", "S&P 500")},
                    levels={"spx-52w": Level("spx-52w", "spx", LevelKind.HIGH_OF, Side.RESISTANCE, BreakoutParams(),
                                             bars=252), "spx-2400": LEVEL})
    entry = {"holds": True, "state": "failed", "level": 2400.0, "close": 2395.0, "level_now": 2420.0}
    alert = make_alert(evidence={"spx-52w failed": entry, "spx-2400 breakout": LEVEL_ENTRY})
    body = render(alert, Kind.PLAIN, Context.from_config(config)).body
    assert ("- spx-52w failed (met): S&P 500 closed 2395.00, below its frozen 52-week high 2400 "
            "(the 52-week high is now 2420; state failed)") in body
    assert f"- spx-2400 breakout (met): {LEVEL_WORDS}" in body


def test_telegram_cuts_the_evidence_never_the_headline():
    evidence = {f"cond-{i:03d} state approaching": {"holds": i % 2 == 0, "state": "approaching", "level": 2400.0,
                                                    "close": 2390.0 + i / 100} for i in range(400)}
    evidence["huge"] = {"holds": False, "note": "x" * 20_000}  # one value alone larger than the limit
    alert = make_alert(evidence=evidence)
    m = render(alert, Kind.TELEGRAM, CONTEXT)
    assert wire_len(m.body) <= TELEGRAM_LIMIT  # as apprise sends it (newlines as CR LF)
    assert m.body.startswith("<b>[CRITICAL] spx-breakout-with-jobs</b>\n<b>S&amp;P 500 broke 2400 at 2410.25; "
                             "payrolls +250k vs +180k</b>\n")
    assert m.cut > 300
    assert f"{m.cut} of 401 conditions not shown" in m.body.splitlines()[-1]
    assert "cond-000" in m.body  # the first conditions are kept, whole
    # Plain text and Slack carry everything.
    assert "cond-399" in render(alert, Kind.PLAIN, CONTEXT).body
    assert render(alert, Kind.SLACK, CONTEXT).cut == 0


def test_telegram_cuts_a_message_longer_than_the_limit_keeping_the_html_whole():
    m = render(make_alert(message="S&P " * 2000), Kind.TELEGRAM, CONTEXT)
    assert wire_len(m.body) <= TELEGRAM_LIMIT
    headline = m.body.splitlines()[1]
    assert headline.startswith("<b>S&amp;P S&amp;P") and headline.endswith("…</b>")
    assert "&" not in headline.replace("&amp;", "")  # no entity cut in half


def test_text_rendering_imports_neither_matplotlib_nor_apprise():
    code = textwrap.dedent("""
        import datetime as dt, sys
        import macrowatch.notify
        from macrowatch.model import Alert
        from macrowatch.notify import chart, outbox, render
        a = Alert("r", dt.datetime(2020, 1, 2, tzinfo=dt.UTC), "info", {}, "m",
                  {"x-1 breakout": {"holds": True, "state": "breakout", "level": 1.0, "close": 2.0}}, "k")
        for kind in render.Kind:
            assert render.render(a, kind).body
        loaded = sorted(m for m in ("matplotlib", "apprise") if m in sys.modules)
        assert not loaded, loaded
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# ---- the chart ---------------------------------------------------------------------------------------

def test_chart_is_a_png_with_its_level_line_and_markers():
    import matplotlib.image

    bars = make_bars(CLOSES)
    release = dt.datetime.combine(bars[20].session, dt.time(8, 30), NY)
    chart = chart_mod.draw(bars, [LEVEL], [release], make_alert(), name="S&P 500")
    assert chart.png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = matplotlib.image.imread(io.BytesIO(chart.png), format="png")
    assert pixels.shape[:2] == (chart.height, chart.width)
    # The state machine's own view: breakout on bar 20, failed on bar 22, a new breakout on bar 24.
    assert chart.breakouts == (bars[20].session, bars[24].session)
    assert chart.failures == (bars[22].session,)
    assert chart.releases == (release,)
    (line,) = chart.levels
    assert line.id == "spx-2400" and set(line.prices) == {2400.0} and line.row is not None
    # The level's colour runs along its row across most of the plot.
    want = [int(line.color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    left, right = chart.columns
    band = pixels[line.row - 2:line.row + 3, left:right, :3]
    near = (abs(band - want).max(axis=2) < 0.08).any(axis=0)
    assert near.mean() > 0.6


def test_chart_freezes_a_dynamic_level_during_a_breakout():
    ath = Level("spx-ath", "spx", LevelKind.ALL_TIME_HIGH, Side.RESISTANCE, BreakoutParams(fail_within_bars=2))
    tr = chart_mod.trace(make_bars([100, 98, 99, 97, 103, 104, 105, 95]), ath)
    # bar 4 breaks the old high 100; the level stays frozen at 100 while 103 and 104 become the new highs
    assert tr.entered[:5] == (None, None, "approaching", "below", "breakout")
    assert tr.prices[4:8] == (100, 100, 100, 100) and tr.entered[6] == "confirmed"
    assert tr.entered[7] == "below"  # a real pullback: the level follows the market again


def test_chart_source_draws_the_alerts_instrument_up_to_the_alert():
    class Config:
        instruments = {"spx": type("I", (), {"id": "spx", "name": "S&P 500"})()}
        levels = {"spx-2400": LEVEL}

    bars = make_bars(CLOSES + [2500] * 5)
    seen = []

    def bars_for(iid):
        seen.append(iid)
        return bars

    chart_for = chart_mod.chart_source(Config(), bars_for)
    alert = make_alert(evidence={"spx-2400 breakout": LEVEL_ENTRY | {"released_at": "2016-12-02T13:30:00+00:00"}})
    alert = Alert(**{**alert.__dict__, "at": bars[24].at})
    png = chart_for(alert)
    assert png.startswith(b"\x89PNG") and seen == ["spx"]
    assert chart_for(Alert(**{**alert.__dict__, "chart": None})) is None
    assert chart_mod.release_times(alert) == [dt.datetime(2016, 12, 2, 13, 30, tzinfo=dt.UTC)]


# ---- apprise end to end --------------------------------------------------------------------------------

def test_json_delivers_message_and_png_byte_identical(webhook, store):
    d = Dispatcher(store, {"desk": channel("desk", webhook.url("json"))}, FakeClock(T0), chart_for=lambda a: PNG,
                   context=CONTEXT)
    assert d.submit([make_alert()], T0) == [make_alert()]
    (outcome,) = d.deliver_due(T0)
    assert outcome.ok and was_sent(store, make_alert().key, "desk")
    (req,) = webhook.requests
    body = req.json()
    assert body["title"] == "[CRITICAL] spx-breakout-with-jobs"
    assert body["message"].startswith("S&P 500 broke 2400 at 2410.25") and LEVEL_WORDS in body["message"]
    (att,) = body["attachments"]
    assert att["filename"] == "chart.png" and att["mimetype"] == "image/png"
    assert base64.b64decode(att["base64"]) == PNG


def test_form_delivers_message_and_png_byte_identical(webhook):
    result = send([webhook.url("form")], "title & co", "body <b>text</b>", PNG, timeout=5)
    assert result.ok, result.reason
    (req,) = webhook.requests
    assert req.form()["title"] == "title & co" and req.form()["message"] == "body <b>text</b>"
    (part,) = req.files().values()
    assert part.filename == "chart.png" and part.data == PNG


def test_real_chart_arrives_intact(webhook):
    chart = chart_mod.draw(make_bars(CLOSES), [LEVEL], name="S&P 500")
    assert send([webhook.url("json")], "t", "b", chart.png, timeout=5).ok
    assert base64.b64decode(webhook.requests[0].json()["attachments"][0]["base64"]) == chart.png


def test_a_receiver_down_for_a_while_gets_every_alert_once_when_back(webhook, store):
    clock = FakeClock(T0)
    channels = {"desk": channel("desk", webhook.url("json"))}
    d = Dispatcher(store, channels, clock)
    alerts = [make_alert(key=f"k{i}", message=f"alert {i}") for i in range(3)]
    d.submit(alerts, T0)
    webhook.refuse()
    tries = []
    for wait in (0, 10, 20, 40):  # each retry when its backoff ends
        clock.advance(dt.timedelta(seconds=wait))
        tries += d.deliver_due(clock.now())
    # One probe per backoff of the channel (10, 20, 40 s ...), whichever alert it carries.
    assert [(o.key, o.ok) for o in tries] == [("k0", False), ("k1", False), ("k2", False), ("k0", False)]
    assert tries[-1].next_at - clock.now() == dt.timedelta(seconds=80)
    assert d.deliver_due(clock.now() + dt.timedelta(seconds=79)) == []  # the channel is backing off
    assert d.pending() == 3 and webhook.requests == []
    webhook.restore()
    # A restart: each delivery's next try is in the store. k1 and k2 are due; k0 waits out its 80 s.
    d = Dispatcher(store, channels, clock)
    assert sorted((o.key, o.ok) for o in d.deliver_due(clock.now())) == [("k1", True), ("k2", True)]
    assert d.deliver_due(clock.now() + dt.timedelta(seconds=79)) == []
    clock.advance(dt.timedelta(seconds=80))
    assert [(o.key, o.ok) for o in d.deliver_due(clock.now())] == [("k0", True)]
    for _ in range(3):
        clock.advance(dt.timedelta(minutes=30))
        assert d.deliver_due(clock.now()) == []
    assert sorted(r.json()["message"].splitlines()[0] for r in webhook.requests) == ["alert 0", "alert 1", "alert 2"]
    assert d.pending() == 0


@pytest.mark.parametrize("attempts, wait", [(0, 10), (1, 20), (2, 40), (5, 320), (6, 640), (7, 900), (60, 900)],
                         ids=["first", "second", "third", "sixth", "seventh", "capped", "long-down"])
def test_backoff_doubles_from_10s_up_to_15min(attempts, wait):
    assert backoff(attempts) == dt.timedelta(seconds=wait)


def test_a_process_killed_after_submit_delivers_after_restart(webhook, tmp_path):
    db = tmp_path / "mw.sqlite"
    script = textwrap.dedent(f"""
        import datetime as dt, os, signal, sys
        from macrowatch.clock import FakeClock
        from macrowatch.config.types import Channel
        from macrowatch.model import Alert
        from macrowatch.notify.outbox import Dispatcher
        from macrowatch.store import open_store

        t0 = dt.datetime.fromisoformat({T0.isoformat()!r})
        store = open_store(sys.argv[1])
        d = Dispatcher(store, {{"desk": Channel("desk", "$X", (sys.argv[2],))}}, FakeClock(t0))
        alert = Alert("r", t0, "warning", {{}}, "survives a kill", {{}}, "r||close:1", ("desk",))
        assert d.submit([alert], t0) == [alert]
        print("submitted", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        d.deliver_due(t0)
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(db), webhook.url("json")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL and proc.stdout == "submitted\n", proc.stderr
    assert webhook.requests == []
    with open_store(db) as store:
        d = Dispatcher(store, {"desk": channel("desk", webhook.url("json"))}, FakeClock(T0))
        assert d.pending() == 1
        assert [o.ok for o in d.deliver_due(T0)] == [True]
        assert d.deliver_due(T0 + dt.timedelta(hours=1)) == [] and d.pending() == 0
    assert [r.json()["message"].splitlines()[0] for r in webhook.requests] == ["survives a kill"]


def test_one_channel_failing_does_not_hold_back_another(webhook, store):
    other = webhook_stub.WebhookReceiver()
    try:
        webhook.fail(500)
        clock = FakeClock(T0)
        d = Dispatcher(store, {"down": channel("down", webhook.url("json")), "up": channel("up", other.url("json"))},
                       clock)
        d.submit([make_alert(key=f"k{i}", notify=("down", "up")) for i in range(3)], T0)
        outcomes = d.deliver_due(T0)
        assert sorted((o.channel, o.ok) for o in outcomes) == [("down", False)] + [("up", True)] * 3
        assert len(other.requests) == 3 and len(webhook.requests) == 1
        assert d.pending() == 3
        failed = next(o for o in outcomes if not o.ok)
        assert "error=500" in failed.reason
        webhook.restore()
        clock.advance(dt.timedelta(seconds=10))
        assert [o.channel for o in d.deliver_due(clock.now()) if o.ok] == ["down"] * 3
        assert len(other.requests) == 3 and d.pending() == 0
    finally:
        other.stop()


def test_a_channel_with_one_url_failing_retries_that_url_alone_even_after_a_restart(webhook, tmp_path):
    """Two URLs in one channel, one answering 500: the other has the alert once, whatever the retries."""
    other = webhook_stub.WebhookReceiver()
    try:
        webhook.fail(500)
        channels = {"desk": channel("desk", other.url("json"), webhook.url("json"))}
        clock = FakeClock(T0)
        with open_store(tmp_path / "mw.sqlite") as s:
            d = Dispatcher(s, channels, clock)
            d.submit([make_alert()], T0)
            (first,) = d.deliver_due(T0)
            assert not first.ok and len(other.requests) == 1 and len(webhook.requests) == 1
            clock.advance(dt.timedelta(seconds=10))
            (second,) = d.deliver_due(clock.now())  # still failing: only the failing URL is tried
            assert not second.ok and len(other.requests) == 1 and len(webhook.requests) == 2
        webhook.restore()
        clock.advance(dt.timedelta(minutes=1))
        with open_store(tmp_path / "mw.sqlite") as s:  # a restart: what reached which URL is in the store
            d = Dispatcher(s, channels, clock)
            (third,) = d.deliver_due(clock.now())
            assert third.ok and d.pending() == 0
        assert len(other.requests) == 1 and len(webhook.delivered()) == 1
        assert webhook.url("json") not in (tmp_path / "mw.sqlite").read_bytes().decode("latin-1")
    finally:
        other.stop()


def test_alert_without_channels_is_recorded_and_sent_nowhere(store):
    calls = []
    d = Dispatcher(store, {}, FakeClock(T0), send=lambda *a, **k: calls.append(a))
    alert = make_alert(notify=())
    assert d.submit([alert], T0) == [alert]
    assert d.submit([alert], T0) == []  # known: not new again
    assert d.deliver_due(T0) == [] and d.pending() == 0 and calls == []


@pytest.mark.parametrize("fault", ["500", "refused", "bad-url", "unset-env"])
def test_secrets_never_reach_logs_or_the_store(webhook, store, caplog, fault):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="apprise")  # even apprise's own debug lines
    url = webhook.url("json", f"/{TOKEN}/hook", query=f"-X-Api-Key={TOKEN}k")
    ch = channel("desk", url)
    if fault == "500":
        webhook.fail(500)
    elif fault == "refused":
        webhook.refuse()
    elif fault == "bad-url":
        ch = channel("desk", f"tgram://{TOKEN}")
    else:
        ch = Channel("desk", "${DESK_URLS}", (), ("DESK_URLS",))
    d = Dispatcher(store, {"desk": ch}, FakeClock(T0), chart_for=lambda a: PNG)
    d.submit([make_alert()], T0)
    (outcome,) = d.deliver_due(T0)
    assert not outcome.ok and outcome.reason
    assert TOKEN not in outcome.reason
    (due,) = store.due(outcome.next_at)
    assert due.last_error and TOKEN not in due.last_error
    assert caplog.records and all(TOKEN not in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text


def test_mask_hides_path_tokens_passwords_and_query():
    masked = mask(f"json://user:pa55word@127.0.0.1:8000/{TOKEN}/hook?-X-Api-Key=abcdef")
    assert masked == "json://user:****@127.0.0.1:8000/s...z/hook"
    assert mask(SLACK_URL).startswith("slack://T...2/A...D/T...7")
    assert "AAHdqTcv" not in mask(TELEGRAM_URL)


def test_slow_receiver_cannot_hang_a_send(webhook):
    webhook.slow(5)
    result = send([webhook.url("json")], "t", "b", None, timeout=0.5)
    assert not result.ok and "127.0.0.1" in result.reason


# ---- Slack and Telegram through apprise's own plugins ---------------------------------------------------

@pytest.fixture
def slack(webhook, monkeypatch):
    from apprise.plugins.slack import NotifySlack

    monkeypatch.setattr(NotifySlack, "webhook_url", f"{webhook.base}/services")
    return webhook


@pytest.fixture
def telegram(webhook, monkeypatch):
    from apprise.plugins.telegram import NotifyTelegram

    monkeypatch.setattr(NotifyTelegram, "notify_url", f"{webhook.base}/bot")
    webhook.reply(200, b'{"ok": true, "result": {}}')
    return webhook


@pytest.mark.parametrize("query, text_at", [
    ("", lambda p: p["attachments"][0]["text"]),
    ("?blocks=yes", lambda p: p["attachments"][0]["blocks"][1]["text"]["text"]),
], ids=["legacy-attachment", "blocks"])
def test_slack_webhook_gets_mrkdwn_text_and_no_upload(slack, caplog, query, text_at):
    ok, reason = deliver(make_alert(), channel("desk", SLACK_URL + query), send, PNG, CONTEXT)
    assert ok, reason
    (req,) = slack.requests  # one JSON post: no files.upload, no multipart
    assert req.path == "/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
    assert req.content_type.startswith("application/json")
    payload = req.json()
    text = text_at(payload)
    # apprise escapes & for Slack in the legacy payload; the block text goes as given.
    assert text.replace("&amp;", "&").startswith("*S&P 500 broke 2400 at 2410.25; payrolls +250k vs +180k*\n")
    assert PAYROLLS_WORDS in text.replace("&amp;", "&")
    if not query:
        assert payload["mrkdwn"] is True and payload["attachments"][0]["title"] == "[CRITICAL] spx-breakout-with-jobs"
    assert "do not support attachments" not in caplog.text  # the chart was never offered to the webhook


def test_telegram_short_alert_is_the_charts_caption(telegram):
    ok, reason = deliver(make_alert(), channel("desk", TELEGRAM_URL), send, PNG, CONTEXT)
    assert ok, reason
    (req,) = telegram.requests  # under 1024 characters apprise sends one photo with the text as its caption
    assert req.path == "/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendPhoto"
    form = req.form()
    assert form["chat_id"] == "987654321" and form["parse_mode"] == "HTML"
    assert form["caption"].startswith("<b>[CRITICAL] spx-breakout-with-jobs</b>")
    assert "S&amp;P 500 closed 2410.25, above its level 2400" in form["caption"]
    assert req.files()["photo"].data == PNG


def test_telegram_long_alert_is_a_message_within_4096_then_the_photo(telegram):
    evidence = {f"cond-{i:03d} state approaching": {"holds": True, "state": "approaching", "level": 2400.0,
                                                    "close": 2395.0} for i in range(300)}
    ok, reason = deliver(make_alert(evidence=evidence), channel("desk", TELEGRAM_URL), send, PNG, CONTEXT)
    assert ok, reason
    message, photo = telegram.requests
    assert message.endpoint == "sendMessage" and photo.endpoint == "sendPhoto"
    payload = message.json()
    assert payload["parse_mode"] == "HTML" and str(payload["chat_id"]) == "987654321"
    assert len(payload["text"]) <= TELEGRAM_LIMIT
    assert payload["text"].startswith("<b>[CRITICAL] spx-breakout-with-jobs</b>")
    assert "conditions not shown" in payload["text"]
    assert photo.files()["photo"].data == PNG and "caption" not in photo.form()
