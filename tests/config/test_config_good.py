"""Every good construct of the config language loads into the typed objects it means, and round-trips."""

from __future__ import annotations

import dataclasses
import datetime as dt
import textwrap
from pathlib import Path

import pytest
import yaml

from macrowatch.config import load_config
from macrowatch.config.dump import dump
from macrowatch.config.types import (
    AllOf,
    AnyOf,
    BreakoutParams,
    ConsensusFeed,
    ConsensusSources,
    Direction,
    Duration,
    Feed,
    FeedSource,
    Health,
    LevelEntered,
    LevelIn,
    LevelKind,
    Measure,
    NarrowRange,
    NewExtreme,
    Not,
    Outcome,
    ReleaseOutcome,
    Score,
    Severity,
    Side,
    TemplateField,
    Trigger,
)

FULL = """\
timezone: Europe/London
calendar: XLON
store: state/mw.sqlite
poll: {intraday: 15m}
health: {listen: "0.0.0.0:9200"}
sources:
  fred: {api_key: "${MW_TEST_FRED_KEY}", url: "http://127.0.0.1:8001/fred/"}
  yahoo: {url: "http://127.0.0.1:8002"}
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
  rut: {symbol: "^RUT"}
  rty: {symbol: "RTY=F", name: "Russell futures", calendar: CMES}
breakout: {approach_pct: 2.0, buffer_pct: 0.5, fail_within_bars: 3}
levels:
  spx-2400: {instrument: spx, price: 2400}
  spx-2300s: {instrument: spx, price: 2300, side: support, approach_pct: 0.5}
  rut-ath: {instrument: rut, kind: all_time_high, fail_within_bars: 7}
  rut-atl: {instrument: rut, kind: all_time_low}
  spx-52w: {instrument: spx, kind: high_of, bars: 252, buffer_pct: 0}
  spx-52wl: {instrument: spx, kind: low_of, bars: 252}
  spx-range: {instrument: spx, kind: range_high, since: 2019-05-01}
  spx-rangel: {instrument: spx, kind: range_low, since: "2019-05-01", side: support}
releases:
  es: {fred_release_id: 50, time: "08:30", briefing: {before: 1h, notify: [trading, ops]}}
  cpi: {fred_release_id: 10, time: 8:30, dates: [2019-08-13, 2019-07-11]}
  fomc: {dates: [2019-07-31], time: "14:00"}
  gdp: {fred_release_id: 53}
macro:
  payrolls: {series: PAYEMS, release: es, measure: change, beat_by: 25, consensus: {2019-07: 140, 2019-08-01: 158.5}}
  unrate: {series: UNRATE, release: es, higher_is: worse, beat_by: 0.1}
  cpi-yoy: {series: CPIAUCSL, release: cpi, measure: yoy_pct, consensus: consensus.csv}
  cpi-mom: {series: CPIAUCSL, release: cpi, measure: pct_change}
channels:
  trading: ${MW_TEST_TRADING}
  ops: ["json://127.0.0.1:9/ops", "${MW_TEST_OPS:-form://127.0.0.1:9/fallback}"]
rules:
  - name: all-atoms
    when:
      all:
        - {level: spx-2400, state: [approaching, breakout]}
        - {level: rut-ath, entered: failed}
        - {release: payrolls, outcome: beat, within: 1d}
        - {instrument: spx, narrow_range: {bars: 10, pct: 1.5}}
        - {instrument: spx, new_high: 252 bars}
        - any:
            - {level: spx-2300s, state: breakdown}
            - not: {release: unrate, outcome: miss, within: 3 bars}
            - {instrument: spx, new_low: all}
            - {instrument: spx, new_low: 1 bar}
    severity: critical
    notify: [trading, ops]
    for: 2 bars
    cooldown: 10d
    chart: spx
    on: [close, release, intraday]
    labels: {thesis: broad-market, tier: 1}
    score: {instrument: rty, direction: short}
    message: "{spx.name} {spx.close:.2f} vs {spx-2400.price:.0f} ({spx-2400.state}); payrolls {payrolls.actual:+.0f}k"
  - name: bare
    when: {release: cpi-yoy}
  - name: hours
    when: {level: spx-52w, state: confirmed}
    for: 4h
    cooldown: 90m
    notify: ops
    score: {direction: short}
"""


