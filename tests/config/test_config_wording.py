"""Config errors a user can act on: plain words for YAML's syntax errors, one error per typo, known ids listed,
every error at a line and column; and `health: {listen: PORT}` written as a bare number."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from macrowatch.commands.cli import cli
from macrowatch.config import ConfigError, load_config
from macrowatch.config.types import Health

MAX_DEPTH = 64  # levels of nesting below the document's root
TOP_KEYS = ("timezone, calendar, store, poll, health, ha, sources, instruments, levels, breakout, releases, macro, "
            "channels, rules")


def errors_of(tmp_path: Path, text: str) -> list[str]:
    """`LINE:COL: message` of every error, the file name left out."""
    path = tmp_path / "mw.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert all(p.loc.file == str(path) for p in info.value.problems)
    return [str(p).removeprefix(f"{path}:") for p in info.value.problems if not p.warning]


# ---- YAML syntax errors in plain words -------------------------------------------------------------------
SYNTAX = {
    # PyYAML: "expected <block end>, but found '<block mapping start>'" (while parsing a block mapping ...)
    "key-between-columns": ("""\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-3000: {instrument: spx, price: 3000}
        rules:
        - name: r1
          when:
            level: spx-3000
           state: breakout
        """, "9:4: YAML syntax error: likely a wrong indentation on line 9: a key at column 4 does not line up with "
             "the lines above it (the mapping that encloses it starts at line 6, column 3)"),
    # PyYAML: "expected <block end>, but found '?'" (while parsing a block collection ...)
    "key-among-list-items": ("""\
        rules:
          - name: r1
            when: {level: spx-3000, state: breakout}
          severity: critical
        """, "4:3: YAML syntax error: likely a wrong indentation on line 4: a key at column 3, where the list that "
             "starts at line 2 has its '- ' items (indent the key, or start it with '- ')"),
    # PyYAML: "expected <block end>, but found '-'"
    "list-item-among-keys": ("""\
        rules:
          - {name: r1, when: {level: spx-3000, state: breakout}}
        channels:
          ops: "json://localhost"
          - "json://localhost:8080"
        """, "5:3: YAML syntax error: likely a wrong indentation on line 5: a list item at column 3, among the keys "
             "of the mapping that starts at line 4 (indent the list under its key)"),
    # PyYAML: "expected <block end>, but found '<scalar>'"
    "text-after-quoted-value": ("""\
        instruments:
          spx: {symbol: "^GSPC"}
        timezone: "America/New_York" # ok
        calendar: "XNYS" NYSE
        """, "4:18: YAML syntax error: unexpected text after the value on line 4, column 18 (quote the whole value)"),
    # PyYAML: "mapping values are not allowed here"
    "colon-in-plain-value": ("""\
        rules:
        - name: r1
          when: {level: spx-3000, state: breakout}
          message: SPX: breakout
        """, "4:15: YAML syntax error: a second ': ' on line 4, column 15: a value that holds ': ' must be quoted "
             "(key: \"a: b\")"),
    # PyYAML: "could not find expected ':'" (while scanning a simple key)
    "key-without-colon": ("""\
        instruments:
          spx: {symbol: "^GSPC"}
          rut
          ndx: {symbol: "^NDX"}
        """, "3:3: YAML syntax error: line 3 is neither 'key: value' nor a list item (a ':' missing after the key, "
             "or a wrong indentation)"),
}


@pytest.mark.parametrize("name", SYNTAX)
def test_yaml_syntax_error_in_plain_words(tmp_path, name):
    text, expected = SYNTAX[name]
    assert errors_of(tmp_path, text) == [expected]


# ---- a typo in a top-level key is one error --------------------------------------------------------------
def test_a_misspelt_section_is_one_error_not_one_per_reference(tmp_path):
    """Before: `instrumnets:` also made every level, chart, narrow range and message naming spx or rut unknown."""
    assert errors_of(tmp_path, """\
        instrumnets:
          spx: {symbol: "^GSPC", name: "S&P 500"}
          rut: {symbol: "^RUT"}
        levels:
          spx-2400: {instrument: spx, price: 2400}
          rut-1400: {instrument: rut, price: 1400}
        rules:
        - {name: r1, when: {level: spx-2400, state: breakout}, message: "{spx.close}"}
        - {name: r2, when: {instrument: rut, narrow_range: {bars: 3, pct: 1}}, chart: spx}
        - {name: r3, when: {level: rut-1400, state: breakout}, chart: rut}
        """) == [f"1:1: unknown key 'instrumnets' (did you mean 'instruments'?); allowed: {TOP_KEYS}"]


def test_each_misspelt_section_is_one_error(tmp_path):
    """Levels, macro series, channels and rules under a misspelt key: one error for each typo, and no
    'no rules' error for `rulse:`."""
    assert errors_of(tmp_path, """\
        instruments:
          spx: {symbol: "^GSPC"}
        levles:
          spx-2400: {instrument: spx, price: 2400}
        releases:
          jobs: {fred_release_id: 50}
        macor:
          payrolls: {series: PAYEMS, release: jobs}
        chanels:
          ops: "json://localhost"
        rulse:
        - {name: r1, when: {level: spx-2400, state: breakout}, notify: ops, message: "{payrolls.actual}"}
        """) == [f"3:1: unknown key 'levles' (did you mean 'levels'?); allowed: {TOP_KEYS}",
                 f"7:1: unknown key 'macor' (did you mean 'macro'?); allowed: {TOP_KEYS}",
                 f"9:1: unknown key 'chanels' (did you mean 'channels'?); allowed: {TOP_KEYS}",
                 f"11:1: unknown key 'rulse' (did you mean 'rules'?); allowed: {TOP_KEYS}"]


def test_a_misspelt_section_hides_only_the_ids_under_it(tmp_path):
    """An id that is nowhere, not even under the misspelt key, is still an error."""
    assert errors_of(tmp_path, """\
        instrumnets:
          spx: {symbol: "^GSPC"}
        levels:
          spx-2400: {instrument: spx, price: 2400}
          ndx-9000: {instrument: ndx, price: 9000}
        rules:
        - {name: r1, when: {level: spx-2400, state: breakout}, chart: rut}
        """) == [f"1:1: unknown key 'instrumnets' (did you mean 'instruments'?); allowed: {TOP_KEYS}",
                 "5:26: levels.ndx-9000.instrument: unknown instrument 'ndx' (known: none defined)",
                 "7:63: rule r1: chart: unknown instrument 'rut' (known: none defined)"]


def test_check_reports_a_misspelt_section_once(tmp_path, monkeypatch):
    monkeypatch.delenv("MACROWATCH_CONFIG", raising=False)
    path = tmp_path / "mw.yaml"
    path.write_text(textwrap.dedent("""\
        instrumnets:
          spx: {symbol: "^GSPC"}
        levels:
          spx-2400: {instrument: spx, price: 2400}
        rules:
        - {name: r1, when: {level: spx-2400, state: breakout}, chart: spx}
        """))
    result = CliRunner().invoke(cli, ["check", "-c", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}:1:1: unknown key 'instrumnets' (did you mean 'instruments'?); allowed: {TOP_KEYS}",
        f"{path}: 1 error"]


# ---- an unknown id lists the known ones ------------------------------------------------------------------
def test_an_unknown_id_lists_the_known_ids(tmp_path):
    assert errors_of(tmp_path, """\
        instruments:
          spx: {symbol: "^GSPC"}
          rut: {symbol: "^RUT"}
        levels:
          spx-2400: {instrument: spx, price: 2400}
          rut-1400: {instrument: rut, price: 1400}
          ndx-9000: {instrument: ndx, price: 9000}
        releases:
          jobs: {fred_release_id: 50}
          cpi: {fred_release_id: 10}
        macro:
          payrolls: {series: PAYEMS, release: nfp}
        rules:
        - {name: r1, when: {level: spx-240, state: breakout}}
        - {name: r2, when: {level: spx-2400, state: breakout}, message: "{es.close}"}
        """) == [
        "7:26: levels.ndx-9000.instrument: unknown instrument 'ndx' (known: rut, spx)",
        "12:39: macro.payrolls.release: unknown release 'nfp' (known: cpi, jobs)",
        "14:28: rule r1: when.level: unknown level 'spx-240' (did you mean 'spx-2400'?) "
        "(known: ndx-9000, rut-1400, spx-2400)",
        "15:65: rule r2: message: {es.close} names 'es', which is no instrument, level or macro series "
        "(known: ndx-9000, payrolls, rut, rut-1400, spx, spx-2400)"]


def test_a_long_list_of_known_ids_is_cut_short(tmp_path):
    names = [f"i{n:02}" for n in range(40)]
    errors = errors_of(tmp_path, "instruments:\n" + "".join(f"  {n}: {{symbol: X{n}}}\n" for n in names) + """\
