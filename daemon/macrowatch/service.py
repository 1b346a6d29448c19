"""`macrowatch run`: the process around the daemon — logs, store, sources, health endpoint, systemd, signals."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sys
from pathlib import Path

from macrowatch import ha, health, logs, sdnotify
from macrowatch.app import Daemon
from macrowatch.clock import system_clock
from macrowatch.config import Config, load_config
from macrowatch.scheduler import Runner
from macrowatch.sources.calendar import calendar_names
from macrowatch.store import is_url
from macrowatch.store.postgres import password

log = logging.getLogger("macrowatch.service")


def secrets_of(config: Config) -> list[str]:
    """Every secret value the config expanded (channel URLs and their tokens, the FRED key), for log scrubbing."""
    urls = [u for ch in config.channels.values() for u in ch.urls]
    out = set(urls) | {part for u in urls for part in logs.url_secrets(u)}
    if config.fred.api_key:
        out.add(config.fred.api_key)
    if is_url(config.store) and (secret := password(config.store)):
        out.add(secret)
    return sorted(out, key=len, reverse=True)


def build(config: Config, clock, metrics, store=None) -> Daemon:
    """The daemon with the real sources: yfinance for prices, fredapi for releases."""
    from macrowatch.sources.fred import FredClient
    from macrowatch.sources.prices import PriceSource
    from macrowatch.store import default_path, is_url, open_store

    store = store if store is not None else open_store(config.store)
    # yfinance's disk caches stay on this host, beside a SQLite store or in the local state directory.
    cache = default_path().parent if is_url(store.name) else Path(store.name).parent
    prices = PriceSource(config.yahoo.url, cache / "yfinance-cache")
    fred = FredClient.from_config(config.fred)
    return Daemon(config, store, clock, prices, fred, metrics=metrics)


def healthy(supervisor: ha.Supervisor, clock, every: float):
    """/healthz: a standby waits for the lease; a leader's scheduler runs and its heartbeat is recent."""
    def check() -> tuple[bool, str]:
        runner = supervisor.runner
        if runner is None:
            return (not supervisor.stopped.is_set(), f"standby: {supervisor.lease.holder} waits for the lease")
        if not runner.scheduler.running:
            return False, "scheduler not running"
        state = runner.daemon.store.load_state("daemon") or {}
        beat = state.get("heartbeat")
        if beat is None:
            return False, "no heartbeat yet"
        age = (clock.now() - dt.datetime.fromisoformat(beat)).total_seconds()
        return (age <= 3 * every, f"last heartbeat {age:.0f} s ago")
    return check


def run(config_path: Path, config: Config) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT; SIGHUP reloads. Returns the exit code."""
    handler = logs.setup(os.environ.get("MACROWATCH_LOG_LEVEL", "INFO"), sys.stdout,
                         os.environ.get("MACROWATCH_LOG_FORMAT", "kv"))
    scrub = logs.SecretFilter(secrets_of(config))
    handler.addFilter(scrub)
    for chatty in ("apscheduler", "apprise"):  # a line per job run (every 2 s) is noise, not news
        logging.getLogger(chatty).setLevel(logging.WARNING)
    from macrowatch.store import open_store

    clock = system_clock()
    metrics = health.Metrics()
    store = open_store(config.store)
    beat = min(10.0, (sdnotify.watchdog_interval() or 20.0) / 2)
    current = [config]  # the latest config that loaded: a new leadership starts from it

    def make_runner(fenced) -> Runner:
        """A leadership's runner, over a view of the store that writes only while it leads."""
        daemon = build(current[0], clock, metrics, fenced)

        def on_heartbeat() -> None:
            sdnotify.watchdog()
            sdnotify.status(daemon.status_line())

        return Runner(daemon, heartbeat_every=beat, on_heartbeat=on_heartbeat)

    # On SQLite the lease is SingleInstance: this instance leads at once and for good.
    runner = ha.Supervisor(ha.lease_for(config.store, config.ha.lease_seconds), store, make_runner, metrics=metrics)
    server = None
    if config.health is not None:
        server = health.HealthServer(config.health.host, config.health.port, metrics, healthy(runner, clock, beat))
        server.start()

    def load() -> Config:
        new, _ = load_config(config_path, for_run=True, calendars=calendar_names)
        scrub.update(secrets_of(new))
        current[0] = new
        return new

    def on_signal(signum, _frame) -> None:
        if signum == signal.SIGHUP:
            log.info("SIGHUP: reloading %s", config_path)
            sdnotify.reloading()
            runner.request_reload(load)
            sdnotify.notify("READY=1")
        else:
            log.info("%s: stopping", signal.Signals(signum).name)
            sdnotify.stopping()
            runner.stop()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    log.info("starting: %s", config.summary())
    runner.start()
    sdnotify.ready(f"watching {len(config.instruments)} instruments, {len(config.rules)} rules")
    log.info("ready")
    while not runner.stopped.wait(1.0):  # a timed wait: signal handlers run between waits
        if runner.runner is None:  # standing by: no heartbeat job pings systemd's watchdog
            sdnotify.watchdog()
            sdnotify.status(f"standby: {ha.HOLDER} waits for the lease")
    runner.shutdown()
    if server is not None:
        server.stop()
    store.close()
    return 1 if runner.failed is not None else 0