def write(tmp_path: Path, text: str, name: str = "mw.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def full(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_TEST_FRED_KEY", "k" * 32)
    monkeypatch.setenv("MW_TEST_TRADING", "json://127.0.0.1:9/a, form://127.0.0.1:9/b")
    monkeypatch.delenv("MW_TEST_OPS", raising=False)
    (tmp_path / "consensus.csv").write_text("series,date,consensus\nCPIAUCSL,2019-07-01,1.7\n")
    config, warnings = load_config(write(tmp_path, FULL), calendars=lambda: frozenset({"XLON", "CMES"}))
    return config, warnings, tmp_path


def test_settings(full):
    config, warnings, tmp_path = full
    assert warnings == []
    assert config.timezone == "Europe/London"
    assert config.calendar == "XLON"
    assert config.store == str((tmp_path / "state/mw.sqlite").resolve())  # relative to the config file
    assert config.poll_intraday == Duration(15, "m")
    assert config.health == Health("0.0.0.0", 9200)
    assert config.fred.api_key == "k" * 32 and config.fred.api_key_source == "${MW_TEST_FRED_KEY}"
    assert config.fred.url == "http://127.0.0.1:8001/fred"  # trailing slash dropped
    assert config.yahoo.url == "http://127.0.0.1:8002"
    assert config.breakout == BreakoutParams(2.0, 0.5, 3)
    assert config.summary() == "3 instruments, 8 levels, 4 releases, 4 macro series, 3 rules, 2 channels"


def test_instruments(full):
    config = full[0]
    assert [(i.id, i.symbol, i.name, i.calendar) for i in config.instruments.values()] == [
        ("spx", "^GSPC", "S&P 500", None),
        ("rut", "^RUT", "^RUT", None),  # the name defaults to the symbol
        ("rty", "RTY=F", "Russell futures", "CMES"),
    ]


@pytest.mark.parametrize("level_id, kind, side, price, bars, since, params", [
    ("spx-2400", LevelKind.PRICE, Side.RESISTANCE, 2400.0, None, None, BreakoutParams(2.0, 0.5, 3)),
    ("spx-2300s", LevelKind.PRICE, Side.SUPPORT, 2300.0, None, None, BreakoutParams(0.5, 0.5, 3)),
    ("rut-ath", LevelKind.ALL_TIME_HIGH, Side.RESISTANCE, None, None, None, BreakoutParams(2.0, 0.5, 7)),
    ("rut-atl", LevelKind.ALL_TIME_LOW, Side.SUPPORT, None, None, None, BreakoutParams(2.0, 0.5, 3)),
    ("spx-52w", LevelKind.HIGH_OF, Side.RESISTANCE, None, 252, None, BreakoutParams(2.0, 0.0, 3)),
    ("spx-52wl", LevelKind.LOW_OF, Side.SUPPORT, None, 252, None, BreakoutParams(2.0, 0.5, 3)),
    ("spx-range", LevelKind.RANGE_HIGH, Side.RESISTANCE, None, None, dt.date(2019, 5, 1), BreakoutParams(2.0, 0.5, 3)),
    ("spx-rangel", LevelKind.RANGE_LOW, Side.SUPPORT, None, None, dt.date(2019, 5, 1), BreakoutParams(2.0, 0.5, 3)),
], ids=lambda v: v if isinstance(v, str) else None)
def test_levels(full, level_id, kind, side, price, bars, since, params):
    level = full[0].levels[level_id]
    assert (level.kind, level.side, level.price, level.bars, level.since, level.breakout) == (
        kind, side, price, bars, since, params)
    assert level.states == (("below", "approaching", "breakout", "confirmed", "failed") if side is Side.RESISTANCE
                            else ("above", "approaching", "breakdown", "confirmed", "failed"))