levels:
  l1: {instrument: zz, price: 1}
rules:
- {name: r1, when: {level: l1, state: breakout}}
""")
    assert errors == [f"43:20: levels.l1.instrument: unknown instrument 'zz' (known: {', '.join(names[:30])}, "
                      "... (10 more))"]


# ---- nesting too deep has a place ------------------------------------------------------------------------
def test_nesting_too_deep_in_flow_style_has_line_and_column(tmp_path):
    """Before: `mw.yaml: YAML is nested too deeply`, with no line (Python's stack ran out while composing)."""
    depth = 2000
    errors = errors_of(tmp_path, "rules:\n- when: " + "[" * depth + "]" * depth + "\n")
    # The list that is one level too deep: the root mapping, the rules list and the rule come first.
    assert errors == [f"2:{9 + MAX_DEPTH - 2}: YAML is nested too deeply (more than {MAX_DEPTH} levels)"]


def test_nesting_too_deep_in_block_style_is_reported_where_it_is(tmp_path):
    """Before: at 1:1, the start of the document."""
    text = "a:\n" + "".join("  " * i + "b:\n" for i in range(1, MAX_DEPTH + 5))
    line = MAX_DEPTH + 1  # the mapping at depth MAX_DEPTH + 1 starts there, at its first key
    assert errors_of(tmp_path, text) == [
        f"{line}:{2 * (line - 1) + 1}: YAML is nested too deeply (more than {MAX_DEPTH} levels)"]


def test_nesting_just_within_the_limit_is_read(tmp_path):
    errors = errors_of(tmp_path, "rules:\n- when: " + "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2) + "\n")
    assert not any("nested" in e for e in errors), errors


# ---- health.listen: PORT as a number ---------------------------------------------------------------------
GOOD = """\
instruments:
  spx: {symbol: "^GSPC"}
levels:
  spx-3000: {instrument: spx, price: 3000}
rules:
- {name: r1, when: {level: spx-3000, state: breakout}}
"""


@pytest.mark.parametrize("listen, expected", [("9108", Health("127.0.0.1", 9108)),
                                              ('"9108"', Health("127.0.0.1", 9108)),
                                              ("127.0.0.1:9108", Health("127.0.0.1", 9108))])
def test_health_listen_takes_a_bare_port(tmp_path, listen, expected):
    """Before: `listen: 9108` was 'expected a string, got the number 9108', though the README allows PORT."""
    path = tmp_path / "mw.yaml"
    path.write_text(GOOD + f"health: {{listen: {listen}}}\n")
    config, _warnings = load_config(path)
    assert config.health == expected


def test_health_listen_port_out_of_range_as_a_number(tmp_path):
    assert errors_of(tmp_path, GOOD + "health: {listen: 99999}\n") == [
        "7:18: health.listen: expected HOST:PORT or PORT, got '99999'"]


# ---- a consensus file that is a device -------------------------------------------------------------------
def test_a_consensus_file_linked_to_a_device_is_named_as_such(tmp_path):
    """Before: 'file not found' for a file that is there; it is a device, which replay would read forever."""
    os.symlink("/dev/zero", tmp_path / "consensus.csv")
    assert errors_of(tmp_path, GOOD + """\
releases:
  jobs: {fred_release_id: 50}
macro:
  payrolls: {series: PAYEMS, release: jobs, consensus: consensus.csv}
""") == ["10:56: macro.payrolls.consensus: file 'consensus.csv': is a device (/dev/zero), not a regular file"]
