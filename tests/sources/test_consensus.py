"""The consensus feeds (ForexFactory's weekly calendar, Nasdaq's economic events) against the stub feeds, in their
wire formats: values with their suffixes, events matched exactly by title, country and time, and the limits."""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo

import pytest

from macrowatch.config.types import ConsensusFeed, ConsensusSources, Feed, FeedSource
from macrowatch.sources.consensus import (
    CLIENTS,
    ConsensusError,
    EventNotFound,
    Forecast,
    ForexFactory,
    Nasdaq,
    RateLimited,
    Row,
    forecast,
    parse_value,
)
from stubs.forecasts import FF_PATH, NASDAQ_PATH, ForecastStub, ff_event, nasdaq_event

NY = zoneinfo.ZoneInfo("America/New_York")
PAYROLLS_AT = dt.datetime(2026, 12, 4, 8, 30, tzinfo=NY)   # Friday of the stub's week; 13:30 UTC
NOW = dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.UTC)      # the Tuesday before
FF, NASDAQ = Feed.FOREXFACTORY, Feed.NASDAQ


class Ticks:
    """A monotonic clock that moves only when told to, shared by a client and the stub's limit."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def ticks(forecast_stub: ForecastStub) -> Ticks:
    forecast_stub.clock = clock = Ticks()
    return clock


@pytest.fixture
def ff(forecast_stub, ticks):
    client = ForexFactory(forecast_stub.base_url, timeout=2.0, clock=ticks)
    yield client
    client.close()


@pytest.fixture
def nq(forecast_stub, ticks):
    client = Nasdaq(forecast_stub.base_url, timeout=2.0, clock=ticks)
    yield client
    client.close()


def entry(feed: Feed, event: str, unit: float = 1.0, country: str | None = None) -> ConsensusFeed:
    return ConsensusFeed(feed, event, unit, country)


# ---- values ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("185K", 185_000.0), ("-23K", -23_000.0), ("25.3K", 25_300.0), ("4.1%", 4.1), ("0.3%", 0.3),
    ("-0.1%", -0.1), ("+0.2%", 0.2), ("\u22120.1%", -0.1), ("1.2M", 1_200_000.0), ("7.45M", 7_450_000.0),
    ("1.5B", 1_500_000_000.0), ("-78.5B", -78_500_000_000.0), ("2.1T", 2.1e12), ("52.3", 52.3), ("0", 0.0),
    ("1,234K", 1_234_000.0), (" 185K ", 185_000.0),
    ("", None), ("&nbsp;", None), ("\xa0", None), ("   ", None),
])
def test_values_are_read_with_their_suffixes(text, value):
    assert parse_value(text) == value


@pytest.mark.parametrize("text, why", [
    pytest.param("<0.1%", "is a bound, not a forecast", id="below-a-bound"),
    pytest.param(">2.0%", "is a bound, not a forecast", id="above-a-bound"),
    pytest.param("$10.5B", "is not a number", id="a-currency"),
    pytest.param("185k", "is not a number", id="lower-case-suffix"),
    pytest.param("n/a", "is not a number", id="words"),
    pytest.param("1.2.3", "is not a number", id="two-points"),
    pytest.param("12,34K", "is not a number", id="bad-grouping"),
    pytest.param("185KK", "is not a number", id="two-suffixes"),
    pytest.param("Tentative", "is not a number", id="a-time-word"),
])
def test_anything_else_is_refused_never_guessed(text, why):
    with pytest.raises(ValueError, match=why):
        parse_value(text)


# ---- ForexFactory -------------------------------------------------------------------------------------

@pytest.mark.parametrize("wanted, at, expected", [
    pytest.param(entry(FF, "Non-Farm Employment Change", 1000), PAYROLLS_AT, 185.0, id="payrolls-in-thousands"),
    pytest.param(entry(FF, "Unemployment Rate"), PAYROLLS_AT, 4.1, id="unemployment-rate"),
    pytest.param(entry(FF, "  non-farm EMPLOYMENT change ", 1000), PAYROLLS_AT, 185.0, id="case-and-spaces"),
    pytest.param(entry(FF, "Unemployment Rate", country="cad"), PAYROLLS_AT, 6.6, id="another-country"),
    pytest.param(entry(FF, "Non-Farm Employment Change", 1000), dt.datetime(2026, 12, 4, 13, 30, tzinfo=dt.UTC),
                 185.0, id="the-time-in-utc"),
    pytest.param(entry(FF, "JOLTS Job Openings", 1000), dt.datetime(2026, 12, 2, 10, tzinfo=NY), 7450.0,
                 id="millions"),
    pytest.param(entry(FF, "Trade Balance", 1e6), dt.datetime(2026, 12, 3, 8, 30, tzinfo=NY), -78_500.0,
                 id="billions"),
])
def test_forexfactory_forecast_of_a_release(forecast_stub, ff, wanted, at, expected):
    value, row = forecast(ff, wanted, at, NOW)[:2]
    assert value == pytest.approx(expected)
    assert (row.feed, row.at, row.seen) == (FF, at, NOW)  # seen: when we read it, for point-in-time
    [call] = forecast_stub.calls(FF_PATH)
    assert call.user_agent.startswith("Mozilla/5.0")


def test_forexfactory_row_as_seen(ff):
    assert forecast(ff, entry(FF, "Non-Farm Employment Change", 1000), PAYROLLS_AT, NOW) == Forecast(185.0, Row(
        FF, "Non-Farm Employment Change", "USD", PAYROLLS_AT, "185K", "-23K", None, NOW))


def test_forexfactory_event_without_a_forecast(ff):
    at = dt.datetime(2026, 12, 4, 10, tzinfo=NY)
    value, row, note = forecast(ff, entry(FF, "Prelim UoM Consumer Sentiment"), at, NOW)
    assert (value, row.title, row.forecast, row.previous, note) == (
        None, "Prelim UoM Consumer Sentiment", "", "71.8", "listed without a forecast")


@pytest.mark.parametrize("wanted, at, listed", [
    pytest.param(entry(FF, "Non-Farm Payrolls"), PAYROLLS_AT,
                 "listed at that time: 'Average Hourly Earnings m/m', 'Non-Farm Employment Change', "
                 "'Unemployment Rate'", id="renamed-title"),
    pytest.param(entry(FF, "Non-Farm Employment"), PAYROLLS_AT, "'Non-Farm Employment Change'", id="no-prefix"),
    pytest.param(entry(FF, "Non-Farm Employment Change"), dt.datetime(2026, 12, 4, 10, tzinfo=NY),
                 "listed at that time: 'Prelim UoM Consumer Sentiment'", id="another-time"),
    pytest.param(entry(FF, "Non-Farm Employment Change", country="EUR"), PAYROLLS_AT,
                 "nothing is listed for EUR at that time", id="another-country"),
])
def test_forexfactory_event_not_listed_is_not_found_never_matched_loosely(ff, wanted, at, listed):
    with pytest.raises(EventNotFound) as info:
        forecast(ff, wanted, at, NOW)
    assert str(info.value).startswith(f"ForexFactory {wanted.event!r} ({wanted.in_country}) at {at:%Y-%m-%d %H:%M} "
                                      f"{at.tzname()}: not listed")
    assert listed in info.value.reason


def test_forexfactory_release_of_another_week_is_not_covered_yet(ff):
    next_friday = PAYROLLS_AT + dt.timedelta(days=7)
    assert forecast(ff, entry(FF, "Non-Farm Employment Change"), next_friday, NOW) == Forecast(
        None, None, "not in this week's calendar (2026-11-29 to 2026-12-05)")


@pytest.mark.parametrize("written, why", [
    pytest.param("n/a", "unreadable forecast: 'n/a' is not a number", id="words"),
    pytest.param("<0.1%", "unreadable forecast: '<0.1%' is a bound, not a forecast", id="a-bound"),
])
def test_forexfactory_unreadable_forecast_is_an_error_naming_the_event(forecast_stub, ff, written, why):
    forecast_stub.week = [ff_event("Non-Farm Employment Change", "2026-12-04T08:30:00-05:00", written, "-23K")]
    with pytest.raises(ConsensusError) as info:
        forecast(ff, entry(FF, "Non-Farm Employment Change", 1000), PAYROLLS_AT, NOW)
    assert str(info.value).startswith("ForexFactory 'Non-Farm Employment Change' (USD) at 2026-12-04 08:30 EST: " + why)


def test_forexfactory_event_listed_twice_must_agree(forecast_stub, ff, ticks):
    row = ff_event("Non-Farm Employment Change", "2026-12-04T08:30:00-05:00", "185K")
    forecast_stub.week = [row, row, ff_event("Non-Farm Employment Change", "2026-12-04T08:30:00-05:00", "180K")]
    with pytest.raises(ConsensusError, match="listed 3 times with different forecasts: '185K', '180K'"):
        forecast(ff, entry(FF, "Non-Farm Employment Change"), PAYROLLS_AT, NOW)
    forecast_stub.week = [row, dict(row, forecast="185.0K")]
    ticks.t += 151  # a new calendar (the limit is tested below)
    assert forecast(ff, entry(FF, "Non-Farm Employment Change"), PAYROLLS_AT, NOW).value == 185_000.0


def test_forexfactory_unreadable_events_are_skipped_with_a_warning(forecast_stub, ff, caplog):
    forecast_stub.week = [{"title": "No date", "country": "USD"}, ff_event("Odd", "2026-12-04 08:30"),
                          *forecast_stub.week]
    with caplog.at_level(logging.WARNING, "macrowatch.sources.consensus"):
        assert forecast(ff, entry(FF, "Unemployment Rate"), PAYROLLS_AT, NOW).value == 4.1
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith("ForexFactory: skipped 2 unreadable events: {'title': 'No date'")
    assert "KeyError: 'date'" in message and "no UTC offset in '2026-12-04 08:30'" in message


def test_forexfactory_is_asked_at_most_twice_in_any_five_minutes(forecast_stub, ff, ticks):
    seen_at = []
    for step in range(200):  # every 10 s for 33 minutes, as eager as a caller could be
        ticks.t = 1000.0 + 10 * step
        rows = ff.week(NOW + dt.timedelta(seconds=10 * step))
        seen_at.append(rows[0].seen)
    # The stub counts by the same clock and refuses a third request in 5 minutes: it never had to (week() raised).
    assert len(forecast_stub.calls(FF_PATH)) == len(set(seen_at)) == 13  # at 0, 160, ... 1920 s: > 150 s apart
    assert (seen_at[15], seen_at[16]) == (NOW, NOW + dt.timedelta(seconds=160))  # between: the last one read


def test_forexfactory_answer_inside_the_window_is_the_last_calendar_read(forecast_stub, ff, ticks):
    first = ff.week(NOW)
    forecast_stub.week[6]["forecast"] = "190K"   # the feed changes meanwhile
    ticks.t += 149
    assert ff.week(NOW + dt.timedelta(seconds=149)) is first  # not asked: seen at NOW, as it was
    ticks.t += 2
    [payrolls] = [r for r in ff.week(NOW + dt.timedelta(seconds=151)) if r.title == "Non-Farm Employment Change"]
    assert (payrolls.forecast, payrolls.seen) == ("190K", NOW + dt.timedelta(seconds=151))
    assert len(forecast_stub.calls(FF_PATH)) == 2


@pytest.mark.parametrize("refusal, why", [
    pytest.param("429", "rate limited (HTTP 429) by nfs.faireconomy.media (429 Too Many Requests)", id="http-429"),
    pytest.param("denied", "request denied by nfs.faireconomy.media (Request Denied): asked too often",
                 id="request-denied-page"),
])
def test_forexfactory_refusal_is_said_and_waited_out(forecast_stub, ff, ticks, refusal, why):
    forecast_stub.fault(refusal, "forexfactory", times=1)
    with pytest.raises(RateLimited) as info:
        ff.week(NOW)
    assert str(info.value) == f"ForexFactory this week's calendar: {why}"
    ticks.t += 299  # the whole five minutes pass before it is asked again
    with pytest.raises(ConsensusError, match=r"not asked again within 1 s \(it allows about 2 requests per 5 "
                                             r"minutes\); the last request: " + why.replace("(", r"\(")
                                             .replace(")", r"\)")):
        ff.week(NOW)
    assert len(forecast_stub.calls(FF_PATH)) == 1
    ticks.t += 2
    assert len(ff.week(NOW)) == len(forecast_stub.week)


def test_forexfactory_denial_after_another_client_spent_the_limit(forecast_stub, ff, ticks):
    """Two daemons behind one address share ForexFactory's limit: the third request in 5 minutes is refused."""
    other = ForexFactory(forecast_stub.base_url, timeout=2.0, clock=ticks)
    ff.week(NOW)
    other.week(NOW)
    ticks.t += 160
    with pytest.raises(RateLimited, match="Request Denied"):
        ff.week(NOW)
    other.close()


