"""`macrowatch run`: the daemon in the foreground (runtime/service.py), on a config checked as for a run."""

from __future__ import annotations

import sys
from pathlib import Path

from macrowatch.commands.common import load_or_exit
from macrowatch.runtime import service


def command(config_path: Path) -> None:
    """Load the config (an unset ${VAR} of a channel is an error here) and run until stopped; exit with its code."""
    config = load_or_exit(config_path, for_run=True)
    sys.exit(service.run(config_path, config))
