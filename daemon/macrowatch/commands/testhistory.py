"""The history of a rule test (commands/rulestest.py): real bars to warm the levels up from before the test's own
(`history: store` or `history: DIR`), and the warning for a level whose bars in a test are too few to give it a
value: a 52-week high has none until 252 closes exist, and a test of 40 bars would fail with nothing said why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from macrowatch.commands import missing
from macrowatch.commands.replay import load_history
from macrowatch.config.fields import Reader
from macrowatch.config.problems import Loc, Problem
from macrowatch.config.types import Config, Level, LevelKind
from macrowatch.config.yamlsrc import YNode
from macrowatch.model import Bar
from macrowatch.runtime.inputs import level_key, rule_inputs
from macrowatch.runtime.wiring import open_store_for
from macrowatch.sources import files
from macrowatch.store import StoreError

Case = TypeVar("Case")  # rulestest.Case (rulestest imports this module: no import back)

SKIP = "macrowatch test --skip-missing"


@dataclass(frozen=True)
class Warm:
    """The bars of `history:` per instrument; with `--skip-missing`, the instruments it lacks and what lacks them
    ("the store", or the data directory)."""

    bars: dict[str, list[Bar]] = field(default_factory=dict)
    lacking: tuple[str, ...] = ()
    where: str = ""


def read(r: Reader, node: YNode, path: Path, config: Config, instruments: Iterable[str],
         config_file: Path | None, skip_missing: bool = False) -> Warm:
    """The bars of `history:` per instrument the tests give bars for; an error for each one it lacks (with
    `skip_missing`, the lacking ones are listed in the Warm instead: `leave_out` leaves their rules out).

    `store`: the config's store, read-only (what `fetch` and `run` saved); else a data directory relative to the
    test file, read as `replay --data` reads it. `config_file`: the config to name in `macrowatch fetch -c` (None
    for an inline config).
    """
    text = r.string(node, "history")
    if text is None:
        return Warm()
    if text == "store":
        fetch = f"macrowatch fetch -c {config_file if config_file is not None else 'CONFIG'}"
        return _from_store(r, node, config, instruments, fetch, skip_missing)
    data_dir = path.parent / text
    if not data_dir.is_dir():
        r.error(node.loc, f"history: expected `store` or a data directory (with prices/<SYMBOL>.csv, as `macrowatch "
                          f"replay --data` reads), got {text!r}: {data_dir} is not a directory")
        return Warm()
    lacking = missing.in_directory(config, data_dir, instruments, series=False).instruments
    for iid, file in lacking.items() if not skip_missing else ():
        r.error(node.loc, f"history: {data_dir} lacks the bars of {iid} ({config.instruments[iid].symbol}): "
                          f"{file} not found; add it, or `{SKIP}` leaves out the rules that read {iid}")
    out = {}
    for iid in (i for i in instruments if i not in lacking):
        # One instrument at a time and no macro series: each bad price file is named, and no macro file is read.
        alone = dataclasses.replace(config, instruments={iid: config.instruments[iid]}, macro={})
        try:
            out[iid] = load_history(alone, data_dir).bar_list(iid)
        except files.DataError as exc:
            r.error(node.loc, f"history: bars of {iid}: {exc}")
    return Warm(out, tuple(lacking) if skip_missing else (), str(data_dir))


def _from_store(r: Reader, node: YNode, config: Config, instruments: Iterable[str],
                fetch: str, skip_missing: bool) -> Warm:
    out, lacking = {}, []
    try:
        with open_store_for(config, read_only=True) as store:
            for iid in instruments:
                bars = store.bars(iid)
                if bars:
                    out[iid] = bars
                elif skip_missing:
                    lacking.append(iid)
                else:
                    r.error(node.loc, f"history: store: the store has no bars of {iid} "
                                      f"({config.instruments[iid].symbol}); `{fetch}` gets them, or `{SKIP}` leaves "
                                      f"out the rules that read {iid}")
    except StoreError as exc:
        r.error(node.loc, f"history: store: {exc}; `{fetch}` fills it")
    return Warm(out, tuple(lacking), "the store")


def leave_out(config: Config, cases: list[tuple[Case, Loc]], warm: Warm,
              loc: Loc | None) -> tuple[Config, list[tuple[Case, Loc]], list[Problem]]:
    """With instruments `history:` lacks (`--skip-missing`): the config without the rules that read them, the tests
    without their bars and without the expected alerts of those rules, and a warning for each rule left out and
    each test whose expected alerts were cut. When no rule is left, no test runs (a pass would check nothing)."""
    if not warm.lacking or loc is None:
        return config, cases, []
    reduced, lines = missing.leave_out(config, warm.lacking, (), warm.where)
    warnings = [Problem(loc, f"history: {line}", warning=True) for line in lines]
    if not reduced.rules:
        warnings.append(Problem(loc, "history: every rule is left out: no test of this file runs", warning=True))
        return reduced, [], warnings
    kept = {rule.name for rule in reduced.rules}
    out = []
    for case, where in cases:
        cut = list(dict.fromkeys(e.rule for e in case.expect if e.rule not in kept))
        if cut:
            warnings.append(Problem(where, f"test {case.name!r}: the expected alerts of {', '.join(cut)} are not "
                                           "checked (left out)", warning=True))
        bars = {iid: b for iid, b in case.history.bars.items() if iid in reduced.instruments}
        out.append((dataclasses.replace(case, history=dataclasses.replace(case.history, bars=bars),
                                        expect=tuple(e for e in case.expect if e.rule in kept)), where))
    return reduced, out, warnings


def short_levels(config: Config, bars: Mapping[str, list[Bar]]) -> list[str]:
    """A warning per level a rule reads whose instrument has bars in the test, but too few for the level to have a
    value before the last of them (so no close of the test is judged against it)."""
    read_by_rules = set().union(*(rule_inputs(config, rule) for rule in config.rules))
    out = []
    for lid, level in config.levels.items():
        got = bars.get(level.instrument)
        if not got or level_key(lid) not in read_by_rules:
            continue
        needed, has = _needs(level), _counted(level, got)
        if needed and has <= needed:
            more = " (and one more before a close is judged against it)" if has == needed else ""
            out.append(f"level {lid}: {has} bar{'s' if has != 1 else ''} of history"
                       f"{f' since {level.since}' if level.since else ''}, needs {needed} before it has a value{more}")
    return out


def _needs(level: Level) -> int:
    """The closes a level takes in before it has a value: N for the high (low) of N bars, one for a running
    extreme, none for a fixed price."""
    if level.kind in (LevelKind.HIGH_OF, LevelKind.LOW_OF):
        return level.bars or 1
    return 0 if level.kind is LevelKind.PRICE else 1


def _counted(level: Level, bars: list[Bar]) -> int:
    """The bars that count toward the level's value: those since its `since` date, if it has one."""
    return len(bars) if level.since is None else sum(1 for b in bars if b.session >= level.since)
