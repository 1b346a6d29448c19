"""A series or instrument the data directory or the store lacks (issue [14]): one error naming each with the way to
get it; `--skip-missing` leaves out the rules that read it, says which, and replays (or tests) the rest."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from macrowatch.commands.cli import cli
from macrowatch.commands.missing import in_directory, leave_out
from macrowatch.commands.replay import load_history
from macrowatch.config import load_config
from macrowatch.engine.evaluator import Engine
from macrowatch.runtime.history import History, run
from macrowatch.store import open_store

from .test_replay_cli import CONFIG, store_config, write_data
from .test_rulestest_explains import CONFIG as TEST_CONFIG
from .test_rulestest_explains import _data_dir, _real_bars, _write


@pytest.fixture
def replay_data(tmp_path):
    """test_replay_cli's data directory (^GSPC closes, PAYEMS vintages, a consensus file) and config mw.yaml."""
    return write_data(tmp_path)


def replay(config: Path, *args: str):
    return CliRunner().invoke(cli, ["replay", "-c", str(config), *args])


def rules_of(stdout: str) -> list[tuple[str, str]]:
    return [(a["rule"], a["at"]) for a in map(json.loads, stdout.splitlines())]


# ---- replay --data ----------------------------------------------------------------------------------------

def test_a_missing_series_file_is_one_error_naming_it_and_the_ways_out(replay_data):
    tmp_path, _ = replay_data
    d = tmp_path / "data"
    (d / "macro" / "PAYEMS.csv").unlink()
    result = replay(tmp_path / "mw.yaml", "--data", str(d))
    assert result.exit_code == 2
    assert result.stderr == (
        f"macrowatch replay: {d} lacks the history of series PAYEMS (macro payrolls): {d / 'macro' / 'PAYEMS.csv'}: "
        f"`macrowatch fetch -c {tmp_path / 'mw.yaml'}` gets it into the store (then replay without --data), or add "
        "the files; --skip-missing replays the rest\n")
    assert result.stdout == ""


def test_every_missing_file_is_named_at_once(replay_data):
    tmp_path, _ = replay_data
    d = tmp_path / "data"
    (d / "macro" / "PAYEMS.csv").unlink()
    (d / "prices" / "GSPC.csv").unlink()
    result = replay(tmp_path / "mw.yaml", "--data", str(d))
    assert result.exit_code == 2
    assert (f"lacks the history of instrument spx (^GSPC): {d / 'prices' / 'GSPC.csv'}, series PAYEMS (macro "
            f"payrolls): {d / 'macro' / 'PAYEMS.csv'}: ") in result.stderr
    assert "Traceback" not in result.output


def test_skip_missing_replays_the_other_rules_as_a_config_without_those_rules_would(replay_data):
    tmp_path, _ = replay_data
    d = tmp_path / "data"
    full = replay(tmp_path / "mw.yaml", "--data", str(d), "--format", "jsonl")
    assert full.exit_code == 0, full.output
    # The reference: the full data, a config that simply lacks the rule reading PAYEMS.
    (tmp_path / "without.yaml").write_text(CONFIG.split("  - name: jobs-beat")[0])
    reference = replay(tmp_path / "without.yaml", "--data", str(d), "--format", "jsonl")
    assert reference.exit_code == 0, reference.output
    (d / "macro" / "PAYEMS.csv").unlink()
    result = replay(tmp_path / "mw.yaml", "--data", str(d), "--format", "jsonl", "--skip-missing")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"macrowatch replay: warning: rule jobs-beat left out: it reads series PAYEMS (macro payrolls), which {d} "
        "lacks"]
    assert result.stdout == reference.stdout
    assert [rule for rule, _ in rules_of(result.stdout)] == ["breakout", "confirmed"]
    assert [r for r in rules_of(full.stdout) if r[0] != "jobs-beat"] == rules_of(result.stdout)


