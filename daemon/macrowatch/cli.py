"""The `macrowatch` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from macrowatch import __version__
from macrowatch.config import Config, ConfigError, Problem, load_config

DEFAULT_CONFIG = "macrowatch.yaml"


def config_option(func):
    """`-c/--config`: a YAML file or a directory of them (default $MACROWATCH_CONFIG, else ./macrowatch.yaml)."""
    return click.option(
        "-c", "--config", "config_path", type=click.Path(path_type=Path), envvar="MACROWATCH_CONFIG",
        default=DEFAULT_CONFIG, show_default=True, show_envvar=True,
        help="Config file, or a directory of *.yaml files merged.")(func)


def _print_problems(problems: list[Problem]) -> None:
    for p in problems:
        click.echo(str(p), err=True)


def load_or_exit(path: Path, for_run: bool = False) -> Config:
    """Load the config, print its warnings; on errors print them all and exit 2."""
    from macrowatch.sources.calendar import calendar_names

    try:
        config, warnings = load_config(path, for_run=for_run, calendars=calendar_names)
    except ConfigError as exc:
        _print_problems(exc.problems)
        n = len([p for p in exc.problems if not p.warning])
        click.echo(f"{path}: {n} error{'s' if n != 1 else ''}", err=True)
        sys.exit(2)
    _print_problems(warnings)
    return config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="macrowatch")
def cli() -> None:
    """macrowatch: watch price levels and macro releases; alert when a thesis's rules fire."""


@cli.command()
@config_option
def check(config_path: Path) -> None:
    """Validate a config and its rules; exit 0, or 2 listing every error as FILE:LINE:COL.

    \b
    Example:
        macrowatch check -c rules/breakout-jobs.yaml
    """
    config = load_or_exit(config_path)
    click.echo(f"{config_path}: ok: {config.summary()}")


def main() -> None:
    """Console entry point: unexpected failures exit 1 with one line, not a traceback."""
    try:
        cli.main(prog_name="macrowatch", standalone_mode=True)
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a command-line tool
        if os.environ.get("MACROWATCH_DEBUG"):
            raise
        click.echo(f"macrowatch: error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)


