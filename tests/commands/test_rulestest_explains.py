"""`macrowatch test` explains itself: the trace under a failing test, the warning for a level whose history in a
test is too short, `history: store` and `history: DIR` warming up from real bars, and a config given as a test
file."""

from __future__ import annotations

import datetime as dt
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from macrowatch.commands.cli import cli
from macrowatch.model import Bar
from macrowatch.sources.calendar import close_times
from macrowatch.store import open_store

RULES = Path(__file__).resolve().parents[2] / "rules"

TRACED = textwrap.dedent("""\
    config:
      instruments:
        spx: {symbol: "^GSPC", name: "S&P 500"}
      levels:
        spx-2400: {instrument: spx, price: 2400}
      releases:
        employment-situation: {fred_release_id: 50, time: "08:30"}
      macro:
        payrolls: {series: PAYEMS, release: employment-situation, measure: change, beat_by: 25}
      rules:
        - name: spx-above-2400
          when:
            all:
              - {level: spx-2400, state: [breakout, confirmed]}
              - {release: payrolls, outcome: beat, within: 30d}
          for: 2 bars
          cooldown: 10d
    tests:
      - name: spx holds above 2400 after a beat
        start: 2017-03-06
        bars: {spx: "2390 2405 2410 2390 2405 2410 2420"}   # 03-06 .. 03-14
        releases:
          payrolls: [{date: 2017-03-03, actual: 235, consensus: 190}]
        expect:
          - {rule: spx-above-2400, at: 2017-03-13}
    """)

# A rule on a 5-session high, and real bars to warm it up: 2019-04-01 .. 04-09, a breakout on 04-08 (an alert of
# the warm-up, dropped) that fails on 04-09. The test's 106 on 04-10 breaks out anew: an alert only with the warm-up.
CONFIG = textwrap.dedent("""\
    store: store.sqlite
    instruments:
      spy: {symbol: SPY, name: "SPDR S&P 500"}
      qqq: {symbol: QQQ, name: "Invesco QQQ"}
    levels:
      spy-5d-high: {instrument: spy, kind: high_of, bars: 5}
    rules:
      - name: spy-new-high
        when: {level: spy-5d-high, entered: breakout}
        message: "SPY {spy.close:.2f}"
    """)
WARM = [100, 101, 102, 103, 104, 105, 100]
WARM_FROM, WARM_TO = dt.date(2019, 4, 1), dt.date(2019, 4, 9)


def history_test(history: str | None, start: str = "", bars: str = '{spy: "106"}') -> str:
    return textwrap.dedent(f"""\
        config: rules.yaml
        {f"history: {history}" if history else ""}
        tests:
          - name: a new 5-day high after the real bars
            {f"start: {start}" if start else ""}
            bars: {bars}
            expect:
              - {{rule: spy-new-high, at: 2019-04-10, message: "SPY 106.00"}}
        """)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _squeezed(text: str) -> list[str]:
    """The lines with their runs of spaces as one (column widths depend on what else the trace holds)."""
    return [" ".join(line.split()) for line in text.splitlines()]


def _real_bars() -> list[Bar]:
    sessions = sorted(close_times("XNYS", WARM_FROM, WARM_TO).items())
    assert len(sessions) == len(WARM)
    return [Bar(day, at, c, c, c, c, 1000) for (day, at), c in zip(sessions, WARM, strict=True)]


def _data_dir(tmp_path: Path) -> Path:
    (tmp_path / "data" / "prices").mkdir(parents=True)
    rows = [f"{b.session},{b.close},{b.close},{b.close},{b.close},{b.close},1000" for b in _real_bars()]
    (tmp_path / "data" / "prices" / "SPY.csv").write_text("Date,Open,High,Low,Close,Adj Close,Volume\n"
                                                         + "\n".join(rows) + "\n")
    return tmp_path / "data"


# ---- the trace -----------------------------------------------------------------------------------------

def test_a_failing_test_prints_the_trace_that_decides_it(tmp_path, runner):
    path = _write(tmp_path, "t.test.yaml", TRACED)
    result = runner.invoke(cli, ["test", str(path)])
    assert result.exit_code == 1, result.output
    # It fired on 03-08 (2 closes above 2400 after the beat); 03-09 failed; on 03-13 the cooldown held it back.
    assert result.stdout.splitlines() == [
        str(path),
        "FAIL spx holds above 2400 after a beat",
        "    --- expected",
        "    +++ got",
        "    - spx-above-2400 @ 2017-03-13 (any time): (any message)",
        "    + spx-above-2400 @ 2017-03-08 16:00 [warning]: 'spx-2400 state in [breakout, confirmed]; "
        "payrolls beat within 30d'",
        "    trace (> the day of a difference; a level: its value as the close saw it, its state after):",
        "         at                event             spx      spx-2400             payrolls         spx-above-2400",
        "         2017-03-03 08:30  release payrolls           2400.00 below        beat 235 vs 190  inactive",
        "         2017-03-06 16:00  close             2390.00  2400.00 approaching                   inactive",
        "         2017-03-07 16:00  close             2405.00  2400.00 breakout                      "
        "pending (1 of 2 closes)",
        "      >  2017-03-08 16:00  close             2410.00  2400.00 breakout                      FIRED",
        "         2017-03-09 16:00  close             2390.00  2400.00 failed                        inactive",
        "         2017-03-10 16:00  close             2405.00  2400.00 breakout                      "
        "pending (1 of 2 closes)",
        "      >  2017-03-13 16:00  close             2410.00  2400.00 breakout                      "
        "held back (cooldown)",
        "         2017-03-14 16:00  close             2420.00  2400.00 breakout                      firing",
        "0 passed, 1 failed",
    ]


