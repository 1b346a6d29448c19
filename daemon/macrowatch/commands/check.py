"""`macrowatch check`: validate a config and its rules; optionally print the effective config."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from macrowatch.commands.common import load_or_exit
from macrowatch.config.dump import dump


def command(config_path: Path, show: bool, for_run: bool) -> None:
    """Load the config (exit 2 listing every error); with `show`, print it with every default written out."""
    config = load_or_exit(config_path, for_run=for_run)
    if show:
        click.echo(yaml.safe_dump(dump(config), sort_keys=False, allow_unicode=True), nl=False)
    click.echo(f"{config_path}: ok: {config.summary()}")
