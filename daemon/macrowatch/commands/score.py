"""`macrowatch replay --score`: each replayed alert with its forward returns, and a summary per rule and horizon
against the baseline of every session of the window.

engine/scoring.py does the arithmetic over the close and open arrays the replay already holds; this module picks
each rule's instrument, reads the sessions' opens from the exchange calendar, and prints (commands/scorereport.py
writes the --report folder).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from macrowatch.config.types import Config, Direction
from macrowatch.engine import scoring
from macrowatch.engine.scoring import Prices, RuleScore
from macrowatch.model import Alert, Bars, number
from macrowatch.runtime.history import History
from macrowatch.sources.base import calendar_for
from macrowatch.sources.calendar import session_columns

DEFAULT_HORIZONS = "1,5,20"
MAX_HORIZON = 2520  # ten years of sessions: longer is a typo
CALENDAR_SLACK = dt.timedelta(days=10)  # before the first alert: the calendar must know the session before it


@dataclass(frozen=True)
class Options:
    """What `--score`, `--horizons` and `--report` asked for."""

    horizons: tuple[int, ...]
    report: Path | None = None


def options(horizons: str | None, report: Path | None) -> Options:
    """The options from the command line; `--horizons` is N or N,M,... (sessions, each 1 to MAX_HORIZON)."""
    text = horizons if horizons is not None else DEFAULT_HORIZONS
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= MAX_HORIZON:
            raise click.BadParameter(f"{part!r} is not a count of sessions from 1 to {MAX_HORIZON} "
                                     f"(write e.g. {DEFAULT_HORIZONS})", param_hint="--horizons")
        values.append(int(part))
    return Options(tuple(sorted(set(values))), report)


@dataclass(frozen=True)
class Scores:
    """Every alert's returns and every rule's summary, as `replay --score` prints them."""

    horizons: tuple[int, ...]
    window: tuple[dt.date | None, dt.date | None]
    returns: list[np.ndarray | None]  # per alert, one per horizon; None when its rule is not scorable
    entries: list[str]                # per alert: where it entered, in words
    rules: list[RuleScore]            # in the config's order

    def alert_json(self, k: int) -> dict:
        """The `score` of alert k's jsonl line: {"1": r1, "5": r5, ...}, null where the data ends first; null for
        a rule that is not scorable."""
        row = self.returns[k]
        return {"score": None if row is None else {str(h): number(float(r)) for h, r in zip(self.horizons, row,
                                                                                              strict=True)}}

    def alert_text(self, k: int) -> str:
        """The line under alert k's text line: where it entered and its return per horizon."""
        row = self.returns[k]
        if row is None:
            return ""
        shown = "  ".join(f"{h}: {_pct(r)}{'%' if r == r else ''}" for h, r in zip(self.horizons, row, strict=True))
        return f"\n    score {self.entries[k]}: {shown}"

    def summary_json(self) -> list[dict]:
        """One line per scorable rule and horizon, as DESIGN.md spells it."""
        return [{"summary": r.rule, "horizon": s.horizon, "n": s.n, "mean": _num(s.mean), "median": _num(s.median),
                 "hit_rate": _num(s.hit_rate), "worst": _num(s.worst), "baseline_mean": _num(s.baseline_mean),
                 "baseline_hit_rate": _num(s.baseline_hit_rate), "excess": _num(s.excess)}
                for r in self.rules if r.instrument for s in r.summaries]

    def table(self) -> list[list[str]]:
        """The summary as rows of cells, the header first (text output and the report's index.html)."""
        rows = [["rule", "instrument", "horizon", "alerts", "mean", "median", "hit rate", "worst",
                 "baseline mean", "baseline hit rate", "excess"]]
        for r in self.rules:
            if not r.instrument:
                continue
            for s in r.summaries:
                rows.append([r.rule, f"{r.instrument} {r.direction.value}", str(s.horizon), str(s.n), _pct(s.mean),
                             _pct(s.median), _share(s.hit_rate), _pct(s.worst), _pct(s.baseline_mean),
                             _share(s.baseline_hit_rate), _pct(s.excess)])
        return rows

    def caption(self) -> str:
        """What the figures are, for the table's heading."""
        start, end = self.window
        return (f"returns in % after {', '.join(map(str, self.horizons))} sessions; baseline: every session from "
                f"{start or 'the first session'} to {end or 'the last session'}, same instrument and direction")


