"""Bad input cannot break macrowatch: fuzzed config files for `check`, fuzzed data files for `replay`.

Config files: the rule sets in rules/ and a few configs touching every section, mutated by hypothesis (lines
deleted, duplicated, swapped, re-indented; bytes and unicode inserted; values swapped for other types, tags,
aliases, huge numbers), plus hand-made monsters (10000-deep nesting, files over and just under the size
limit, billion-laughs aliases, NUL bytes, invalid UTF-8). `macrowatch check` never shows a traceback, exits
0 or 2, and on 2 every line of stderr is `FILE:LINE:COL: ...` or `FILE: ...`. No YAML construct runs code
(python tags in every position: an error, and the marker file they would create never appears). Message
templates reach only the documented fields: tricks are rejected at load, and `render` of any accepted
template reads only whitelisted (id, attr) values.

Data files: the prices, ALFRED and consensus CSVs of `replay`, mutated the same way and filled with random
bytes, NaN, inf, huge and negative numbers, missing columns, dates out of order or repeated: no traceback,
exit 0 or 2, and on 2 one line naming the file (and the row, when a row is at fault).

Default: a few hundred examples per fuzzer (well under a minute in all). MACROWATCH_LONG_TESTS=1: 20 times
as many.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from macrowatch.commands.cli import cli
from macrowatch.config import yamlsrc
from macrowatch.config.fields import Reader
from macrowatch.config.problems import Loc, Problems
from macrowatch.config.rules import TEMPLATE_FIELDS, Known, template
from macrowatch.config.yamlsrc import MAX_FILE_BYTES, MAX_NODES, YNode
from macrowatch.engine.alerting import render
from macrowatch.sources import files
from macrowatch.sources.calendar import close_times

pytestmark = pytest.mark.slow  # hypothesis fuzzing, monster files

REPO = Path(__file__).resolve().parents[2]
LONG = os.environ.get("MACROWATCH_LONG_TESTS") == "1"
SCALE = 20 if LONG else 1
FUZZ = settings(max_examples=300 * SCALE, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
EXE = Path(sys.executable).parent / "macrowatch"

# ---- seeds ------------------------------------------------------------------------------------------------

FULL = textwrap.dedent("""\
    timezone: America/New_York
    calendar: XNYS
    store: state/mw.sqlite
    poll: {intraday: 5m}
    health: {listen: "127.0.0.1:9108"}
    sources:
      fred: {api_key: "${MW_FUZZ_KEY}", url: "http://127.0.0.1:1/fred"}
      yahoo: {url: "http://127.0.0.1:1"}
    instruments:
      spx: {symbol: "^GSPC", name: "S&P 500"}
      rty: {symbol: "RTY=F", name: "Russell futures", calendar: CMES}
    levels:
      spx-3000: {instrument: spx, price: 3000, approach_pct: 1.5, buffer_pct: 0.2, fail_within_bars: 3}
      spx-range: {instrument: spx, kind: range_high, since: 2019-05-01}
      spx-52w: {instrument: spx, kind: high_of, bars: 252}
      spx-low: {instrument: spx, price: 2700, side: support}
      rty-ath: {instrument: rty, kind: all_time_high}
    breakout: {approach_pct: 1.0, buffer_pct: 0.0, fail_within_bars: 5}
    releases:
      employment: {fred_release_id: 50, time: "08:30", dates: [2019-08-02, 2019-09-06]}
    macro:
      payrolls: {series: PAYEMS, release: employment, measure: change, beat_by: 25,
                 consensus: {2019-07: 160, 2019-08-01: 150}}
      unrate: {series: UNRATE, release: employment, measure: level, higher_is: worse, beat_by: 0.1}
    channels:
      trading: "${MW_FUZZ_URLS}"
      ops: ["json://127.0.0.1:1/ops"]
    rules:
      - name: breakout-with-jobs
        when:
          all:
            - {level: spx-3000, state: [approaching, breakout]}
            - {release: payrolls, outcome: beat, within: 1d}
            - not: {level: spx-low, entered: breakdown}
            - any: [{instrument: spx, narrow_range: {bars: 5, pct: 1.5}}, {level: rty-ath, state: confirmed}]
        severity: critical
        notify: [trading, ops]
        chart: spx
        for: 2 bars
        cooldown: 10d
        on: [close, release, intraday]
        labels: {desk: macro, n: 3}
        message: "{spx.name} {spx.close:,.2f} {spx-3000.state:>10} {payrolls.actual:+.0f}k {unrate.ref_period:%Y-%m}"
    """)
ANCHORS = textwrap.dedent("""\
    breakout: &tuning {approach_pct: 1.0, fail_within_bars: 4}
    instruments:
      spx: &inst {symbol: "^GSPC", name: "S&P 500"}
      spy: *inst
    levels:
      a: &lvl {instrument: spx, price: 100}
      b: {<<: *lvl, price: 200}
      c: {<<: [*lvl, *tuning], side: support}
    rules:
      - &rule {name: r1, when: {level: a, entered: breakout}, message: "{spx.close:.2f} {a.price}"}
      - {<<: *rule, name: r2}
    """)
SEEDS = [(p.name, p.read_text()) for p in sorted((REPO / "rules").glob("*.yaml"))
         if not p.name.endswith(".test.yaml")] + [("full.yaml", FULL), ("anchors.yaml", ANCHORS)]

MARKER_NAME = "PWNED"
# Every way of writing a python object in YAML; each would create the marker file if it were constructed.
PYTHON_TAGS = [
    '!!python/object/apply:os.system ["touch {marker}"]',
    '!!python/object/apply:subprocess.check_call [["touch", "{marker}"]]',
    '!!python/object/new:subprocess.Popen [["touch", "{marker}"]]',
    '!!python/object/apply:builtins.exec ["open(\'{marker}\', \'w\').close()"]',
    '!!python/object:__main__.X {{a: 1}}',
    '!!python/name:os.system',
    '!!python/module:os',
    '!<tag:yaml.org,2002:python/object/apply:os.system> ["touch {marker}"]',
    '!!binary aGVsbG8=',
    '!!set {{a, b}}',
    '!!omap [a: 1]',
    '!custom "touch {marker}"',
]
# Values of every other type, and the YAML tricks: dropped in where a value stood.
POOL = [
    "[]", "{}", "null", "~", "true", "no", "-1", "0", "0.0", "1e999", "-1e999", ".nan", ".inf", "-.inf",
    "0x1F", "0o17", "1_000", "8:30", "2019-13-45", "2019-02-30", "2019-08-02T08:30:00Z", "'${MW_FUZZ_UNSET}'",
    "'${HOME}'", "'${MW_FUZZ_KEY:-fallback}'", "9" * 400, "-" + "9" * 400, "9" * 5000, "x" * 3000,
    "{a: [b, {c: d}]}", "[[[[[]]]]]", "*nowhere", "&anchor 5", "!!str 5", "!!int abc", "!!float x",
    "!!bool maybe", "!!timestamp soon", "!!null x", "!!map x", "!!seq x", "!!int [1]", '"\\0\\x07\\u2028"',
    "|\n  text\n", ">-\n  folded\n", "'{spx.close:{spx.close}}'", "'{spx.__class__}'", "'{0}'", "'{spx[0]}'",
    "'{spx.close!x}'", "'{spx.close:999999999}'", "'}{'", "? complex\n", "- - - -", "@reserved", "`tick",
    "%directive", "#comment", "'\\ud800'", "\t", "'\u202e\u0000'",
]
SPECIAL = [b":", b"-", b"[", b"]", b"{", b"}", b"&", b"*", b"!", b"|", b">", b"'", b'"', b"#", b"%", b"@",
           b"`", b"?", b",", b"\t", b"\\", b"<<", b"---", b"...", b"\r", b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80"]


# ---- mutations --------------------------------------------------------------------------------------------

def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _delete_line(draw, data):
    lines = _lines(data)
    del lines[draw(st.integers(0, len(lines) - 1))]
    return b"\n".join(lines)


def _duplicate_line(draw, data):
    lines = _lines(data)
    i = draw(st.integers(0, len(lines) - 1))
    lines.insert(draw(st.integers(0, len(lines))), lines[i])
    return b"\n".join(lines)


def _swap_lines(draw, data):
    lines = _lines(data)
    i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
    lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


def _reindent(draw, data):
    lines = _lines(data)
    i = draw(st.integers(0, len(lines) - 1))
    lines[i] = draw(st.sampled_from([b"  ", b" ", b"\t", b""])) + (lines[i][2:] if draw(st.booleans())
                                                                    else lines[i])
    return b"\n".join(lines)


def _truncate(draw, data):
    return data[:draw(st.integers(0, len(data)))]


def _insert_bytes(draw, data):
    at = draw(st.integers(0, len(data)))
    return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]


def _insert_text(draw, data):
    at = draw(st.integers(0, len(data)))
    return data[:at] + draw(st.text(min_size=1, max_size=12)).encode("utf-8", "surrogatepass") + data[at:]


def _special(draw, data):
    at = draw(st.integers(0, len(data)))
    cut = draw(st.integers(0, 2))
    return data[:at] + draw(st.sampled_from(SPECIAL)) + data[at + cut:]


def _swap_value(draw, data):
    """A value (after `key: ` or `- `, or inside a flow mapping) replaced by one of another kind."""
    spots = [m for m in re.finditer(rb"(?:: |- |\[|, )([^,\]\}\n#]+)", data)]
    if not spots:
        return data
    m = draw(st.sampled_from(spots))
    new = draw(st.sampled_from(POOL + PYTHON_TAGS)).replace("{marker}", MARKER_NAME).replace("{{", "{")
    new = new.replace("}}", "}")
    return data[:m.start(1)] + new.encode("utf-8", "surrogatepass") + data[m.end(1):]


def _rename_key(draw, data):
    keys = list(re.finditer(rb"([A-Za-z_][\w-]*):", data))
    if not keys:
        return data
    m = draw(st.sampled_from(keys))
    key = m.group(1)
    new = draw(st.sampled_from([key[:-1], key + b"s", key.upper(), b"<<", key + key, b"", b"'" + key]))
    return data[:m.start(1)] + new + data[m.end(1):]


OPS = [_delete_line, _duplicate_line, _swap_lines, _reindent, _truncate, _insert_bytes, _insert_text,
       _special, _swap_value, _swap_value, _rename_key]


@st.composite
def mutated_configs(draw) -> tuple[str, bytes]:
    name, text = draw(st.sampled_from(SEEDS))
    data = text.encode()
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(OPS))
        event(op.__name__)
        data = op(draw, data)
    return name, data


# ---- checking `macrowatch check` --------------------------------------------------------------------------

def located(path: Path) -> re.Pattern[str]:
    """A line of `check`'s stderr: FILE:LINE:COL: message, or FILE: message (file-level and the summary)."""
    return re.compile(re.escape(str(path)) + r"(?::[1-9]\d*:[1-9]\d*)?: \S.*")