def test_the_trace_shows_a_frozen_level_beside_its_value_and_goes_into_junit(tmp_path, runner):
    text = TRACED.replace("price: 2400}", "kind: high_of, bars: 2}").replace("spx-2400", "spx-2d")
    text = text.replace('"2390 2405 2410 2390 2405 2410 2420"', '"2390 2400 2405 2420 2410"')
    path = _write(tmp_path, "t.test.yaml", text)
    report = tmp_path / "report.xml"
    result = runner.invoke(cli, ["test", str(path), "--junit", str(report)])
    assert result.exit_code == 1, result.output
    # 03-08: 2405 breaks the 2-day high 2400, frozen from then on; by 03-10 the 2-day high is 2420.
    out = _squeezed(result.stdout)
    assert "2017-03-08 16:00 close 2405.00 2400.00 breakout pending (1 of 2 closes)" in out
    assert "> 2017-03-09 16:00 close 2420.00 2405.00 breakout (frozen 2400.00) FIRED" in out
    assert "2017-03-10 16:00 close 2410.00 2420.00 breakout (frozen 2400.00) firing" in out
    failure = ET.parse(report).getroot().find("testsuite/testcase/failure")
    assert "2410.00  2420.00 breakout (frozen 2400.00)" in failure.text


def test_the_trace_follows_the_first_days_of_many_differences(tmp_path, runner):
    # A breakout every 7 sessions, each an alert nobody expected: the first three days are traced, apart.
    text = TRACED.replace("      for: 2 bars\n      cooldown: 10d\n", "").replace("within: 30d", "within: 90d")
    text = text.replace('"2390 2405 2410 2390 2405 2410 2420"', '"' + "2410 2390x6 " * 5 + '"')
    text = text.replace("expect:\n      - {rule: spx-above-2400, at: 2017-03-13}", "expect: []")
    assert "expect: []" in text and "cooldown" not in text
    result = runner.invoke(cli, ["test", str(_write(tmp_path, "t.test.yaml", text))])
    assert result.exit_code == 1, result.output
    out = result.stdout.splitlines()
    assert sum(line.startswith("    + spx-above-2400") for line in out) == 5
    assert any("the first 3 of 5 days with one;" in line for line in out)
    assert [line.split()[1] for line in out if line.startswith("      > ")] == ["2017-03-06", "2017-03-15",
                                                                              "2017-03-24"]
    assert sum(line.strip() == "..." for line in out) == 2


def test_a_passing_test_prints_no_trace(tmp_path, runner):
    text = TRACED.replace("at: 2017-03-13", "at: 2017-03-08")
    result = runner.invoke(cli, ["test", str(_write(tmp_path, "t.test.yaml", text))])
    assert result.exit_code == 0, result.output
    assert "trace" not in result.stdout


# ---- a level's history too short -----------------------------------------------------------------------

@pytest.mark.parametrize(("level", "closes", "warning"), [
    pytest.param("{instrument: spy, kind: high_of, bars: 5}", "100x4", "4 bars of history, needs 5 before it has a "
                 "value", id="high-of-short"),
    pytest.param("{instrument: spy, kind: high_of, bars: 5}", "100x5", "5 bars of history, needs 5 before it has a "
                 "value (and one more before a close is judged against it)", id="high-of-exactly"),
    pytest.param("{instrument: spy, kind: high_of, bars: 5}", "100x6", None, id="high-of-enough"),
    pytest.param("{instrument: spy, kind: all_time_high}", "100", "1 bar of history, needs 1 before it has a value "
                 "(and one more before a close is judged against it)", id="all-time-high-one-bar"),
    pytest.param("{instrument: spy, kind: range_high, since: 2019-04-08}", "100x5",
                 "0 bars of history since 2019-04-08, needs 1 before it has a value", id="range-since-later"),
    pytest.param("{instrument: spy, price: 120}", "100", None, id="price"),
])
def test_a_level_with_too_short_a_history_is_a_warning(tmp_path, runner, level, closes, warning):
    text = CONFIG.replace("{instrument: spy, kind: high_of, bars: 5}", level)
    text = "config:\n" + textwrap.indent(text.replace("store: store.sqlite\n", ""), "  ") + textwrap.dedent(f"""\
        tests:
          - name: short
            start: 2019-04-01
            bars: {{spy: "{closes}", qqq: "300"}}
            expect: []
        """)
    path = _write(tmp_path, "t.test.yaml", text)
    result = runner.invoke(cli, ["test", str(path)])
    assert result.exit_code == 0, result.output
    # qqq has bars and no level a rule reads: nothing is said of it.
    assert result.stderr.splitlines() == ([f"{path}:14:11: warning: test 'short': level spy-5d-high: {warning}"]
                                          if warning else [])