def test_skip_missing_with_every_rule_left_out_says_nothing_is_replayed(replay_data):
    tmp_path, _ = replay_data
    d = tmp_path / "data"
    (d / "prices" / "GSPC.csv").unlink()
    (d / "macro" / "PAYEMS.csv").unlink()
    result = replay(tmp_path / "mw.yaml", "--data", str(d), "--skip-missing")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[:3] == [
        f"macrowatch replay: warning: rule breakout left out: it reads instrument spx (^GSPC) through level spx-100, "
        f"which {d} lacks",
        f"macrowatch replay: warning: rule confirmed left out: it reads instrument spx (^GSPC) through level "
        f"spx-100, which {d} lacks",
        f"macrowatch replay: warning: rule jobs-beat left out: it reads series PAYEMS (macro payrolls), which {d} "
        "lacks"]
    assert lines[3].startswith("macrowatch replay: every rule is left out (above): nothing to replay; ")
    assert result.stdout == ""


def test_skip_missing_keeps_a_malformed_file_an_error(replay_data):
    tmp_path, _ = replay_data
    d = tmp_path / "data"
    (d / "macro" / "PAYEMS.csv").unlink()
    (d / "prices" / "GSPC.csv").write_text("Date,Close\n2019-07-01,abc\n")
    result = replay(tmp_path / "mw.yaml", "--data", str(d), "--skip-missing")
    assert result.exit_code == 2
    assert f"macrowatch replay: {d / 'prices' / 'GSPC.csv'}:2: Close: 'abc' is not a number" in result.stderr


# ---- replay from the store --------------------------------------------------------------------------------

def test_the_store_lacking_a_series_names_skip_missing_and_skips_with_it(replay_data):
    tmp_path, _ = replay_data
    d = tmp_path / "data"
    (d / "macro" / "consensus.csv").unlink()  # the store's replay and the data's judge by the inline consensus
    config_path = store_config(tmp_path)
    with open_store(tmp_path / "mw.sqlite") as store:  # bars, but no vintage of PAYEMS
        store.put_bars("spx", load_history(load_config(config_path)[0], d).bar_list("spx"))
    refused = replay(config_path)
    assert refused.exit_code == 2
    assert refused.stderr == (
        f"macrowatch replay: the store has no history of series PAYEMS (macro payrolls): `macrowatch fetch -c "
        f"{config_path}` gets it; --skip-missing replays the rest\n")
    result = replay(config_path, "--format", "jsonl", "--skip-missing")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "macrowatch replay: warning: rule jobs-beat left out: it reads series PAYEMS (macro payrolls), which the "
        "store lacks"]
    full = replay(config_path, "--data", str(d), "--format", "jsonl")
    assert [r for r in rules_of(full.stdout) if r[0] != "jobs-beat"] == rules_of(result.stdout)
    assert [rule for rule, _ in rules_of(result.stdout)] == ["breakout", "confirmed"]


# ---- leave_out --------------------------------------------------------------------------------------------

LEAVE_OUT = """\
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
  qqq: {symbol: QQQ, name: Nasdaq}
  iwm: {symbol: IWM, name: Russell}
levels:
  spx-100: {instrument: spx, price: 100}
  qqq-50: {instrument: qqq, price: 50}
releases:
  es: {fred_release_id: 50, time: "08:30"}
macro:
  payrolls: {series: PAYEMS, release: es, measure: change}
  payrolls-level: {series: PAYEMS, release: es}
  cpi: {series: CPIAUCSL, release: es}
rules:
  - name: spx-level
    when: {level: spx-100, entered: breakout}
  - name: qqq-says-spx
    when: {level: qqq-50, entered: breakout}
    message: "QQQ above 50; S&P {spx.close:.0f}"
  - name: qqq-charts-spx
    when: {level: qqq-50, entered: breakout}
    chart: spx
  - name: qqq-alone
    when: {level: qqq-50, entered: breakout}
    chart: qqq
  - name: jobs
    when: {release: payrolls-level, outcome: beat}
  - name: cpi
    when: {release: cpi, outcome: miss}
"""


@pytest.fixture
def config(tmp_path):
    (tmp_path / "c.yaml").write_text(LEAVE_OUT)
    return load_config(tmp_path / "c.yaml")[0]