def check(path: Path, *extra: str):
    """`macrowatch check` in-process; asserts what holds for any input; returns the result."""
    result = CliRunner().invoke(cli, ["check", *extra, "-c", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{type(result.exception).__name__}: {str(result.exception)[:300]}"
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), result.output[:1000]
    pattern = located(path)
    for line in result.stderr.splitlines():
        assert pattern.fullmatch(line), f"unlocated line in stderr: {line[:300]!r}"
    if result.exit_code == 2:
        assert result.stdout == ""
        assert re.fullmatch(re.escape(str(path)) + r": \d+ errors?", result.stderr.splitlines()[-1])
    else:
        assert result.stdout.splitlines()[-1].startswith(f"{path}: ok: ")
    return result


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("MW_FUZZ_KEY", "fuzz-key-0123456789")
    monkeypatch.setenv("MW_FUZZ_URLS", "json://127.0.0.1:1/hook")
    monkeypatch.delenv("MW_FUZZ_UNSET", raising=False)
    monkeypatch.delenv("MACROWATCH_CONFIG", raising=False)


def test_every_seed_is_a_valid_config(env, tmp_path):
    for name, text in SEEDS:
        path = tmp_path / name
        path.write_text(text)
        assert check(path).exit_code == 0, name


@FUZZ
@given(case=mutated_configs())
def test_mutated_configs_fail_cleanly(env, case):
    name, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        result = check(path)
        event(f"exit {result.exit_code}")
        assert not (Path(tmp) / MARKER_NAME).exists() and not Path(MARKER_NAME).exists()


@FUZZ
@given(value=st.one_of(st.text(max_size=40).map(json.dumps), st.sampled_from(POOL + PYTHON_TAGS)),
       key=st.sampled_from(["timezone", "calendar", "store", "poll", "health", "sources", "instruments", "levels",
                            "breakout", "releases", "macro", "channels", "rules"]))
def test_any_value_under_any_top_key(env, tmp_path, value, key):
    # A top-level key (its whole block taken out of FULL) given a value of any type: a string, or a trick.
    path = tmp_path / "swap.yaml"
    text = re.sub(rf"(?m)^{key}:.*(\n[ -].*)*\n", "", FULL)
    path.write_text(text + f"{key}: {value.replace('{marker}', MARKER_NAME)}\n")
    check(path)


@FUZZ
@given(text=st.text(max_size=300))
def test_random_unicode_is_not_a_crash(env, tmp_path, text):
    path = tmp_path / "random.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    check(path)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_are_not_a_crash(env, tmp_path, data):
    path = tmp_path / "random.yaml"
    path.write_bytes(data)
    check(path)


# ---- the monsters -----------------------------------------------------------------------------------------

def _laughs(levels: int = 9) -> str:
    out = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        out.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(out) + "\n"


def _map_laughs(levels: int = 9) -> str:
    out = ["m0: &m0 {k0: lol, k1: lol, k2: lol, k3: lol, k4: lol, k5: lol, k6: lol, k7: lol, k8: lol}"]
    for i in range(1, levels + 1):
        out.append(f"m{i}: &m{i} {{" + ", ".join(f"k{j}: *m{i - 1}" for j in range(9)) + "}")
    return "\n".join(out) + "\n"


def _merge_laughs(levels: int = 12) -> str:
    out = ["m0: &m0 {x0: 1, x1: 2}"]
    for i in range(1, levels + 1):
        out.append(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], y{i}: {{a: *m{i - 1}, b: *m{i - 1}}}}}")
    return "\n".join(out) + "\n"


