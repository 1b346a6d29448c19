"""What several commands share: loading the config or exiting 2, printing problems, quieting loggers."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from macrowatch.config import Config, ConfigError, Problem, load_config
from macrowatch.sources.calendar import calendar_names


def print_problems(problems: list[Problem]) -> None:
    """Each problem on its own line on stderr (FILE:LINE:COL: message)."""
    for p in problems:
        click.echo(str(p), err=True)


def load_or_exit(path: Path, for_run: bool = False, channels: bool = True) -> Config:
    """Load the config, print its warnings; on errors print them all and exit 2.

    `channels`: False for a command that sends through none of the config's channels (or checks the one it
    uses itself): their unset ${VAR} is not mentioned.
    """
    try:
        config, warnings = load_config(path, for_run=for_run, channels=channels, calendars=calendar_names)
    except ConfigError as exc:
        print_problems(exc.problems)
        n = len([p for p in exc.problems if not p.warning])
        click.echo(f"{path}: {n} error{'s' if n != 1 else ''}", err=True)
        sys.exit(2)
    print_problems(warnings)
    return config


@contextlib.contextmanager
def quiet(*names: str) -> Iterator[None]:
    """These loggers' warnings off for a while: a command that prints the outcome itself (their lines would
    reach stderr through logging's last resort, saying it a second time)."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
