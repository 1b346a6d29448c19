"""The test files of `macrowatch test` (commands/test.py runs them): promtool-style unit tests of rule sets, with
bars, releases and the alerts expected. Loading and checking a file into a Suite, and the series notation.

    config: breakout-jobs.yaml      # a path relative to this file, or an inline mapping of config
    history: store                  # optional: warm up from real bars first (`store`, or a data directory)
    tests:
      - name: spx breaks 2400 on a payrolls beat
        start: 2017-01-03           # first session (default 2024-01-02) of the instrument's exchange calendar
        bars:                       # instrument id -> closes, one per session (holidays skipped)
          spx: "2300 2350 2390x3 2410+5x2"
        releases:                   # macro id -> prints, each published on `date` at the release's time
          payrolls:                 # optional: prior, ref_period (default: the month before `date`)
            - {date: 2017-01-06, actual: 250, consensus: 180}
        expect:                     # every alert, in order; `expect: []` asserts silence
          - {rule: spx-pressing, at: 2017-01-05}    # at: a local date (config timezone) or date-time
          - {rule: spx-breakout, at: "2017-01-06T08:30", message: "S&P 500 2410.00, ..."}  # also: severity, labels

Series notation (promtool's), tokens separated by spaces: `V` one value; `VxN` V repeated N times;
`A+BxN` / `A-BxN` A then N more values stepping by B (N+1 values in all).

With `history:`, each test's bars continue after the real ones of its instruments (`start` defaults to the day
after them), and the alerts of the warm-up are dropped.

A print's consensus is the test's; else the config's (file or inline), as replay takes it; else the mean of
the last 12 earlier first prints.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from macrowatch.commands import testhistory
from macrowatch.config.fields import Reader, describe, suggest
from macrowatch.config.load import TOP_KEYS, config_from_node, load_config
from macrowatch.config.problems import ConfigError, Loc, Problem, Problems
from macrowatch.config.types import Config, Macro, Severity
from macrowatch.config.yamlsrc import YNode, load_file
from macrowatch.engine.outcomes import assess
from macrowatch.model import Alert, Bar, Print
from macrowatch.runtime.history import History
from macrowatch.sources import files
from macrowatch.sources.base import calendar_for
from macrowatch.sources.calendar import close_times

DEFAULT_START = dt.date(2024, 1, 2)
MAX_BARS = 20_000  # about 80 years of sessions: more is a typo in a count, not a test
FILE_KEYS = ["config", "history", "tests"]
TEST_KEYS = ["name", "start", "bars", "releases", "expect"]
PRINT_KEYS = ["date", "actual", "consensus", "prior", "ref_period"]
EXPECT_KEYS = ["rule", "at", "message", "severity", "labels"]

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"
_TOKEN = re.compile(rf"(?P<a>-?{_NUM})(?:(?P<op>[+-])(?P<b>{_NUM}))?(?:x(?P<n>\d+))?")


class NotATestFile(ValueError):
    """A config given where a test file belongs: one line says so, not an error per config key."""


class NotationError(ValueError):
    """A series that is not tokens of `V`, `VxN`, `A+BxN` or `A-BxN` giving positive closes."""


def parse_series(text: str) -> list[float]:
    """Expand series notation ("2300 2390x3 2410+5x2") into one close per session."""
    values: list[float] = []
    for token in text.split():
        m = _TOKEN.fullmatch(token)
        if m is None:
            raise NotationError(f"bad token {token!r}: expected V, VxN, A+BxN or A-BxN")
        count = int(m["n"]) if m["n"] is not None else None
        if count is not None and count < 1:
            raise NotationError(f"bad token {token!r}: N must be at least 1")
        if m["op"] is not None and count is None:
            raise NotationError(f"bad token {token!r}: a step needs a count, as in {token}x3")
        a = float(m["a"])
        if m["op"] is None:
            new = [a] * min(count or 1, MAX_BARS + 1)  # capped: a typo'd count must not eat the memory
        else:
            step = float(m["b"]) if m["op"] == "+" else -float(m["b"])
            new = [round(a + i * step, 9) for i in range(min(count, MAX_BARS) + 1)]  # round: no drift from 0.1s
        if len(values) + len(new) > MAX_BARS:
            raise NotationError(f"bad token {token!r}: more than {MAX_BARS} values in all")
        if min(new) <= 0:
            raise NotationError(f"bad token {token!r}: gives {min(new):g}; closes must be positive")
        values.extend(new)
    if not values:
        raise NotationError("no values: expected closes such as \"2300 2390x3\"")
    return values


@dataclass(frozen=True)
class Expected:
    """One alert a test expects; `message`, `severity` and `labels` are compared only when given."""

    rule: str
    at: dt.date | dt.datetime          # a local date, or an aware date-time
    message: str | None = None
    severity: str | None = None
    labels: Mapping[str, str] | None = None

    def matches(self, alert: Alert, zone: zoneinfo.ZoneInfo) -> bool:
        """Whether `alert` is this one."""
        at = alert.at if isinstance(self.at, dt.datetime) else alert.at.astimezone(zone).date()
        return (alert.rule == self.rule and at == self.at
                and self.message in (None, alert.message) and self.severity in (None, alert.severity)
                and (self.labels is None or dict(self.labels) == dict(alert.labels)))

    def line(self, zone: zoneinfo.ZoneInfo) -> str:
        """The diff line: rule{labels} @ local time [severity]: message."""
        at = (self.at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if isinstance(self.at, dt.datetime)
              else f"{self.at.isoformat()} (any time)")
        severity = f" [{self.severity}]" if self.severity else ""
        message = repr(self.message) if self.message is not None else "(any message)"
        return f"{self.rule}{_labels(self.labels)} @ {at}{severity}: {message}"


def _labels(labels: Mapping[str, str] | None) -> str:
    return "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}" if labels else ""


def alert_line(alert: Alert, zone: zoneinfo.ZoneInfo) -> str:
    """The diff line of an alert that fired, in the same shape as Expected.line."""
    at = alert.at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    return f"{alert.rule}{_labels(alert.labels)} @ {at} [{alert.severity}]: {alert.message!r}"


@dataclass(frozen=True)
class Case:
    """One test: the history it feeds the engine and the alerts it expects."""

    name: str
    history: History
    expect: tuple[Expected, ...]
    since: dt.date | None = None  # with `history:`, the test's first day: the warm-up's alerts before it are dropped


@dataclass(frozen=True)
class Suite:
    """A loaded test file: its config and its tests."""

    path: Path
    config: Config
    cases: tuple[Case, ...]
    warnings: tuple[Problem, ...] = ()  # levels whose history in a test is too short (testhistory.short_levels)


# ---- loading ----------------------------------------------------------------------------------------

def load(path: Path, calendars: Callable[[], frozenset[str]] | None = None, skip_missing: bool = False) -> Suite:
    """Read and check a test file; raise ConfigError listing every problem as FILE:LINE:COL, NotATestFile for a
    config. `skip_missing`: instruments `history:` lacks leave their rules out (testhistory.leave_out)."""
    problems = Problems()
    r = Reader(problems)
    root = load_file(path, problems)
    if root is not None and root.is_map and not set(root.value) & set(FILE_KEYS) and set(root.value) & set(TOP_KEYS):
        raise NotATestFile(f"this is a config, not a rule test file: {path} (run `macrowatch check -c {path}`, "
                           "or give a test file: README, Rule tests)")
    f = r.mapping(root, "test file", FILE_KEYS, ["config", "tests"]) if root is not None else None
    config = _config(r, f["config"], path, calendars) if f and "config" in f else None
    # The tests' ids are checked against the config: with a broken config, its errors come first.
    warm = testhistory.Warm()
    if config is not None and "history" in f:
        config_file = None if f["config"].is_map else path.parent / str(f["config"].value)
        warm = testhistory.read(r, f["history"], path, config, _tested(f.get("tests"), config), config_file,
                                skip_missing)
    cases = _cases(r, f["tests"], config, warm.bars) if config is not None and "tests" in f else []
    if problems.errors or config is None:
        raise ConfigError(problems.errors)
    config, cases, warnings = testhistory.leave_out(config, cases, warm, f["history"].loc if "history" in f else None)
    warnings += [Problem(loc, f"test {case.name!r}: {message}", warning=True)
                 for case, loc in cases for message in testhistory.short_levels(config, case.history.bars)]
    return Suite(path, config, tuple(case for case, _ in cases), tuple(warnings))


def _tested(node: YNode | None, config: Config) -> list[str]:
    """The instruments the tests give bars for (in config order): the ones `history:` must hold."""
    named: set[str] = set()
    for item in node.value if node is not None and node.is_list else []:
        bars = item.value.get("bars") if item.is_map else None
        named |= set(bars.value) if bars is not None and bars.is_map else set()
    return [iid for iid in config.instruments if iid in named]


def _config(r: Reader, node: YNode, path: Path, calendars) -> Config | None:
    # A config's warnings (unset channel or API-key variables) are dropped: a test neither fetches nor sends.
    if node.is_map:
        return _inline_config(r, node, path, calendars)
    ref = r.string(node, "config")
    if ref is None:
        return None
    try:
        return load_config(path.parent / ref, calendars=calendars)[0]
    except ConfigError as exc:
        r.problems.items.extend(p for p in exc.problems if not p.warning)
        r.error(node.loc, f"config: {ref!r} cannot be used (its errors are listed with it)")
        return None


def _inline_config(r: Reader, node: YNode, path: Path, calendars) -> Config | None:
    # Merged and built as a config file's root would be, so that its errors point into this file and
    # its relative paths (a consensus file) start beside it.
    return config_from_node(node, path, r.problems, calendars)


def _cases(r: Reader, node: YNode, config: Config, warm: dict[str, list[Bar]]) -> list[tuple[Case, Loc]]:
    """The tests, each with the place its warnings point at (its bars, else its name)."""
    if not node.is_list or not node.value:
        r.error(node.loc, f"tests: expected a non-empty list of tests, got {describe(node.value)}")
        return []
    cases: list[tuple[Case, Loc]] = []
    seen: dict[str, int] = {}
    for item in node.value:
        f = r.mapping(item, "test", TEST_KEYS, ["name", "expect"])
        name = r.string(f["name"], "test: name") if f and "name" in f else None
        if name is not None and name in seen:
            r.error(f["name"].loc, f"test {name!r}: name: given twice (first at line {seen[name]})")
        elif name is not None:
            seen[name] = f["name"].loc.line
            case = _case(r, f, name, config, warm)
            if case is not None:
                cases.append((case, f["bars"].loc if "bars" in f else f["name"].loc))
    return cases


def _case(r: Reader, f: dict[str, YNode], name: str, config: Config, warm: dict[str, list[Bar]]) -> Case | None:
    what = f"test {name!r}"
    zone = zoneinfo.ZoneInfo(config.timezone)
    n_errors = len(r.problems.errors)
    # After a warm-up, the test's bars continue after the real ones: by default from the day after the last.
    after = max((b[-1].session for b in warm.values()), default=None)
    start = (r.date(f["start"], f"{what}: start") if "start" in f
             else after + dt.timedelta(days=1) if after is not None else DEFAULT_START)
    bars = _bars(r, f["bars"], config, start, what) if "bars" in f and start else {}
    if start and "start" in f:
        _overlaps(r, f["start"], warm, bars, start, what)
    prints = _releases(r, f["releases"], config, what, zone) if "releases" in f else []
    expect = _expect(r, f["expect"], config, what, zone) if "expect" in f else []
    if len(r.problems.errors) > n_errors:
        return None
    history = History({**warm, **{iid: warm.get(iid, []) + b for iid, b in bars.items()}},
                      sorted(prints, key=lambda p: (p.at, p.macro)))
    return Case(name, history, tuple(expect), start if warm else None)


def _overlaps(r: Reader, node: YNode, warm: dict[str, list[Bar]], bars: dict[str, list[Bar]], start: dt.date,
              what: str) -> None:
    """An error for each instrument whose real bars (`history:`) reach the test's own."""
    for iid in bars:
        if iid in warm and warm[iid][-1].session >= start:
            r.error(node.loc, f"{what}: start: {start} overlaps the history, whose bars of {iid} run to "
                              f"{warm[iid][-1].session}: start after it, or leave `start` out to continue after it")