# ---- Nasdaq -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("wanted, at, expected, listed_at", [
    pytest.param(entry(NASDAQ, "Nonfarm Payrolls", 1000), PAYROLLS_AT, 185.0, "2026-12-04T13:30Z", id="payrolls"),
    pytest.param(entry(NASDAQ, "unemployment rate "), PAYROLLS_AT, 4.1, "2026-12-04T13:30Z", id="case-and-spaces"),
    pytest.param(entry(NASDAQ, "Unemployment Rate", country="Canada"), PAYROLLS_AT, 6.6, "2026-12-04T13:30Z",
                 id="another-country"),
    pytest.param(entry(NASDAQ, "CPI"), dt.datetime(2026, 12, 10, 8, 30, tzinfo=NY), 0.3, "2026-12-11T13:30Z",
                 id="listed-a-day-late"),
])
def test_nasdaq_forecast_of_a_release(forecast_stub, nq, wanted, at, expected, listed_at):
    value, row, note = forecast(nq, wanted, at, NOW)
    assert (value, note) == (pytest.approx(expected), "")
    assert (row.feed, row.at, row.seen) == (NASDAQ, dt.datetime.fromisoformat(listed_at), NOW)  # as listed
    calls = forecast_stub.calls(NASDAQ_PATH)
    assert [c.query for c in calls] == [{"date": f"{at:%Y-%m-%d}"}, {"date": f"{at + dt.timedelta(days=1):%Y-%m-%d}"}]
    assert all(c.user_agent.startswith("Mozilla/5.0") for c in calls)  # Nasdaq refuses python-requests