def score(config: Config, history: History, alerts: list[Alert], start: dt.date | None, end: dt.date | None,
          horizons: tuple[int, ...]) -> Scores:
    """Score `alerts` (replayed from `history` over `start`..`end`) at each horizon."""
    columns = history.columns()
    by_rule: dict[str, list[int]] = {}
    for k, a in enumerate(alerts):
        by_rule.setdefault(a.rule, []).append(k)
    alert_at = np.array([a.at.astimezone(dt.UTC).replace(tzinfo=None) for a in alerts], dtype="datetime64[ns]")
    first_alert = min((a.at.date() for a in alerts), default=None)
    prices: dict[str, tuple[Prices, tuple]] = {}
    baselines: dict[tuple[str, Direction], np.ndarray] = {}
    returns: list[np.ndarray | None] = [None] * len(alerts)
    entries = [""] * len(alerts)
    rules = []
    for rule in config.rules:
        iid, direction = scoring.instrument_of(rule, config.levels), scoring.direction_of(rule)
        mine = by_rule.get(rule.name, [])
        empty = np.full((len(mine), len(horizons)), np.nan)
        if iid is None or not len(columns.get(iid, ())):
            why = "it names no instrument (give it `score: {instrument: ID}`)" if iid is None else \
                f"its instrument {iid} has no bars"
            rules.append(RuleScore(rule.name, None, direction, empty, empty, (), why))
            continue
        if iid not in prices:
            prices[iid] = _prices(config, iid, columns[iid], first_alert)
        p, calendar = prices[iid]
        entry = scoring.entries(p, alert_at[mine], calendar)
        mine_returns = scoring.forward_returns(p, entry, horizons, direction)
        if (iid, direction) not in baselines:
            baselines[iid, direction] = scoring.baseline(p, _window(p, start, end), horizons, direction)
        base = baselines[iid, direction]
        for row, (k, i, at_open) in enumerate(zip(mine, entry.index, entry.at_open, strict=True)):
            returns[k] = mine_returns[row]
            entries[k] = _entry_words(iid, direction, p, int(i), bool(at_open))
        rules.append(RuleScore(rule.name, iid, direction, mine_returns, base,
                               tuple(scoring.summarize(mine_returns, base, horizons))))
    return Scores(horizons, (start, end), returns, entries, rules)


def _prices(config: Config, iid: str, bars: Bars, first_alert: dt.date | None) -> tuple[Prices, tuple]:
    """An instrument's bars with their opens, and its calendar from before the first alert to its last bar."""
    code = calendar_for(config)(config.instruments[iid])
    first = bars.session[0].astype(dt.date)
    if first_alert is not None:
        first = min(first, first_alert)
    calendar = session_columns(code, first - CALENDAR_SLACK, bars.session[-1].astype(dt.date))
    return Prices.of(bars.session, bars.at, bars.open, bars.close, calendar), calendar


def _window(p: Prices, start: dt.date | None, end: dt.date | None) -> np.ndarray:
    inside = np.ones(len(p.session), dtype=bool)
    if start is not None:
        inside &= p.session >= np.datetime64(start, "D")
    if end is not None:
        inside &= p.session <= np.datetime64(end, "D")
    return inside


def _entry_words(iid: str, direction: Direction, p: Prices, i: int, at_open: bool) -> str:
    if i < 0:
        return f"{iid} {direction.value}, no entry (its session is not in the data)"
    price = p.open[i] if at_open else p.close[i]
    return f"{iid} {direction.value} from the {'open' if at_open else 'close'} of {p.session[i]} at {price:.2f}"


def show(scores: Scores, fmt: str, report: Path | None = None) -> None:
    """Print the summary (after the alerts): one jsonl line per rule and horizon, or a text table; the rules that
    could not be scored are warnings on stderr. With `report`, write the pictures and index.html there (exit 2
    when the folder cannot be written)."""
    for r in scores.rules:
        if not r.instrument:
            click.echo(f"macrowatch replay: warning: rule {r.rule} is not scored: {r.why}", err=True)
    if fmt == "jsonl":
        for line in scores.summary_json():
            click.echo(json.dumps(line))
    else:
        rows = scores.table()
        widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
        click.echo(f"\nscores: {scores.caption()}")
        for row in rows:
            cells = [cell.ljust(w) if c < 2 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths,
                                                                                                  strict=True))]
            click.echo("  ".join(cells).rstrip())
    if report is not None:
        from macrowatch.commands import scorereport

        try:
            written = scorereport.write(report, scores.rules, scores.horizons, scores.table(), scores.caption())
        except OSError as exc:
            click.echo(f"macrowatch replay: --report {report}: cannot write it: {exc.strerror or exc}", err=True)
            sys.exit(2)
        click.echo(f"macrowatch replay: wrote {len(written) - 1} picture{'s' if len(written) != 2 else ''} and "
                   f"{written[-1]}", err=True)


def _num(x: float | None) -> float | None:
    return None if x is None else number(x)


def _pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{100 * x:+.2f}"


def _share(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"