def test_the_warning_says_why_a_52_week_high_never_fires(tmp_path, runner):
    _write(tmp_path, "rules.yaml", CONFIG.replace("bars: 5", "bars: 252"))
    path = _write(tmp_path, "t.test.yaml", history_test(None, start="2019-04-09", bars='{spy: "100x40 106"}'))
    result = runner.invoke(cli, ["test", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:6:11: warning: test 'a new 5-day high after the real bars': level spy-5d-high: 41 bars of history, "
        "needs 252 before it has a value"]
    assert "> 2019-04-10 16:00 close 100.00 no value below inactive" in _squeezed(result.stdout)


# ---- history: DIR and history: store ---------------------------------------------------------------------

def test_without_history_the_level_has_no_value(tmp_path, runner):
    _write(tmp_path, "rules.yaml", CONFIG)
    path = _write(tmp_path, "t.test.yaml", history_test(None, start="2019-04-10"))
    result = runner.invoke(cli, ["test", str(path)])
    assert result.exit_code == 1
    assert "needs 5 before it has a value" in result.stderr


@pytest.mark.parametrize("start", ["", "2019-04-10"], ids=["start-after-the-history", "start-given"])
def test_history_dir_warms_up_before_the_tests_bars(tmp_path, runner, start):
    _data_dir(tmp_path)
    _write(tmp_path, "rules.yaml", CONFIG)
    path = _write(tmp_path, "t.test.yaml", history_test("data", start))
    result = runner.invoke(cli, ["test", str(path)])
    assert result.exit_code == 0, result.output  # only the test's alert: the warm-up's of 04-08 is dropped
    assert result.stdout.splitlines() == [str(path), "PASS a new 5-day high after the real bars", "1 passed, 0 failed"]
    assert result.stderr == ""


def test_history_store_warms_up_before_the_tests_bars(tmp_path, runner):
    config = _write(tmp_path, "rules.yaml", CONFIG)
    with open_store(tmp_path / "store.sqlite") as store:
        store.put_bars("spy", _real_bars())
    path = _write(tmp_path, "t.test.yaml", history_test("store"))
    result = runner.invoke(cli, ["test", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == "PASS a new 5-day high after the real bars"
    # An instrument the store lacks is named with the command that gets it.
    path = _write(tmp_path, "t.test.yaml", history_test("store", bars='{spy: "106", qqq: "300"}'))
    result = runner.invoke(cli, ["test", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}:2:10: history: store: the store has no bars of qqq (QQQ); `macrowatch fetch -c {config}` gets them, "
        "or `macrowatch test --skip-missing` leaves out the rules that read qqq",
        "1 error"]


def test_history_store_without_a_store(tmp_path, runner):
    config = _write(tmp_path, "rules.yaml", CONFIG)
    path = _write(tmp_path, "t.test.yaml", history_test("store"))
    result = runner.invoke(cli, ["test", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}:2:10: history: store: no store at {tmp_path / 'store.sqlite'}; `macrowatch fetch -c {config}` "
        "fills it",
        "1 error"]


def test_history_errors(tmp_path, runner):
    data = _data_dir(tmp_path)
    _write(tmp_path, "rules.yaml", CONFIG)
    overlap = _write(tmp_path, "overlap.test.yaml", history_test("data", start="2019-04-09"))
    missing = _write(tmp_path, "missing.test.yaml", history_test("data", bars='{spy: "106", qqq: "300"}'))
    nowhere = _write(tmp_path, "nowhere.test.yaml", history_test("nodata"))
    result = runner.invoke(cli, ["test", str(overlap), str(missing), str(nowhere)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{overlap}:5:12: test 'a new 5-day high after the real bars': start: 2019-04-09 overlaps the history, whose "
        "bars of spy run to 2019-04-09: start after it, or leave `start` out to continue after it",
        f"{missing}:2:10: history: {data} lacks the bars of qqq (QQQ): {data / 'prices' / 'QQQ.csv'} not found; "
        "add it, or `macrowatch test --skip-missing` leaves out the rules that read qqq",
        f"{nowhere}:2:10: history: expected `store` or a data directory (with prices/<SYMBOL>.csv, as `macrowatch "
        f"replay --data` reads), got 'nodata': {tmp_path / 'nodata'} is not a directory",
        "3 errors"]


# ---- a config given as a test file -----------------------------------------------------------------------

def test_a_config_given_as_a_test_file_is_one_line(tmp_path, runner):
    config = RULES / "breakout-jobs.yaml"
    result = runner.invoke(cli, ["test", str(config)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"this is a config, not a rule test file: {config} (run `macrowatch check -c {config}`, or give a test file: "
        "README, Rule tests)"]
    # Beside a good test file, still the one line, and nothing runs.
    good = _write(tmp_path, "t.test.yaml", TRACED)
    result = runner.invoke(cli, ["test", str(good), str(config)])
    assert (result.exit_code, result.stdout, len(result.stderr.splitlines())) == (2, "", 1)
