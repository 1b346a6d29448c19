"""`macrowatch demo`: the real daemon (scheduler, engine, store, outbox) on the bundled scenario, offline.

The scenario's feeds stand in for Yahoo and FRED; an AcceleratedClock plays about three months in half a
minute. Everything slow (imports, the first chart, which builds matplotlib's font cache on a fresh machine)
happens before the clock starts, so that the scheduler's jobs run on time in scenario terms.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import re
import sys
import tempfile
import threading
import time
import zoneinfo
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import click

from macrowatch.clock import AcceleratedClock
from macrowatch.commands.demo.feeds import ScenarioMacro, ScenarioPrices
from macrowatch.commands.demo.scenario import CONFIG_NAME, CONFIG_YAML, FIRST_SESSION, REPORT_FROM, Scenario, scenario
from macrowatch.config import Config
from macrowatch.model import Alert
from macrowatch.runtime import logs
from macrowatch.secrets import SecretFilter, url_secrets
from macrowatch.sources.calendar import close_times

PLAY_SECONDS = 30.0                       # the default speed plays the scenario in about this long
TAIL = dt.timedelta(hours=1)              # the demo runs on this long after the last close
MIN_INTERVAL = 0.02                       # seconds: the shortest wall-clock interval of a scheduler job
LOG_NAME = "macrowatch-demo.log"
# Their lines go to the log file, not the screen. APScheduler's are errors only: at this speed a job that
# draws a chart outlasts its interval, and "skipped: maximum number of running instances" is expected.
LOGGERS = {"macrowatch": logging.INFO, "apprise": logging.INFO, "matplotlib": logging.WARNING,
           "apscheduler": logging.ERROR}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class ScenarioClock(AcceleratedClock):
    """An AcceleratedClock that stops at the scenario's end: past it there is no data, only missing bars.

    Jobs still running when the demo reaches its end (a chart takes a fraction of a second, days of scenario
    at a high speed) and the last checks after them all read the end, never a later session.
    """

    def __init__(self, start: dt.datetime, speed: float, until: dt.datetime):
        super().__init__(start, speed)
        self.until = until

    def now(self) -> dt.datetime:
        return min(super().now(), self.until)


@dataclass
class DemoResult:
    """What a demo run did: the alerts in the order they fired, where the charts are, how it went."""

    alerts: list[Alert] = field(default_factory=list)
    charts_dir: Path | None = None
    seconds: float = 0.0
    sent: int = 0           # deliveries recorded as sent (one per alert and channel)
    unsent: int = 0         # deliveries still pending (failed)


def bad_urls(urls: Sequence[str]) -> list[str]:
    """The --notify values that are not apprise URLs (scheme://...)."""
    return [u for u in urls if not _URL.match(u)]


def clock_start(s: Scenario) -> dt.datetime:
    """An hour after the last warm-up session's close: the daemon warms up on everything before it."""
    closes = close_times(s.config.calendar, FIRST_SESSION, REPORT_FROM)
    return max(at for day, at in closes.items() if day < REPORT_FROM) + dt.timedelta(hours=1)


def default_speed(s: Scenario) -> float:
    """The speed that plays the scenario, from the clock's start to its end, in about PLAY_SECONDS."""
    return (s.end + TAIL - clock_start(s)).total_seconds() / PLAY_SECONDS


def with_urls(config: Config, urls: Sequence[str]) -> Config:
    """The config with the --notify URLs added to every channel; channels left without a URL are dropped.

    A channel with no URL would only fail and retry; dropping it (and it from the rules) leaves the alerts
    printed and kept in the outbox, delivered nowhere.
    """
    channels = {cid: dataclasses.replace(ch, urls=(*ch.urls, *urls), missing=())
                for cid, ch in config.channels.items()}
    channels = {cid: ch for cid, ch in channels.items() if ch.urls}
    rules = tuple(dataclasses.replace(r, notify=tuple(c for c in r.notify if c in channels)) for r in config.rules)
    return dataclasses.replace(config, channels=channels, rules=rules)


def alert_line(alert: Alert, tz: str) -> str:
    """One printed line: scenario time, severity, rule, message."""
    at = alert.at.astimezone(zoneinfo.ZoneInfo(tz))
    return f"  {at:%a %Y-%m-%d %H:%M %Z}  {alert.severity:<8} {alert.rule:<23} {alert.message}"


def intro(s: Scenario, speed: float, urls: Sequence[str], out: Path | None = None,
          temporary: bool = False) -> list[str]:
    """What the demo is about to show, and where it writes (a temporary folder is kept, and said so)."""
    span = s.end + TAIL - clock_start(s)
    warm_to = clock_start(s).astimezone(zoneinfo.ZoneInfo(s.config.timezone)).date()
    lines = [
        "macrowatch demo: the real daemon (scheduler, rule engine, SQLite store, outbox) on a bundled scenario,",
        f"played {speed:,.0f} times faster than real time (about {span.total_seconds() / speed:.0f} s). No network.",
        "",
        "The thesis, spring 2017: the S&P 500 keeps pressing on 2400 without breaking it. The Nasdaq 100 breaks",
        "out on its own story; the Russell 2000, the high-beta leader, breaks above 1400 and slips back. A real",
        "breakout of the broad market needs a systematic push: a jobs report that beats consensus.",
        "(The prices are made up around that story; the exchange calendar and the release dates are real.)",
        "",
        f"Warming up on {FIRST_SESSION} .. {warm_to}; the alerts from {REPORT_FROM} on:",
    ]
    if urls:
        lines.insert(2, f"Each alert also goes to {len(urls)} apprise URL{'s' if len(urls) != 1 else ''} (--notify).")
    if out is not None:
        lines.insert(3 if urls else 2, f"Charts, the config and the daemon's log go to {out}"
                     + (" (a new folder, kept after the demo: remove it when done; --charts DIR to choose)."
                        if temporary else "."))
    return lines


def outro(result: DemoResult, config_path: Path, log_path: Path, urls: Sequence[str]) -> list[str]:
    """What happened, where the charts are, and how to write your own config."""
    n = len(result.alerts)
    charts = sorted(result.charts_dir.glob("*.png")) if result.charts_dir else []
    lines = ["", f"{n} alert{'s' if n != 1 else ''} in {result.seconds:.1f} s."]
    if urls:
        lines.append(f"Delivered: {result.sent} sent" + (f", {result.unsent} not sent (see the log)" if result.unsent
                                                          else "") + ".")
    else:
        lines.append("Send them somewhere: macrowatch demo --notify URL (any apprise URL: tgram://BOT_TOKEN/CHAT_ID, "
                     "slack://..., json://HOST:PORT/).")
    lines += [
        f"Charts ({len(charts)}): {result.charts_dir}",
        f"The daemon's log: {log_path}",
        "",
        f"Your own thesis: start from the demo's config, {config_path}",
        "change the instruments, levels and rules, then:",
        "  macrowatch check -c my.yaml       validate it (errors name the file, line and column)",
        "  macrowatch run -c my.yaml         watch live: Yahoo prices, FRED releases, alerts to your channels",
    ]
    return lines


@contextlib.contextmanager
def logs_to(path: Path, urls: Sequence[str] = ()) -> Iterator[None]:
    """Send the daemon's and its libraries' log lines to a file for the run (the screen shows the alerts), in
    `run`'s format (key=value, with timestamps), the --notify URLs' secrets masked."""
    stream = path.open("a", encoding="utf-8")
    handler = logs.LineHandler(stream, "kv", timestamps=True)
    handler.addFilter(SecretFilter(secret for url in urls for secret in url_secrets(url)))
    saved = []
    for name, level in LOGGERS.items():
        logger = logging.getLogger(name)
        saved.append((logger, logger.level, logger.propagate))
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, level, propagate in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate
        handler.close()
        stream.close()


def warm_up_libraries(s: Scenario, urls: Sequence[str]) -> None:
    """Draw one chart and import apprise before the clock starts: a cold start costs seconds, days of scenario."""
    from macrowatch.notify.chart import draw

    spx = next(iter(s.config.instruments.values()))
    bars = [b for b in s.bars[spx.symbol] if b.session < REPORT_FROM]
    draw(bars, [lv for lv in s.config.levels.values() if lv.instrument == spx.id], name=spx.name)
    if urls:
        import apprise  # noqa: F401 - imported for its import time only


def job_intervals(config: Config, speed: float) -> dict[str, float]:
    """The scheduler's intervals in wall seconds: the daemon's own, in scenario time, scaled by the speed."""
    def wall(scenario_seconds: float) -> float:
        return max(MIN_INTERVAL, scenario_seconds / speed)

    return {"closes_every": wall(15 * 60), "deliver_every": wall(60), "heartbeat_every": wall(10 * 60),
            "schedule_every": wall(6 * 3600),
            "intraday_every": wall(config.poll_intraday.as_timedelta().total_seconds())}


def play(s: Scenario, config: Config, store, charts_dir: Path, speed: float,
         on_alert: Callable[[Alert], None]) -> float:
    """Run the daemon on the scenario until its end; returns the wall seconds it took."""
    from macrowatch.runtime.daemon import Daemon
    from macrowatch.runtime.scheduler import Runner

    clock = ScenarioClock(clock_start(s), speed, s.end + TAIL)
    prices = ScenarioPrices(s.bars, clock)
    macro = ScenarioMacro.for_config(config, s.vintages, clock)
    daemon = Daemon(config, store, clock, prices, macro, on_alert=on_alert, charts_dir=charts_dir)
    runner = Runner(daemon, **job_intervals(config, speed))
    began = time.monotonic()
    runner.run_until(s.end + TAIL)
    return time.monotonic() - began


def command(urls: tuple[str, ...], charts_dir: Path | None, speed: float | None) -> None:
    """The demo, its lines on stdout; exit 1 when a delivery to a --notify URL failed."""
    if bad := bad_urls(urls):
        raise click.BadParameter(f"not an apprise URL (scheme://...): {bad[0]!r}", param_hint="--notify")
    result = run_demo(urls, charts_dir, speed, click.echo)
    sys.exit(1 if result.unsent else 0)


def run_demo(urls: Sequence[str] = (), charts_dir: Path | None = None, speed: float | None = None,
             echo: Callable[[str], None] = print) -> DemoResult:
    """The whole demo: intro, the daemon on the scenario (alerts echoed as they fire), outro."""
    from macrowatch.store import open_store

    s = scenario()
    config = with_urls(s.config, urls)
    speed = speed or default_speed(s)
    out = Path(charts_dir) if charts_dir else Path(tempfile.mkdtemp(prefix="macrowatch-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    config_path, log_path = out / CONFIG_NAME, out / LOG_NAME
    config_path.write_text(CONFIG_YAML, encoding="utf-8")
    for line in intro(s, speed, urls, out, temporary=not charts_dir):
        echo(line)
    result = DemoResult(charts_dir=out)
    printing = threading.Lock()  # alerts come from the scheduler's worker threads

    def on_alert(alert: Alert) -> None:
        with printing:
            result.alerts.append(alert)
            echo(alert_line(alert, config.timezone))

    with logs_to(log_path, urls), tempfile.TemporaryDirectory(prefix="macrowatch-demo-store-") as tmp, \
            open_store(Path(tmp) / "demo.sqlite") as store:
        warm_up_libraries(s, urls)
        result.seconds = play(s, config, store, out, speed, on_alert)
        result.sent = len(store.sent_log(limit=10_000))
        result.unsent = store.pending()
    for line in outro(result, config_path, log_path, urls):
        echo(line)
    return result