def _block_nesting(depth: int) -> str:
    return "".join(f"{' ' * i}k{i}:\n" for i in range(depth)) + " " * depth + "v\n"


MONSTERS = {
    "nested-lists-10000": ("[" * 10_000 + "]" * 10_000, "nested too deeply"),
    "nested-maps-10000": ("{a: " * 10_000 + "b" + "}" * 10_000, "nested too deeply"),
    "nested-mixed-10000": ("{a: [" * 5_000 + "]}" * 5_000, "nested too deeply"),
    "nested-block-1000": (_block_nesting(1000), "nested too deeply"),
    "nested-rules-100": ("rules:\n- name: r\n  when: " + "{not: " * 100 + "{level: x, state: below}"
                         + "}" * 100 + "\n", "nested too deeply"),
    "nested-conditions-40": ("instruments: {spx: {symbol: X}}\nlevels: {x: {instrument: spx, price: 1}}\n"
                             "rules:\n- name: r\n  when: " + "{not: " * 40 + "{level: x, state: below}"
                             + "}" * 40 + "\n", "conditions nested deeper than"),
    "laughs-lists": (_laughs(), "expands to more than"),
    "laughs-maps": (_map_laughs(), "expands to more than"),
    "laughs-merge": (_merge_laughs(), "expands to more than"),
    "laughs-in-rules": ("rules: &r [" + ", ".join(["{name: r, when: {level: x, state: below}}"] * 9) + "]\n"
                        + "".join(f"x{i}: &x{i} [" + ", ".join([f"*{'r' if i == 0 else f'x{i - 1}'}"] * 9)
                                  + "]\n" for i in range(8)), "expands to more than"),
    "too-many-values": ("a: [" + "1," * (MAX_NODES + 10) + "1]\n", f"more than {MAX_NODES} values"),
    "nul-byte": ("rules:\n- name: r\x00\n", "U+0000 is not allowed"),
    "bell": ("a: \x07\n", "U+0007 is not allowed"),
    "several-documents": ("a: 1\n---\nb: 2\n", "one YAML document"),
    "empty": ("", "file is empty"),
    "comments-only": ("# nothing\n# here\n", "file is empty"),
    "a-list": ("- a\n- b\n", "a config file is a mapping"),
    "a-scalar": ("just words", "a config file is a mapping"),
}


