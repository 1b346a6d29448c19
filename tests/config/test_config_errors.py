"""Bad configs, one mistake each: every error is asserted with its exact line, column, rule and message.

Each case is a whole YAML file (or a fixed head plus the lines that differ), so that the expected line and
column of every error can be checked by eye. The comparison is of the full multiset of
`(line, col, rule, message)`, so a missing or an extra error fails the case. Warnings carried by a
ConfigError appear with their message prefixed by "warning: ".
"""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from macrowatch.config import ConfigError, load_config

CALENDARS = frozenset({"XNYS", "CMES"})

TOP_KEYS = ("timezone, calendar, store, poll, health, ha, sources, instruments, levels, breakout, releases, macro, "
            "channels, rules")
LEVEL_KEYS = "instrument, price, kind, side, since, bars, approach_pct, buffer_pct, fail_within_bars"
RULE_KEYS = "name, when, severity, notify, for, cooldown, chart, message, on, labels, score"
STARTS = "level, release, instrument, all, any, not"
RESISTANCE_STATES = "below, approaching, breakout, confirmed, failed"
SUPPORT_STATES = "above, approaching, breakdown, confirmed, failed"
DURATION = "use 'N bars', 'Nd', 'Nh' or 'Nm' with N > 0"
TIME_DURATION = "use 'Nd', 'Nh' or 'Nm' with N > 0"
NO_RULES = "no rules: a config needs at least one rule under 'rules:'"

# The smallest valid config; settings cases append their lines after it, from line BASE_LINES + 1 = 7.
BASE = """\
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
levels:
  spx-3000: {instrument: spx, price: 3000}
rules:
- {name: r1, when: {level: spx-3000, state: breakout}}
"""
BASE_LINES = BASE.count("\n")  # 6

# A config with one of everything a rule may name; rule cases append their `rules:` entries after it.
# The entries are written at column 1 (`- name: ...`), so a column in the snippet is the column in the file.
HEAD = """\
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
levels:
  spx-3000: {instrument: spx, price: 3000}
  spx-2700: {instrument: spx, price: 2700, side: support}
releases:
  jobs: {fred_release_id: 50, time: "08:30"}
macro:
  payrolls: {series: PAYEMS, release: jobs, measure: change}
channels:
  trading: "json://localhost"
rules:
"""
R = HEAD.count("\n")  # 12: the first line of a rule snippet is line R + 1


@dataclass(frozen=True)
class Case:
    id: str
    yaml: str
    expected: tuple[tuple[int, int, str | None, str], ...]


def case(id: str, yaml: str, *expected: tuple[int, int, str | None, str]) -> Case:
    """A whole file, written as an indented triple-quoted literal."""
    return Case(id, textwrap.dedent(yaml), expected)


def extra(id: str, lines: str, *expected: tuple[int, int, str | None, str]) -> Case:
    """BASE plus `lines` (line 1 of `lines` is line 7 of the file)."""
    return Case(id, BASE + textwrap.dedent(lines), expected)


def rule(id: str, snippet: str, *expected: tuple[int, int, str | None, str]) -> Case:
    """HEAD plus rule entries (line 1 of `snippet` is line R + 1 = 13 of the file)."""
    return Case(id, HEAD + textwrap.dedent(snippet), expected)


def problems_of(path: Path, for_run: bool = False) -> list[tuple[int, int, str | None, str]]:
    with pytest.raises(ConfigError) as info:
        load_config(path, for_run=for_run, calendars=lambda: CALENDARS)
    assert all(p.loc.file == str(path) for p in info.value.problems), info.value
    return [(p.loc.line, p.loc.col, p.rule, ("warning: " if p.warning else "") + p.message)
            for p in info.value.problems]