def test_nasdaq_placeholders_are_no_value(nq):
    value, row, note = forecast(nq, entry(NASDAQ, "Average Hourly Earnings"), PAYROLLS_AT, NOW)
    assert (value, note) == (None, "listed without a forecast")
    assert (row.forecast, row.previous, row.actual) == ("&nbsp;", "0.4%", "&nbsp;")


def test_nasdaq_page_of_the_day_wins_over_the_next(forecast_stub, nq):
    forecast_stub.pages[dt.date(2026, 12, 5)] = [nasdaq_event("Nonfarm Payrolls", "13:30", "999K")]
    assert forecast(nq, entry(NASDAQ, "Nonfarm Payrolls", 1000), PAYROLLS_AT, NOW).value == 185.0


def test_nasdaq_renamed_event_is_not_found(nq):
    with pytest.raises(EventNotFound) as info:
        forecast(nq, entry(NASDAQ, "Non-Farm Employment Change"), PAYROLLS_AT, NOW)
    assert str(info.value) == ("Nasdaq 'Non-Farm Employment Change' (United States) at 2026-12-04 08:30 EST: not "
                               "listed; listed at that time: 'Average Hourly Earnings', 'Nonfarm Payrolls', "
                               "'Unemployment Rate'")


def test_nasdaq_unreadable_value_is_an_error_naming_the_event(nq):
    with pytest.raises(ConsensusError) as info:
        forecast(nq, entry(NASDAQ, "Consumer Credit"), dt.datetime(2026, 12, 7, 15, tzinfo=NY), NOW)
    assert str(info.value) == ("Nasdaq 'Consumer Credit' (United States) at 2026-12-07 15:00 EST: unreadable "
                               "forecast: '$10.5B' is not a number with an optional K, M, B, T or % suffix")


