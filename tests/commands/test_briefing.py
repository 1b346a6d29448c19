"""`macrowatch briefing`: a release's briefing from a data directory at a past moment, and from the store now."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO
from macrowatch.commands.cli import cli
from macrowatch.config import load_config
from macrowatch.model import Bar, Vintage
from macrowatch.sources import calendar
from macrowatch.store import open_store

RULES = REPO / "rules" / "breakout-jobs.yaml"

# ---- the real thing: 2017-05-05, the jobs report of April 2017, with the S&P 500 just under 2400 --------------------


def brief(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, ["briefing", *args], env=env)


def test_may_2017_a_beat_would_fire_the_thesis_and_a_miss_the_warning(shared_data):
    result = brief("-c", str(RULES), "--data", str(shared_data), "--at", "2017-05-05T08:00-04:00")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("Briefing: employment-situation at Fri 2017-05-05 08:30 EDT\n")
    assert ("payrolls (PAYEMS change) for 2017-04: consensus +185k (consensus from data); "
            "prior first print +98k (2017-03)") in out
    assert "beat at +210k or more, miss at +160k or less, inline between" in out
    assert "  beat (+210k): spx-breakout-with-jobs fires\n  inline (+185k): nothing fires\n" \
           "  miss (+160k): payrolls-miss-at-2400 fires\n" in out
    # The thesis joins the S&P 500 pressing on 2400 (closed 2389.52: approaching) or above it with a jobs beat.
    assert "  spx-breakout-with-jobs: beat FIRES, inline no, miss no\n" \
           "    spx-2400 state in [approaching, breakout] (met): spx-2400 approaching (2389.52, 0.44 % below)\n" in out
    assert "  payrolls-miss-at-2400: beat no, inline no, miss FIRES\n" in out
    # And the engine agrees when the real print comes: 211k vs 185k, a beat, fires the thesis at 08:30.
    replay = CliRunner().invoke(cli, ["replay", "-c", str(RULES), "--data", str(shared_data), "--from", "2017-05-05",
                                      "--to", "2017-05-05", "--format", "jsonl"])
    assert replay.exit_code == 0, replay.output
    fired = [json.loads(line) for line in replay.stdout.splitlines()]
    assert [(a["rule"], a["at"]) for a in fired] == [("spx-breakout-with-jobs", "2017-05-05T08:30:00-04:00")]


def test_the_readme_shows_what_the_command_prints(shared_data):
    readme = (REPO / "README.md").read_text()
    command = "$ macrowatch briefing -c rules/breakout-jobs.yaml --data ../shared/data --at 2017-05-05T08:00-04:00\n"
    shown = readme.split(command, 1)[1].split("```", 1)[0]
    result = brief("-c", str(RULES), "--data", str(shared_data), "--at", "2017-05-05T08:00-04:00")
    assert result.stdout == shown


def test_may_2017_as_json_names_what_each_outcome_fires(shared_data):
    result = brief("employment-situation", "-c", str(RULES), "--data", str(shared_data),
                   "--at", "2017-05-05T08:00-04:00", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    fires = {s["outcome"]: s["fires"] for s in data["scenarios"]}
    assert fires == {"beat": ["spx-breakout-with-jobs"], "inline": [], "miss": ["payrolls-miss-at-2400"]}
    [thesis] = [r for r in data["rules"] if r["rule"] == "spx-breakout-with-jobs"]
    assert {o: v["fires"] for o, v in thesis["outcomes"].items()} == {"beat": True, "inline": False, "miss": False}
    assert thesis["now"]["spx-2400 state in [approaching, breakout]"]["close"] == pytest.approx(2389.52002)
    assert data["key"] == "briefing|release=employment-situation|briefing:2017-05-05T08:30:00-04:00"
    assert data["notify"] == ["trading"]


# ---- a small made-up world: spx under 100, payrolls with two releases before 2019-03-08 ----------------------------

CONFIG = """\
store: mw.sqlite
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
levels:
  spx-100: {instrument: spx, price: 100}
releases:
  es:
    dates: [2019-01-04, 2019-02-01, 2019-03-08]
    time: "08:30"
    briefing: {before: 30m, notify: [desk]}
macro:
  payrolls: {series: PAYEMS, release: es, measure: change, beat_by: 25%s}
channels:
  desk: %s
rules:
  - name: thesis
    when:
      all:
        - {level: spx-100, state: [approaching, breakout]}
        - {release: payrolls, outcome: beat, within: 1d}
    chart: spx
    notify: [desk]
