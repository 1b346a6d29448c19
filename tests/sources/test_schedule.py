"""Which releases have no usable calendar, and why: a release rule on one of them could never fire."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

import pytest

from macrowatch.config import load_config
from macrowatch.sources.schedule import Event, unschedulable

NY = zoneinfo.ZoneInfo("America/New_York")
CONFIG = """\
releases:
  fred-only: {fred_release_id: 50}
  bls-only: {bls: "Employment Situation"}
  dates-only: {dates: [2026-12-04]}
  fred-and-bls: {fred_release_id: 10, bls: "Consumer Price Index"}
  fred-and-dates: {fred_release_id: 50, dates: [2026-12-04]}
  typo: {bls: "Employment Situatoin"}
instruments: {spx: {symbol: "^GSPC"}}
levels: {l: {instrument: spx, price: 1}}
rules: [{name: a, when: {level: l, state: below}}]
"""
SCHEDULE = [Event("Employment Situation for November 2026", dt.datetime(2026, 12, 4, 8, 30, tzinfo=NY)),
            Event("Consumer Price Index for November 2026", dt.datetime(2026, 12, 10, 8, 30, tzinfo=NY))]
NO_KEY = "no FRED key (sources.fred.api_key) for fred_release_id"
UNREACHABLE = "cannot reach www.bls.gov: connection refused"  # a BlsError's reason
DOWN = f"the BLS schedule is unavailable ({UNREACHABLE})"
TYPO = "no event of the BLS schedule is titled 'Employment Situatoin' (check `bls:`)"


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = Path(tmp_path_factory.mktemp("schedule")) / "mw.yaml"
    path.write_text(CONFIG)
    return load_config(path)[0]


@pytest.mark.parametrize("fred_key, events, error, expected", [
    pytest.param(True, None, None, [], id="key-schedule-not-read-yet"),
    pytest.param(False, None, None, [("fred-only", f"{NO_KEY}: add `bls:` or `dates:`")], id="no-key"),
    pytest.param(True, SCHEDULE, None, [("typo", f"{TYPO}: add `dates:` or `fred_release_id:`")],
                 id="key-schedule-read"),
    pytest.param(False, SCHEDULE, None, [("fred-only", f"{NO_KEY}: add `bls:` or `dates:`"),
                                         ("typo", f"{TYPO}: add `dates:`")], id="no-key-schedule-read"),
    pytest.param(True, None, UNREACHABLE, [("bls-only", f"{DOWN}: add `dates:` or `fred_release_id:`"),
                                    ("typo", f"{DOWN}: add `dates:` or `fred_release_id:`")], id="key-bls-down"),
    pytest.param(False, None, UNREACHABLE, [("fred-only", f"{NO_KEY}: add `bls:` or `dates:`"),
                                     ("bls-only", f"{DOWN}: add `dates:`"),
                                     ("fred-and-bls", f"{NO_KEY}; {DOWN}: add `dates:`"),
                                     ("typo", f"{DOWN}: add `dates:`")], id="no-key-bls-down"),
])
def test_unschedulable(config, fred_key, events, error, expected):
    assert unschedulable(config, fred_key, events, error) == expected
