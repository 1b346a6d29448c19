"""The README's promises: its two commands work, and it documents every command and config construct."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from macrowatch.commands.cli import cli
from macrowatch.config import load, rules, sections
from macrowatch.config.types import RULE_OUTCOMES, LevelKind, LevelState, Measure, Severity, Trigger

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def _commands() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("readme_command", REPO / ".ci" / "readme_command.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.quick_start_commands(README)


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert "readme_command.py test" in ci and 'bash -c "$test_cmd"' in ci
    test_cmd = _commands()["test"]
    assert "pip install -e '.[test]'" in test_cmd and "pytest" in test_cmd


@pytest.mark.slow
def test_readme_run_command_works(tmp_path):
    """The run command's install is the plain one; what it then runs (the offline demo) succeeds here."""
    run_cmd = _commands()["run"]
    steps = [s.strip() for s in run_cmd.split("&&")]
    assert steps[0] == "python3 -m venv .venv" and steps[1] == ".venv/bin/pip install ."
    argv = shlex.split(steps[-1])
    assert argv == [".venv/bin/macrowatch", "demo"]
    exe = Path(sys.executable).parent / "macrowatch"
    proc = subprocess.run([str(exe), *argv[1:]], cwd=REPO, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "HOME": str(tmp_path), "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "critical spx-breakout-with-jobs" in " ".join(proc.stdout.split())


def test_every_command_is_documented():
    for name in cli.commands:
        assert re.search(rf"macrowatch {name}\b", README), f"README does not document `macrowatch {name}`"


@pytest.mark.parametrize("word", [
    *load.TOP_KEYS, *rules.RULE_KEYS, *sections.BREAKOUT_KEYS,
    "all", "any", "not", "state", "entered", "outcome", "within", "narrow_range", "new_high", "new_low",
    *(k.value for k in LevelKind), *(m.value for m in Measure), *(o.value for o in RULE_OUTCOMES),
    *(s.value for s in Severity), *(t.value for t in Trigger), *(s.value for s in LevelState),
    "fred_release_id", "bls", "bls_series", "feed", "event", "unit", "forexfactory", "nasdaq", "dates", "consensus",
    "beat_by", "higher_is", "symbol", "calendar", "since", "bars", "side",
    "api_key", "url", "listen", "intraday", "lease",
])
def test_config_construct_is_documented(word):
    assert re.search(rf"`[^`]*\b{re.escape(word)}\b[^`]*`", README), f"README's reference lacks `{word}`"


@pytest.mark.parametrize("kind, fields", sorted(rules.TEMPLATE_FIELDS.items()))
def test_template_fields_are_documented(kind, fields):
    for field in fields:
        assert field in README, f"README does not document the {kind} template field {field}"


def test_a_skip_for_missing_market_history_says_what_it_is_and_how_to_point_the_tests_at_it(tmp_path):
    from conftest import DATA_VAR, data_missing

    why = data_missing(tmp_path / "nowhere")
    assert "optional real market history" in why and str(tmp_path / "nowhere") in why
    assert f"{DATA_VAR}=" in why and DATA_VAR in README             # the README says it too
    (tmp_path / "data" / "prices").mkdir(parents=True)
    assert data_missing(tmp_path / "data") is None


def test_the_readme_says_how_long_the_suite_takes():
    assert re.search(r"The suite takes about \d+ minutes on 2 cores", README)