def test_releases(full):
    rel = full[0].releases
    assert (rel["es"].fred_release_id, rel["es"].time, rel["es"].dates) == (50, dt.time(8, 30), ())
    # An unquoted 8:30 (YAML 1.1 reads it as a number) still means 08:30; dates come out sorted.
    assert (rel["cpi"].time, rel["cpi"].dates) == (dt.time(8, 30), (dt.date(2019, 7, 11), dt.date(2019, 8, 13)))
    assert (rel["fomc"].fred_release_id, rel["fomc"].time) == (None, dt.time(14, 0))
    assert rel["gdp"].time == dt.time(8, 30)  # the default
    assert (rel["es"].briefing.before.as_timedelta(), rel["es"].briefing.notify) == (dt.timedelta(hours=1),
                                                                                     ("trading", "ops"))
    assert rel["cpi"].briefing is None


def test_macro(full):
    config, _, tmp_path = full
    m = config.macro
    assert (m["payrolls"].measure, m["payrolls"].beat_by, m["payrolls"].higher_is) == (Measure.CHANGE, 25.0, "better")
    assert dict(m["payrolls"].consensus) == {dt.date(2019, 7, 1): 140.0, dt.date(2019, 8, 1): 158.5}
    assert (m["unrate"].measure, m["unrate"].higher_is, m["unrate"].beat_by) == (Measure.LEVEL, "worse", 0.1)
    assert m["cpi-yoy"].consensus_file == (tmp_path / "consensus.csv").resolve()
    assert (m["cpi-yoy"].measure, m["cpi-mom"].measure, m["cpi-mom"].beat_by) == (
        Measure.YOY_PCT, Measure.PCT_CHANGE, 0.0)


def test_channels_expand_after_parsing(full):
    ch = full[0].channels
    assert ch["trading"].urls == ("json://127.0.0.1:9/a", "form://127.0.0.1:9/b")
    assert ch["trading"].source == "${MW_TEST_TRADING}"
    assert ch["ops"].urls == ("json://127.0.0.1:9/ops", "form://127.0.0.1:9/fallback")  # ${VAR:-default}
    assert "127.0.0.1:9/a" not in repr(ch["trading"])  # expanded URLs hold secrets: not in repr


def test_rule_conditions(full):
    rule = full[0].rules[0]
    assert rule.when == AllOf((
        LevelIn("spx-2400", ("approaching", "breakout")),
        LevelEntered("rut-ath", "failed"),
        ReleaseOutcome("payrolls", Outcome.BEAT, Duration(1, "d")),
        NarrowRange("spx", 10, 1.5),
        NewExtreme("spx", 252),
        AnyOf((LevelIn("spx-2300s", ("breakdown",)),
               Not(ReleaseOutcome("unrate", Outcome.MISS, Duration(3, "bars"))),
               NewExtreme("spx", None, low=True), NewExtreme("spx", 1, low=True))),
    ))
    assert (rule.severity, rule.notify, rule.for_, rule.cooldown, rule.chart) == (
        Severity.CRITICAL, ("trading", "ops"), Duration(2, "bars"), Duration(10, "d"), "spx")
    assert rule.on == {Trigger.CLOSE, Trigger.RELEASE, Trigger.INTRADAY}
    assert dict(rule.labels) == {"thesis": "broad-market", "tier": "1"}
    assert rule.score == Score("rty", Direction.SHORT)
    assert rule.message.fields == (
        TemplateField("spx", "instrument", "name"), TemplateField("spx", "instrument", "close"),
        TemplateField("spx-2400", "level", "price"), TemplateField("spx-2400", "level", "state"),
        TemplateField("payrolls", "macro", "actual"))