"""
VINTAGES = [Vintage(dt.date(2018, 12, 1), dt.date(2019, 1, 4), 1000.0),
            Vintage(dt.date(2019, 1, 1), dt.date(2019, 2, 1), 1200.0),
            Vintage(dt.date(2019, 2, 1), dt.date(2019, 3, 8), 1220.0)]


def sessions() -> list[tuple[dt.date, dt.datetime]]:
    return sorted(calendar.close_times("XNYS", dt.date(2019, 1, 2), dt.date(2019, 3, 15)).items())


def closes(day: dt.date) -> float:
    return 99.5 if day >= dt.date(2019, 3, 1) else 95.0  # approaching 100 from 2019-03-01


def world(tmp_path: Path, consensus: bool = True, url: str = "json://127.0.0.1:9/none") -> Path:
    """The config, and its data directory beside it (prices/GSPC.csv, macro/PAYEMS.csv)."""
    (tmp_path / "prices").mkdir()
    (tmp_path / "macro").mkdir()
    rows = [f"{d},{closes(d)},{closes(d)},{closes(d)},{closes(d)},{closes(d)},1000" for d, _at in sessions()]
    (tmp_path / "prices" / "GSPC.csv").write_text("Date,Open,High,Low,Close,Adj Close,Volume\n" + "\n".join(rows)
                                                  + "\n")
    (tmp_path / "macro" / "PAYEMS.csv").write_text(
        "date,realtime_start,value\n" + "".join(f"{v.date},{v.realtime_start},{v.value}\n" for v in VINTAGES))
    config = tmp_path / "mw.yaml"
    config.write_text(textwrap.dedent(CONFIG) % (", consensus: {2019-02: 180}" if consensus else "", url))
    return config


def test_a_briefing_whose_consensus_is_missing_says_so(tmp_path):
    config = world(tmp_path, consensus=False)
    result = brief("-c", str(config), "--data", str(tmp_path), "--at", "2019-03-08T08:00")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert ("payrolls (PAYEMS change) for 2019-02: no consensus for 2019-02 (the macro names no file, values or "
            "feed): 1 first print of the 12 whose mean would stand in: the print will be judged unknown; "
            "prior first print +200k (2019-01)") in out
    assert "If it came out now:\n  unknown (+200k): nothing fires\n" in out  # no beat without a consensus
    assert "  thesis: unknown no\n    spx-100 state in [approaching, breakout] (met): spx-100 approaching " \
           "(99.50, 0.50 % below)\n" in out


def test_a_briefing_from_the_store_is_the_one_from_the_same_data(tmp_path, monkeypatch):
    config_path = world(tmp_path)
    from_data = brief("-c", str(config_path), "--data", str(tmp_path), "--at", "2019-03-08T08:00", "--format", "json")
    assert from_data.exit_code == 0, from_data.output
    config, _ = load_config(config_path)
    with open_store(tmp_path / "mw.sqlite") as store:  # what `run` would have stored by 08:00
        store.put_bars("spx", [Bar(d, at, closes(d), closes(d), closes(d), closes(d)) for d, at in sessions()
                               if d < dt.date(2019, 3, 8)])
        store.put_vintages("PAYEMS", VINTAGES[:2])
    monkeypatch.setenv("MACROWATCH_NOW", "2019-03-08T08:00:00-05:00")
    now = brief("-c", str(config_path), "--format", "json")
    assert now.exit_code == 0, now.output
    data = json.loads(now.stdout)
    assert data == json.loads(from_data.stdout)
    assert data["series"][0] | {"values": None} == {
        "macro": "payrolls", "series": "PAYEMS", "measure": "change", "ref_period": "2019-02-01", "consensus": 180.0,
        "source": "consensus (config)", "why": None, "prior": 200.0, "prior_period": "2019-01-01", "beat_by": 25.0,
        "higher_is": "better", "beat": [">=", 205.0], "miss": ["<=", 155.0], "values": None}
    assert [(s["outcome"], s["fires"]) for s in data["scenarios"]] == [("beat", ["thesis"]), ("inline", []),
                                                                       ("miss", [])]


def test_send_delivers_it_with_its_chart(tmp_path, webhook):
    config = world(tmp_path, url=webhook.url("json"))
    result = brief("-c", str(config), "--data", str(tmp_path), "--at", "2019-03-08T08:00", "--send")
    assert result.exit_code == 0, result.output
    [got] = webhook.wait_for(1)
    body = got.json()
    assert body["title"] == "Briefing: es at Fri 2019-03-08 08:30 EST"
    assert "  beat (+205k): thesis fires\n" in body["message"]
    assert [a["mimetype"] for a in body["attachments"]] == ["image/png"]
    assert "send: channel desk: 1 of 1 sent" in result.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["nope"], "unknown release 'nope' (known: es)"),
    (["--at", "2019-03-08T08:00"], "--at needs --data DIR"),
    (["--data", "."], "--data and --at go together"),
    (["--data", ".", "--at", "2019-03-08T09:00"], "has no release after 2019-03-08T09:00:00-05:00"),
])
def test_bad_arguments_exit_2_saying_why(tmp_path, monkeypatch, args, says):
    config = world(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = brief(*args, "-c", str(config))
    assert result.exit_code == 2, result.output
    assert says in result.stderr
