"""`macrowatch replay --score`: every forward return against a plain pandas reading of DESIGN.md's definition (on
made-up bars that hold each kind of entry, and on the real history when it is there), the summary against numpy,
the jsonl and text shapes, and the --report folder."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from macrowatch.commands.cli import cli
from macrowatch.commands.scorereport import page
from macrowatch.config.types import Direction
from macrowatch.engine.scoring import RuleScore, Summary

HORIZONS = (1, 5, 20)
SCHEDULE = xcals.get_calendar("XNYS", start="2000-01-01", end="2023-12-31").schedule

CONFIG = """\
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
levels:
  spx-100: {instrument: spx, price: 100}
releases:
  es: {fred_release_id: 50, time: "08:30"}
macro:
  payrolls: {series: PAYEMS, release: es, measure: change}
rules:
  - name: breakout                      # a close alert: enters at that close
    when: {level: spx-100, entered: breakout}
  - name: jobs                          # 08:30 releases: enter at the open (Good Friday's at the next session's)
    when: {release: payrolls}
    score: {instrument: spx}
  - name: jobs-short
    when: {release: payrolls}
    score: {instrument: spx, direction: short}
  - name: jobs-unscored                 # names no instrument
    when: {release: payrolls}
"""


def made_up(tmp_path: Path) -> tuple[Path, Path]:
    """Bars of 2021-02-22..2021-04-16 (Good Friday 2021-04-02 closed), closes 90 + k/2 crossing 100 on the 22nd
    session, opens a little under; payrolls on 2021-03-05 (a session), 2021-04-02 (a holiday) and 2021-04-14
    (three sessions before the data ends)."""
    days = SCHEDULE.loc["2021-02-22":"2021-04-16"].index.date
    closes = [90 + 0.5 * k for k in range(len(days))]
    data = tmp_path / "data"
    (data / "prices").mkdir(parents=True)
    (data / "macro").mkdir()
    rows = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    rows += [f"{d},{c - 0.3 + 0.1 * (k % 3):.2f},{c + 1},{c - 1},{c},{c},1000"
             for k, (d, c) in enumerate(zip(days, closes, strict=True))]
    (data / "prices" / "GSPC.csv").write_text("\n".join(rows) + "\n")
    (data / "macro" / "PAYEMS.csv").write_text(textwrap.dedent("""\
        date,realtime_start,value
        2021-01-01,2021-03-05,1000
        2021-02-01,2021-03-05,1100
        2021-02-01,2021-04-02,1110
        2021-03-01,2021-04-02,1300
        2021-03-01,2021-04-14,1310
        2021-04-01,2021-04-14,1400
        """))
    config = tmp_path / "mw.yaml"
    config.write_text(CONFIG)
    return config, data


def replay(config: Path, data: Path, *args: str):
    result = CliRunner().invoke(cli, ["replay", "-c", str(config), "--data", str(data), *args])
    assert result.exit_code == 0, result.output
    return result


def jsonl(config: Path, data: Path, *args: str) -> tuple[list[dict], list[dict], str]:
    """(alert lines, summary lines, stderr) of a scored jsonl replay."""
    result = replay(config, data, "--format", "jsonl", "--score", *args)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return [x for x in lines if "rule" in x], [x for x in lines if "summary" in x], result.stderr


def bars(data: Path, symbol: str) -> pd.DataFrame:
    return pd.read_csv(data / "prices" / f"{symbol}.csv", index_col="Date", parse_dates=["Date"])


def reference(frame: pd.DataFrame, at: str, n: int, short: bool = False) -> float | None:
    """DESIGN.md's return, plainly: the alert's session is the first whose close is at or after it; before its open
    it enters at the open and exits n-1 sessions on, else at the close and n sessions on."""
    t = pd.Timestamp(at)
    session = SCHEDULE[SCHEDULE["close"] >= t].iloc[0]
    if session.name not in frame.index:
        return None
    pos = frame.index.get_loc(session.name)
    before_open = t < session["open"]
    entry = frame["Open"].iloc[pos] if before_open else frame["Close"].iloc[pos]
    exit_pos = pos + n - 1 if before_open else pos + n
    if exit_pos >= len(frame):
        return None
    r = frame["Close"].iloc[exit_pos] / entry - 1
    return -r if short else r


def base_returns(frame: pd.DataFrame, start: str, end: str, n: int, short: bool = False) -> np.ndarray:
    """Close-to-close returns n sessions on from every session of start..end (exits may lie after end)."""
    r = (frame["Close"].shift(-n) / frame["Close"] - 1).loc[start:end].dropna().to_numpy()
    return -r if short else r


def approx(x: float | None):
    return None if x is None else pytest.approx(x, rel=1e-12, abs=1e-15)


def test_each_return_is_the_plain_definition_on_made_up_bars(tmp_path):
    config, data = made_up(tmp_path)
    alerts, _summary, stderr = jsonl(config, data)
    frame = bars(data, "GSPC")
    fired = [(a["rule"], a["at"]) for a in alerts if a["rule"] in ("breakout", "jobs")]
    assert fired == [("jobs", "2021-03-05T08:30:00-05:00"), ("breakout", "2021-03-23T16:00:00-04:00"),
                     ("jobs", "2021-04-02T08:30:00-04:00"), ("jobs", "2021-04-14T08:30:00-04:00")]
    for a in alerts:
        if a["rule"] == "jobs-unscored":
            assert a["score"] is None
            continue
        expected = {str(n): approx(reference(frame, a["at"], n, short=a["rule"] == "jobs-short")) for n in HORIZONS}
        assert a["score"] == expected, a
    assert "rule jobs-unscored is not scored: it names no instrument" in stderr

    # The same cases by hand: a pre-market alert enters at its session's open and its 1-session return is that
    # session's close; a close alert enters at its close; the holiday's enters at the next session's open.
    o, c = frame["Open"], frame["Close"]
    by = {(a["rule"], a["at"][:10]): a["score"] for a in alerts}
    assert by["jobs", "2021-03-05"]["1"] == approx(c["2021-03-05"] / o["2021-03-05"] - 1)
    assert by["jobs", "2021-03-05"]["5"] == approx(c["2021-03-11"] / o["2021-03-05"] - 1)
    assert by["breakout", "2021-03-23"]["1"] == approx(c["2021-03-24"] / c["2021-03-23"] - 1)
    assert by["jobs", "2021-04-02"]["1"] == approx(c["2021-04-05"] / o["2021-04-05"] - 1)
    assert by["jobs-short", "2021-04-02"]["1"] == approx(1 - c["2021-04-05"] / o["2021-04-05"])
    # Past the end of the data: 2021-04-14 has its own session and two more, not five.
    assert by["jobs", "2021-04-14"] == {"1": approx(c["2021-04-14"] / o["2021-04-14"] - 1), "5": None, "20": None}


def test_the_summary_is_numpy_over_the_returns_and_every_session_of_the_window(tmp_path):
    config, data = made_up(tmp_path)
    alerts, summary, _ = jsonl(config, data, "--from", "2021-03-01", "--to", "2021-04-09", "--horizons", "5,1")
    frame = bars(data, "GSPC")
    assert [(s["summary"], s["horizon"]) for s in summary] == [
        (rule, n) for rule in ("breakout", "jobs", "jobs-short") for n in (1, 5)]
    for s in summary:
        mine = np.array([a["score"][str(s["horizon"])] for a in alerts
                         if a["rule"] == s["summary"] and a["score"][str(s["horizon"])] is not None])
        base = base_returns(frame, "2021-03-01", "2021-04-09", s["horizon"], short=s["summary"] == "jobs-short")
        assert set(s) == {"summary", "horizon", "n", "mean", "median", "hit_rate", "worst", "baseline_mean",
                          "baseline_hit_rate", "excess"}
        assert s["n"] == len(mine) > 0
        assert s["mean"] == approx(np.mean(mine)) and s["median"] == approx(np.median(mine))
        assert s["hit_rate"] == approx(np.mean(mine > 0)) and s["worst"] == approx(np.min(mine))
        assert s["baseline_mean"] == approx(np.mean(base)) and s["baseline_hit_rate"] == approx(np.mean(base > 0))
        assert s["excess"] == approx(np.mean(mine) - np.mean(base))


def test_a_rule_without_alerts_has_a_summary_of_none(tmp_path):
    config, data = made_up(tmp_path)
    _alerts, summary, _ = jsonl(config, data, "--from", "2021-04-15", "--horizons", "1")
    assert [s["n"] for s in summary] == [0, 0, 0]
    assert {(s["mean"], s["worst"], s["excess"]) for s in summary} == {(None, None, None)}
    assert all(s["baseline_mean"] is not None for s in summary)  # 2021-04-15 has a next session


def test_text_shows_each_entry_and_the_table(tmp_path):
    config, data = made_up(tmp_path)
    result = replay(config, data, "--score", "--horizons", "1,5")
    out = result.stdout
    assert "    score spx long from the open of 2021-04-05 at " in out      # Good Friday's release
    assert "    score spx short from the open of 2021-03-05 at " in out
    assert "    score spx long from the close of 2021-03-23 at 100.50: 1: +0.50%" in out
    table = out[out.index("\nscores: ") + 1:].splitlines()[1:]
    assert table[0].split() == ["rule", "instrument", "horizon", "alerts", "mean", "median", "hit", "rate", "worst",
                                "baseline", "mean", "baseline", "hit", "rate", "excess"]
    assert [row.split()[:4] for row in table[1:]] == [
        ["breakout", "spx", "long", "1"], ["breakout", "spx", "long", "5"], ["jobs", "spx", "long", "1"],
        ["jobs", "spx", "long", "5"], ["jobs-short", "spx", "short", "1"], ["jobs-short", "spx", "short", "5"]]
    assert table[1].split()[4:6] == ["1", "+0.50"]  # one breakout; 100.5 -> 101


def test_without_score_the_lines_are_unchanged(tmp_path):
    config, data = made_up(tmp_path)
    result = replay(config, data, "--format", "jsonl")
    assert all("score" not in json.loads(line) for line in result.stdout.splitlines())
    assert "scores:" not in replay(config, data).stdout


@pytest.mark.parametrize("horizons, why", [("0", "'0' is not a count of sessions"), ("1,x", "'x' is not a count"),
                                           ("5000", "from 1 to 2520")])
def test_bad_horizons_exit_2(tmp_path, horizons, why):
    config, data = made_up(tmp_path)
    result = CliRunner().invoke(cli, ["replay", "-c", str(config), "--data", str(data), "--horizons", horizons])
    assert result.exit_code == 2 and why in result.output and "--horizons" in result.output


def test_report_writes_a_picture_per_rule_and_an_index(tmp_path):
    config, data = made_up(tmp_path)
    result = replay(config, data, "--report", str(tmp_path / "out"), "--horizons", "1,5")  # --report implies --score
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["breakout.png", "index.html", "jobs-short.png", "jobs.png"]
    for name in names:
        if name.endswith(".png"):
            assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = (tmp_path / "out" / "index.html").read_text()
    assert '<img src="jobs-short.png" alt="jobs-short">' in index
    assert "<td>breakout</td><td>spx long</td><td>1</td><td>1</td><td>+0.50</td>" in index
    assert "jobs-unscored: not scored: it names no instrument" in index
    assert "wrote 3 pictures and" in result.stderr


def test_the_index_escapes_every_value():
    hostile = '<script>"x"&'
    empty = np.zeros((0, 1))
    rules = [RuleScore(hostile, "spx", Direction.LONG, empty, empty, (Summary(1, 0, *[None] * 7),)),
             RuleScore("r", None, Direction.LONG, empty, empty, (), why="<b>why</b>")]
    text = page(rules, [["rule", "h"], [hostile, "1"]], "caption <i>")
    assert "<script>" not in text and "<b>" not in text and "<i>" not in text
    assert "&lt;script&gt;&quot;x&quot;&amp;" in text and "%3Cscript%3E" in text


REAL = """\
instruments:
  spx: {symbol: "^GSPC"}
  ndx: {symbol: "^NDX"}
  rut: {symbol: "^RUT"}
