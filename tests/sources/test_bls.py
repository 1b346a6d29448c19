"""BlsClient against the stub BLS: the schedule (iCalendar) and the Public Data API v2 in their wire formats."""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo

import pytest

from macrowatch.config.types import BlsSource
from macrowatch.sources.bls import BlsClient, BlsError, BlsFetch, Observation
from macrowatch.sources.schedule import Event, matches, parse_ics, release_times
from stubs.bls import API_PATH, KEY, SCHEDULE_PATH, BlsStub

NY = zoneinfo.ZoneInfo("America/New_York")
D = dt.date.fromisoformat
PAYROLLS = "CES0000000001"
UNRATE = "LNS14000000"
# Total nonfarm payrolls (thousands) as BLS serves them for 2025-2026, the annual average (M13) included.
CES = [(2025, "M11", "158950"), (2025, "M12", "159010"), (2025, "M13", "158700"),
       (2026, "M01", "159080"), (2026, "M09", "159300"), (2026, "M10", "159400")]
EVENTS = [
    ("Employment Situation for November 2026", "2026-12-04T08:30"),
    ("Consumer Price Index for November 2026", "2026-12-10T08:30"),
    ("Employment Situation of Veterans 2025", "2026-03-19T10:00"),
    ("Employment Situation for June 2026", "2026-07-02T08:30"),
    ("Job Openings and Labor Turnover Survey for October 2026", "2026-12-08T10:00"),
]


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=NY)


@pytest.fixture
def stub(bls_stub: BlsStub) -> BlsStub:
    for summary, when in EVENTS:
        bls_stub.add_event(summary, when)
    return bls_stub.add_series(PAYROLLS, CES).add_series(UNRATE, [(2026, "M09", "4.4"), (2026, "M10", "4.5")])


@pytest.fixture
def client(stub: BlsStub):
    bls = BlsClient(KEY, stub.base_url, timeout=2.0)
    yield bls
    bls.close()


# ---- the schedule -----------------------------------------------------------------------------------

def test_the_schedule_is_read_in_eastern_time(stub, client):
    events = client.schedule()
    assert events == [Event(s, at(w)) for s, w in EVENTS]
    assert events[0].at.utcoffset() == dt.timedelta(hours=-5) and events[3].at.utcoffset() == dt.timedelta(hours=-4)
    [call] = stub.calls(SCHEDULE_PATH)
    assert call.method == "GET" and call.user_agent.startswith("Mozilla/5.0")  # www.bls.gov refuses python-requests
    assert client.queries == 0  # the schedule is no API query: it spends no quota


@pytest.mark.parametrize("fold", [75, 9, 2])
def test_folded_lines_are_unfolded(stub, client, fold):
    stub.fold = fold  # 9 and 2: SUMMARY and DTSTART split mid-word, even inside the TZID parameter
    assert [(e.summary, e.at) for e in client.schedule()] == [(s, at(w)) for s, w in EVENTS]


@pytest.mark.parametrize("title, expected", [
    pytest.param("Employment Situation", ["2026-07-02T08:30", "2026-12-04T08:30"], id="monthly-not-veterans"),
    pytest.param("employment  SITUATION", ["2026-07-02T08:30", "2026-12-04T08:30"], id="case-and-spacing"),
    pytest.param("Employment Situation of Veterans", ["2026-03-19T10:00"], id="the-other-release"),
    pytest.param("Consumer Price Index", ["2026-12-10T08:30"], id="cpi"),
    pytest.param("Employment", [], id="a-first-word-is-no-title"),
    pytest.param("Job Openings", [], id="nor-a-prefix"),
])
def test_release_times_of_a_title(stub, client, title, expected):
    assert release_times(client.schedule(), title) == [at(w) for w in expected]


@pytest.mark.parametrize("summary, title, expected", [
    pytest.param("Productivity and Costs (P) for Third Quarter 2026", "Productivity and Costs", True, id="mark-p"),
    pytest.param("Productivity and Costs (R) for Third Quarter 2026", "productivity and costs", True, id="mark-r"),
    pytest.param("Union Members \u2014 2025", "Union Members", True, id="dash-year"),
    pytest.param("Union Members - 2025", "Union Members", True, id="hyphen-year"),
    pytest.param("Consumer Price Index", "Consumer Price Index", True, id="alone"),
    pytest.param("Consumer Price Index-Average Price Data", "Consumer Price Index", False, id="joined-word"),
    pytest.param("Employment Situations for May", "Employment Situation", False, id="longer-word"),
    pytest.param("Employment Situation for November 2026", "Employment Situation for", False, id="for-alone"),
])
def test_what_may_follow_a_title(summary, title, expected):
    assert matches(summary, title) is expected
    assert release_times([Event(summary, at("2026-11-05T08:30"))] * 2, title) == \
        ([at("2026-11-05T08:30")] if expected else [])


