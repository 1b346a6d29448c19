"""The `macrowatch` command line: the click layer (options, help texts); each command's body is a module beside it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from macrowatch import __version__

DEFAULT_CONFIG = "macrowatch.yaml"


def config_option(func):
    """`-c/--config`: a YAML file or a directory of them (default $MACROWATCH_CONFIG, else ./macrowatch.yaml)."""
    return click.option(
        "-c", "--config", "config_path", type=click.Path(path_type=Path), envvar="MACROWATCH_CONFIG",
        default=DEFAULT_CONFIG, show_default=True, show_envvar=True,
        help="Config file, or a directory of *.yaml files merged.")(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="macrowatch")
def cli() -> None:
    """macrowatch: watch price levels and macro releases; alert when a thesis's rules fire."""


@cli.command()
@config_option
@click.option("--show", is_flag=True, help="Also print the effective config, every default written out "
              "(secrets stay as their ${VAR}).")
@click.option("--for-run", is_flag=True, help="Check as `run` will: a channel with no URL in the environment is "
              "an error, not a warning.")
def check(config_path: Path, show: bool, for_run: bool) -> None:
    """Validate a config and its rules; exit 0, or 2 listing every error as FILE:LINE:COL.

    \b
    Example:
        macrowatch check -c rules/breakout-jobs.yaml
        macrowatch check --for-run -c /etc/macrowatch/config.yaml   # with the channels' variables set
    """
    from macrowatch.commands import check as command

    command.command(config_path, show, for_run)


@cli.command()
@config_option
@click.option("--data", "data_dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="History: DIR/prices/<SYMBOL>.csv (Yahoo daily) and DIR/macro/<SERIES>.csv (ALFRED vintages). "
              "Default: the config's store (what `macrowatch fetch` and `macrowatch run` saved).")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), help="First day to report (state warms up "
              "on the data before it). Default: the first day of data.")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), help="Last day to report. Default: the last day.")
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text", show_default=True)
@click.option("--send", "send_alerts", is_flag=True, help="After printing, deliver the alerts through their rules' "
              "channels, charts included (to preview the formatting); per-channel results go to stderr, "
              "exit 1 if any failed.")
@click.option("--skip-missing", is_flag=True, help="When the data directory or the store lacks an instrument or a "
              "series, leave out the rules that read it (each named on stderr) and replay the rest, instead of "
              "exit 2 naming what is missing.")
@click.option("--score", "scored", is_flag=True, help="Also score each alert: its forward returns (entering at the "
              "session's open before it opens, else at its close; a short for `score: {direction: short}`), then a "
              "summary per rule and horizon against every session of the window.")
@click.option("--horizons", metavar="N,M,...", help="Sessions after the entry to score (implies --score). "
              "Default: 1,5,20.")
@click.option("--report", "report_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Also write a PNG per rule (its returns against the baseline) and index.html with the summary "
              "to DIR (implies --score).")
def replay(config_path: Path, data_dir: Path, start, end, fmt: str, send_alerts: bool, skip_missing: bool,
           scored: bool, horizons: str | None, report_dir: Path | None) -> None:
    """Replay history through the rules: what would each past day have alerted?

    \b
    Example:
        macrowatch replay -c rules/breakout-jobs.yaml --data ../shared/data --from 2019-01-01 --to 2019-12-31
        macrowatch replay -c rules/breakout-jobs.yaml --data ../shared/data --from 2017-03-01 --to 2017-03-31 --send
        macrowatch replay -c rules/breakout-jobs.yaml --data ../shared/data --from 2014-01-01 --score --report out
    """
    from macrowatch.commands import replay as command
    from macrowatch.commands import score

    scoring = score.options(horizons, report_dir) if scored or horizons or report_dir else None
    command.command(config_path, data_dir, start, end, fmt, send_alerts, skip_missing, scoring)


@cli.command("test")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--junit", "junit_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write JUnit XML to FILE: one testsuite per file, one testcase per test.")
@click.option("--skip-missing", is_flag=True, help="When `history:` lacks the bars of an instrument, leave out "
              "the rules that read it, and their expected alerts (each named on stderr), instead of an error.")
