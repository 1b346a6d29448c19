"""`macrowatch test`: the series notation, PASS/FAIL with a diff, file errors, JUnit XML, and rules/ examples."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from macrowatch.commands.cli import cli
from macrowatch.commands.rulestest import MAX_BARS, NotationError, load, parse_series

RULES = Path(__file__).resolve().parents[2] / "rules"

CONFIG = textwrap.dedent("""\
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
        - name: spx-breakout
          when: {level: spx-2400, entered: breakout}
          message: "{spx.name} {spx.close:.2f}"
        - name: payrolls-beat
          when: {release: payrolls, outcome: beat}
          severity: info
          message: "payrolls {payrolls.actual:+.0f}k vs {payrolls.consensus:+.0f}k"
    """)

PASSING = CONFIG + textwrap.dedent("""\
    tests:
      - name: breakout after a beat
        start: 2017-03-08
        bars: {spx: "2380 2390 2405"}          # 03-08 03-09 03-10
        releases:
          payrolls: [{date: 2017-03-10, actual: 235, consensus: 190}]
        expect:
          - {rule: payrolls-beat, at: "2017-03-10T08:30", severity: info, message: "payrolls +235k vs +190k"}
          - {rule: spx-breakout, at: 2017-03-10, message: "S&P 500 2405.00"}
      - name: nothing happens
        start: 2017-03-08
        bars: {spx: "2380x3"}
        expect: []
    """)

FAILING = CONFIG + textwrap.dedent("""\
    tests:
      - name: breakout on the wrong day
        start: 2017-03-08
        bars: {spx: "2380 2390 2405"}
        expect:
          - {rule: spx-breakout, at: 2017-03-09}
    """)

MALFORMED = CONFIG + textwrap.dedent("""\
    tests:
      - name: typos
        strat: 2017-03-08
        bars: {spx: "2380 2390x 2405"}
        expect:
          - {rule: spx-breakuot, at: 2017-03-09}
    """)


def malformed_lines(path: Path) -> list[str]:
    return [
        f"{path}:20:5: test: unknown key 'strat' (did you mean 'start'?); allowed: name, start, bars, releases, "
        "expect",
        f"{path}:21:17: test 'typos': bars.spx: bad token '2390x': expected V, VxN, A+BxN or A-BxN",
        f"{path}:23:16: test 'typos': expect: unknown rule 'spx-breakuot' (did you mean 'spx-breakout'?); "
        "the config has spx-breakout, payrolls-beat",
        "3 errors",
    ]


@pytest.mark.parametrize(("text", "values"), [
    pytest.param("2400", [2400.0], id="one-value"),
    pytest.param("2300 2350.5", [2300.0, 2350.5], id="values"),
    pytest.param("  2300\t2350\n", [2300.0, 2350.0], id="any-whitespace"),
    pytest.param("2390x3", [2390.0] * 3, id="repeat"),
    pytest.param("2410+5x2", [2410.0, 2415.0, 2420.0], id="step-up"),
    pytest.param("100-2.5x2", [100.0, 97.5, 95.0], id="step-down"),
    pytest.param("1+0.1x3", [1.0, 1.1, 1.2, 1.3], id="no-float-drift"),
    pytest.param(".5 7.", [0.5, 7.0], id="short-decimals"),
    pytest.param("2300 2390x2 2410+5x1", [2300.0, 2390.0, 2390.0, 2410.0, 2415.0], id="mixed"),
])
def test_parse_series(text, values):
    assert parse_series(text) == values


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("2390x", "bad token '2390x': expected", id="count-missing"),
    pytest.param("2390x0", "bad token '2390x0': N must be at least 1", id="count-zero"),
    pytest.param("2410+5", "bad token '2410+5': a step needs a count", id="step-without-count"),
    pytest.param("2300 abc", "bad token 'abc'", id="word"),
    pytest.param("2300,2310", "bad token '2300,2310'", id="comma"),
    pytest.param("1e3", "bad token '1e3'", id="exponent"),
    pytest.param("2300 0", "bad token '0': gives 0; closes must be positive", id="zero"),
    pytest.param("-5", "bad token '-5': gives -5", id="negative"),
    pytest.param("10-5x2", "bad token '10-5x2': gives 0", id="steps-to-zero"),
    pytest.param(f"1x{MAX_BARS + 1}", f"bad token '1x{MAX_BARS + 1}': more than {MAX_BARS} values", id="too-many"),
    pytest.param("1x99999999999999", "bad token '1x99999999999999': more than", id="huge-count"),
    pytest.param("1+1x99999999999999", "bad token '1+1x99999999999999': more than", id="huge-steps"),
    pytest.param("   ", "no values", id="empty"),
])
def test_parse_series_bad(text, message):
    with pytest.raises(NotationError, match="^" + message.replace("+", r"\+")):
        parse_series(text)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_passing_file(tmp_path, runner):
    path = _write(tmp_path, "good.test.yaml", PASSING)
    result = runner.invoke(cli, ["test", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(path), "PASS breakout after a beat", "PASS nothing happens",
                                          "2 passed, 0 failed"]


def test_failing_file_shows_both_sides(tmp_path, runner):
    good = _write(tmp_path, "good.test.yaml", PASSING)
    bad = _write(tmp_path, "bad.test.yaml", FAILING)
    result = runner.invoke(cli, ["test", str(good), str(bad)])
    assert result.exit_code == 1, result.output
    out = result.stdout.splitlines()
    assert out[out.index(str(bad)):] == [
        str(bad),
        "FAIL breakout on the wrong day",
        "    --- expected",
        "    +++ got",
        "    - spx-breakout @ 2017-03-09 (any time): (any message)",
        "    + spx-breakout @ 2017-03-10 16:00 [warning]: 'S&P 500 2405.00'",
        "    trace (> the day of a difference; a level: its value as the close saw it, its state after):",
        "         at                event  spx      spx-2400             spx-breakout",
        "         2017-03-08 16:00  close  2380.00  2400.00 approaching  inactive",
        "      >  2017-03-09 16:00  close  2390.00  2400.00 approaching  inactive",
        "      >  2017-03-10 16:00  close  2405.00  2400.00 breakout     FIRED",
        "2 passed, 1 failed",
    ]


def test_failing_message_and_silence(tmp_path, runner):
    text = PASSING.replace('message: "S&P 500 2405.00"', 'message: "S&P 500 2405"').replace("2380x3", "2401")
    result = runner.invoke(cli, ["test", str(_write(tmp_path, "t.test.yaml", text))])
    assert result.exit_code == 1
    out = result.stdout
    # The release alert still matches: it stays a context line; only the breakout differs.
    assert "      payrolls-beat @ 2017-03-10 08:30 [info]: 'payrolls +235k vs +190k'" in out
    assert "    - spx-breakout @ 2017-03-10 (any time): 'S&P 500 2405'" in out
    assert "    + spx-breakout @ 2017-03-10 16:00 [warning]: 'S&P 500 2405.00'" in out
    assert "FAIL nothing happens\n    --- expected\n    +++ got\n    + spx-breakout @ 2017-03-08 16:00" in out
    assert out.endswith("0 passed, 2 failed\n")


def test_malformed_file(tmp_path, runner):
    path = _write(tmp_path, "bad.test.yaml", MALFORMED)
    result = runner.invoke(cli, ["test", str(path)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == malformed_lines(path)
    assert "Traceback" not in result.output


def test_config_by_path_and_its_errors(tmp_path, runner):
    config_text, tests_text = PASSING.split("tests:\n", 1)
    config = textwrap.dedent(config_text.removeprefix("config:\n"))
    _write(tmp_path, "rules.yaml", config)
    good = _write(tmp_path, "good.test.yaml", "config: rules.yaml\ntests:\n" + tests_text)
    assert runner.invoke(cli, ["test", str(good)]).exit_code == 0
    _write(tmp_path, "rules.yaml", config.replace("price: 2400", "price: -1"))
    result = runner.invoke(cli, ["test", str(good)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{good}:1:9: config: 'rules.yaml' cannot be used (its errors are listed with it)",
        f"{tmp_path / 'rules.yaml'}:4:38: levels.spx-2400.price: must be greater than 0, got -1",
        "2 errors",
    ]


def test_junit(tmp_path, runner):
    good = _write(tmp_path, "good.test.yaml", PASSING)
    bad = _write(tmp_path, "bad.test.yaml", FAILING)
    report = tmp_path / "report.xml"
    result = runner.invoke(cli, ["test", str(good), str(bad), "--junit", str(report)])
    assert result.exit_code == 1
    root = ET.parse(report).getroot()
    assert (root.tag, root.get("tests"), root.get("failures")) == ("testsuites", "3", "1")
    suites = root.findall("testsuite")
    assert [(s.get("name"), s.get("tests"), s.get("failures")) for s in suites] == [
        (str(good), "2", "0"), (str(bad), "1", "1")]
    assert [c.get("name") for c in suites[0].iter("testcase")] == ["breakout after a beat", "nothing happens"]
    assert suites[0].find("testcase/failure") is None
    failure = suites[1].find("testcase/failure")
    assert failure.get("message") == "expected 1 alerts, got 1"
    assert "- spx-breakout @ 2017-03-09" in failure.text and "+ spx-breakout @ 2017-03-10 16:00" in failure.text


def test_every_rule_set_has_a_test_file():
    rule_sets = [p for p in RULES.glob("*.yaml") if not p.name.endswith(".test.yaml")]
    assert rule_sets
    assert [p.name for p in rule_sets if not p.with_suffix(".test.yaml").is_file()] == []


def test_rules_examples_pass():
    """The test files in rules/ pass, run the way a user runs them (the installed console script)."""
    script = Path(sys.executable).parent / "macrowatch"
    if not script.exists():
        pytest.skip("the macrowatch console script is not installed next to this Python")
    files = sorted(str(p) for p in RULES.glob("*.test.yaml"))
    env = {k: v for k, v in os.environ.items() if k not in ("MACROWATCH_CONFIG", "MACROWATCH_DEBUG")}
    proc = subprocess.run([str(script), "test", *files], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout
    assert proc.stdout.splitlines()[-1].endswith(" passed, 0 failed")


@pytest.mark.parametrize("path", sorted(RULES.glob("*.test.yaml")), ids=lambda p: p.name)
def test_rules_examples_cover_every_rule(path):
    """Each example test file expects every rule of its rule set at least once, and has a silent case."""
    suite = load(path)
    expected = {e.rule for case in suite.cases for e in case.expect}
    assert [r.name for r in suite.config.rules if r.name not in expected] == []
    assert any(not case.expect for case in suite.cases), "no test with `expect: []`"