def test_rule_defaults(full):
    bare, hours = full[0].rules[1], full[0].rules[2]
    assert bare.when == ReleaseOutcome("cpi-yoy", Outcome.ANY, None)
    assert (bare.severity, bare.notify, bare.for_, bare.cooldown, bare.chart, bare.message, dict(bare.labels)) == (
        Severity.WARNING, (), None, None, None, None, {})
    assert bare.on == {Trigger.CLOSE, Trigger.RELEASE}
    assert bare.score is None and hours.score == Score(None, Direction.SHORT)  # scored on its level's instrument
    assert (hours.for_.as_timedelta(), hours.cooldown.as_timedelta(), hours.notify) == (
        dt.timedelta(hours=4), dt.timedelta(minutes=90), ("ops",))


def test_env_value_cannot_change_structure(tmp_path, monkeypatch):
    """${VAR} expands inside a string after parsing: YAML in the value stays text."""
    monkeypatch.setenv("MW_TEST_TRADING", "json://127.0.0.1:9/x")
    monkeypatch.setenv("MW_TEST_FRED_KEY", "key\"}\nrules: []\n")
    (tmp_path / "consensus.csv").write_text("series,date,consensus\n")
    config, _ = load_config(write(tmp_path, FULL), calendars=lambda: frozenset({"XLON", "CMES"}))
    assert len(config.rules) == 3
    assert config.fred.api_key == "key\"}\nrules: []\n"


def test_anchors_and_merge_keys(tmp_path):
    path = write(tmp_path, """\
        instruments:
          spx: {symbol: "^GSPC"}
        levels:
          a: &base {instrument: spx, price: 100, approach_pct: 3}
          b: {<<: *base, price: 200}
        rules:
          - {name: r, when: {level: b, state: below}}
        """)
    config, _ = load_config(path)
    assert (config.levels["b"].price, config.levels["b"].breakout.approach_pct) == (200.0, 3.0)


def test_directory_merge(tmp_path):
    d = tmp_path / "conf.d"
    d.mkdir()
    write(d, "instruments:\n  spx: {symbol: '^GSPC'}\nlevels:\n  l1: {instrument: spx, price: 1}\n", "10-base.yaml")
    write(d, "levels:\n  l2: {instrument: spx, price: 2}\nrules:\n  - {name: a, when: {level: l1, state: below}}\n",
          "20-more.yml")
    write(d, "rules:\n  - {name: b, when: {level: l2, state: below}}\n", "30-rules.yaml")
    (d / "notes.txt").write_text("not yaml: ignored")
    config, _ = load_config(d)
    assert [f.name for f in config.files] == ["10-base.yaml", "20-more.yml", "30-rules.yaml"]
    assert list(config.levels) == ["l1", "l2"]
    assert [r.name for r in config.rules] == ["a", "b"]


def test_store_postgres_url_with_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_TEST_PGPASS", "s3cret")
    path = write(tmp_path, """\
        store: "postgresql://mw:${MW_TEST_PGPASS}@127.0.0.1/mw"
        health: {listen: "9108"}
        instruments: {spx: {symbol: "^GSPC"}}
        levels: {l: {instrument: spx, price: 1}}
        rules: [{name: a, when: {level: l, state: below}}]
        """)
    config, _ = load_config(path)
    assert config.store == "postgresql://mw:s3cret@127.0.0.1/mw"
    assert config.health == Health("127.0.0.1", 9108)  # loopback unless a host is given


@pytest.mark.parametrize("written, seconds", [
    pytest.param(None, 10, id="default"),
    pytest.param("3s", 3, id="shortest"),
    pytest.param("45s", 45, id="seconds"),
    pytest.param("2m", 120, id="minutes"),
])
def test_ha_lease_on_postgres(tmp_path, written, seconds):
    path = write(tmp_path, f"""\
        store: "postgresql://mw:pw@db.example:5432/mw"
        {f"ha: {{lease: {written}}}" if written else ""}
        instruments: {{spx: {{symbol: "^GSPC"}}}}
        levels: {{l: {{instrument: spx, price: 1}}}}
        rules: [{{name: a, when: {{level: l, state: below}}}}]
        """)
    config, warnings = load_config(path)
    assert (config.ha.lease_seconds, warnings) == (seconds, [])
    again, _ = load_config(write(tmp_path, yaml.safe_dump(dump(config)).replace(":***@", ":pw@"), "again.yaml"))
    assert _without_files(again) == _without_files(config)