@pytest.fixture
def composed(monkeypatch) -> list[int]:
    """Counts the YAML nodes composed: the work a file costs, whatever the machine's speed."""
    count = [0]
    real = yamlsrc._Loader.compose_node

    def counting(self, parent, index):
        count[0] += 1
        return real(self, parent, index)

    monkeypatch.setattr(yamlsrc._Loader, "compose_node", counting)
    return count


@pytest.mark.parametrize("name", MONSTERS)
def test_monster_configs_fail_with_a_location_and_bounded_work(env, tmp_path, composed, name):
    text, expected = MONSTERS[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    result = check(path)
    assert result.exit_code == 2
    assert expected in result.stderr, result.stderr
    assert composed[0] <= MAX_NODES + 1


def test_file_over_the_size_limit_is_refused_unread(env, tmp_path, composed):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"a: " + b"x" * MAX_FILE_BYTES + b"\n")
    result = check(path)
    assert result.exit_code == 2 and f"{path}: file is larger than" in result.stderr
    assert composed[0] == 0


@pytest.mark.parametrize("shape", ["values", "one-string", "long-lines"])
def test_file_just_under_the_size_limit_is_bounded(env, tmp_path, composed, shape):
    # Just under the limit: the composer stops at the node budget (a file of 2 million values once took a
    # minute and 1.3 GB before the budget was checked after composing; now it takes a few seconds).
    size = MAX_FILE_BYTES - 64
    text = {"values": "a: [" + "1," * (size // 2 - 4) + "1]\n",
            "one-string": "rules:\n- name: r\n  when: {level: x, state: below}\n  message: \"" + "{" * 2
                          + "x" * (size - 100) + "}" * 2 + "\"\n",
            "long-lines": ("# " + "c" * 1000 + "\n") * (size // 1003)}[shape]
    path = tmp_path / f"{shape}.yaml"
    path.write_text(text)
    assert path.stat().st_size <= MAX_FILE_BYTES
    assert check(path).exit_code == 2
    assert composed[0] <= MAX_NODES + 1


@pytest.mark.parametrize("name", ["nul-byte", "laughs-lists", "nested-maps-10000", "several-documents"])
def test_a_monster_in_a_config_directory_is_named_by_its_file(env, tmp_path, name):
    (tmp_path / "a-good.yaml").write_text(FULL)
    (tmp_path / "b-bad.yaml").write_text(MONSTERS[name][0])
    result = CliRunner().invoke(cli, ["check", "-c", str(tmp_path)])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output[:1000]
    lines = result.stderr.splitlines()
    assert lines[-1].startswith(f"{tmp_path}: ")
    bad = located(tmp_path / "b-bad.yaml")
    assert all(bad.fullmatch(line) or located(tmp_path / "a-good.yaml").fullmatch(line) for line in lines[:-1])
    assert any(bad.fullmatch(line) and MONSTERS[name][1] in line for line in lines[:-1]), result.stderr


# What the fuzzers found (each was a traceback, an unlocated line, or minutes of work), kept as plain cases.
FOUND = {
    "control character": ("a: \x07\n", "U+0007 is not allowed"),  # the error was two lines, with no place
    "tag on a value it does not fit": ("a: !!bool maybe\nb: !!timestamp soon\n", "bad value 'maybe'"),
    "map tag on a scalar": ("rules: !!map x\n", "map tag on a plain value"),
    "huge integer": ("breakout: {approach_pct: " + "9" * 400 + "}\n", "too large for a float"),
    "huge duration": ("rules:\n- {name: r, when: {level: x, state: below}, cooldown: 99999999999999d}\n",
                      "is not a duration"),
    "long duration": ("poll: {intraday: 99999999d}\n", "is too long"),
    "unknown conversion": ("rules:\n- {name: r, when: {level: x, state: below}, message: '{x.price!x}'}\n",
                           "conversion !x"),
    "wide format": ("rules:\n- {name: r, when: {level: x, state: below}, message: '{x.price:999999999}'}\n",
                    "widths and precisions go up to"),
    "lone surrogate": ('store: "\\ud800\\udc00"\n', "surrogate pair is not text"),
    "NUL in a path": ('store: "a\\0b"\n', "a NUL or half"),
    "time zone too long for a file name": (f"timezone: {'x' * 3000}\n", "unknown time zone"),
}


@pytest.mark.parametrize("name", FOUND)
def test_what_the_fuzzers_found(env, tmp_path, name):
    text, expected = FOUND[name]
    path = tmp_path / "found.yaml"
    path.write_text("instruments: {spx: {symbol: X}}\nlevels: {x: {instrument: spx, price: 1}}\n" + text)
    result = check(path)
    assert result.exit_code == 2 and expected in result.stderr, result.stderr


INVALID_UTF8 = {
    "ff": b"rules: \xff\n",
    "lone-continuation": b"a: \x80\n",
    "overlong": b"a: \xc0\xaf\n",
    "surrogate": b"a: \xed\xa0\x80\n",
    "truncated": b"a: \xe2\x82\n",
    "utf16-bom": "rules: []\n".encode("utf-16"),
    "latin1": "timezone: Europe/Zürich\n".encode("latin-1"),
}


@pytest.mark.parametrize("name", INVALID_UTF8)
def test_invalid_utf8_is_a_file_level_error(env, tmp_path, name):
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(INVALID_UTF8[name])
    result = check(path)
    assert result.exit_code == 2 and f"{path}: file is not UTF-8 text (byte " in result.stderr


@pytest.mark.parametrize("variant", ["bom", "crlf", "no-final-newline"])
def test_harmless_encodings_of_a_good_config_pass(env, tmp_path, variant):
    text = dict(SEEDS)["full.yaml"]
    data = {"bom": b"\xef\xbb\xbf" + text.encode(), "crlf": text.replace("\n", "\r\n").encode(),
            "no-final-newline": text.rstrip("\n").encode()}[variant]
    path = tmp_path / "good.yaml"
    path.write_bytes(data)
    assert check(path).exit_code == 0


# ---- no YAML construct runs code --------------------------------------------------------------------------

PLACES = {
    "top-value": "{tag}\n",
    "top-key": "? {tag}\n: 1\n",
    "nested-value": "instruments:\n  spx: {{symbol: {tag}}}\n",
    "list-item": "rules:\n- {tag}\n",
    "anchored": "x: &evil {tag}\ny: *evil\n",
    "merged": "levels:\n  a: {{<<: {tag}, instrument: spx}}\n",
    "document": "--- {tag}\n",
    "tag-directive": "%TAG !py! tag:yaml.org,2002:python/\n---\na: !py!object/apply:os.system [\"touch {marker}\"]\n",
}


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("tag", PYTHON_TAGS, ids=[t.split()[0][:40] for t in PYTHON_TAGS])
def test_no_yaml_construct_runs_code(env, tmp_path, monkeypatch, place, tag):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / MARKER_NAME
    tag_text = tag.format(marker=marker)
    text = PLACES[place].replace("{tag}", tag_text.replace("{", "{{").replace("}", "}}")).format(marker=marker)
    path = tmp_path / "evil.yaml"
    path.write_text(text)
    result = check(path)
    assert result.exit_code == 2
    assert not marker.exists()
    # Refused as a tag, as a key that is no plain string, or (a tag that swallows the flow's closing
    # brace) as a syntax error: never constructed.
    assert re.search(r"unsupported YAML tag|mapping keys must be plain strings|YAML syntax error", result.stderr)


# ---- message templates reach only the documented fields -----------------------------------------------------

KNOWN = Known(instruments={"spx": None, "rut": None}, levels={"spx-3000": None}, macro={"payrolls": None},
              channels={})
# The parser only needs the ids to exist; None marks each as declared (the template check reads ids only).
WHITELIST = {(ident, attr) for kind, table in (("instrument", KNOWN.instruments), ("level", KNOWN.levels),
                                               ("macro", KNOWN.macro))
             for ident in table for attr in TEMPLATE_FIELDS[kind]}
ESCAPES = [
    "{spx.__class__}", "{spx.close.__class__}", "{spx.close.__class__.__mro__}", "{spx.close.real}",
    "{spx.name.upper}", "{0}", "{}", "{0.__class__}", "{spx[0]}", "{spx[close]}", "{spx.close[0]}",
    "{payrolls.ref_period.year}", "{payrolls.__dict__}", "{spx.__init__.__globals__}", "{__import__}",
    "{spx.close:{spx.close}}", "{spx.close:{0}}", "{spx.close:>{spx.name}}", "{spx.close!x}", "{spx.close!}",
    "{spx.close!rr}", "{spx.close:999999999}", "{spx.close:.999999999f}", "{spx.name:>1000000}",
    "{spx.close:%Y}", "{spx.name:d}", "{spx.close:s}", "{spx-3000.state:.2f}", "{payrolls.ref_period:%Y:{x}}",
    "{ spx.close}", "{spx.close }", "{spx .close}", "{spx.close:", "{spx.close", "}", "{{spx.close}",
    "{spx.Close}", "{SPX.close}", "{spx.closes}", "{spx.price}", "{spx-3000.close}", "{payrolls.close}",
    "{unknown.close}", "{spx.close.close}", "{self.config}", "{config.fred.api_key}",
]


def _template(text: str) -> tuple[object, Problems]:
    problems = Problems()
    return template(Reader(problems), YNode(text, Loc("t.yaml", 3, 14)), KNOWN), problems


@pytest.mark.parametrize("text", ESCAPES)
def test_template_tricks_are_rejected_at_load(text):
    result, problems = _template(f"alert: {text} end")
    assert result is None
    assert problems.errors and all(str(p.loc) == "t.yaml:3:14" for p in problems.errors)


class Recorder(dict):
    """The values handed to `render`, recording every key it asks for."""

    def __init__(self, *args):
        super().__init__(*args)
        self.asked: list = []

    def get(self, key, default=None):
        self.asked.append(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.append(key)
        return super().__getitem__(key)


_FIELDS = sorted(WHITELIST) + [("spx", "__class__"), ("spx.close", "real"), ("spx", "close.real"),
                               ("0", "x"), ("unknown", "close")]
_SPECS = ["", ":.2f", ":+.0f", ":,.1f", ":>10", ":<5", ":^7", ":=+12.3f", ":%Y-%m", ":x", ":d", ":s", ":e",
          ":%", ":0>8", ":_", ":.3", ":#", ":{x}", ":999999", ":" + "9" * 30, ":.200f", ":201"]
_CONV = ["", "!r", "!s", "!a", "!x", "!"]


@st.composite
def templates(draw) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 5))):
        literal = draw(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=8))
        ident, attr = draw(st.sampled_from(_FIELDS))
        field = f"{ident}.{attr}{draw(st.sampled_from(_CONV))}{draw(st.sampled_from(_SPECS))}"
        parts.append(literal + draw(st.sampled_from(["{" + field + "}", "{{" + field + "}}", "{" + field])))
    return "".join(parts) + draw(st.sampled_from(["", "}", "{{", "}}", "{"]))