def test_nasdaq_day_without_events_is_not_covered_yet(forecast_stub, nq):
    at = dt.datetime(2026, 12, 21, 8, 30, tzinfo=NY)
    assert forecast(nq, entry(NASDAQ, "CPI"), at, NOW) == Forecast(
        None, None, "no events listed for 2026-12-21 or the day after yet")
    assert len(forecast_stub.calls(NASDAQ_PATH)) == 2


def test_nasdaq_all_day_rows_have_no_time(nq):
    rows = nq.day(dt.date(2026, 12, 11), NOW)
    assert [(r.title, r.at) for r in rows if r.country == "Japan"] == [("Bank Holiday", None)]


def test_nasdaq_page_is_asked_again_only_after_a_minute(forecast_stub, nq, ticks):
    for event in ("Nonfarm Payrolls", "Unemployment Rate", "Average Hourly Earnings"):  # one poll, three macros
        forecast(nq, entry(NASDAQ, event), PAYROLLS_AT, NOW)
    assert len(forecast_stub.calls(NASDAQ_PATH)) == 2
    ticks.t += 61
    later = NOW + dt.timedelta(seconds=61)
    assert forecast(nq, entry(NASDAQ, "Nonfarm Payrolls"), PAYROLLS_AT, later).row.seen == later
    assert len(forecast_stub.calls(NASDAQ_PATH)) == 4


