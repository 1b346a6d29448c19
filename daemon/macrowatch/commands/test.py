"""`macrowatch test`: run the tests of rule test files (commands/rulestest.py reads them) and report.

Each test runs a fresh Engine over its History through `history.run`, the one code path from events to alerts
that the daemon and `replay` share; its alerts are paired with the expected ones in order (`align`), and the
report is PASS or FAIL per test with a diff and the trace that decided it (commands/testtrace.py), as text and,
optionally, JUnit XML.
"""

from __future__ import annotations

import datetime as dt
import sys
import xml.etree.ElementTree as ET
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from macrowatch.commands import rulestest, testtrace
from macrowatch.commands.common import print_problems
from macrowatch.commands.rulestest import Case, Expected, Suite, alert_line
from macrowatch.config.problems import ConfigError
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Alert
from macrowatch.runtime import history
from macrowatch.sources.calendar import calendar_names


def command(files: tuple[Path, ...], junit_path: Path | None, skip_missing: bool = False) -> None:
    """Load every file (exit 2 listing all their problems), run every test; exit 0 when all pass, else 1.
    `skip_missing`: the rules reading an instrument a file's `history:` lacks are left out, with a warning."""
    suites, problems, configs = [], [], []
    for path in files:  # every file is read before any runs, so that all problems are reported at once
        try:
            suites.append(rulestest.load(path, calendar_names, skip_missing))
        except ConfigError as exc:
            problems.extend(exc.problems)
        except rulestest.NotATestFile as exc:
            configs.append(str(exc))
    if problems or configs:
        print_problems(problems)
        for line in configs:
            click.echo(line, err=True)
        if problems:
            click.echo(f"{len(problems)} error{'s' if len(problems) != 1 else ''}", err=True)
        sys.exit(2)
    print_problems([w for s in suites for w in s.warnings])
    runs = [(s, [run_case(s, case) for case in s.cases]) for s in suites]
    for suite, results in runs:
        for line in report(suite, results):
            click.echo(line)
    failed = sum(not res.passed for _, results in runs for res in results)
    click.echo(f"{sum(len(results) for _, results in runs) - failed} passed, {failed} failed")
    if junit_path is not None:
        junit_path.write_bytes(junit_xml(runs))
    sys.exit(1 if failed else 0)


@dataclass(frozen=True)
class CaseResult:
    """A test's verdict; `diff` is empty when it passed."""

    name: str
    expected: int
    got: int
    diff: tuple[str, ...] = ()
    trace: tuple[str, ...] = ()  # under a failure: the events around each difference (testtrace.trace)

    @property
    def passed(self) -> bool:
        return not self.diff


def run_case(suite: Suite, case: Case) -> CaseResult:
    """Run one test through history.run with a fresh Engine; compare the alerts with the expected ones."""
    zone = zoneinfo.ZoneInfo(suite.config.timezone)
    got = history.run(Engine(suite.config), case.history, case.since, tz=suite.config.timezone)
    ops = align(case.expect, got, zone)
    if all(op == " " for op, _, _ in ops):
        return CaseResult(case.name, len(case.expect), len(got))
    lines = ["--- expected", "+++ got"]
    lines += [f"{op} {alert_line(a, zone) if a is not None else e.line(zone)}" for op, e, a in ops]
    differ = [(e, a) for op, e, a in ops if op != " "]
    days = [a.at.astimezone(zone).date() if a is not None else _day(e.at, zone) for e, a in differ]
    rules = [a.rule if a is not None else e.rule for e, a in differ]
    trace = testtrace.trace(suite.config, case, rules, days)
    return CaseResult(case.name, len(case.expect), len(got), tuple(lines), tuple(trace))


def _day(at: dt.date | dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.date:
    return at.astimezone(zone).date() if isinstance(at, dt.datetime) else at


def align(expected: tuple[Expected, ...], got: list[Alert], zone: zoneinfo.ZoneInfo) -> list[tuple]:
    """Pair expected and actual alerts in order (a longest common subsequence): ' ' both, '-' or '+' one side."""
    n, m = len(expected), len(got)
    match = [[expected[i].matches(got[j], zone) for j in range(m)] for i in range(n)]
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            best[i][j] = best[i + 1][j + 1] + 1 if match[i][j] else max(best[i + 1][j], best[i][j + 1])
    ops, i, j = [], 0, 0
    while i < n or j < m:
        if i < n and j < m and match[i][j]:  # taking a match is never worse, whatever the relation
            ops.append((" ", expected[i], got[j]))
            i, j = i + 1, j + 1
        elif j == m or (i < n and best[i + 1][j] >= best[i][j + 1]):
            ops.append(("-", expected[i], None))
            i += 1
        else:
            ops.append(("+", None, got[j]))
            j += 1
    return ops


def report(suite: Suite, results: list[CaseResult]) -> Iterator[str]:
    """The text report of one file: PASS/FAIL per test, each failure followed by its diff."""
    yield str(suite.path)
    for res in results:
        yield f"{'PASS' if res.passed else 'FAIL'} {res.name}"
        yield from (f"    {line}" for line in (*res.diff, *res.trace))


def junit_xml(runs: list[tuple[Suite, list[CaseResult]]]) -> bytes:
    """JUnit XML: one testsuite per file, one testcase per test, a <failure> holding the diff."""
    total = sum(len(results) for _, results in runs)
    failed = sum(not res.passed for _, results in runs for res in results)
    root = ET.Element("testsuites", name="macrowatch test", tests=str(total), failures=str(failed))
    for suite, results in runs:
        node = ET.SubElement(root, "testsuite", name=str(suite.path), tests=str(len(results)),
                             failures=str(sum(not res.passed for res in results)), errors="0")
        for res in results:
            case = ET.SubElement(node, "testcase", name=res.name, classname=str(suite.path))
            if not res.passed:
                failure = ET.SubElement(case, "failure", type="AlertsDiffer",
                                        message=f"expected {res.expected} alerts, got {res.got}")
                failure.text = "\n".join((*res.diff, *res.trace))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
