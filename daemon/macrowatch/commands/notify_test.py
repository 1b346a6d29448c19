"""`macrowatch notify-test`: a made-up alert, with a chart, through one channel; whether it arrived or why not."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from macrowatch.clock import Clock
from macrowatch.commands.common import load_or_exit, quiet
from macrowatch.notify.chart import draw
from macrowatch.notify.outbox import deliver
from macrowatch.notify.sample import sample
from macrowatch.notify.send import send


def command(channel_id: str, config_path: Path, timeout: float) -> None:
    """Send the sample alert to every URL of the channel; exit 1 when one failed, 2 when the channel cannot send."""
    config = load_or_exit(config_path, channels=False)  # the one channel used is checked below, once
    channel = config.channels.get(channel_id)
    if channel is None:
        known = ", ".join(config.channels) or "none"
        raise click.BadParameter(f"no channel {channel_id!r} in {config_path} (channels: {known})",
                                 param_hint="CHANNEL")
    if channel.missing or not channel.urls:
        # As `run` would: a channel that cannot deliver is a config error, not a failed send.
        why = (f"environment variable {', '.join(channel.missing)} is not set" if channel.missing
               else "no URL after expanding the environment")
        click.echo(f"{channel.loc}: channels.{channel_id}: {why}", err=True)
        sys.exit(2)
    s = sample(Clock().now(), config.timezone, channel_id)
    png = draw(s.bars, s.levels, s.releases, s.alert, name=s.name).png
    with quiet("macrowatch.notify.send"):  # its failure line would say on stderr what the line below says
        ok, reason = deliver(s.alert, channel, send, png, s.context(config.timezone), timeout)
    n = len(channel.urls)
    if not ok:
        click.echo(f"notify-test: channel {channel_id}: failed: {reason}", err=True)
        sys.exit(1)
    click.echo(f"notify-test: channel {channel_id}: sent to {n} URL{'s' if n != 1 else ''}")
