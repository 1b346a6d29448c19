"""The `macrowatch` command line."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import zoneinfo
from collections.abc import Iterator
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


def load_or_exit(path: Path, for_run: bool = False, channels: bool = True) -> Config:
    """Load the config, print its warnings; on errors print them all and exit 2.

    `channels`: False for a command that sends through none of the config's channels (or checks the one it
    uses itself): their unset ${VAR} is not mentioned.
    """
    from macrowatch.sources.calendar import calendar_names

    try:
        config, warnings = load_config(path, for_run=for_run, channels=channels, calendars=calendar_names)
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
    config = load_or_exit(config_path, for_run=for_run)
    if show:
        import yaml

        from macrowatch.config.dump import dump

        click.echo(yaml.safe_dump(dump(config), sort_keys=False, allow_unicode=True), nl=False)
    click.echo(f"{config_path}: ok: {config.summary()}")


def _alert_line(alert) -> str:
    labels = "".join(f" {k}={v}" for k, v in alert.labels.items())
    return f"{alert.at.strftime('%Y-%m-%d %H:%M %z')} [{alert.severity}] {alert.rule}{labels}: {alert.message}"


@cli.command()
@config_option
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="History: DIR/prices/<SYMBOL>.csv (Yahoo daily) and DIR/macro/<SERIES>.csv (ALFRED vintages).")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), help="First day to report (state warms up "
              "on the data before it). Default: the first day of data.")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), help="Last day to report. Default: the last day.")
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text", show_default=True)
@click.option("--send", "send_alerts", is_flag=True, help="After printing, deliver the alerts through their rules' "
              "channels, charts included (to preview the formatting); per-channel results go to stderr, "
              "exit 1 if any failed.")
def replay(config_path: Path, data_dir: Path, start, end, fmt: str, send_alerts: bool) -> None:
    """Replay history through the rules: what would each past day have alerted?

    \b
    Example:
        macrowatch replay -c rules/breakout-jobs.yaml --data ../shared/data --from 2019-01-01 --to 2019-12-31
        macrowatch replay -c rules/breakout-jobs.yaml --data ../shared/data --from 2017-03-01 --to 2017-03-31 --send
    """
    import dataclasses
    import json
    import zoneinfo

    from macrowatch.commands.replay import load_history
    from macrowatch.engine.evaluator import Engine
    from macrowatch.runtime.history import run
    from macrowatch.sources.files import DataError

    config = load_or_exit(config_path, channels=False)  # --send says per channel what it could not deliver
    start_d, end_d = (start.date() if start else None), (end.date() if end else None)
    if start_d and end_d and start_d > end_d:
        raise click.BadParameter("--from is after --to", param_hint="--from")
    try:
        history = load_history(config, data_dir)
    except DataError as exc:
        click.echo(f"macrowatch replay: {exc}", err=True)
        sys.exit(2)
    for warning in history.warnings:
        click.echo(f"macrowatch replay: warning: {warning}", err=True)
    zone = zoneinfo.ZoneInfo(config.timezone)
    alerts = run(Engine(config), history, start_d, end_d, config.timezone)
    for alert in alerts:
        alert = dataclasses.replace(alert, at=alert.at.astimezone(zone))
        click.echo(json.dumps(alert.to_json()) if fmt == "jsonl" else _alert_line(alert))
    if fmt == "text":
        click.echo(f"{len(alerts)} alert{'s' if len(alerts) != 1 else ''}", err=True)
    if send_alerts and not _send_replayed(config, history, alerts):
        sys.exit(1)


def _send_replayed(config: Config, history, alerts: list) -> bool:
    """Deliver replayed alerts once through a throwaway outbox; print each channel's result; True if all sent."""
    import tempfile
    from collections import Counter

    from macrowatch.clock import Clock
    from macrowatch.notify.chart import chart_source
    from macrowatch.notify.outbox import Dispatcher
    from macrowatch.notify.render import Context
    from macrowatch.store import open_store

    releases = [p.at for p in history.prints]
    chart_for = chart_source(config, history.bar_list, lambda _alert: releases)
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="macrowatch-replay-") as tmp, \
            open_store(Path(tmp) / "outbox.sqlite") as store:
        dispatcher = Dispatcher(store, config.channels, clock, chart_for=chart_for,
                                context=Context.from_config(config))
        now = clock.now()
        dispatcher.submit(alerts, now)
        with _quiet("macrowatch.notify.send", "macrowatch.notify.outbox"):  # the lines below say it, once
            outcomes = dispatcher.deliver_due(now)
    wanted = Counter(ch for a in alerts for ch in dict.fromkeys(a.notify))
    sent = Counter(o.channel for o in outcomes if o.ok)
    reasons = {o.channel: o.reason for o in outcomes if not o.ok}
    for ch, n in wanted.items():
        line = f"send: channel {ch}: {sent[ch]} of {n} sent"
        # After a channel's first failure its other alerts are not tried (one probe per pass).
        click.echo(line + (f"; failed: {reasons[ch]}" if ch in reasons else ""), err=True)
    silent = sum(1 for a in alerts if not a.notify)
    if silent:
        click.echo(f"send: {silent} alert{'s' if silent != 1 else ''} notify no channel (printed only)", err=True)
    return all(sent[ch] == n for ch, n in wanted.items())