def _bars(r: Reader, node: YNode, config: Config, start: dt.date, what: str) -> dict[str, list[Bar]]:
    if not node.is_map:
        r.error(node.loc, f"{what}: bars: expected a mapping of instrument id to closes, got {describe(node.value)}")
        return {}
    out = {}
    for iid, value in node.value.items():
        where = f"{what}: bars.{iid}"
        if iid not in config.instruments:
            r.error(node.keys[iid], f"{where}: unknown instrument {iid!r}{suggest(iid, config.instruments)}; "
                                    f"the config has {', '.join(config.instruments) or 'none'}")
            continue
        if isinstance(value.value, bool) or not isinstance(value.value, str | int | float):
            r.error(value.loc, f"{where}: expected closes in series notation, got {describe(value.value)}")
            continue
        try:
            closes = parse_series(str(value.value))
        except NotationError as exc:
            r.error(value.loc, f"{where}: {exc}")
            continue
        code = calendar_for(config)(config.instruments[iid])
        sessions = _sessions(code, start, len(closes))
        if sessions is None:
            r.error(value.loc, f"{where}: the {code} calendar has no sessions for these {len(closes)} closes "
                               f"from {start}")
            continue
        out[iid] = [Bar(day, at, c, c, c, c) for (day, at), c in zip(sessions, closes, strict=True)]
    return out