levels:
  spx-2400: {instrument: spx, price: 2400}
  rut-1400: {instrument: rut, price: 1400, fail_within_bars: 3}
  ndx-ath: {instrument: ndx, kind: all_time_high}
releases:
  es: {fred_release_id: 50, time: "08:30"}
macro:
  payrolls: {series: PAYEMS, release: es, measure: change, beat_by: 25}
rules:
  - {name: jobs, when: {release: payrolls}, score: {instrument: spx}}
  - {name: jobs-beat-short-ndx, when: {release: payrolls, outcome: beat}, score: {instrument: ndx, direction: short}}
  - {name: rut-false-breakout, when: {level: rut-1400, entered: failed}, score: {direction: short}}
  - {name: ndx-new-high, when: {level: ndx-ath, entered: breakout}, cooldown: 5d}
  - {name: spx-pressing, when: {level: spx-2400, state: approaching}, for: 3 bars, cooldown: 10d}
"""
SYMBOLS = {"jobs": "GSPC", "jobs-beat-short-ndx": "NDX", "rut-false-breakout": "RUT", "ndx-new-high": "NDX",
           "spx-pressing": "GSPC"}


def test_real_history_against_plain_pandas(shared_data, tmp_path):
    """Payrolls releases 2014-2022 (Good Fridays 2015-04-03 and 2021-04-02 among them) and level alerts, every
    return and every summary figure."""
    config = tmp_path / "mw.yaml"
    config.write_text(REAL)
    alerts, summary, _ = jsonl(config, shared_data, "--from", "2014-01-01", "--to", "2022-12-31")
    frames = {s: bars(shared_data, s) for s in set(SYMBOLS.values())}
    short = {"jobs-beat-short-ndx", "rut-false-breakout"}
    assert {a["at"][:10] for a in alerts if a["rule"] == "jobs"} >= {"2015-04-03", "2021-04-02"}
    assert {a["rule"] for a in alerts} == set(SYMBOLS)
    for a in alerts:
        frame = frames[SYMBOLS[a["rule"]]]
        assert a["score"] == {str(n): approx(reference(frame, a["at"], n, a["rule"] in short)) for n in HORIZONS}, a
    assert len(summary) == len(SYMBOLS) * len(HORIZONS)
    for s in summary:
        mine = np.array([a["score"][str(s["horizon"])] for a in alerts if a["rule"] == s["summary"]
                         and a["score"][str(s["horizon"])] is not None])
        base = base_returns(frames[SYMBOLS[s["summary"]]], "2014-01-01", "2022-12-31", s["horizon"],
                            s["summary"] in short)
        assert (s["n"], s["mean"], s["median"], s["hit_rate"], s["worst"]) == (
            len(mine), approx(np.mean(mine)), approx(np.median(mine)), approx(np.mean(mine > 0)), approx(mine.min()))
        assert (s["baseline_mean"], s["baseline_hit_rate"], s["excess"]) == (
            approx(np.mean(base)), approx(np.mean(base > 0)), approx(np.mean(mine) - np.mean(base)))


def test_the_calendar_reference_knows_good_friday():
    """The reference's own premise: 2021-04-02 had no NYSE session, so its 08:30 alert belongs to 04-05."""
    assert dt.date(2021, 4, 2) not in set(SCHEDULE.index.date)