def test_leave_out_drops_every_rule_reading_a_missing_input_and_says_why(config):
    reduced, lines = leave_out(config, ["spx", "iwm"], ["PAYEMS"], "DIR")
    assert lines == [
        "rule spx-level left out: it reads instrument spx (^GSPC) through level spx-100, which DIR lacks",
        "rule qqq-says-spx left out: it reads instrument spx (^GSPC), which DIR lacks",
        "rule qqq-charts-spx left out: its chart is instrument spx (^GSPC), which DIR lacks",
        "rule jobs left out: it reads series PAYEMS (macro payrolls-level), which DIR lacks",
        "instrument iwm (IWM) left out: DIR lacks it; no rule reads it",
    ]
    assert [r.name for r in reduced.rules] == ["qqq-alone", "cpi"]
    assert list(reduced.instruments) == ["qqq"]
    assert list(reduced.levels) == ["qqq-50"]
    assert list(reduced.macro) == ["cpi"]
    # What is left is whole: every id a rule reads is in the reduced config, and the engine takes it.
    Engine(reduced)
    assert run(Engine(reduced), History({}, []), None, None, reduced.timezone) == []


def test_leave_out_of_nothing_is_the_config(config):
    reduced, lines = leave_out(config, [], [])
    assert lines == [] and reduced == config


def test_in_directory_finds_by_existence(config, tmp_path):
    (tmp_path / "d" / "prices").mkdir(parents=True)
    (tmp_path / "d" / "macro").mkdir()
    (tmp_path / "d" / "prices" / "GSPC.csv").write_text("not read\n")
    (tmp_path / "d" / "macro" / "CPIAUCSL.csv").write_text("")
    lacking = in_directory(config, tmp_path / "d")
    assert lacking.instruments == {"qqq": tmp_path / "d" / "prices" / "QQQ.csv",
                                   "iwm": tmp_path / "d" / "prices" / "IWM.csv"}
    assert lacking.series == {"PAYEMS": tmp_path / "d" / "macro" / "PAYEMS.csv"}


# ---- macrowatch test --------------------------------------------------------------------------------------

# TEST_CONFIG's spy-new-high with a rule on qqq beside it.
QQQ_RULE = """\
  - name: qqq-new-high
    when: {instrument: qqq, new_high: 2 bars}
"""
SKIP_TEST = textwrap.dedent("""\
    config: rules.yaml
    history: {history}
    tests:
      - name: both rules
        bars: {{spy: "106", qqq: "300 301 302"}}
        expect:
          - {{rule: spy-new-high, at: 2019-04-10, message: "SPY 106.00"}}
          - {{rule: qqq-new-high, at: 2019-04-12}}
    """)


def test_rule_test_skip_missing_leaves_out_the_rules_of_an_instrument_the_history_dir_lacks(tmp_path):
    data_dir = _data_dir(tmp_path)  # SPY only
    _write(tmp_path, "rules.yaml", TEST_CONFIG + QQQ_RULE)
    path = _write(tmp_path, "t.test.yaml", SKIP_TEST.format(history="data"))
    refused = CliRunner().invoke(cli, ["test", str(path)])
    assert refused.exit_code == 2
    assert (f"history: {data_dir} lacks the bars of qqq (QQQ): {data_dir / 'prices' / 'QQQ.csv'} not found; add it, "
            "or `macrowatch test --skip-missing` leaves out the rules that read qqq") in refused.stderr
    result = CliRunner().invoke(cli, ["test", "--skip-missing", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(path), "PASS both rules", "1 passed, 0 failed"]
    assert result.stderr.splitlines() == [
        f"{path}:2:10: warning: history: rule qqq-new-high left out: it reads instrument qqq (QQQ), which {data_dir} "
        "lacks",
        f"{path}:5:11: warning: test 'both rules': the expected alerts of qqq-new-high are not checked (left out)"]


def test_rule_test_skip_missing_with_the_store(tmp_path):
    _write(tmp_path, "rules.yaml", TEST_CONFIG + QQQ_RULE)
    with open_store(tmp_path / "store.sqlite") as store:
        store.put_bars("spy", _real_bars())
    path = _write(tmp_path, "t.test.yaml", SKIP_TEST.format(history="store"))
    result = CliRunner().invoke(cli, ["test", "--skip-missing", str(path)])
    assert result.exit_code == 0, result.output
    assert "rule qqq-new-high left out: it reads instrument qqq (QQQ), which the store lacks" in result.stderr
    # The rule left in is still tested: a wrong expectation of it fails.
    path.write_text(path.read_text().replace('"SPY 106.00"', '"SPY 107.00"'))
    result = CliRunner().invoke(cli, ["test", "--skip-missing", str(path)])
    assert result.exit_code == 1
    assert "FAIL both rules" in result.stdout