def test_rules(files: tuple[Path, ...], junit_path: Path | None, skip_missing: bool) -> None:
    """Unit-test rules: feed each test's bars and releases to the engine; compare the alerts with `expect`.

    Prints PASS or FAIL per test (a failure with a diff of the expected and the actual alerts) and
    "N passed, M failed"; exits 0 when all pass, 1 when any fails, 2 for a bad test file or config.

    \b
    A test file (YAML):
      config: breakout-jobs.yaml      # relative to this file, or an inline config mapping
      history: store                  # optional: warm up from real bars first (the config's store, or a DIR)
      tests:
        - name: spx breaks 2400 on a payrolls beat
          start: 2017-01-03           # first session (default 2024-01-02), on the exchange calendar
          bars:                       # instrument -> one close per session
            spx: "2300 2350 2390x3 2410+5x2"
          releases:                   # macro -> prints, published at the release's time
            payrolls:
              - {date: 2017-01-06, actual: 250, consensus: 180}   # also: prior, ref_period
          expect:                     # every alert in order; [] for none
            - {rule: spx-pressing-2400, at: 2017-01-05}           # local date, or date-time
            - {rule: spx-breakout-with-jobs, at: "2017-01-06T16:00", message: "..."}
    Series: V; VxN (V, N times); A+BxN and A-BxN (A, then N steps of B).

    \b
    Example:
        macrowatch test rules/*.test.yaml --junit report.xml
    """
    from macrowatch.commands import test as command

    command.command(files, junit_path, skip_missing)


@cli.command("notify-test")
@click.argument("channel_id", metavar="CHANNEL")
@config_option
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds each request to a service may take.")
def notify_test(channel_id: str, config_path: Path, timeout: float) -> None:
    """Send a made-up alert, with a chart, through one channel; say whether it arrived or why not.

    Every URL of the channel gets the alert as that service takes it (Slack mrkdwn, Telegram HTML with
    the chart as a photo, plain text and the chart elsewhere). Failures name the URL masked. Exit 0 when
    every URL took it, 1 when one failed, 2 for a bad config, an unknown channel or an unset ${VAR}.

    \b
    Example:
        export MACROWATCH_TRADING_URLS="tgram://BOT_TOKEN/CHAT_ID"
        macrowatch notify-test trading -c rules/breakout-jobs.yaml
    """
    from macrowatch.commands import notify_test as command

    command.command(channel_id, config_path, timeout)


@cli.command()
@config_option
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]),
              help="First day of bars and observations to fetch. Default: five years back.")
def fetch(config_path: Path, since) -> None:
    """Fetch every instrument and macro series once into the store and print what it holds.

    A line per instrument (id and symbol) and per series: rows, first and last. A source that fails is
    named with its reason and the exit code is 1; the others are still stored.

    \b
    Example:
        macrowatch fetch -c rules/breakout-jobs.yaml --since 2019-01-01
    """
    from macrowatch.commands import fetch as command

    command.command(config_path, since)


@cli.command()
@config_option
def run(config_path: Path) -> None:
    """Run the daemon in the foreground: poll prices and releases, evaluate the rules, send the alerts.

    Logs go to stdout, one line per event. Under systemd (Type=notify) it reports READY, WATCHDOG and
    STATUS. SIGHUP reloads the config all or nothing (a bad config keeps the running one and logs every
    error); SIGTERM stops after the sends under way. An unset ${VAR} of a channel is an error here.

    \b
    Example:
        macrowatch run -c /etc/macrowatch/config.yaml
    """
    from macrowatch.commands import run as command

    command.command(config_path)


@cli.command()
@click.option("--notify", "urls", multiple=True, metavar="URL",
              help="Also deliver each alert, with its chart, to this apprise URL (repeatable).")
@click.option("--charts", "charts_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write the charts (and the demo's config and log) here. Default: a new temporary folder.")
@click.option("--speed", type=click.FloatRange(min=1.0), help="Scenario seconds per real second. Default: "
              "the whole scenario in about 30 s.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path, file_okay=False), help="Instead of running, "
              "write the scenario as history `replay --data DIR` reads (DIR/prices, DIR/macro) with the demo's config.")