def test_ha_on_sqlite_is_a_warning(tmp_path):
    path = write(tmp_path, """\
        ha: {lease: 5s}
        instruments: {spx: {symbol: "^GSPC"}}
        levels: {l: {instrument: spx, price: 1}}
        rules: [{name: a, when: {level: l, state: below}}]
        """)
    config, warnings = load_config(path)
    assert config.ha.lease_seconds == 5
    assert [(w.loc.line, w.message) for w in warnings] == [
        (1, "ha: has no effect with a SQLite store (one instance runs); several instances need a postgresql:// store")]


def test_defaults(tmp_path):
    path = write(tmp_path, """\
        instruments: {spx: {symbol: "^GSPC"}}
        levels: {l: {instrument: spx, price: 1}}
        rules: [{name: a, when: {level: l, state: below}}]
        """)
    config, warnings = load_config(path)
    assert (config.timezone, config.calendar, config.store, config.poll_intraday, config.health) == (
        "America/New_York", "XNYS", None, Duration(5, "m"), None)
    assert (config.fred.api_key, config.fred.url, config.yahoo.url) == (None, None, None)
    assert config.breakout == BreakoutParams(1.0, 0.0, 5)
    assert warnings == []


def _without_files(config):
    return dataclasses.replace(config, files=())


def test_dump_round_trip(full, tmp_path):
    """load -> dump -> load gives the same config, secrets written as their ${VAR}."""
    config = full[0]
    data = dump(config)
    text = yaml.safe_dump(data, sort_keys=False)
    assert "k" * 32 not in text and "127.0.0.1:9/a" not in text
    again, _ = load_config(write(tmp_path, text, "again.yaml"), calendars=lambda: frozenset({"XLON", "CMES"}))
    assert _without_files(again) == _without_files(config)


def test_rules_dir_round_trips(tmp_path):
    rules_dir = Path(__file__).resolve().parents[2] / "rules"
    files = sorted(p for p in rules_dir.glob("*.yaml") if not p.name.endswith(".test.yaml"))
    assert len(files) >= 2
    for path in files:
        config, _ = load_config(path)
        again, _ = load_config(write(tmp_path, yaml.safe_dump(dump(config)), path.name))
        assert _without_files(again) == _without_files(config), path.name


