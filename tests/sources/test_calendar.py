"""Exchange sessions, holidays and early closes, from exchange_calendars (offline)."""

from __future__ import annotations

import datetime as dt

import pytest

from macrowatch.sources import calendar

UTC = dt.UTC


@pytest.mark.parametrize("day, close", [
    (dt.date(2019, 7, 3), dt.datetime(2019, 7, 3, 17, 0, tzinfo=UTC)),      # early close, 13:00 EDT
    (dt.date(2019, 11, 29), dt.datetime(2019, 11, 29, 18, 0, tzinfo=UTC)),  # day after Thanksgiving, 13:00 EST
    (dt.date(2019, 12, 2), dt.datetime(2019, 12, 2, 21, 0, tzinfo=UTC)),    # a regular 16:00 EST close
    (dt.date(2019, 7, 8), dt.datetime(2019, 7, 8, 20, 0, tzinfo=UTC)),      # a regular 16:00 EDT close
], ids=["early-close-july", "early-close-thanksgiving", "regular-winter", "regular-summer"])
def test_close_times(day, close):
    assert calendar.close_times("XNYS", day, day)[day] == close


@pytest.mark.parametrize("day", [dt.date(2019, 7, 4), dt.date(2019, 11, 28), dt.date(2018, 12, 5),
                                 dt.date(2025, 1, 9), dt.date(2019, 7, 6)],
                         ids=["independence-day", "thanksgiving", "bush-mourning", "carter-mourning", "saturday"])
def test_no_session(day):
    assert day not in calendar.close_times("XNYS", day - dt.timedelta(days=3), day + dt.timedelta(days=3))


def test_futures_trade_when_stocks_are_shut():
    thanksgiving = dt.date(2019, 11, 28)
    assert thanksgiving in calendar.close_times("CMES", thanksgiving, thanksgiving)


def test_last_closed_session_and_is_open():
    before_close = dt.datetime(2019, 12, 2, 20, 59, tzinfo=UTC)
    after_close = dt.datetime(2019, 12, 2, 21, 1, tzinfo=UTC)
    assert calendar.is_open("XNYS", before_close) and not calendar.is_open("XNYS", after_close)
    assert calendar.last_closed_session("XNYS", before_close) == dt.date(2019, 11, 29)
    assert calendar.last_closed_session("XNYS", after_close) == dt.date(2019, 12, 2)


def test_names_include_aliases():
    names = calendar.calendar_names()
    assert {"XNYS", "CMES", "NYSE"} <= names


def test_calendar_command_lists_sessions_and_releases(tmp_path, fred_stub, monkeypatch):
    from click.testing import CliRunner

    from macrowatch.commands.cli import cli

    fred_stub.add_release(50, ["2019-11-08", "2019-12-06", "2020-01-10"])
    (tmp_path / "mw.yaml").write_text(f"""\
sources: {{fred: {{api_key: "${{MW_TEST_KEY}}", url: "{fred_stub.base_url}"}}}}
instruments: {{spx: {{symbol: "^GSPC"}}, rty: {{symbol: "RTY=F", calendar: CMES}}}}
levels: {{l: {{instrument: spx, price: 1}}}}
releases:
  es: {{fred_release_id: 50}}
  fomc: {{dates: [2019-12-11], time: "14:00"}}
macro: {{payrolls: {{series: PAYEMS, release: es}}}}
rules: [{{name: a, when: {{level: l, state: below}}}}]
""")
    from stubs.fred import KEY

    monkeypatch.setenv("MW_TEST_KEY", KEY)
    monkeypatch.setenv("MACROWATCH_NOW", "2019-11-27T12:00:00-05:00")
    result = CliRunner().invoke(cli, ["calendar", "-c", str(tmp_path / "mw.yaml"), "--days", "15"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    cmes = lines[lines.index("CMES:") + 1:lines.index("XNYS:")]
    xnys = lines[lines.index("XNYS:") + 1:lines.index("releases:")]
    assert "  Thu 2019-11-28  closed (holiday)" in xnys
    assert not any("2019-11-28  closed" in line for line in cmes)  # the futures trade on Thanksgiving
    assert "  Fri 2019-11-29  09:30-13:00 EST  early close" in xnys
    assert lines[lines.index("releases:") + 1:] == [
        "  Fri 2019-12-06 08:30 EST  es (PAYEMS)",
        "  Wed 2019-12-11 14:00 EST  fomc (no series)",
    ]
    assert KEY not in result.output