def ics(*events: str) -> str:
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", *events, "END:VCALENDAR", ""])


def vevent(*lines: str) -> str:
    return "\r\n".join(["BEGIN:VEVENT", *lines, "END:VEVENT"])


GOOD = vevent("DTSTART;TZID=US-Eastern:20261204T083000", "SUMMARY:Employment Situation for November 2026")


@pytest.mark.parametrize("event, why", [
    pytest.param(vevent("DTSTART;VALUE=DATE:20261204", "SUMMARY:Holiday"), "a date without a time of day",
                 id="date-only"),
    pytest.param(vevent("DTSTART;TZID=Mars/Olympus:20261204T083000", "SUMMARY:Elsewhere"),
                 "unknown time zone 'Mars/Olympus'", id="unknown-tzid"),
    pytest.param(vevent("DTSTART;TZID=US-Eastern:2026-12-04 08:30", "SUMMARY:Odd"),
                 "Odd: DTSTART '2026-12-04 08:30': not a date and time (YYYYMMDDTHHMMSS)", id="bad-form"),
    pytest.param(vevent("DTSTART;TZID=US-Eastern:20261304T083000", "SUMMARY:Odd"), "does not match format",
                 id="no-such-month"),
    pytest.param(vevent("DTSTART;TZID=US-Eastern:20261204T083000"), "no SUMMARY", id="no-summary"),
    pytest.param(vevent("SUMMARY:Timeless"), "no DTSTART", id="no-dtstart"),
    pytest.param(vevent("DTSTART;TZID=US-Eastern:20261204T083000", "SUMMARY:Garbled", "this is no content line"),
                 "unreadable line", id="garbage-line"),
])
def test_an_unreadable_event_is_skipped_with_a_warning(caplog, event, why):
    with caplog.at_level(logging.WARNING, "macrowatch.sources.schedule"):
        events = parse_ics(ics(event, GOOD))
    assert events == [Event("Employment Situation for November 2026", at("2026-12-04T08:30"))]
    assert why in caplog.text and "skipped the event" in caplog.text


def test_other_time_forms_and_escapes():
    events = parse_ics(ics(
        vevent("DTSTART:20261204T133000Z", "SUMMARY:Real Earnings for November 2026\\, revised"),
        vevent('DTSTART;TZID="America/Chicago":20261204T073000', "SUMMARY:Quoted\\; IANA zone"),
        vevent("DTSTART:20261204T083000", "SUMMARY:Floating: read as Eastern",
               "BEGIN:VALARM", "DTSTART:20200101T000000", "SUMMARY:an alarm's, not the event's", "END:VALARM")))
    assert events == [Event("Real Earnings for November 2026, revised", at("2026-12-04T08:30")),
                      Event("Quoted; IANA zone", at("2026-12-04T08:30")),
                      Event("Floating: read as Eastern", at("2026-12-04T08:30"))]


@pytest.mark.parametrize("text, reason", [
    pytest.param("<!DOCTYPE html><html><body>Moved</body></html>", "not an iCalendar file", id="not-a-calendar"),
    pytest.param("", "not an iCalendar file (it starts with '')", id="empty"),
    pytest.param(ics(GOOD).removesuffix("END:VCALENDAR\r\n"), "truncated iCalendar file (no END:VCALENDAR)",
                 id="truncated"),
    pytest.param(ics(GOOD)[:-20], "END:VEV at line 6 closes BEGIN:VEVENT", id="cut-in-a-word"),
    pytest.param(ics("END:VEVENT"), "END:VEVENT at line 3 closes BEGIN:VCALENDAR", id="unbalanced"),
    pytest.param(ics(GOOD.replace("SUMMARY:Employ", "SUMMARY:Employ\r\n "), "END:VEVENT"),
                 "END:VEVENT at line 8 closes BEGIN:VCALENDAR", id="lines-of-the-file-not-unfolded-ones"),
    pytest.param(ics(), "no release events in the schedule", id="no-events"),
    pytest.param(ics(vevent("SUMMARY:Timeless")), "no release events in the schedule", id="none-readable"),
])
def test_a_malformed_calendar_is_an_error(text, reason):
    with pytest.raises(BlsError) as info:
        parse_ics(text)
    assert reason in info.value.reason and info.value.subject == "schedule"


@pytest.mark.parametrize("fault, reason", [
    pytest.param("malformed", "truncated iCalendar file (no END:VEVENT)", id="cut-short"),
    pytest.param("html", "got an HTML page instead of BLS data (BLS is down for maintenance)", id="html"),
    pytest.param("500", "server error (HTTP 500) from www.bls.gov", id="500"),
    pytest.param("timeout", "no answer from www.bls.gov within 0.5 s", id="timeout"),
    pytest.param("refused", "cannot reach www.bls.gov: connection refused", id="refused"),
])
def test_schedule_faults_are_one_error(stub, fault, reason):
    stub.fault(fault, "schedule")
    client = BlsClient(None, stub.base_url, timeout=0.5)
    with pytest.raises(BlsError) as info:
        client.schedule()
    assert info.value.reason == reason and str(info.value) == f"BLS schedule: {reason}"


