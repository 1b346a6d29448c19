"""`macrowatch check`: exit codes, errors on stderr as FILE:LINE:COL, a summary line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from macrowatch.commands.cli import cli

GOOD = textwrap.dedent("""\
    instruments:
      spx: {symbol: "^GSPC", name: "S&P 500"}
    levels:
      spx-3000: {instrument: spx, price: 3000}
    rules:
    - {name: r1, when: {level: spx-3000, state: breakout}}
    """)

BAD = textwrap.dedent("""\
    timezone: America/Gotham
    instruments:
      spx: {symbol: "^GSPC", name: "S&P 500"}
    levels:
      spx-3000: {instrument: spx, price: -1}
    rules:
    - name: r1
      when: {level: spx-3000, state: breakout}
      severity: loud
    """)


def bad_lines(path: Path) -> list[str]:
    return [
        f"{path}:1:11: timezone: unknown time zone 'America/Gotham' (an IANA name like America/New_York)",
        f"{path}:5:38: levels.spx-3000.price: must be greater than 0, got -1",
        f"{path}:9:13: rule r1: severity: 'loud' is not one of info, warning, critical",
        f"{path}: 3 errors",
    ]


@pytest.fixture
def runner(monkeypatch) -> CliRunner:
    monkeypatch.delenv("MACROWATCH_CONFIG", raising=False)
    return CliRunner()


def test_check_bad_config(tmp_path, runner):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = runner.invoke(cli, ["check", "-c", str(path)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == bad_lines(path)
    assert "Traceback" not in result.output


def test_check_good_config(tmp_path, runner):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    result = runner.invoke(cli, ["check", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        f"{path}: ok: 1 instrument, 1 level, 0 releases, 0 macro series, 1 rule, 0 channels"]


def test_check_warning_exits_zero(tmp_path, runner, monkeypatch):
    monkeypatch.delenv("MW_TEST_OPS_URLS", raising=False)
    path = tmp_path / "good.yaml"
    path.write_text(GOOD + "channels:\n  ops: ${MW_TEST_OPS_URLS}\n")
    result = runner.invoke(cli, ["check", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"{path}:8:8: warning: channels.ops: environment variable MW_TEST_OPS_URLS is not set; "
        "this channel cannot deliver"]
    assert result.stdout.splitlines() == [
        f"{path}: ok: 1 instrument, 1 level, 0 releases, 0 macro series, 1 rule, 1 channel"]


def test_check_missing_file(tmp_path, runner):
    path = tmp_path / "nope.yaml"
    result = runner.invoke(cli, ["check", "-c", str(path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"{path}: no such config file or directory", f"{path}: 1 error"]
    assert "Traceback" not in result.output


def test_check_yaml_syntax_error(tmp_path, runner):
    path = tmp_path / "broken.yaml"
    path.write_text("instruments:\n  spx: {symbol: '^GSPC'\nrules: []\n")
    result = runner.invoke(cli, ["check", "-c", str(path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"{path}:3:1: YAML syntax error: expected ',' or '}}', but got '<scalar>' "
        "(while parsing a flow mapping at line 2, column 8)",
        f"{path}: 1 error"]


def _console_script() -> Path:
    script = Path(sys.executable).parent / "macrowatch"
    if not script.exists():
        pytest.skip("the macrowatch console script is not installed next to this Python")
    return script


def test_console_script_bad_config(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    env = {k: v for k, v in os.environ.items() if k not in ("MACROWATCH_CONFIG", "MACROWATCH_DEBUG")}
    proc = subprocess.run([str(_console_script()), "check", "-c", str(path)], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == bad_lines(path)
    assert "Traceback" not in proc.stderr + proc.stdout


def test_console_script_good_and_missing(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    env = {k: v for k, v in os.environ.items() if k not in ("MACROWATCH_CONFIG", "MACROWATCH_DEBUG")}
    proc = subprocess.run([str(_console_script()), "check", "-c", str(good)], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == f"{good}: ok: 1 instrument, 1 level, 0 releases, 0 macro series, 1 rule, 0 channels\n"
    missing = tmp_path / "missing.yaml"
    proc = subprocess.run([str(_console_script()), "check", "-c", str(missing)], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"{missing}: no such config file or directory", f"{missing}: 1 error"]
    assert "Traceback" not in proc.stderr + proc.stdout


RULE_SETS = sorted(p for p in (Path(__file__).resolve().parents[2] / "rules").glob("*.yaml")
                   if not p.name.endswith(".test.yaml"))


@pytest.mark.parametrize("path", RULE_SETS, ids=[p.name for p in RULE_SETS])
def test_every_rule_set_passes_check(runner, path, monkeypatch):
    """The ready rule sets in rules/ are what users copy: each must pass `check` (env warnings aside)."""
    for var in ("MACROWATCH_TRADING_URLS", "MACROWATCH_OPS_URLS", "FRED_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    result = runner.invoke(cli, ["check", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{path}: ok: ")
    assert all("environment" in line for line in result.stderr.splitlines()), result.stderr


def test_rules_dir_has_rule_sets():
    assert len(RULE_SETS) >= 2
