"""No release rule silently dead (issue [12]): `check` warns of a release without a usable calendar, `calendar` reads
the BLS schedule (stub BLS on 127.0.0.1) and names what it could not schedule, `status` shows BLS queries today."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
import zoneinfo
from pathlib import Path

import pytest
from click.testing import CliRunner

from macrowatch.commands.cli import cli
from macrowatch.store import open_store
from stubs.bls import BlsStub

NY = zoneinfo.ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=NY)
CONFIG = """\
sources: {{bls: {{url: "{url}"}}}}
releases:
  es: {{bls: "{title}", time: "10:00"}}
  jolts: {{fred_release_id: 192}}
  fixed: {{dates: [2026-12-15]}}
macro:
  payrolls: {{series: PAYEMS, release: es, measure: change, bls_series: CES0000000001, consensus: {{2026-11: 50}}}}
rules:
  - {{name: jobs, when: {{release: payrolls, outcome: beat}}}}
"""


def write(tmp_path: Path, url: str, title: str = "Employment Situation") -> Path:
    path = tmp_path / "mw.yaml"
    path.write_text(textwrap.dedent(CONFIG.format(url=url, title=title)))
    return path


def run(*args: str):
    return CliRunner().invoke(cli, list(args), env={"MACROWATCH_NOW": NOW.isoformat(), "FRED_API_KEY": ""})


@pytest.fixture
def bls(bls_stub: BlsStub) -> BlsStub:
    bls_stub.add_event("Employment Situation for November 2026", "2026-12-04T08:30")
    bls_stub.add_event("Consumer Price Index for November 2026", "2026-12-10T08:30")
    return bls_stub


def test_check_warns_of_each_release_no_calendar_reaches(tmp_path, bls):
    path = write(tmp_path, bls.base_url)
    result = run("check", "-c", str(path))
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"{path}:4:10: warning: releases.jolts: no usable calendar, it is never scheduled: no FRED key "
        "(sources.fred.api_key) for fred_release_id: add `bls:` or `dates:`"]
    assert bls.requests == []  # check asks no one: a `bls:` title counts as a calendar


def test_calendar_takes_days_and_times_from_the_bls_schedule_and_names_the_dead(tmp_path, bls):
    result = run("calendar", "-c", str(write(tmp_path, bls.base_url)), "--days", "30")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    releases = [line for line in lines[lines.index("releases:") + 1:] if not line.startswith("      ")]
    assert releases == ["  Fri 2026-12-04 08:30 EST  es (PAYEMS)",        # BLS's 08:30, not time: 10:00
                        "  Tue 2026-12-15 08:30 EST  fixed (no series)",
                        "not scheduled: jolts: no FRED key (sources.fred.api_key) for fred_release_id: add `bls:` or "
                        "`dates:`"]


def test_calendar_says_when_a_bls_title_matches_nothing(tmp_path, bls):
    result = run("calendar", "-c", str(write(tmp_path, bls.base_url, "Employment Situaton")), "--days", "30")
    assert "not scheduled: es: no event of the BLS schedule is titled 'Employment Situaton' (check `bls:`): add " \
           "`dates:`" in result.stdout.splitlines()


def test_calendar_with_the_bls_schedule_down_says_why(tmp_path, bls):
    bls.fault("500", "schedule")
    result = run("calendar", "-c", str(write(tmp_path, bls.base_url)), "--days", "30")
    assert result.exit_code == 0
    assert any(line.startswith("not scheduled: es: the BLS schedule is unavailable (server error (HTTP 500)")
               for line in result.stdout.splitlines())
    assert "macrowatch calendar: release es: BLS schedule unavailable (server error (HTTP 500)" in result.stderr


def test_status_shows_bls_queries_today_against_the_limit(tmp_path, bls):
    path = write(tmp_path, bls.base_url)
    with open_store(tmp_path / "mw.sqlite") as store:
        store.count_queries("bls", NOW.date(), 3)
        store.count_queries("bls", NOW.date() - dt.timedelta(days=1), 20)  # yesterday's: not today's
    result = run("status", "-c", str(path), "--store", str(tmp_path / "mw.sqlite"))
    assert "BLS queries today: 3 of 25" in result.stdout.splitlines()  # keyless: 25 a day
    report = json.loads(run("status", "-c", str(path), "--store", str(tmp_path / "mw.sqlite"),
                            "--format", "json").stdout)
    assert report["queries"] == {"bls": {"today": 3, "limit": 25}}