def _value(kind: str, attr: str):
    numbers = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e300, -1e300])
    if attr == "ref_period":
        return st.dates()
    if attr in ("name", "symbol", "state"):
        return st.text(max_size=20)
    return numbers


@FUZZ
@given(text=templates(), data=st.data())
def test_accepted_templates_render_only_whitelisted_fields(text, data):
    checked, problems = _template(text)
    if checked is None:
        event("rejected")
        assert problems.errors
        return
    event(f"accepted with {len(checked.fields)} fields")
    assert {(f.id, f.attr) for f in checked.fields} <= WHITELIST
    kinds = {ident: kind for kind, table in (("instrument", KNOWN.instruments), ("level", KNOWN.levels),
                                             ("macro", KNOWN.macro)) for ident in table}
    values = Recorder({key: data.draw(st.none() | _value(kinds[key[0]], key[1])) for key in sorted(WHITELIST)})
    out = render(checked, values)
    assert isinstance(out, str)
    assert set(values.asked) <= WHITELIST
    assert set(values.asked) == {(f.id, f.attr) for f in checked.fields}
    # No spec blows a message up: a field is at most a 309-digit float with 200 decimals and grouping.
    assert len(out) <= len(text) + 1000 * len(values.asked)


# ---- a few real processes ---------------------------------------------------------------------------------

