"""`macrowatch check`: validate a config and its rules; optionally print the effective config."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from macrowatch.commands.common import load_or_exit, print_problems
from macrowatch.config import Config, Problem
from macrowatch.config.dump import dump
from macrowatch.sources.schedule import unschedulable


def command(config_path: Path, show: bool, for_run: bool) -> None:
    """Load the config (exit 2 listing every error); with `show`, print it with every default written out."""
    config = load_or_exit(config_path, for_run=for_run)
    print_problems(no_consensus(config) + no_calendar(config))
    if show:
        click.echo(yaml.safe_dump(dump(config), sort_keys=False, allow_unicode=True), nl=False)
    click.echo(f"{config_path}: ok: {config.summary()}")


def no_consensus(config: Config) -> list[Problem]:
    """A warning per macro series with no consensus at all (no file, no inline values, no feed): its releases are
    judged against the mean of its last 12 first prints, which is not what the market expected."""
    return [Problem(m.loc, f"macro.{m.id}: no consensus (no file, no values, no feed): its releases are judged "
                           "against the mean of the last 12 first prints; name a feed, e.g. consensus: {feed: "
                           "forexfactory, event: ...}", warning=True)
            for m in config.macro.values() if m.consensus_file is None and not m.consensus and not m.feeds]


def no_calendar(config: Config) -> list[Problem]:
    """A warning per release with no usable calendar: its release rules could never fire. The BLS schedule is not
    fetched here (check makes no request): a `bls:` title counts as usable; the daemon and `calendar` check it."""
    return [Problem(config.releases[rid].loc, f"releases.{rid}: no usable calendar, it is never scheduled: {why}",
                    warning=True)
            for rid, why in unschedulable(config, fred_key=bool(config.fred.api_key))]