def test_without_a_browser_like_user_agent_bls_refuses(stub, client):
    client.session.headers["User-Agent"] = "python-requests/2.32.3"
    with pytest.raises(BlsError) as info:
        client.schedule()
    assert info.value.reason == "HTTP 403 from www.bls.gov (Access Denied)"


def test_every_request_goes_under_the_base_url(stub, client):
    client.schedule()
    client.latest([PAYROLLS], 2026, 2026)
    client.newest(PAYROLLS)
    assert [(r.method, r.path) for r in stub.requests] == [
        ("GET", SCHEDULE_PATH), ("POST", API_PATH), ("GET", API_PATH + PAYROLLS)]
    plain = BlsClient()
    assert plain.url("https://api.bls.gov/publicAPI/v2/timeseries/data/") == \
        "https://api.bls.gov/publicAPI/v2/timeseries/data/"
    assert BlsClient(base_url="http://mirror.example/bls/").url("https://www.bls.gov/a/b.ics") == \
        "http://mirror.example/bls/www.bls.gov/a/b.ics"


# ---- the data API -----------------------------------------------------------------------------------

def test_one_post_for_every_series(stub, client):
    fetch = client.latest([PAYROLLS, UNRATE, PAYROLLS], 2025, 2026)
    assert fetch == BlsFetch({
        PAYROLLS: [Observation(D("2025-11-01"), 158950.0), Observation(D("2025-12-01"), 159010.0),
                   Observation(D("2026-01-01"), 159080.0), Observation(D("2026-09-01"), 159300.0),
                   Observation(D("2026-10-01"), 159400.0)],  # oldest first; M13, the annual average, left out
        UNRATE: [Observation(D("2026-09-01"), 4.4), Observation(D("2026-10-01"), 4.5)]})
    [call] = stub.calls()
    assert call.body == {"seriesid": [PAYROLLS, UNRATE], "startyear": "2025", "endyear": "2026",
                         "registrationkey": KEY}
    assert client.queries == 1


def test_keyless_sends_no_key(stub):
    client = BlsClient(None, stub.base_url)
    assert client.latest([UNRATE], 2026, 2026).series[UNRATE][-1] == Observation(D("2026-10-01"), 4.5)
    client.newest(UNRATE)
    post, get = stub.calls()
    assert "registrationkey" not in post.body and get.query == {"latest": "true"}


def test_get_latest_true_brings_the_newest_value_alone(stub, client):
    assert client.newest(PAYROLLS) == BlsFetch({PAYROLLS: [Observation(D("2026-10-01"), 159400.0)]})
    [call] = stub.calls()
    assert call.query == {"latest": "true", "registrationkey": KEY} and call.body is None


def test_a_stale_answer_then_the_release(stub, client):
    """Before the release BLS still shows the prior month; the first query after it brings the new one."""
    counted = []
    client.on_query = lambda: counted.append(client.queries)
    assert client.latest([PAYROLLS], 2026, 2026).series[PAYROLLS][-1] == Observation(D("2026-10-01"), 159400.0)
    stub.publish(PAYROLLS, [(2026, "M11", "159527"), (2026, "M10", "159380")])  # November, and October revised
    assert client.latest([PAYROLLS], 2026, 2026).series[PAYROLLS][-2:] == [
        Observation(D("2026-10-01"), 159380.0), Observation(D("2026-11-01"), 159527.0)]
    assert client.newest(PAYROLLS).series[PAYROLLS] == [Observation(D("2026-11-01"), 159527.0)]
    assert counted == [1, 2, 3] and client.queries == 3


@pytest.mark.parametrize("key, who", [(KEY, "with registration key ***"), (None, "")])
def test_a_spent_quota_is_an_error_with_bls_words_and_no_key(stub, key, who):
    stub.quota = 2
    client = BlsClient(key, stub.base_url)
    client.latest([PAYROLLS], 2026, 2026)
    client.newest(PAYROLLS)
    with pytest.raises(BlsError) as info:
        client.latest([PAYROLLS], 2026, 2026)
    assert info.value.reason == ("REQUEST_NOT_PROCESSED: Request could not be serviced, as the daily threshold for "
                                 f"total number of requests allocated to the user{' ' + who if who else ''} has "
                                 "been reached.")
    assert KEY not in str(info.value) and client.queries == 3