SUBPROCESS_CASES = {
    "good": (FULL, 0, None),
    "nul": ("a: b\x00\n", 2, "U+0000"),
    "nested": ("[" * 10_000 + "]" * 10_000, 2, "nested too deeply"),
    "laughs": (_laughs(), 2, "expands to more than"),
    "python-tag": ('a: !!python/object/apply:os.system ["touch {marker}"]\n', 2, "unsupported YAML tag"),
    "overflow": ("levels:\n  x: {instrument: spx, price: " + "9" * 400 + "}\n", 2, "too large for a float"),
}


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_check_as_a_real_process(tmp_path, name):
    text, code, expected = SUBPROCESS_CASES[name]
    marker = tmp_path / MARKER_NAME
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace("{marker}", str(marker)))
    env = {**os.environ, "MW_FUZZ_KEY": "k" * 32, "MW_FUZZ_URLS": "json://127.0.0.1:1/hook", "HOME": str(tmp_path)}
    env.pop("MACROWATCH_DEBUG", None)
    proc = subprocess.run([str(EXE), "check", "-c", str(path)], capture_output=True, text=True, timeout=60,
                          env=env, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    pattern = located(path)
    assert all(pattern.fullmatch(line) for line in proc.stderr.splitlines()), proc.stderr
    if expected:
        assert expected in proc.stderr
    assert not marker.exists()


# ---- data files for `replay` ------------------------------------------------------------------------------

REPLAY_CONFIG = """\
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
levels:
  spx-100: {instrument: spx, price: 100, fail_within_bars: 2}
  spx-ath: {instrument: spx, kind: all_time_high}
  spx-lo: {instrument: spx, kind: low_of, bars: 3}
releases:
  es: {fred_release_id: 50, time: "08:30"}
macro:
  payrolls: {series: PAYEMS, release: es, measure: change, beat_by: 25, consensus: consensus-config.csv}
  payrolls-yoy: {series: PAYEMS, release: es, measure: yoy_pct, beat_by: 0.5}
  payrolls-pct: {series: PAYEMS, release: es, measure: pct_change, beat_by: 0.1}
rules:
  - name: breakout
    when: {level: spx-100, entered: breakout}
    message: "{spx.name} {spx.close:.2f} above {spx-100.price:.0f}"
  - {name: ath, when: {level: spx-ath, state: [breakout, confirmed]}}
  - {name: low, when: {level: spx-lo, entered: breakdown}}
  - name: jobs
    when: {release: payrolls, outcome: any}
    message: "{payrolls.actual:+.0f}k vs {payrolls.consensus:+.0f}k ({payrolls.surprise:+.1f}) {payrolls-yoy.actual}%"
  - {name: range, when: {instrument: spx, narrow_range: {bars: 3, pct: 2}}}
"""
SESSIONS = sorted(close_times("XNYS", dt.date(2019, 5, 1), dt.date(2019, 8, 30)))
PRICES = "Date,Open,High,Low,Close,Adj Close,Volume\n" + "".join(
    f"{d},{c},{c + 1},{c - 1},{c},{c},{1000 + i}\n"
    for i, (d, c) in enumerate((d, 95 + (i % 9)) for i, d in enumerate(SESSIONS)))
_MONTHS = [dt.date(2018 + (m - 1) // 12, (m - 1) % 12 + 1, 1) for m in range(1, 20)]
VINTAGES = "date,realtime_start,value\n" + "".join(
    f"{p},{_MONTHS[i + 1] + dt.timedelta(days=6)},{150000 + 170 * i}\n" + (
        f"{p},{_MONTHS[i + 2] + dt.timedelta(days=6)},{150010 + 170 * i}\n" if i + 2 < len(_MONTHS) else "")
    for i, p in enumerate(_MONTHS[:-1]))
CONSENSUS = "series,date,consensus\n" + "".join(f"PAYEMS,{p},{160 + i}\n" for i, p in enumerate(_MONTHS))
DATA_FILES = {"prices": "data/prices/GSPC.csv", "vintages": "data/macro/PAYEMS.csv",
              "consensus": "data/macro/consensus.csv", "consensus-config": "consensus-config.csv"}
BASE = {"prices": PRICES, "vintages": VINTAGES, "consensus": CONSENSUS, "consensus-config": CONSENSUS}

CELLS = ["", " ", "null", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e400", "-1e400", "9" * 400,
         "1e308", "-1e308", "5e-324", "-5", "0", "-0", "0x10", "1_000", "1,000", "١٢٣", "½", "1e", "--1",
         "2019-07-01", "0001-01-01", "9999-12-31", "2019-02-30", "2019-13-01", "1900-01-01", "2262-04-12",
         "2019-07-01T25:00", "2019-07-01 junk", "20190701", '"', '""', "\x00", "\ufeff", "\u2028", "x" * 500]


def _cell_swap(draw, data: bytes) -> bytes:
    lines = _lines(data)
    i = draw(st.integers(0, len(lines) - 1))
    cells = lines[i].split(b",")
    j = draw(st.integers(0, len(cells) - 1))
    cells[j] = draw(st.sampled_from(CELLS)).encode()
    lines[i] = b",".join(cells)
    return b"\n".join(lines)


def _drop_column(draw, data: bytes) -> bytes:
    lines = _lines(data)
    j = draw(st.integers(0, 6))
    return b"\n".join(b",".join(c for k, c in enumerate(line.split(b",")) if k != j) for line in lines)


def _drop_cell(draw, data: bytes) -> bytes:
    """One cell of one row deleted (or every value but the first): a short row, or a gap."""
    lines = _lines(data)
    i = draw(st.integers(0, len(lines) - 1))
    cells = lines[i].split(b",")
    if draw(st.booleans()):
        del cells[draw(st.integers(0, len(cells) - 1))]
    else:
        cells = cells[:1] + [draw(st.sampled_from([b"", b"null", b"nan"])) for _ in cells[1:draw(st.integers(1, 7))]]
    lines[i] = b",".join(cells)
    return b"\n".join(lines)


def _random_bytes(draw, data: bytes) -> bytes:
    return draw(st.binary(max_size=400))


def _header_only(draw, data: bytes) -> bytes:
    return _lines(data)[0] + b"\n"


DATA_OPS = [_cell_swap, _cell_swap, _cell_swap, _delete_line, _duplicate_line, _swap_lines, _truncate,
            _insert_bytes, _special, _drop_column, _drop_cell, _random_bytes, _header_only]


@st.composite
def mutated_data(draw) -> tuple[str, bytes]:
    which = draw(st.sampled_from(sorted(DATA_FILES)))
    data = BASE[which].encode()
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(DATA_OPS))
        event(f"{which}: {op.__name__}")
        data = op(draw, data)
    return which, data


def _replay(root: Path, files: dict[str, bytes | None], fmt: str = "text"):
    """`replay` over the base data with some files replaced (None: absent); asserts what holds for any input."""
    (root / "data" / "prices").mkdir(parents=True, exist_ok=True)
    (root / "data" / "macro").mkdir(exist_ok=True)
    (root / "mw.yaml").write_text(REPLAY_CONFIG)
    if "consensus-config" in files:
        files = {"consensus": None, **files}  # the data's consensus.csv would take precedence over it
    for which, rel in DATA_FILES.items():
        data = files.get(which, BASE[which].encode())
        if data is not None:
            (root / rel).write_bytes(data)
    result = CliRunner().invoke(cli, ["replay", "-c", str(root / "mw.yaml"), "--data", str(root / "data"),
                                      "--from", "2019-06-01", "--format", fmt])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{type(result.exception).__name__}: {str(result.exception)[:300]}"
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), result.output[:1000]
    if fmt == "jsonl" and result.exit_code == 0:  # strict JSON: no Infinity or NaN from overflowing values
        for line in result.stdout.splitlines():
            json.loads(line, parse_constant=_not_json)
    return result


def _not_json(constant: str):
    raise AssertionError(f"{constant} in a jsonl line: not JSON")


def _data_error(root: Path, result) -> tuple[str, int | None]:
    """The file (relative to root) and row named by replay's one error line."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    m = re.fullmatch(r"macrowatch replay: (?P<file>.+?\.csv)(?::(?P<row>\d+))?: \S.*", lines[0])
    assert m, lines[0]
    return str(Path(m["file"]).resolve().relative_to(root.resolve())), int(m["row"]) if m["row"] else None


def test_base_data_replays(tmp_path):
    result = _replay(tmp_path, {})
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") >= 3


@FUZZ
@given(case=mutated_data(), fmt=st.sampled_from(["text", "jsonl"]))
def test_mutated_data_files_fail_cleanly(case, fmt):
    which, data = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        result = _replay(root, {which: data}, fmt)
        event(f"exit {result.exit_code}")
        if result.exit_code == 2:
            name, row = _data_error(root, result)
            assert name == DATA_FILES[which]
            if row is not None:
                assert 1 <= row <= data.count(b"\n") + 2


def _same_read(path: Path) -> str | files.PriceColumns:
    """read_prices' result, asserted equal to the row-by-row text reader's (the same columns or error)."""
    def read(reader):
        try:
            return reader(path)
        except files.DataError as exc:
            return str(exc)

    fast, slow = read(files.read_prices), read(files._checked)
    assert type(fast) is type(slow), (fast, slow)
    if isinstance(slow, str):
        assert fast == slow
    else:
        for name in ("session", "open", "high", "low", "close", "volume"):
            x, y = getattr(fast, name), getattr(slow, name)
            assert x.dtype == y.dtype and np.array_equal(x, y), name
    return fast


@FUZZ
@given(data=st.data())
def test_the_fast_price_reader_reads_what_the_row_reader_reads(data):
    """read_prices' pandas path on mutated files: never accepts what the text reader rejects, never differs."""
    body = data.draw(st.sampled_from([PRICES, PRICES.replace(",Adj Close", "").replace(",0,", ",")])).encode()
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from([_cell_swap, _cell_swap, _cell_swap, _delete_line, _duplicate_line,
                                        _swap_lines, _drop_column, _drop_cell, _drop_cell, _special]))
        event(op.__name__)
        body = op(data.draw, body)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "X.csv"
        path.write_bytes(body)
        event("error" if isinstance(_same_read(path), str) else "read")