def _sessions(code: str, start: dt.date, n: int) -> list[tuple[dt.date, dt.datetime]] | None:
    """The first `n` sessions from `start` with their real close times, or None if the calendar ends first."""
    span = dt.timedelta(days=2 * n + 14)  # calendar days holding n sessions, weekends and holidays included
    try:
        closes = close_times(code, start, start + span)
    except ValueError:  # a date outside what exchange_calendars covers
        return None
    sessions = sorted(closes.items())[:n]
    return sessions if len(sessions) == n else None


def _releases(r: Reader, node: YNode, config: Config, what: str, zone: zoneinfo.ZoneInfo) -> list[Print]:
    if not node.is_map:
        r.error(node.loc, f"{what}: releases: expected a mapping of macro id to prints, got {describe(node.value)}")
        return []
    out: list[Print] = []
    for mid, items in node.value.items():
        where = f"{what}: releases.{mid}"
        if mid not in config.macro:
            r.error(node.keys[mid], f"{where}: unknown macro series {mid!r}{suggest(mid, config.macro)}; "
                                    f"the config has {', '.join(config.macro) or 'none'}")
        elif not items.is_list:
            r.error(items.loc, f"{where}: expected a list of prints, got {describe(items.value)}")
        else:
            out.extend(_prints(r, items, config, config.macro[mid], where, zone))
    return out