def test_env_expands_in_any_string(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_TEST_YAHOO", "http://127.0.0.1:8002")
    monkeypatch.setenv("MW_TEST_SYMBOL", "^RUT")
    path = write(tmp_path, """\
        sources: {yahoo: {url: "${MW_TEST_YAHOO}"}}
        instruments: {rut: {symbol: "${MW_TEST_SYMBOL}", name: "${MW_TEST_NAME:-Russell 2000}"}}
        levels: {l: {instrument: rut, price: 1}}
        rules: [{name: a, when: {level: l, state: below}}]
        """)
    config, _ = load_config(path)
    assert config.yahoo.url == "http://127.0.0.1:8002"
    assert (config.instruments["rut"].symbol, config.instruments["rut"].name) == ("^RUT", "Russell 2000")


def test_channel_empty_after_expansion_warns_for_check_and_fails_run(tmp_path, monkeypatch):
    from macrowatch.config import ConfigError

    monkeypatch.setenv("MW_TEST_EMPTY", "")
    path = write(tmp_path, """\
        instruments: {spx: {symbol: "^GSPC"}}
        levels: {l: {instrument: spx, price: 1}}
        channels: {trading: "${MW_TEST_EMPTY}"}
        rules: [{name: a, when: {level: l, state: below}, notify: trading}]
        """)
    message = "channels.trading: no URL after expanding the environment; this channel cannot deliver"
    _, warnings = load_config(path)
    assert [(w.loc.line, w.message) for w in warnings] == [(3, message)]
    with pytest.raises(ConfigError) as info:
        load_config(path, for_run=True)
    assert [(p.loc.line, p.message, p.warning) for p in info.value.problems] == [(3, message, False)]


def test_directory_skips_rule_tests(tmp_path):
    """`*.test.yaml` beside a rule set is a rule test for `macrowatch test`, not config."""
    d = tmp_path / "conf.d"
    d.mkdir()
    write(d, "instruments: {spx: {symbol: '^GSPC'}}\nlevels: {l: {instrument: spx, price: 1}}\n"
             "rules: [{name: a, when: {level: l, state: below}}]\n", "thesis.yaml")
    write(d, "config: thesis.yaml\ntests: []\n", "thesis.test.yaml")
    config, _ = load_config(d)
    assert [f.name for f in config.files] == ["thesis.yaml"]


BLS = """\
sources:
  bls: {api_key: "${MW_TEST_BLS_KEY}", url: "http://127.0.0.1:8003/"}
instruments: {spx: {symbol: "^GSPC"}}
levels: {l: {instrument: spx, price: 1}}
releases:
  es: {bls: "Employment Situation", time: "08:30"}
  cpi: {fred_release_id: 10, bls: Consumer Price Index, dates: [2026-12-10]}
macro:
  payrolls: {series: PAYEMS, release: es, measure: change, bls_series: CES0000000001}
  unrate: {series: UNRATE, release: es}
rules: [{name: a, when: {level: l, state: below}}]
"""


def test_bls_source_schedule_titles_and_series(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_TEST_BLS_KEY", "b" * 32)
    config, warnings = load_config(write(tmp_path, BLS))
    assert warnings == []
    assert (config.bls.api_key, config.bls.api_key_source, config.bls.url) == (
        "b" * 32, "${MW_TEST_BLS_KEY}", "http://127.0.0.1:8003")  # trailing slash dropped
    assert "b" * 32 not in repr(config.bls)
    es, cpi = config.releases["es"], config.releases["cpi"]
    assert (es.bls, es.fred_release_id, es.dates) == ("Employment Situation", None, ())  # the schedule alone will do
    assert (cpi.bls, cpi.fred_release_id, cpi.dates) == ("Consumer Price Index", 10, (dt.date(2026, 12, 10),))
    assert (config.macro["payrolls"].bls_series, config.macro["unrate"].bls_series) == ("CES0000000001", None)


def test_bls_keys_round_trip_with_the_key_as_written(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_TEST_BLS_KEY", "b" * 32)
    config, _ = load_config(write(tmp_path, BLS))
    text = yaml.safe_dump(dump(config), sort_keys=False)
    assert "b" * 32 not in text and "${MW_TEST_BLS_KEY}" in text
    again, _ = load_config(write(tmp_path, text, "again.yaml"))
    assert _without_files(again) == _without_files(config)


def test_bls_key_empty_after_expansion_is_keyless_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("MW_TEST_BLS_KEY", "")
    config, warnings = load_config(write(tmp_path, BLS))
    assert config.bls.api_key is None
    assert [(w.loc.line, w.message) for w in warnings] == [
        (1, "sources.bls.api_key: empty after expanding the environment; the BLS API is queried without a key "
            "(25 queries a day)")]
    bare, warned = load_config(write(tmp_path, BLS.replace('api_key: "${MW_TEST_BLS_KEY}", ', ""), "bare.yaml"))
    assert (bare.bls.api_key, bare.bls.url, warned) == (None, "http://127.0.0.1:8003", [])  # keyless on purpose


CONSENSUS = """\
sources:
  consensus: {forexfactory: {}, nasdaq: {url: "http://127.0.0.1:8004/"}}
instruments: {spx: {symbol: "^GSPC"}}
levels: {l: {instrument: spx, price: 1}}
releases:
  es: {bls: Employment Situation}
  cpi: {fred_release_id: 10}
macro:
  payrolls:
    series: PAYEMS
    release: es
    measure: change
    consensus: {feed: forexfactory, event: Non-Farm Employment Change, unit: 1000}
  unrate:
    series: UNRATE
    release: es
    consensus:
      - overrides.csv
      - {feed: forexfactory, event: "Unemployment Rate "}
      - {feed: nasdaq, event: Unemployment Rate, country: United States}
  cpi:
    series: CPIAUCSL
    release: cpi
    measure: pct_change
    consensus: [{2026-11: 0.3}, {feed: nasdaq, event: CPI}]
  claims: {series: ICSA, release: es, consensus: [{feed: forexfactory, event: Employment Change, country: cad}]}
  plain: {series: UNRATE, release: es, consensus: overrides.csv}
rules: [{name: a, when: {level: l, state: below}}]
"""


def test_consensus_feeds_and_lists(tmp_path):
    (tmp_path / "overrides.csv").write_text("series,date,consensus\n")
    config, warnings = load_config(write(tmp_path, CONSENSUS))
    assert warnings == []
    assert config.consensus == ConsensusSources(FeedSource(), FeedSource("http://127.0.0.1:8004"))
    m = config.macro
    assert (m["payrolls"].consensus_file, dict(m["payrolls"].consensus), m["payrolls"].feeds) == (
        None, {}, (ConsensusFeed(Feed.FOREXFACTORY, "Non-Farm Employment Change", 1000.0),))
    assert m["unrate"].consensus_file == (tmp_path / "overrides.csv").resolve()  # the file first, as before
    assert m["unrate"].feeds == (ConsensusFeed(Feed.FOREXFACTORY, "Unemployment Rate"),  # trimmed, unit 1
                                 ConsensusFeed(Feed.NASDAQ, "Unemployment Rate", 1.0, "United States"))
    assert [f.in_country for f in m["unrate"].feeds] == ["USD", "United States"]
    assert (dict(m["cpi"].consensus), m["cpi"].feeds) == (
        {dt.date(2026, 11, 1): 0.3}, (ConsensusFeed(Feed.NASDAQ, "CPI"),))
    assert m["claims"].feeds[0].in_country == "cad"
    assert (m["plain"].consensus_file, m["plain"].feeds) == ((tmp_path / "overrides.csv").resolve(), ())


def test_consensus_feeds_round_trip(tmp_path):
    (tmp_path / "overrides.csv").write_text("series,date,consensus\n")
    config, _ = load_config(write(tmp_path, CONSENSUS))
    shown = dump(config)
    assert shown["sources"]["consensus"] == {"nasdaq": {"url": "http://127.0.0.1:8004"}}
    assert shown["macro"]["payrolls"]["consensus"] == {"feed": "forexfactory", "event": "Non-Farm Employment Change",
                                                       "unit": 1000.0}
    assert shown["macro"]["unrate"]["consensus"] == [
        str((tmp_path / "overrides.csv").resolve()),
        {"feed": "forexfactory", "event": "Unemployment Rate", "unit": 1.0},
        {"feed": "nasdaq", "event": "Unemployment Rate", "unit": 1.0, "country": "United States"}]
    again, _ = load_config(write(tmp_path, yaml.safe_dump(shown, sort_keys=False), "again.yaml"))
    assert _without_files(again) == _without_files(config)


def test_a_feed_not_configured_is_asked_at_its_own_address(tmp_path):
    (tmp_path / "overrides.csv").write_text("series,date,consensus\n")
    config, _ = load_config(write(tmp_path, CONSENSUS.replace(
        'consensus: {forexfactory: {}, nasdaq: {url: "http://127.0.0.1:8004/"}}', "consensus: {}")))
    assert config.consensus == ConsensusSources()
    assert config.consensus.source(Feed.NASDAQ).url is None  # the feeds need no key: naming one is enough