@pytest.mark.parametrize("cell", ["null", "NULL", "Null", "nan", "NaN", "NAN", "", "-nan", "N/A", "NA", "None",
                                  "<NA>", "#N/A", "1.#IND", "inf"])
@pytest.mark.parametrize("column", [1, 4, 6])
def test_every_spelling_of_a_missing_value_reads_as_the_row_reader_reads_it(tmp_path, cell, column):
    lines = PRICES.splitlines()
    cells = lines[4].split(",")
    cells[column] = cell
    lines[4] = ",".join(cells)
    path = tmp_path / "X.csv"
    path.write_text("\n".join(lines) + "\n")
    _same_read(path)


@pytest.mark.parametrize("row, cells", [(5, ",1"), (5, ","), (2, ",1"), (40, ",x")])
def test_a_row_with_more_cells_than_the_header_is_judged_as_text(tmp_path, row, cells):
    lines = PRICES.splitlines()
    lines[row - 1] += cells
    path = tmp_path / "X.csv"
    path.write_text("\n".join(lines) + "\n")
    _same_read(path)


@pytest.mark.parametrize("fmt, ok", [("%Y-%m-%d", True), ("%Y-%m-%d 10:00", True), (" %Y-%m-%d", True),
                                     ("%m/%d/%Y", False), ("%Y/%m/%d", False), ("%Y%m%d", False), ("%d.%m.%Y", False)])