def _prints(r: Reader, node: YNode, config: Config, macro: Macro, where: str,
            zone: zoneinfo.ZoneInfo) -> list[Print]:
    rows = [row for row in (_print_row(r, item, where) for item in node.value) if row is not None]
    if not _config_consensus_reads(r, node, macro, where):
        return []
    time = config.releases[macro.release].time
    out, firsts = [], []  # firsts: the earlier first prints, for the baseline consensus
    for day, actual, consensus, prior, period in sorted(rows, key=lambda row: row[0]):
        period = period or (day.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        # A print's own consensus comes first, then the config's, as replay takes it: files.consensus_for.
        given = files.consensus_for(macro, None if consensus is None else ({period: consensus}, "consensus (test)"))
        out.append(assess(macro, dt.datetime.combine(day, time, zone), period, actual, prior, *given, firsts))
        firsts.append(actual)
    return out


def _print_row(r: Reader, node: YNode, where: str):
    """(date, actual, consensus, prior, ref_period), None for a key not given; None when anything is wrong."""
    errors = len(r.problems.errors)
    f = r.mapping(node, where, PRINT_KEYS, ["date", "actual"]) or {}
    read = {"date": r.date, "actual": r.number, "consensus": r.number, "prior": r.number,
            "ref_period": r.month_or_date}
    row = tuple(read[k](f[k], f"{where}: {k}") if k in f else None for k in PRINT_KEYS)
    return row if len(r.problems.errors) == errors and "date" in f and "actual" in f else None


def _config_consensus_reads(r: Reader, node: YNode, macro: Macro, where: str) -> bool:
    """Whether the config's consensus (its file) reads; an error at the test's prints when not."""
    try:
        files.consensus_for(macro)
    except files.DataError as exc:
        r.error(node.loc, f"{where}: the config's consensus file: {exc}")
        return False
    return True


def _expect(r: Reader, node: YNode, config: Config, what: str, zone: zoneinfo.ZoneInfo) -> list[Expected]:
    if not node.is_list:
        r.error(node.loc, f"{what}: expect: expected a list of alerts (`expect: []` for none), "
                          f"got {describe(node.value)}")
        return []
    rules = [rule.name for rule in config.rules]
    out = []
    for item in node.value:
        where = f"{what}: expect"
        f = r.mapping(item, where, EXPECT_KEYS, ["rule", "at"])
        if f is None or "rule" not in f or "at" not in f:
            continue
        rule = r.string(f["rule"], f"{where}: rule")
        if rule is not None and rule not in rules:
            r.error(f["rule"].loc, f"{where}: unknown rule {rule!r}{suggest(rule, rules)}; "
                                   f"the config has {', '.join(rules)}")
        at = _at(r, f["at"], f"{where}: at", zone)
        message = r.string(f["message"], f"{where}: message", nonempty=False) if "message" in f else None
        severity = (r.choice(f["severity"], f"{where}: severity", [s.value for s in Severity])
                    if "severity" in f else None)
        labels = _expected_labels(r, f["labels"], where) if "labels" in f else None
        if rule is not None and at is not None:
            out.append(Expected(rule, at, message, severity, labels))
    return out


def _at(r: Reader, node: YNode, what: str, zone: zoneinfo.ZoneInfo) -> dt.date | dt.datetime | None:
    v = node.value
    if isinstance(v, str):
        text = v.strip()
        with contextlib.suppress(ValueError):  # not ISO: reported below with the value as written
            v = dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
    if isinstance(v, dt.datetime):
        return v if v.tzinfo else v.replace(tzinfo=zone)  # a date-time without offset is local time
    if isinstance(v, dt.date):
        return v
    r.error(node.loc, f"{what}: expected a local date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM), "
                      f"got {describe(v)}")
    return None


def _expected_labels(r: Reader, node: YNode, where: str) -> dict[str, str] | None:
    if not node.is_map or not all(v.is_scalar and v.value is not None for v in node.value.values()):
        r.error(node.loc, f"{where}: labels: expected a mapping of names to strings or numbers")
        return None
    return {k: str(v.value) for k, v in node.value.items()}  # as the config reads labels: 1 means "1"