def demo(urls: tuple[str, ...], charts_dir: Path | None, speed: float | None, data_dir: Path | None) -> None:
    """See macrowatch work in half a minute, offline: the real daemon on a bundled scenario of spring 2017.

    The S&P 500 presses on 2400, the Nasdaq 100 makes new highs, the Russell 2000 breaks out falsely, and a
    jobs-report beat breaks the S&P 500 out. An accelerated clock plays three months through the scheduler,
    the engine, a temporary SQLite store and the outbox; each alert is printed as it fires, its chart is
    written to a folder, and it is delivered to any --notify URL. Exit 0, or 1 when a delivery failed.

    \b
    Example:
        macrowatch demo
        macrowatch demo --notify json://127.0.0.1:8000/ --charts ./demo-charts
        macrowatch demo --data ./demo-data     # write the scenario's bars and payrolls as replay data; no run
    """
    if data_dir is not None:
        from macrowatch.commands.demo import data

        data.command(data_dir)
        return
    from macrowatch.commands.demo import run as command

    command.command(urls, charts_dir, speed)


@cli.command()
@config_option
@click.option("--store", "store_target", metavar="PATH|URL",
              help="The store to read, instead of the config's (or the default one): under systemd, "
                   "/var/lib/macrowatch/macrowatch.sqlite.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status(config_path: Path, store_target: str | None, fmt: str) -> None:
    """Show what the store knows now: which instance leads (on a PostgreSQL store), each level's state and
    price, the last data, the next releases, whether the daemon runs (its heartbeat, or its clean stop) and
    its sources, the pending outbox, the last sends and the possible repeats.

    Reads the store only, writing nothing (exit 1 when there is none). Channels are shown by id, never by URL.

    \b
    Example:
        macrowatch status -c rules/breakout-jobs.yaml
        sudo macrowatch status -c /etc/macrowatch/config.yaml --store /var/lib/macrowatch/macrowatch.sqlite
    """
    from macrowatch.commands import status as command

    command.command(config_path, store_target, fmt)


@cli.command("calendar")
@config_option
@click.option("--days", type=click.IntRange(1, 366), default=14, show_default=True, help="How far ahead.")
def calendar_cmd(config_path: Path, days: int) -> None:
    """List the coming exchange sessions (early closes and holidays marked) and macro releases.

    Release dates come from FRED's release calendar (with an API key) and the config's `dates:`.

    \b
    Example:
        macrowatch calendar -c rules/breakout-jobs.yaml --days 30
    """
    from macrowatch.commands import calendar as command

    command.command(config_path, days)


@cli.command("briefing")
@click.argument("release", required=False)
@config_option
@click.option("--data", "data_dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="History as `replay --data` reads it; with --at, the briefing of the first release after TIME.")
@click.option("--at", "at", type=click.DateTime(["%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M",
                                                  "%Y-%m-%d %H:%M"]), metavar="TIME",
              help="With --data: the moment of the briefing, e.g. 2017-05-05T08:00-04:00 (no offset: the config's "
              "time zone).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--send", is_flag=True, help="Also deliver it through the release's `briefing.notify` channels "
              "(chart included); per-channel results go to stderr, exit 1 if any failed.")
def briefing_cmd(release: str | None, config_path: Path, data_dir: Path | None, at, fmt: str, send: bool) -> None:
    """The next release's briefing, now: per macro series its consensus and the thresholds of a beat and a miss,
    and per rule on the release whether a beat, an inline print or a miss would fire it (the engine's own answer,
    on a copy of its state), with its other conditions as they stand.

    From the store (what `macrowatch run` keeps); or, with --data DIR --at TIME, at a past moment.

    \b
    Example:
        macrowatch briefing -c rules/breakout-jobs.yaml
        macrowatch briefing employment-situation -c rules/breakout-jobs.yaml \\
            --data ../shared/data --at 2017-05-05T08:00-04:00
    """
    from macrowatch.commands import briefing as command

    command.command(config_path, release, data_dir, at, fmt, send)


def main() -> None:
    """Console entry point: unexpected failures exit 1 with one line, not a traceback."""
    try:
        cli.main(prog_name="macrowatch", standalone_mode=True)
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a command-line tool
        if os.environ.get("MACROWATCH_DEBUG"):
            raise
        click.echo(f"macrowatch: error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)