def test_a_file_of_dates_in_another_format_is_judged_as_text(tmp_path, fmt, ok):
    """pandas takes its date format from the first row: a whole file of 07/01/2019 dates must not pass as dates."""
    lines = PRICES.splitlines()
    lines[1:] = [dt.date.fromisoformat(line[:10]).strftime(fmt) + line[10:] for line in lines[1:]]
    path = tmp_path / "X.csv"
    path.write_text("\n".join(lines) + "\n")
    got = _same_read(path)
    assert isinstance(got, str) != ok, got
    assert ok or ":2: Date: " in got


@pytest.mark.parametrize("which, column, bad, row", [
    ("prices", 4, "nan?", 5), ("prices", 4, "-1", 5), ("prices", 4, "1e400", 5), ("prices", 4, "9" * 400, 5),
    ("prices", 4, "inf", 5), ("prices", 0, "2019-02-30", 5), ("prices", 0, "yesterday", 5), ("prices", 2, "0.5", 5),
    ("prices", 6, "lots", 5),
    # A date far away is out of order in the middle of the file: at its end it is the one out of range.
    ("prices", 0, "9999-12-31", -1), ("prices", 0, "2262-04-12", -1), ("prices", 0, "0001-01-01", 2),
    ("vintages", 2, "NaN", 5), ("vintages", 2, "-inf", 5), ("vintages", 2, "1e400", 5),
    ("vintages", 0, "2019-13-01", 5), ("vintages", 1, "0001-01-01", 5), ("vintages", 0, "0001-01-01", 5),
    ("vintages", 1, "9999-12-31", 5), ("vintages", 1, "", 5),
    ("consensus", 2, "nan", 5), ("consensus", 2, "x", 5), ("consensus", 1, "July", 5), ("consensus", 0, "", 5),
])
def test_a_bad_cell_names_its_file_and_row(tmp_path, which, column, bad, row):
    lines = BASE[which].splitlines()
    row = row if row > 0 else len(lines)  # the row-th line of the file (line 1 is the header)
    cells = lines[row - 1].split(",")
    cells[column] = bad
    lines[row - 1] = ",".join(cells)
    result = _replay(tmp_path, {which: ("\n".join(lines) + "\n").encode()})
    assert result.exit_code == 2, result.output
    assert _data_error(tmp_path, result) == (DATA_FILES[which], row)


@pytest.mark.parametrize("which, change, row", [
    ("prices", "swap", 5), ("prices", "repeat", 5), ("vintages", "repeat", 5), ("consensus", "repeat", 5),
])
def test_dates_out_of_order_or_repeated_name_the_row(tmp_path, which, change, row):
    lines = BASE[which].splitlines()
    if change == "swap":
        lines[row - 2], lines[row - 1] = lines[row - 1], lines[row - 2]
    else:
        lines.insert(row - 1, lines[row - 2])
    result = _replay(tmp_path, {which: ("\n".join(lines) + "\n").encode()})
    assert result.exit_code == 2, result.output
    assert _data_error(tmp_path, result) == (DATA_FILES[which], row)


def test_a_first_row_longer_than_the_header_is_read_as_written(tmp_path):
    # pandas took its first cell for an index: every column shifted by one, and a traceback followed.
    lines = BASE["prices"].splitlines()
    lines[1] = "1," + lines[1]
    result = _replay(tmp_path, {"prices": ("\n".join(lines) + "\n").encode()})
    assert _data_error(tmp_path, result) == (DATA_FILES["prices"], 2)
    assert "Date: '1' is not a date" in result.stderr


def test_a_line_break_in_a_header_stays_on_the_error_line(tmp_path):
    result = _replay(tmp_path, {"consensus": "\v\u2028".encode() + BASE["consensus"].encode()})
    assert _data_error(tmp_path, result) == (DATA_FILES["consensus"], 1)
    assert "\\x0b\\u2028series" in result.stderr


@pytest.mark.parametrize("which", sorted(DATA_FILES))
def test_missing_columns_name_the_file(tmp_path, which):
    data = _drop_column(lambda _strategy: 0, BASE[which].encode())
    result = _replay(tmp_path, {which: data})
    assert result.exit_code == 2
    assert _data_error(tmp_path, result) in ((DATA_FILES[which], None), (DATA_FILES[which], 1))