CASES = [
    # ---- YAML itself -------------------------------------------------------------------------------------
    case("yaml-syntax-unclosed-flow-mapping", """\
        instruments:
          spx: {symbol: "^GSPC"
        rules: []
        """,
         (3, 1, None, "YAML syntax error: expected ',' or '}', but got '<scalar>' "
                      "(while parsing a flow mapping at line 2, column 8)")),
    case("yaml-syntax-unclosed-quote", """\
        instruments:
          spx: {symbol: "^GSPC}
        rules: []
        """,
         (4, 1, None, "YAML syntax error: found unexpected end of stream "
                      "(while scanning a quoted scalar at line 2, column 17)")),
    case("yaml-syntax-tab-indent", """\
        instruments:
        \tspx: {symbol: "^GSPC"}
        """,
         (2, 1, None, "YAML syntax error: a tab character on line 2: YAML indents with spaces only")),
    case("yaml-syntax-bad-indent", """\
        timezone: UTC
          calendar: XNYS
        """,
         (2, 11, None, "YAML syntax error: likely a wrong indentation on line 2: it is indented more than the key "
                       "above it, so YAML reads it as the rest of that key's value (line up its key with the keys "
                       "above it)")),
    case("yaml-duplicate-top-key", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-3000: {instrument: spx, price: 3000}
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        levels:
          spx-3100: {instrument: spx, price: 3100}
        """,
         (7, 1, None, "duplicate key 'levels' (first at line 3)")),
    case("yaml-duplicate-key-in-flow-mapping", """\
        instruments:
          spx: {symbol: "^GSPC", symbol: "^SPX"}
        levels:
          spx-3000: {instrument: spx, price: 3000}
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (2, 26, None, "duplicate key 'symbol' (first at line 2)")),
    case("yaml-duplicate-id", """\
        instruments:
          spx: {symbol: "^GSPC"}
          spx: {symbol: "^SPX"}
        levels:
          spx-3000: {instrument: spx, price: 3000}
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (3, 3, None, "duplicate key 'spx' (first at line 2)")),
    case("yaml-document-is-a-list", """\
        - instruments
        - rules
        """,
         (1, 1, None, "a config file is a mapping of keys (timezone, calendar, store, poll, ...), got a list")),
    case("yaml-document-is-a-string", """\
        macrowatch
        """,
         (1, 1, None, "a config file is a mapping of keys (timezone, calendar, store, poll, ...), "
                      "got the string 'macrowatch'")),
    case("yaml-empty-file", "",
         (1, 1, None, "file is empty: expected a mapping of config keys")),
    case("yaml-only-comments", """\
        # instruments:
        #   spx: {symbol: "^GSPC"}
        """,
         (1, 1, None, "file is empty: expected a mapping of config keys")),
    case("yaml-two-documents", """\
        instruments:
          spx: {symbol: "^GSPC"}
        ---
        rules: []
        """,
         (4, 1, None, "a config file holds one YAML document, found several")),
    extra("yaml-python-tag", """\
        store: !!python/object/apply:os.system ["echo hi"]
        """,
          (7, 8, None, "unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'")),
    extra("yaml-local-tag", """\
        timezone: !env TZ
        """,
          (7, 11, None, "unsupported YAML tag '!env'")),
    case("yaml-impossible-date", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-range:
            instrument: spx
            kind: range_high
            since: 2019-02-30
        rules:
        - {name: r1, when: {level: spx-range, state: breakout}}
        """,
         (7, 12, None, "bad value '2019-02-30': day is out of range for month")),

    # ---- top level and settings ------------------------------------------------------------------------
    case("top-unknown-key-did-you-mean", """\
        timezon: America/New_York
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-3000: {instrument: spx, price: 3000}
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (1, 1, None, f"unknown key 'timezon' (did you mean 'timezone'?); allowed: {TOP_KEYS}")),
    extra("top-unknown-key-no-suggestion", """\
        alerts: []
        """,
          (7, 1, None, f"unknown key 'alerts'; allowed: {TOP_KEYS}")),
    extra("timezone-unknown", """\
        timezone: America/Gotham
        """,
          (7, 11, None, "timezone: unknown time zone 'America/Gotham' (an IANA name like America/New_York)")),
    extra("timezone-number", """\
        timezone: 5
        """,
          (7, 11, None, "timezone: expected a string, got the number 5")),
    extra("calendar-unknown-did-you-mean", """\
        calendar: XNYZ
        """,
          (7, 11, None, "calendar: unknown exchange calendar 'XNYZ' (did you mean 'XNYS'?) "
                        "(an exchange_calendars code like XNYS or CMES)")),
    extra("calendar-list", """\
        calendar: [XNYS]
        """,
          (7, 11, None, "calendar: expected a string, got a list")),
    extra("store-unknown-scheme", """\
        store: redis://localhost/0
        """,
          (7, 8, None, "store: expected a file path or a postgresql:// URL")),
    extra("store-number", """\
        store: 5
        """,
          (7, 8, None, "store: expected a string, got the number 5")),
    extra("poll-duration-weeks", """\
        poll: {intraday: 5 weeks}
        """,
          (7, 18, None, f"poll.intraday: '5 weeks' is not a duration; {TIME_DURATION}")),
    extra("poll-duration-zero", """\
        poll: {intraday: 0d}
        """,
          (7, 18, None, f"poll.intraday: '0d' is not a duration; {TIME_DURATION}")),
    extra("poll-duration-number", """\
        poll: {intraday: 5}
        """,
          (7, 18, None, f"poll.intraday: the number 5 is not a duration; {TIME_DURATION}")),
    extra("poll-duration-bars", """\
        poll: {intraday: 5 bars}
        """,
          (7, 18, None, "poll.intraday: takes elapsed time ('Nd', 'Nh' or 'Nm'), not bars")),
    extra("poll-unknown-key", """\
        poll:
          intraday: 5m
          every: 1m
        """,
          (9, 3, None, "poll: unknown key 'every'; allowed: intraday")),
    extra("health-listen-no-port", """\
        health: {listen: localhost}
        """,
          (7, 18, None, "health.listen: expected HOST:PORT or PORT, got 'localhost'")),
    extra("health-listen-port-too-big", """\
        health: {listen: "127.0.0.1:99999"}
        """,
          (7, 18, None, "health.listen: expected HOST:PORT or PORT, got '127.0.0.1:99999'")),
    extra("health-unknown-key", """\
        health:
          port: 9108
        """,
          (8, 3, None, "health: missing key 'listen'"),
          (8, 3, None, "health: unknown key 'port'; allowed: listen")),
    extra("health-not-a-mapping", """\
        health: 9108
        """,
          (7, 9, None, "health: expected a mapping, got the number 9108")),
    extra("ha-lease-too-short", """\
        store: "postgresql://127.0.0.1/mw"
        ha: {lease: 1s}
        """,
          (8, 13, None, "ha.lease: expected seconds ('Ns') or minutes ('Nm') from 3s to 10m, got '1s'")),
    extra("ha-lease-too-long", """\
        store: "postgresql://127.0.0.1/mw"
        ha: {lease: 11m}
        """,
          (8, 13, None, "ha.lease: expected seconds ('Ns') or minutes ('Nm') from 3s to 10m, got '11m'")),
    extra("ha-lease-a-bare-number", """\
        store: "postgresql://127.0.0.1/mw"
        ha: {lease: 10}
        """,
          (8, 13, None, "ha.lease: expected seconds ('Ns') or minutes ('Nm') from 3s to 10m, got the number 10")),
    extra("ha-unknown-key", """\
        store: "postgresql://127.0.0.1/mw"
        ha: {lease: 10s, renew: 2s}
        """,
          (8, 18, None, "ha: unknown key 'renew'; allowed: lease")),
    extra("ha-not-a-mapping", """\
        store: "postgresql://127.0.0.1/mw"
        ha: 10s
        """,
          (8, 5, None, "ha: expected a mapping, got the string '10s'")),
    extra("sources-unknown-key", """\
        sources:
          fred: {api_key: abc}
          bloomberg: {url: "https://example.com"}
        """,
          (9, 3, None, "sources: unknown key 'bloomberg'; allowed: fred, bls, yahoo, consensus")),
    extra("sources-fred-unknown-key", """\
        sources:
          fred: {apikey: abc}
        """,
          (8, 10, None, "sources.fred: unknown key 'apikey' (did you mean 'api_key'?); allowed: api_key, url")),
    extra("sources-bad-urls", """\
        sources:
          fred: {url: "ftp://mirror.example.com/fred"}
          yahoo: {url: mirror.example.com}
        """,
          (8, 15, None, "sources.fred.url: expected an http:// or https:// URL, got 'ftp://mirror.example.com/fred'"),
          (9, 16, None, "sources.yahoo.url: expected an http:// or https:// URL, got 'mirror.example.com'")),
    extra("sources-bls-unknown-key", """\
        sources:
          bls: {registrationkey: abc}
        """,
          (8, 9, None, "sources.bls: unknown key 'registrationkey'; allowed: api_key, url")),
    extra("sources-bls-bad-values", """\
        sources:
          bls: {api_key: 12345, url: "api.bls.gov"}
        """,
          (8, 18, None, "sources.bls.api_key: expected a string, got the number 12345"),
          (8, 30, None, "sources.bls.url: expected an http:// or https:// URL, got 'api.bls.gov'")),
    extra("sources-bls-not-a-mapping", """\
        sources:
          bls: "${BLS_API_KEY}"
        """,
          (8, 8, None, "sources.bls: expected a mapping, got the string '${BLS_API_KEY}'")),
    extra("breakout-unknown-key", """\
        breakout:
          approach_pct: 1.0
          bufer_pct: 0.5
        """,
          (9, 3, None, "breakout: unknown key 'bufer_pct' (did you mean 'buffer_pct'?); "
                       "allowed: approach_pct, buffer_pct, fail_within_bars")),
    extra("breakout-list", """\
        breakout: [1.0, 0.0, 5]
        """,
          (7, 11, None, "breakout: expected a mapping, got a list")),
    extra("breakout-string-for-number", """\
        breakout:
          approach_pct: "1%"
        """,
          (8, 17, None, "breakout.approach_pct: expected a number, got the string '1%'")),
    extra("breakout-fail-within-bars-too-big", """\
        breakout:
          fail_within_bars: 1000
        """,
          (8, 21, None, "breakout.fail_within_bars: must be at most 250, got 1000")),

    # ---- instruments -----------------------------------------------------------------------------------
    case("instrument-unknown-key", """\
        instruments:
          spx:
            symbol: "^GSPC"
            ticker: SPX
        levels:
          spx-3000: {instrument: spx, price: 3000}
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (4, 5, None, "instruments.spx: unknown key 'ticker'; allowed: symbol, name, calendar")),
    case("instrument-missing-symbol", """\
        instruments:
          spx: {name: "S&P 500"}
        levels:
          spx-3000: {instrument: spx, price: 3000}
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (2, 8, None, "instruments.spx: missing key 'symbol'")),
    case("instrument-symbol-with-space", """\
        instruments:
          spx: {symbol: "S&P 500"}
        levels:
          spx-3000: {instrument: spx, price: 3000}
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (2, 17, None, "instruments.spx.symbol: a ticker symbol has no spaces, got 'S&P 500'")),
    case("instrument-unknown-calendar", """\
        instruments:
          rty: {symbol: "RTY=F", calendar: NYMEX}
        levels:
          rty-2000: {instrument: rty, price: 2000}
        rules:
        - {name: r1, when: {level: rty-2000, state: breakout}}
        """,
         (2, 36, None, "instruments.rty.calendar: unknown exchange calendar 'NYMEX' "
                       "(an exchange_calendars code like XNYS or CMES)")),
    case("instrument-bad-id", """\
        instruments:
          500: {symbol: "^GSPC"}
        levels:
          spx-3000: {instrument: spx, price: 3000}
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (2, 3, None, "instruments: '500' is not a valid id (a letter, then letters, digits, '-' or '_')"),
         (4, 26, None, "levels.spx-3000.instrument: unknown instrument 'spx' (known: none defined)")),
    case("instruments-list-for-mapping", """\
        instruments: [spx]
        levels:
          spx-3000: {instrument: spx, price: 3000}
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (1, 14, None, "instruments: expected a mapping of id to definition, got a list"),
         (3, 26, None, "levels.spx-3000.instrument: unknown instrument 'spx' (known: none defined)")),
    case("id-shared-by-instrument-and-level", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx: {instrument: spx, price: 3000}
        rules:
        - {name: r1, when: {level: spx, state: breakout}}
        """,
         (4, 3, None, "levels.spx: the id is also used in instruments (at <FILE>:2:3); ids of instruments, "
                      "levels and macro series must differ, as message templates name them alone")),

    # ---- levels -----------------------------------------------------------------------------------------
    case("level-unknown-key-did-you-mean", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-3000:
            instrument: spx
            price: 3000
            aproach_pct: 0.5
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (7, 5, None, f"levels.spx-3000: unknown key 'aproach_pct' (did you mean 'approach_pct'?); "
                      f"allowed: {LEVEL_KEYS}")),
    case("level-unknown-instrument", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-3000:
            instrument: sp
            price: 3000
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (5, 17, None, "levels.spx-3000.instrument: unknown instrument 'sp' (did you mean 'spx'?) (known: spx)")),
    case("level-missing-instrument", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-3000:
            price: 3000
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (5, 5, None, "levels.spx-3000: missing key 'instrument'")),
    *[case(f"level-price-{name}", f"""\
        instruments:
          spx: {{symbol: "^GSPC"}}
        levels:
          spx-3000:
            instrument: spx
            price: {written}
        rules:
        - {{name: r1, when: {{level: spx-3000, state: breakout}}}}
        """,
           (6, 12, None, f"levels.spx-3000.price: {message}"))
      for name, written, message in [
          ("string", '"3000"', "expected a number, got the string '3000'"),
          ("negative", "-5", "must be greater than 0, got -5"),
          ("zero", "0", "must be greater than 0, got 0"),
          ("null", "null", "expected a number, got empty"),
          ("bool", "yes", "expected a number, got true"),
          ("list", "[3000, 3100]", "expected a number, got a list"),
          ("mapping", "{at: 3000}", "expected a number, got a mapping"),
          ("nan", ".nan", "expected a finite number, got nan"),
      ]],
    case("level-approach-pct-negative", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-3000:
            instrument: spx
            price: 3000
            approach_pct: -1
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (7, 19, None, "levels.spx-3000.approach_pct: must be at least 0, got -1")),
    case("level-approach-pct-percent-string", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-3000:
            instrument: spx
            price: 3000
            approach_pct: 1%
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (7, 19, None, "levels.spx-3000.approach_pct: expected a number, got the string '1%'")),
    case("level-fail-within-bars-zero", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-3000:
            instrument: spx
            price: 3000
            fail_within_bars: 0
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (7, 23, None, "levels.spx-3000.fail_within_bars: must be at least 1, got 0")),
    case("level-fail-within-bars-fraction", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-3000:
            instrument: spx
            price: 3000
            fail_within_bars: 2.5
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (7, 23, None, "levels.spx-3000.fail_within_bars: expected a whole number, got the number 2.5")),
    case("level-price-on-all-time-high", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-ath:
            instrument: spx
            kind: all_time_high
            price: 3000
        rules:
        - {name: r1, when: {level: spx-ath, state: breakout}}
        """,
         (7, 12, None, "levels.spx-ath.price: does not apply to kind all_time_high "
                       "(an all_time_high level follows the market)")),
    case("level-high-of-without-bars", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-52w:
            instrument: spx
            kind: high_of
        rules:
        - {name: r1, when: {level: spx-52w, state: breakout}}
        """,
         (5, 5, None, "levels.spx-52w: kind high_of needs the key 'bars'")),
    case("level-range-high-without-since", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-range:
            instrument: spx
            kind: range_high
            bars: 252
        rules:
        - {name: r1, when: {level: spx-range, state: breakout}}
        """,
         (5, 5, None, "levels.spx-range: kind range_high needs the key 'since'"),
         (7, 11, None, "levels.spx-range.bars: does not apply to kind range_high "
                       "(a range_high level follows the market)")),
    case("level-low-of-side-resistance", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-52wl:
            instrument: spx
            kind: low_of
            bars: 252
            side: resistance
        rules:
        - {name: r1, when: {level: spx-52wl, state: breakdown}}
        """,
         (8, 11, None, "levels.spx-52wl.side: kind low_of is a support level; side resistance does not apply")),
    case("level-unknown-kind", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-ath:
            instrument: spx
            kind: all_time_hi
        rules:
        - {name: r1, when: {level: spx-ath, state: breakout}}
        """,
         (6, 11, None, "levels.spx-ath.kind: 'all_time_hi' is not one of price, all_time_high, high_of, range_high, "
                       "all_time_low, low_of, range_low (did you mean 'all_time_high'?)")),
    case("level-unknown-side", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-2700:
            instrument: spx
            price: 2700
            side: floor
        rules:
        - {name: r1, when: {level: spx-2700, state: breakdown}}
        """,
         (7, 11, None, "levels.spx-2700.side: 'floor' is not one of resistance, support")),
    case("level-since-not-a-date", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-range:
            instrument: spx
            kind: range_high
            since: last year
        rules:
        - {name: r1, when: {level: spx-range, state: breakout}}
        """,
         (7, 12, None, "levels.spx-range.since: expected a date (YYYY-MM-DD), got the string 'last year'")),
    case("level-entry-is-a-list", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-3000: [spx, 3000]
        rules:
        - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (4, 13, None, "levels.spx-3000: expected a mapping, got a list")),

    # ---- releases and macro ----------------------------------------------------------------------------
    extra("release-without-source", """\
        releases:
          jobs:
            time: "08:30"
        """,
          (9, 5, None, "releases.jobs: needs fred_release_id (FRED's release calendar), bls (the BLS schedule) or "
                       "dates; any of them may be combined")),
    extra("release-time-out-of-range", """\
        releases:
          jobs:
            fred_release_id: 50
            time: "25:00"
        """,
          (10, 11, None, "releases.jobs.time: expected a time of day HH:MM, got the string '25:00'")),
    extra("release-time-decimal", """\
        releases:
          jobs:
            fred_release_id: 50
            time: 8.30
        """,
          (10, 11, None, "releases.jobs.time: expected a time of day HH:MM, got the number 8.3")),
    extra("release-id-string", """\
        releases:
          jobs:
            fred_release_id: "fifty"
        """,
          (9, 22, None, "releases.jobs.fred_release_id: expected a whole number, got the string 'fifty'")),
    extra("release-bls-empty", """\
        releases:
          jobs:
            bls: "  "
        """,
          (9, 10, None, "releases.jobs.bls: must not be empty")),
    extra("release-bls-not-a-string", """\
        releases:
          jobs: {fred_release_id: 50, bls: [Employment Situation]}
        """,
          (8, 36, None, "releases.jobs.bls: expected a string, got a list")),
    extra("release-bls-unset-variable", """\
        releases:
          jobs: {bls: "${MW_NO_SUCH_TITLE}"}
        """,
          (8, 15, None, "releases.jobs.bls: environment variable MW_NO_SUCH_TITLE is not set")),
    extra("macro-bls-series-lower-case", """\
        releases:
          jobs: {bls: Employment Situation}
        macro:
          payrolls: {series: PAYEMS, release: jobs, bls_series: ces0000000001}
        """,
          (10, 57, None, "macro.payrolls.bls_series: 'ces0000000001' is not a BLS series id (5 to 30 upper-case "
                         "letters and digits, like CES0000000001) (did you mean 'CES0000000001'?)")),
    extra("macro-bls-series-bad", """\
        releases:
          jobs: {bls: Employment Situation}
        macro:
          payrolls:
            series: PAYEMS
            release: jobs
            bls_series: "CES 0000000001"
        """,
          (13, 17, None, "macro.payrolls.bls_series: 'CES 0000000001' is not a BLS series id (5 to 30 upper-case "
                         "letters and digits, like CES0000000001)")),
    extra("macro-bls-series-a-number", """\
        releases:
          jobs: {bls: Employment Situation}
        macro:
          payrolls: {series: PAYEMS, release: jobs, bls_series: 10000000001}
        """,
          (10, 57, None, "macro.payrolls.bls_series: expected a string, got the number 10000000001")),
    extra("release-unknown-key", """\
        releases:
          jobs:
            fred_release_id: 50
            at: "08:30"
        """,
          (10, 5, None, "releases.jobs: unknown key 'at'; allowed: fred_release_id, bls, time, dates, briefing")),
    extra("briefing-bad-keys", """\
        releases:
          jobs:
            fred_release_id: 50
            briefing: {before: 3 bars, notify: [], every: 1d}
        """,
          (10, 44, None, "releases.jobs.briefing: unknown key 'every'; allowed: before, notify"),
          (10, 24, None, "releases.jobs.briefing.before: takes elapsed time ('Nd', 'Nh' or 'Nm'), not bars"),
          (10, 40, None, "releases.jobs.briefing.notify: must not be an empty list")),
    extra("briefing-missing-keys", """\
        releases:
          jobs: {fred_release_id: 50, briefing: {notify: ops}}
        """,
          (8, 41, None, "releases.jobs.briefing: missing key 'before'")),
    extra("briefing-bad-duration", """\
        releases:
          jobs: {fred_release_id: 50, briefing: {before: soon, notify: ops}}
        """,
          (8, 50, None, f"releases.jobs.briefing.before: 'soon' is not a duration; {TIME_DURATION}")),
    extra("briefing-unknown-channel", """\
        releases:
          jobs:
            fred_release_id: 50
            briefing: {before: 30m, notify: [trading, tradng]}
        channels:
          trading: "json://localhost"
        """,
          (10, 47, None, "releases.jobs.briefing.notify: unknown channel 'tradng' (did you mean 'trading'?) "
                         "(known: trading)")),
    extra("briefing-channel-twice", """\
        releases:
          jobs:
            fred_release_id: 50
            briefing: {before: 30m, notify: [trading, trading]}
        channels:
          trading: "json://localhost"
        """,
          (10, 37, None, "releases.jobs.briefing.notify: a channel is listed twice")),
    extra("release-dates-empty", """\
        releases:
          jobs:
            dates: []
        """,
          (9, 12, None, "releases.jobs.dates: expected a list of dates")),
    extra("release-dates-twice", """\
        releases:
          jobs:
            dates: [2019-08-02, 2019-09-06, 2019-08-02]
        """,
          (9, 12, None, "releases.jobs.dates: a date is listed twice")),
    extra("release-date-impossible", """\
        releases:
          jobs:
            dates: [2019-13-02]
        """,
          (9, 13, None, "bad value '2019-13-02': month must be in 1..12")),
    extra("macro-unknown-release", """\
        releases:
          jobs: {fred_release_id: 50}
        macro:
          payrolls:
            series: PAYEMS
            release: job
        """,
          (12, 14, None, "macro.payrolls.release: unknown release 'job' (did you mean 'jobs'?) (known: jobs)")),
    extra("macro-unknown-key", """\
        releases:
          jobs: {fred_release_id: 50}
        macro:
          payrolls:
            series: PAYEMS
            release: jobs
            beatby: 25
        """,
          (13, 5, None, "macro.payrolls: unknown key 'beatby' (did you mean 'beat_by'?); "
                        "allowed: series, release, measure, consensus, beat_by, higher_is, bls_series")),
    extra("macro-missing-series", """\
        releases:
          jobs: {fred_release_id: 50}
        macro:
          payrolls:
            release: jobs
        """,
          (11, 5, None, "macro.payrolls: missing key 'series'")),
    extra("macro-bad-measure", """\
        releases:
          jobs: {fred_release_id: 50}
        macro:
          payrolls:
            series: PAYEMS
            release: jobs
            measure: delta
        """,
          (13, 14, None, "macro.payrolls.measure: 'delta' is not one of level, change, pct_change, yoy_pct")),
    extra("macro-consensus-file-missing", """\
        releases:
          jobs: {fred_release_id: 50}
        macro:
          payrolls:
            series: PAYEMS
            release: jobs
            consensus: consensus.csv
        """,
          (13, 16, None, "macro.payrolls.consensus: file 'consensus.csv' not found (looked for <DIR>/consensus.csv)")),
    extra("macro-consensus-inline-bad", """\
        releases:
          jobs: {fred_release_id: 50}
        macro:
          payrolls:
            series: PAYEMS
            release: jobs
            consensus:
              2019-07: n/a
              2019-13: 150
        """,
          (14, 16, None, "macro.payrolls.consensus[2019-07]: expected a number, got the string 'n/a'"),
          (15, 7, None, "macro.payrolls.consensus key: expected a date (YYYY-MM-DD), got the string '2019-13'")),
    extra("macro-bad-higher-is", """\
        releases:
          jobs: {fred_release_id: 50}
        macro:
          unrate:
            series: UNRATE
            release: jobs
            higher_is: bad
        """,
          (13, 16, None, "macro.unrate.higher_is: 'bad' is not one of better, worse")),

    extra("consensus-feed-unknown", """\
        releases:
          jobs: {fred_release_id: 50}
        macro:
          payrolls:
            series: PAYEMS
            release: jobs
            consensus: {feed: forexfactroy, event: Non-Farm Employment Change, unit: 1000}
        """,
          (13, 23, None, "macro.payrolls.consensus.feed: 'forexfactroy' is not one of forexfactory, nasdaq "
                         "(did you mean 'forexfactory'?)")),
    extra("consensus-feed-unknown-key-and-no-event", """\
        releases:
          jobs: {fred_release_id: 50}
        macro:
          payrolls:
            series: PAYEMS
            release: jobs
            consensus: {feed: nasdaq, title: Nonfarm Payrolls}
        """,
          (13, 31, None, "macro.payrolls.consensus: unknown key 'title'; allowed: feed, event, unit, country"),
          (13, 16, None, "macro.payrolls.consensus: missing key 'event'")),
    extra("consensus-feed-bad-values", """\
        releases:
          jobs: {fred_release_id: 50}
        macro:
          payrolls:
            series: PAYEMS
            release: jobs
            consensus: {feed: nasdaq, event: " ", unit: 0, country: 5}
        """,
          (13, 38, None, "macro.payrolls.consensus.event: must not be empty"),
          (13, 49, None, "macro.payrolls.consensus.unit: must be greater than 0, got 0"),
          (13, 61, None, "macro.payrolls.consensus.country: expected a string, got the number 5")),
    extra("consensus-forexfactory-country-by-name", """\
        releases:
          jobs: {fred_release_id: 50}
        macro:
          unrate:
            series: UNRATE
            release: jobs
            consensus: {feed: forexfactory, event: Unemployment Rate, country: United States}
        """,
          (13, 72, None, "macro.unrate.consensus.country: ForexFactory names a country by its currency (USD, EUR, "
                         "GBP, ...), got 'United States'")),
    extra("consensus-file-after-a-feed", """\
        releases:
          cpi: {fred_release_id: 10}
        macro:
          cpi:
            series: CPIAUCSL
            release: cpi
            consensus: [{feed: nasdaq, event: CPI}, {2019-07: 0.3}]
        """,
          (13, 45, None, "macro.cpi.consensus #2: a file or inline entry after a feed; it is tried first, so "
                         "write it first")),
    extra("consensus-two-tables", """\
        releases:
          cpi: {fred_release_id: 10}
        macro:
          cpi:
            series: CPIAUCSL
            release: cpi
            consensus:
              - {2019-07: 0.3}
              - consensus.csv
              - {feed: forexfactory, event: CPI m/m}
        """,
          (15, 9, None, "macro.cpi.consensus #2: a second file or inline entry (the first at <FILE>:14:9); one per "
                        "macro")),
    extra("consensus-empty-list", """\
        releases:
          cpi: {fred_release_id: 10}
        macro:
          cpi: {series: CPIAUCSL, release: cpi, consensus: []}
        """,
          (10, 52, None, "macro.cpi.consensus: must not be an empty list")),
    extra("consensus-list-of-a-number", """\
        releases:
          cpi: {fred_release_id: 10}
        macro:
          cpi: {series: CPIAUCSL, release: cpi, consensus: [{feed: nasdaq, event: CPI}, 0.3]}
        """,
          (10, 81, None, "macro.cpi.consensus #2: expected a CSV file path (series,date,consensus), a mapping of "
                         "reference month to consensus value or a feed entry {feed: forexfactory|nasdaq, event: "
                         "TITLE, unit: N}, got the number 0.3")),
    extra("consensus-a-number", """\
        releases:
          cpi: {fred_release_id: 10}
        macro:
          cpi: {series: CPIAUCSL, release: cpi, consensus: 0.3}
        """,
          (10, 52, None, "macro.cpi.consensus: expected a CSV file path (series,date,consensus), a mapping of "
                         "reference month to consensus value or a feed entry {feed: forexfactory|nasdaq, event: "
                         "TITLE, unit: N}; or a list of these, got the number 0.3")),
    extra("consensus-feed-key-misspelt", """\
        releases:
          cpi: {fred_release_id: 10}
        macro:
          cpi: {series: CPIAUCSL, release: cpi, consensus: {fed: nasdaq}}
        """,
          (10, 53, None, "macro.cpi.consensus: unknown key 'fed' (did you mean 'feed'?); a feed entry has the keys "
                         "feed, event, unit, country")),
    extra("sources-consensus-unknown-feed", """\
        sources:
          consensus: {forexfactroy: {}, nasdaq: {url: api.nasdaq.com}}
        """,
          (8, 15, None, "sources.consensus: unknown key 'forexfactroy' (did you mean 'forexfactory'?); allowed: "
                        "forexfactory, nasdaq"),
          (8, 47, None, "sources.consensus.nasdaq.url: expected an http:// or https:// URL, got 'api.nasdaq.com'")),
    extra("sources-consensus-feed-unknown-key", """\
        sources:
          consensus:
            nasdaq: {user_agent: curl}
        """,
          (9, 14, None, "sources.consensus.nasdaq: unknown key 'user_agent'; allowed: url")),

    # ---- channels ---------------------------------------------------------------------------------------
    extra("channel-url-without-scheme", """\
        channels:
          trading: "hooks.slack.com/services/T000/B000/XXX"
        """,
          (8, 12, None, "channels.trading: URL #1 is not an apprise URL (scheme://...)")),
    extra("channel-second-url-without-scheme", """\
        channels:
          trading: "json://localhost, mailto"
        """,
          (8, 12, None, "channels.trading: URL #2 is not an apprise URL (scheme://...)")),
    extra("channel-list-with-number", """\
        channels:
          trading: ["json://localhost", 5]
        """,
          (8, 33, None, "channels.trading: expected a string, got the number 5")),
    extra("channel-mapping", """\
        channels:
          trading: {url: "json://localhost"}
        """,
          (8, 12, None, "channels.trading: expected a string, got a mapping")),

    # ---- the rules list ---------------------------------------------------------------------------------
    case("rules-missing", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-3000: {instrument: spx, price: 3000}
        """,
         (1, 1, None, NO_RULES)),
    case("rules-empty-list", """\
        instruments:
          spx: {symbol: "^GSPC"}
        rules: []
        """,
         (3, 1, None, NO_RULES)),
    case("rules-all-commented-out", """\
        instruments:
          spx: {symbol: "^GSPC"}
        rules:
        # - {name: r1, when: {level: spx-3000, state: breakout}}
        """,
         (3, 1, None, NO_RULES)),
    case("rules-mapping-for-list", """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          spx-3000: {instrument: spx, price: 3000}
        rules:
          r1: {when: {level: spx-3000, state: breakout}}
        """,
         (6, 3, None, "rules: expected a list of rules, got a mapping")),
    rule("rule-is-a-string", """\
        - spx-breakout
        """,
         (R + 1, 3, "#1", "rule: expected a mapping, got the string 'spx-breakout'")),
    rule("rule-without-name", """\
        - when: {level: spx-3000, state: breakout}
          notify: trading
        """,
         (R + 1, 3, "#1", "rule: missing key 'name'")),
    rule("rule-without-when", """\
        - name: r1
          notify: trading
        """,
         (R + 1, 3, "r1", "rule: missing key 'when'")),
    rule("rule-name-with-space", """\
        - name: spx breakout
          when: {level: spx-3000, state: breakout}
        """,
         (R + 1, 9, "spx breakout", "name: 'spx breakout' is not a valid rule name (a letter, then letters, digits, "
                                    "'-' or '_', at most 64)")),
    rule("rule-name-number", """\
        - name: 1
          when: {level: spx-3000, state: breakout}
        """,
         (R + 1, 9, "#1", "name: expected a string, got the number 1")),
    rule("rule-duplicate-name", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
        - name: r1
          when: {level: spx-3000, state: confirmed}
        """,
         (R + 3, 9, "r1", f"name: duplicate rule name (first at <FILE>:{R + 1}:9)")),
    rule("rule-unknown-key-did-you-mean", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          notfy: [trading]
        """,
         (R + 3, 3, "r1", f"rule: unknown key 'notfy' (did you mean 'notify'?); allowed: {RULE_KEYS}")),
    rule("rule-bad-severity", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          severity: critcal
        """,
         (R + 3, 13, "r1", "severity: 'critcal' is not one of info, warning, critical (did you mean 'critical'?)")),
    rule("rule-severity-number", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          severity: 3
        """,
         (R + 3, 13, "r1", "severity: the number 3 is not one of info, warning, critical")),
    rule("rule-bad-on", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          on: [close, tick]
        """,
         (R + 3, 15, "r1", "on: 'tick' is not one of close, release, intraday")),
    rule("rule-on-empty", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          on: []
        """,
         (R + 3, 7, "r1", "on: must not be an empty list")),
    rule("rule-bad-labels", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          labels:
            desk: [rates, equities]
            2nd: x
            paged: true
        """,
         (R + 4, 11, "r1", "labels.desk: expected a string or number, got a list"),
         (R + 5, 5, "r1", "labels: '2nd' is not a valid id (a letter, then letters, digits, '-' or '_')"),
         (R + 6, 12, "r1", "labels.paged: expected a string or number, got true")),
    rule("rule-labels-list", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          labels: [desk]
        """,
         (R + 3, 11, "r1", "labels: expected a mapping of names to values, got a list")),
    rule("rule-notify-unknown-channel", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          notify: [trading, ops]
        """,
         (R + 3, 21, "r1", "notify: unknown channel 'ops' (known: trading)")),
    rule("rule-notify-twice", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          notify: [trading, trading]
        """,
         (R + 3, 11, "r1", "notify: a channel is listed twice")),
    rule("rule-notify-empty", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          notify: []
        """,
         (R + 3, 11, "r1", "notify: must not be an empty list")),
    rule("rule-chart-unknown-instrument", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          chart: spy
        """,
         (R + 3, 10, "r1", "chart: unknown instrument 'spy' (known: spx)")),
    rule("rule-chart-is-a-level", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          chart: spx-3000
        """,
         (R + 3, 10, "r1", "chart: unknown instrument 'spx-3000' (known: spx)")),
    rule("rule-score-unknown-instrument", """\
        - name: r1
          when: {release: payrolls, outcome: beat}
          score: {instrument: spy, direction: short}
        """,
         (R + 3, 23, "r1", "score.instrument: unknown instrument 'spy' (known: spx)")),
    rule("rule-score-bad-direction", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          score: {direction: sell}
        """,
         (R + 3, 22, "r1", "score.direction: 'sell' is not one of long, short")),
    rule("rule-score-direction-misspelt", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          score: {direction: shrt}
        """,
         (R + 3, 22, "r1", "score.direction: 'shrt' is not one of long, short (did you mean 'short'?)")),
    rule("rule-score-unknown-key", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          score: {instrument: spx, horizon: 5}
        """,
         (R + 3, 28, "r1", "score: unknown key 'horizon'; allowed: instrument, direction")),
    rule("rule-score-empty", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          score: {}
        """,
         (R + 3, 10, "r1", "score: give 'instrument', 'direction' or both")),
    rule("rule-score-not-a-mapping", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          score: short
        """,
         (R + 3, 10, "r1", "score: expected a mapping, got the string 'short'")),
    rule("rule-for-number", """\
        - name: r1
          when: {level: spx-3000, state: approaching}
          for: 5
        """,
         (R + 3, 8, "r1", f"for: the number 5 is not a duration; {DURATION}")),
    rule("rule-cooldown-weeks", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          cooldown: 1 week
        """,
         (R + 3, 13, "r1", f"cooldown: '1 week' is not a duration; {DURATION}")),
    rule("rule-cooldown-zero", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          cooldown: 0d
        """,
         (R + 3, 13, "r1", f"cooldown: '0d' is not a duration; {DURATION}")),

    # ---- conditions -------------------------------------------------------------------------------------
    rule("when-unknown-level", """\
        - name: r1
          when: {level: spx-3100, state: breakout}
        """,
         (R + 2, 17, "r1", "when.level: unknown level 'spx-3100' (did you mean 'spx-3000'?) "
                           "(known: spx-2700, spx-3000)")),
    rule("when-level-names-an-instrument", """\
        - name: r1
          when: {level: spx, state: breakout}
        """,
         (R + 2, 17, "r1", "when.level: unknown level 'spx' (known: spx-2700, spx-3000)")),
    rule("when-breakout-on-support", """\
        - name: r1
          when: {level: spx-2700, state: breakout}
        """,
         (R + 2, 34, "r1", f"when.state: 'breakout' is not a state of support level spx-2700 "
                           f"(states: {SUPPORT_STATES})")),
    rule("when-below-on-support", """\
        - name: r1
          when: {level: spx-2700, state: [approaching, below]}
        """,
         (R + 2, 48, "r1", f"when.state: 'below' is not a state of support level spx-2700 "
                           f"(states: {SUPPORT_STATES})")),
    rule("when-state-misspelt", """\
        - name: r1
          when: {level: spx-3000, state: brekout}
        """,
         (R + 2, 34, "r1", f"when.state: 'brekout' is not a state of resistance level spx-3000 "
                           f"(did you mean 'breakout'?) (states: {RESISTANCE_STATES})")),
    rule("when-entered-two-states", """\
        - name: r1
          when: {level: spx-3000, entered: [breakout, failed]}
        """,
         (R + 2, 36, "r1", "when.entered: takes one state")),
    rule("when-state-and-entered", """\
        - name: r1
          when: {level: spx-3000, state: breakout, entered: failed}
        """,
         (R + 2, 9, "r1", "when (level): give exactly one of 'state' (holds now) or 'entered' "
                          "(changed at this evaluation)")),
    rule("when-neither-state-nor-entered", """\
        - name: r1
          when: {level: spx-3000}
        """,
         (R + 2, 9, "r1", "when (level): give exactly one of 'state' (holds now) or 'entered' "
                          "(changed at this evaluation)")),
    rule("when-level-unknown-key", """\
        - name: r1
          when:
            level: spx-3000
            state: breakout
            for: 5 bars
        """,
         (R + 5, 5, "r1", "when (level): unknown key 'for'; allowed: level, state, entered")),
    rule("when-combinator-mixed-with-atom", """\
        - name: r1
          when:
            all:
            - {level: spx-3000, state: breakout}
            release: payrolls
        """,
         (R + 5, 5, "r1", "when: 'all' stands alone in its mapping; put 'release' in a condition of its own")),
    rule("when-all-empty", """\
        - name: r1
          when: {all: []}
        """,
         (R + 2, 15, "r1", "when.all: expected a non-empty list of conditions, got an empty list")),
    rule("when-any-mapping", """\
        - name: r1
          when:
            any: {level: spx-3000, state: breakout}
        """,
         (R + 3, 10, "r1", "when.any: expected a non-empty list of conditions, got a mapping")),
    rule("when-not-with-list", """\
        - name: r1
          when:
            not:
            - {level: spx-3000, state: breakout}
        """,
         (R + 4, 5, "r1", "when: expected a condition mapping, got a list")),
    rule("when-list", """\
        - name: r1
          when:
          - {level: spx-3000, state: breakout}
        """,
         (R + 3, 3, "r1", "when: expected a condition mapping, got a list")),
    rule("when-null", """\
        - name: r1
          when:
        """,
         (R + 2, 8, "r1", "when: expected a condition mapping, got empty")),
    rule("when-unknown-condition-key", """\
        - name: r1
          when: {state: breakout, levle: spx-3000}
        """,
         (R + 2, 27, "r1", f"when: unknown condition key 'levle' (did you mean 'level'?); "
                           f"a condition starts with one of: {STARTS}")),
    rule("when-empty-mapping", """\
        - name: r1
          when: {}
        """,
         (R + 2, 9, "r1", f"when: empty condition; a condition starts with one of: {STARTS}")),
    rule("when-nested-error-in-any", """\
        - name: r1
          when:
            all:
            - {level: spx-3000, state: breakout}
            - any:
              - {release: payrolls, outcome: beat}
              - {level: spx-2700, state: below}
        """,
         (R + 7, 34, "r1", f"when.state: 'below' is not a state of support level spx-2700 "
                           f"(states: {SUPPORT_STATES})")),
    rule("when-release-names-a-release-not-a-macro-series", """\
        - name: r1
          when: {release: jobs, outcome: beat}
        """,
         (R + 2, 19, "r1", "when.release: unknown macro series 'jobs' (known: payrolls)")),
    rule("when-release-bad-outcome", """\
        - name: r1
          when: {release: payrolls, outcome: better}
        """,
         (R + 2, 38, "r1", "when.outcome: 'better' is not one of beat, miss, inline, any")),
    rule("when-within-weeks", """\
        - name: r1
          when: {release: payrolls, within: 2 weeks}
        """,
         (R + 2, 37, "r1", f"when.within: '2 weeks' is not a duration; {DURATION}")),
    rule("when-within-zero", """\
        - name: r1
          when: {release: payrolls, within: 0d}
        """,
         (R + 2, 37, "r1", f"when.within: '0d' is not a duration; {DURATION}")),
    rule("when-within-number", """\
        - name: r1
          when: {release: payrolls, within: 1}
        """,
         (R + 2, 37, "r1", f"when.within: the number 1 is not a duration; {DURATION}")),
    rule("when-narrow-range-unknown-instrument", """\
        - name: r1
          when: {instrument: rut, narrow_range: {bars: 10, pct: 1.5}}
        """,
         (R + 2, 22, "r1", "when.instrument: unknown instrument 'rut' (known: spx)")),
    rule("when-narrow-range-bad-numbers", """\
        - name: r1
          when:
            instrument: spx
            narrow_range: {bars: 1, pct: 0}
        """,
         (R + 4, 26, "r1", "when.narrow_range.bars: must be at least 2, got 1"),
         (R + 4, 34, "r1", "when.narrow_range.pct: must be greater than 0, got 0")),
    rule("when-instrument-test-missing", """\
        - name: r1
          when: {instrument: spx}
        """,
         (R + 2, 9, "r1", "when (instrument): missing the test: 'narrow_range', 'new_high' or 'new_low'")),
    rule("when-new-high-bare-number", """\
        - name: r1
          when: {instrument: spx, new_high: 252}
        """,
         (R + 2, 37, "r1", "when.new_high: the number 252 is not a count of bars; use 'N bars' with N > 0, "
                           "or 'all' (write '252 bars')")),
    rule("when-new-low-elapsed-time", """\
        - name: r1
          when: {instrument: spx, new_low: 52w}
        """,
         (R + 2, 36, "r1", "when.new_low: '52w' is not a count of bars; use 'N bars' with N > 0, or 'all'")),
    rule("when-new-high-zero-bars", """\
        - name: r1
          when: {instrument: spx, new_high: 0 bars}
        """,
         (R + 2, 37, "r1", "when.new_high: '0 bars' is not a count of bars; use 'N bars' with N > 0, or 'all'")),
    rule("when-new-high-too-long", """\
        - name: r1
          when: {instrument: spx, new_high: 30000 bars}
        """,
         (R + 2, 37, "r1", "when.new_high: 30000 bars is too long (at most 25000 bars)")),
    rule("when-new-high-and-new-low-in-one", """\
        - name: r1
          when: {instrument: spx, new_high: 5 bars, new_low: 5 bars}
        """,
         (R + 2, 45, "r1", "when (instrument): 'new_high' and 'new_low' in one condition; write one test per "
                           "condition and combine them with 'all' or 'any'")),
    rule("when-new-high-misspelt", """\
        - name: r1
          when: {instrument: spx, new_hihg: 5 bars}
        """,
         (R + 2, 27, "r1", "when (instrument): unknown key 'new_hihg' (did you mean 'new_high'?); allowed: "
                           "instrument, narrow_range, new_high, new_low")),
    rule("when-new-high-unknown-instrument", """\
        - name: r1
          when: {instrument: rut, new_high: all}
        """,
         (R + 2, 22, "r1", "when.instrument: unknown instrument 'rut' (known: spx)")),
    rule("when-nested-too-deeply",
         # 17 `not:` keys, each two columns right of the one before: the 17th `not` stands at line R + 19,
         # column 37, and the condition under it (depth 17) at line R + 20, column 39.
         "- name: r1\n  when:\n" + "".join(f"{' ' * (4 + 2 * i)}not:\n" for i in range(17))
         + " " * 38 + "{level: spx-3000, state: breakout}\n",
         (R + 20, 39, "r1", "when: conditions nested deeper than 16")),

    # ---- message templates ------------------------------------------------------------------------------
    rule("template-unknown-id", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          message: "{spy.close} broke out"
        """,
         (R + 3, 12, "r1", "message: {spy.close} names 'spy', which is no instrument, level or macro series "
                          "(known: payrolls, spx, spx-2700, spx-3000)")),
    rule("template-unknown-attribute", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          message: "{spx.open} -> {spx.close}"
        """,
         (R + 3, 12, "r1", "message: {spx.open}: an instrument has no field 'open' (fields: close, name, symbol)")),
    rule("template-macro-attribute-misspelt", """\
        - name: r1
          when: {release: payrolls, outcome: beat}
          message: "payrolls {payrolls.actaul:+.0f}k"
        """,
         (R + 3, 12, "r1", "message: {payrolls.actaul}: a macro has no field 'actaul' (did you mean 'actual'?) "
                           "(fields: actual, consensus, surprise, prior, ref_period)")),
    rule("template-bad-format-spec", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          message: "{spx.name:.2f}"
        """,
         (R + 3, 12, "r1", "message: {spx.name}: format spec '.2f' does not fit this field: "
                           "Unknown format code 'f' for object of type 'str'")),
    rule("template-indexing", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          message: "{spx[0]}"
        """,
         (R + 3, 12, "r1", "message: field {spx[0]} must be written ID.FIELD, e.g. {spx.close}")),
    rule("template-dunder", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          message: "{spx.__class__}"
        """,
         (R + 3, 12, "r1", "message: {spx.__class__}: an instrument has no field '__class__' "
                           "(fields: close, name, symbol)")),
    rule("template-bare-id", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          message: "{spx} at {spx-3000.price}"
        """,
         (R + 3, 12, "r1", "message: field {spx} must be written ID.FIELD, e.g. {spx.close}")),
    rule("template-positional", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          message: "{} broke out"
        """,
         (R + 3, 12, "r1", "message: field {} must be written ID.FIELD, e.g. {spx.close}")),
    rule("template-unclosed-brace", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          message: "{spx.close broke out"
        """,
         (R + 3, 12, "r1", "message: bad template: expected '}' before end of string "
                           "(write {{ and }} for literal braces)")),
    rule("template-lone-closing-brace", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          message: "spx.close} broke out"
        """,
         (R + 3, 12, "r1", "message: bad template: Single '}' encountered in format string "
                           "(write {{ and }} for literal braces)")),
    rule("template-nested-field-in-spec", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          message: "{spx.close:{spx.name}}"
        """,
         (R + 3, 12, "r1", "message: {spx.close}: nested fields in a format spec are not allowed")),
    rule("template-number", """\
        - name: r1
          when: {level: spx-3000, state: breakout}
          message: 42
        """,
         (R + 3, 12, "r1", "message: expected a string, got the number 42")),

    # ---- values that YAML or the environment could make surprising ----------------------------------------
    extra("release-time-bare-number", """\
        releases:
          es: {fred_release_id: 50, time: 930}
        """,
          (8, 35, None, "releases.es.time: expected a time of day HH:MM, got the number 930")),
    extra("env-unset-in-a-plain-string", """\
        sources:
          yahoo: {url: "${MW_TEST_SURELY_UNSET}"}
        """,
          (8, 16, None, "sources.yahoo.url: environment variable MW_TEST_SURELY_UNSET is not set")),
    extra("consensus-key-mid-month", """\
        releases:
          es: {fred_release_id: 50}
        macro:
          payrolls: {series: PAYEMS, release: es, consensus: {2017-04-15: 180}}
        """,
          (10, 55, None, "macro.payrolls.consensus key: 2017-04-15 is not the first day of a month; "
                         "a reference period is written YYYY-MM or YYYY-MM-01")),
    extra("approach-pct-too-large", """\
        breakout: {approach_pct: 60}
        """,
          (7, 26, None, "breakout.approach_pct: must be less than 50, got 60")),
    rule("duplicate-rule-name-still-checked", """\
        - {name: r1, when: {level: spx-3000, state: breakout}}
        - {name: r1, when: {level: spx-3000, state: breakout}, for: 0d}
        """,
         (R + 2, 10, "r1", "name: duplicate rule name (first at <FILE>:13:10)"),
         (R + 2, 61, "r1", f"for: '0d' is not a duration; {DURATION}")),

    # ---- several errors at once: every one is reported, each with its rule ------------------------------
    rule("errors-in-two-rules", """\
        - name: r1
          when: {level: spx-3000, state: breakdown}
          severity: loud
        - name: r2
          when: {release: payrolls, within: 1w}
        """,
         (R + 2, 34, "r1", f"when.state: 'breakdown' is not a state of resistance level spx-3000 "
                           f"(states: {RESISTANCE_STATES})"),
         (R + 3, 13, "r1", "severity: 'loud' is not one of info, warning, critical"),
         (R + 5, 37, "r2", f"when.within: '1w' is not a duration; {DURATION}")),
]


def test_enough_cases_with_unique_ids():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 40


@pytest.mark.parametrize("text", [BASE, HEAD + "- {name: r1, when: {level: spx-2700, state: breakdown}}\n"],
                         ids=["base", "head"])
def test_the_bases_are_valid(tmp_path, text):
    path = tmp_path / "macrowatch.yaml"
    path.write_text(text)
    config, warnings = load_config(path, calendars=lambda: CALENDARS)
    assert warnings == []
    assert [r.name for r in config.rules] == ["r1"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_config(tmp_path, case: Case):
    path = tmp_path / "macrowatch.yaml"
    path.write_text(case.yaml)
    expected = [(line, col, rule, message.replace("<FILE>", str(path)).replace("<DIR>", str(tmp_path.resolve())))
                for line, col, rule, message in case.expected]
    assert Counter(problems_of(path)) == Counter(expected)


def test_python_tag_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "macrowatch.yaml"
    path.write_text(BASE + f'store: !!python/object/apply:os.system ["touch {marker}"]\n')
    assert problems_of(path) == [
        (7, 8, None, "unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'")]
    assert not marker.exists()


def test_python_tag_on_the_document_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "macrowatch.yaml"
    path.write_text(f'!!python/object/apply:os.system ["touch {marker}"]\n')
    assert problems_of(path) == [
        (1, 1, None, "unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'")]
    assert not marker.exists()


# ---- environment variables in channels -------------------------------------------------------------------
CHANNEL_CONFIG = BASE + "channels:\n  trading: ${MW_TEST_TRADING_URLS}\n"
UNSET = "channels.trading: environment variable MW_TEST_TRADING_URLS is not set; this channel cannot deliver"


def test_channel_variable_unset_is_a_warning_under_check(tmp_path, monkeypatch):
    monkeypatch.delenv("MW_TEST_TRADING_URLS", raising=False)
    path = tmp_path / "macrowatch.yaml"
    path.write_text(CHANNEL_CONFIG)
    config, warnings = load_config(path, calendars=lambda: CALENDARS)
    assert [(w.loc.line, w.loc.col, w.rule, w.message, w.warning) for w in warnings] == [
        (8, 12, None, UNSET, True)]
    assert config.channels["trading"].missing == ("MW_TEST_TRADING_URLS",)


def test_channel_variable_unset_is_an_error_for_run(tmp_path, monkeypatch):
    monkeypatch.delenv("MW_TEST_TRADING_URLS", raising=False)
    path = tmp_path / "macrowatch.yaml"
    path.write_text(CHANNEL_CONFIG)
    assert problems_of(path, for_run=True) == [(8, 12, None, UNSET)]


def test_channel_variable_unset_warning_rides_along_with_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("MW_TEST_TRADING_URLS", raising=False)
    path = tmp_path / "macrowatch.yaml"
    path.write_text(CHANNEL_CONFIG + "timezone: Europe/Gotham\n")
    assert Counter(problems_of(path)) == Counter([
        (8, 12, None, "warning: " + UNSET),
        (9, 11, None, "timezone: unknown time zone 'Europe/Gotham' (an IANA name like America/New_York)")])


def test_channel_variable_set_to_url_without_scheme(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_TEST_TRADING_URLS", "json://localhost hooks.example.com/x")
    path = tmp_path / "macrowatch.yaml"
    path.write_text(CHANNEL_CONFIG)
    problems = problems_of(path, for_run=True)
    assert problems == [(8, 12, None, "channels.trading: URL #2 is not an apprise URL (scheme://...)")]
    assert "hooks.example.com" not in str(problems)  # an expanded URL may hold a secret: never shown


def test_channel_variable_set(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_TEST_TRADING_URLS", "json://localhost, mailto://user:pw@example.com")
    path = tmp_path / "macrowatch.yaml"
    path.write_text(CHANNEL_CONFIG)
    config, warnings = load_config(path, for_run=True, calendars=lambda: CALENDARS)
    assert warnings == []
    assert config.channels["trading"].urls == ("json://localhost", "mailto://user:pw@example.com")


def test_environment_cannot_change_structure(tmp_path, monkeypatch):
    # ${VAR} expands after parsing: a value holding YAML stays one string.
    monkeypatch.setenv("MW_TEST_TRADING_URLS", "json://x\nrules: []")
    path = tmp_path / "macrowatch.yaml"
    path.write_text(CHANNEL_CONFIG)
    assert problems_of(path) == [(8, 12, None, "channels.trading: URL #2 is not an apprise URL (scheme://...)"),
                                 (8, 12, None, "channels.trading: URL #3 is not an apprise URL (scheme://...)")]


# ---- a directory of files ---------------------------------------------------------------------------------
def _write_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    d = tmp_path / "conf.d"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(textwrap.dedent(text))
    return d


def _dir_problems(d: Path) -> list[tuple[str, int, int, str | None, str]]:
    with pytest.raises(ConfigError) as info:
        load_config(d, calendars=lambda: CALENDARS)
    return [(Path(p.loc.file).name, p.loc.line, p.loc.col, p.rule, p.message) for p in info.value.problems]


def test_directory_same_level_twice(tmp_path):
    d = _write_dir(tmp_path, {
        "10-levels.yaml": """\
            instruments:
              spx: {symbol: "^GSPC"}
            levels:
              spx-3000: {instrument: spx, price: 3000}
            """,
        "20-rules.yaml": """\
            levels:
              spx-3000: {instrument: spx, price: 3100}
            rules:
            - {name: r1, when: {level: spx-3000, state: breakout}}
            """,
    })
    assert _dir_problems(d) == [
        ("20-rules.yaml", 2, 3, None, f"levels.spx-3000: defined twice (also at {d / '10-levels.yaml'}:4:3)")]


def test_directory_same_setting_twice(tmp_path):
    d = _write_dir(tmp_path, {
        "a.yaml": """\
            timezone: America/New_York
            instruments:
              spx: {symbol: "^GSPC"}
            """,
        "b.yaml": """\
            levels:
              spx-3000: {instrument: spx, price: 3000}
            rules:
            - {name: r1, when: {level: spx-3000, state: breakout}}
            timezone: Europe/London
            """,
    })
    assert _dir_problems(d) == [
        ("b.yaml", 5, 1, None, f"timezone: set twice (also at {d / 'a.yaml'}:1:1)")]


def test_directory_errors_name_their_own_file(tmp_path):
    d = _write_dir(tmp_path, {
        "a.yaml": """\
            instruments:
              spx: {symbol: "^GSPC", calendar: XNYZ}
            """,
        "b.yaml": """\
            levels:
              spx-3000: {instrument: spx, price: 3000}
            rules:
            - {name: r1, when: {level: spx-3000, state: brekout}}
            """,
        "notes.txt": "not a config: ignored\n",
    })
    assert _dir_problems(d) == [
        ("a.yaml", 2, 36, None, "instruments.spx.calendar: unknown exchange calendar 'XNYZ' (did you mean 'XNYS'?) "
                                "(an exchange_calendars code like XNYS or CMES)"),
        ("b.yaml", 4, 45, "r1", f"when.state: 'brekout' is not a state of resistance level spx-3000 "
                                f"(did you mean 'breakout'?) (states: {RESISTANCE_STATES})"),
    ]


def test_directory_without_yaml_files(tmp_path):
    d = _write_dir(tmp_path, {"README.txt": "nothing here\n"})
    with pytest.raises(ConfigError) as info:
        load_config(d)
    assert [str(p) for p in info.value.problems] == [f"{d}: directory holds no *.yaml config files"]


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [str(p) for p in info.value.problems] == [f"{path}: no such config file or directory"]