def test_nasdaq_refuses_a_client_without_a_browser_user_agent(forecast_stub, nq):
    nq.session.headers["User-Agent"] = "python-requests/2.32.3"
    with pytest.raises(ConsensusError) as info:
        nq.day(dt.date(2026, 12, 4), NOW)
    assert str(info.value) == "Nasdaq events of 2026-12-04: HTTP 403 from api.nasdaq.com (Access Denied)"


def test_nasdaq_own_error_status(forecast_stub, nq):
    forecast_stub.fault("status", "nasdaq")
    with pytest.raises(ConsensusError) as info:
        nq.day(dt.date(2026, 12, 4), NOW)
    assert str(info.value) == "Nasdaq events of 2026-12-04: status 400: Invalid date"


# ---- both feeds: failures -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind, why", [
    pytest.param("500", "server error (HTTP 500) from {host}", id="500"),
    pytest.param("html", "got an HTML page instead of data from {host} (Down for maintenance)", id="html-page"),
    pytest.param("malformed", "malformed answer from {host} (not JSON: ", id="cut-short"),
    pytest.param("timeout", "no answer from {host} within 0.3 s", id="timeout"),
    pytest.param("429", "rate limited (HTTP 429) by {host}", id="429"),
])
@pytest.mark.parametrize("feed", [FF, NASDAQ])
def test_feed_failures_are_consensus_errors(forecast_stub, ticks, feed, kind, why):
    forecast_stub.delay = 2.0
    client = CLIENTS[feed](forecast_stub.base_url, timeout=0.3, clock=ticks)
    forecast_stub.fault(kind, feed.value)
    host = "nfs.faireconomy.media" if feed is FF else "api.nasdaq.com"
    with pytest.raises(ConsensusError) as info:
        forecast(client, entry(feed, "Unemployment Rate"), PAYROLLS_AT, NOW)
    assert info.value.reason.startswith(why.format(host=host))
    assert info.value.feed == client.name
    client.close()


@pytest.mark.parametrize("feed", [FF, NASDAQ])
def test_unreachable_feed(forecast_stub, feed):
    forecast_stub.stop()
    client = CLIENTS[feed](forecast_stub.base_url, timeout=2.0)
    with pytest.raises(ConsensusError, match="cannot reach .*: connection refused"):
        forecast(client, entry(feed, "Unemployment Rate"), PAYROLLS_AT, NOW)
    client.close()


def test_clients_from_config_and_their_urls():
    sources = ConsensusSources(nasdaq=FeedSource("http://127.0.0.1:9/mirror"))
    ff, nq = ForexFactory.from_config(sources), Nasdaq.from_config(sources)
    assert ff.url(ForexFactory.URL) == ForexFactory.URL  # no override: the feed itself
    assert nq.url(Nasdaq.URL) == "http://127.0.0.1:9/mirror/api.nasdaq.com/api/calendar/economicevents"
    ff.close()
    nq.close()


def test_an_entry_is_asked_of_its_own_feed_and_a_naive_time_is_refused(ff):
    with pytest.raises(ValueError, match="a nasdaq entry asked of ForexFactory"):
        forecast(ff, entry(NASDAQ, "CPI"), PAYROLLS_AT, NOW)
    with pytest.raises(ValueError, match="tz-aware"):
        forecast(ff, entry(FF, "CPI"), PAYROLLS_AT.replace(tzinfo=None), NOW)