def test_an_unknown_key_is_refused_and_never_shown(stub):
    client = BlsClient("ffffeeeeddddccccbbbbaaaa99998888", stub.base_url)
    with pytest.raises(BlsError) as info:
        client.latest([PAYROLLS], 2026, 2026)
    assert info.value.reason == "REQUEST_NOT_PROCESSED: The key:*** provided by the User is invalid."


def test_a_series_bls_does_not_have_is_missing_the_others_are_not(stub, client):
    fetch = client.latest([PAYROLLS, "CES9999999999"], 2026, 2026)
    assert list(fetch.series) == [PAYROLLS]
    assert fetch.missing == {"CES9999999999": "Series does not exist for Series CES9999999999"}


def test_a_series_left_out_of_the_answer_is_missing(stub, client):
    stub.omit.add(UNRATE)
    fetch = client.latest([PAYROLLS, UNRATE], 2026, 2026)
    assert list(fetch.series) == [PAYROLLS] and fetch.missing == {UNRATE: "not in BLS's answer"}


def test_values_that_are_no_number_are_dropped(stub, client, caplog):
    """BLS writes "-" for a value it has not got (the 2025 shutdown's October CPI)."""
    stub.add_series("CUUR0000SA0", [(2025, "M09", "324.800"), (2025, "M10", "-"), (2025, "M11", "324.100")])
    stub.add_series("CUUR0000SA0E", [(2025, "M10", "-")])
    with caplog.at_level(logging.INFO, "macrowatch.sources.bls"):
        fetch = client.latest(["CUUR0000SA0", "CUUR0000SA0E"], 2025, 2025)
    assert fetch.series == {"CUUR0000SA0": [Observation(D("2025-09-01"), 324.8), Observation(D("2025-11-01"), 324.1)]}
    assert fetch.missing == {"CUUR0000SA0E": "no monthly value (no number: 2025-10 '-')"}
    assert "dropped values that are no number: 2025-10 '-'" in caplog.text


def test_a_year_without_data_is_no_error(stub, client):
    """BLS adds "No Data Available for Series X Year: 2027" for a year asked for that has no value yet."""
    assert client.latest([PAYROLLS], 2026, 2027).series[PAYROLLS][-1] == Observation(D("2026-10-01"), 159400.0)


@pytest.mark.parametrize("fault, reason", [
    pytest.param("500", "server error (HTTP 500) from api.bls.gov", id="500"),
    pytest.param("malformed", "malformed answer from BLS (JSONDecodeError: ", id="malformed"),
    pytest.param("html", "got an HTML page instead of BLS data (BLS is down for maintenance)", id="html"),
    pytest.param("timeout", "no answer from api.bls.gov within 0.5 s", id="timeout"),
    pytest.param("refused", "cannot reach api.bls.gov: connection refused", id="refused"),
])
def test_api_faults_are_one_error_and_count_as_queries(stub, fault, reason):
    stub.fault(fault, "api")
    client = BlsClient(KEY, stub.base_url, timeout=0.5)
    with pytest.raises(BlsError) as info:
        client.latest([PAYROLLS, UNRATE], 2026, 2026)
    assert info.value.reason.startswith(reason) and info.value.subject == f"{PAYROLLS}, {UNRATE}"
    assert client.queries == 1  # it may have reached BLS: counted against the day's quota all the same


@pytest.mark.parametrize("ids, why", [
    pytest.param([], "no series to ask BLS for", id="none"),
    pytest.param(["ces0000000001"], "not BLS series ids: ['ces0000000001']", id="lower-case"),
    pytest.param(["CES0000000001/../x"], "not BLS series ids", id="a-path"),
    pytest.param([f"CES{i:010d}" for i in range(26)], "26 series in one query: BLS takes at most 25 without a key",
                 id="too-many-keyless"),
])
def test_bad_series_never_reach_bls(stub, ids, why):
    client = BlsClient(None, stub.base_url)
    with pytest.raises(ValueError, match=why.replace("[", r"\[").replace("]", r"\]")):
        client.latest(ids, 2026, 2026)
    assert stub.requests == [] and client.queries == 0


def test_the_key_never_shows_in_the_log(stub, caplog):
    stub.quota = 1
    client = BlsClient(KEY, stub.base_url)
    with caplog.at_level(logging.DEBUG):
        client.newest(PAYROLLS)
        with pytest.raises(BlsError):
            client.newest(PAYROLLS)
    assert "registrationkey=***" in caplog.text  # urllib3's request line, masked
    assert KEY not in caplog.text


def test_from_config(stub):
    client = BlsClient.from_config(BlsSource(api_key=KEY, api_key_source="${BLS_API_KEY}", url=stub.base_url + "/"))
    assert (client.api_key, client.base_url) == (KEY, stub.base_url)
    assert client.latest([UNRATE], 2026, 2026).series[UNRATE][-1].value == 4.5