@cli.command("test")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--junit", "junit_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write JUnit XML to FILE: one testsuite per file, one testcase per test.")
def test_rules(files: tuple[Path, ...], junit_path: Path | None) -> None:
    """Unit-test rules: feed each test's bars and releases to the engine; compare the alerts with `expect`.

    Prints PASS or FAIL per test (a failure with a diff of the expected and the actual alerts) and
    "N passed, M failed"; exits 0 when all pass, 1 when any fails, 2 for a bad test file or config.

    \b
    A test file (YAML):
      config: breakout-jobs.yaml      # relative to this file, or an inline config mapping
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
    from macrowatch.commands import rulestest
    from macrowatch.sources.calendar import calendar_names

    suites, problems = [], []
    for path in files:  # every file is read before any runs, so that all problems are reported at once
        try:
            suites.append(rulestest.load(path, calendar_names))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        _print_problems(problems)
        click.echo(f"{len(problems)} error{'s' if len(problems) != 1 else ''}", err=True)
        sys.exit(2)
    runs = [(s, [rulestest.run_case(s, case) for case in s.cases]) for s in suites]
    for suite, results in runs:
        for line in rulestest.report(suite, results):
            click.echo(line)
    failed = sum(not res.passed for _, results in runs for res in results)
    click.echo(f"{sum(len(results) for _, results in runs) - failed} passed, {failed} failed")
    if junit_path is not None:
        junit_path.write_bytes(rulestest.junit_xml(runs))
    sys.exit(1 if failed else 0)


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
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
    from macrowatch.clock import Clock
    from macrowatch.notify.chart import draw
    from macrowatch.notify.outbox import deliver
    from macrowatch.notify.sample import sample
    from macrowatch.notify.send import send

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
    with _quiet("macrowatch.notify.send"):  # its failure line would say on stderr what the line below says
        ok, reason = deliver(s.alert, channel, send, png, s.context(config.timezone), timeout)
    n = len(channel.urls)
    if not ok:
        click.echo(f"notify-test: channel {channel_id}: failed: {reason}", err=True)
        sys.exit(1)
    click.echo(f"notify-test: channel {channel_id}: sent to {n} URL{'s' if n != 1 else ''}")


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
    from macrowatch.clock import system_clock
    from macrowatch.commands.fetch import fetch as fetch_all
    from macrowatch.runtime.wiring import open_store_for, sources_for
    from macrowatch.store import StoreError

    config = load_or_exit(config_path)
    now = system_clock().now()
    start = since.date() if since else now.date().replace(year=now.year - 5)
    try:
        store = open_store_for(config)
    except StoreError as exc:
        click.echo(f"macrowatch fetch: {exc}", err=True)
        sys.exit(1)
    with store:
        sources = sources_for(config, store)
        report = fetch_all(config, store, sources.prices, sources.fred, start, now)
    for line in report.lines:
        click.echo(line)
    for failure in report.failures:
        click.echo(f"macrowatch fetch: failed: {failure}", err=True)
    if report.failures:
        sys.exit(1)


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
    from macrowatch.runtime import service

    config = load_or_exit(config_path, for_run=True)
    sys.exit(service.run(config_path, config))


@cli.command()
@click.option("--notify", "urls", multiple=True, metavar="URL",
              help="Also deliver each alert, with its chart, to this apprise URL (repeatable).")
@click.option("--charts", "charts_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write the charts (and the demo's config and log) here. Default: a new temporary folder.")
@click.option("--speed", type=click.FloatRange(min=1.0), help="Scenario seconds per real second. Default: "
              "the whole scenario in about 30 s.")
def demo(urls: tuple[str, ...], charts_dir: Path | None, speed: float | None) -> None:
    """See macrowatch work in half a minute, offline: the real daemon on a bundled scenario of spring 2017.

    The S&P 500 presses on 2400, the Nasdaq 100 makes new highs, the Russell 2000 breaks out falsely, and a
    jobs-report beat breaks the S&P 500 out. An accelerated clock plays three months through the scheduler,
    the engine, a temporary SQLite store and the outbox; each alert is printed as it fires, its chart is
    written to a folder, and it is delivered to any --notify URL. Exit 0, or 1 when a delivery failed.

    \b
    Example:
        macrowatch demo
        macrowatch demo --notify json://127.0.0.1:8000/ --charts ./demo-charts
    """
    from macrowatch.commands.demo.run import bad_urls, run_demo

    if bad := bad_urls(urls):
        raise click.BadParameter(f"not an apprise URL (scheme://...): {bad[0]!r}", param_hint="--notify")
    result = run_demo(urls, charts_dir, speed, click.echo)
    sys.exit(1 if result.unsent else 0)


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
    import json

    from macrowatch.clock import system_clock
    from macrowatch.commands.status import collect, open_existing, render
    from macrowatch.store import StoreError

    config = load_or_exit(config_path)
    try:
        store = open_existing(config, store_target)
    except StoreError as exc:
        click.echo(f"macrowatch status: {exc}", err=True)
        sys.exit(1)
    with store:
        report = collect(config, store, system_clock().now())
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
    else:
        for line in render(report, config.timezone):
            click.echo(line)


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
    from macrowatch.clock import system_clock
    from macrowatch.commands.calendar import release_lines, session_lines

    config = load_or_exit(config_path, channels=False)  # it sends nothing
    today = system_clock().now().astimezone(zoneinfo.ZoneInfo(config.timezone)).date()
    macro = None
    if config.fred.api_key and any(r.fred_release_id for r in config.releases.values()):
        from macrowatch.runtime.wiring import fred_for

        macro = fred_for(config)
    for line in session_lines(config, today, days):
        click.echo(line)
    lines, problems = release_lines(config, macro, today, days)
    click.echo("releases:" if lines else "releases: none scheduled in this window")
    for line in lines:
        click.echo(line)
    for problem in problems:
        click.echo(f"macrowatch calendar: {problem}", err=True)


def main() -> None:
    """Console entry point: unexpected failures exit 1 with one line, not a traceback."""
    try:
        cli.main(prog_name="macrowatch", standalone_mode=True)
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a command-line tool
        if os.environ.get("MACROWATCH_DEBUG"):
            raise
        click.echo(f"macrowatch: error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)


