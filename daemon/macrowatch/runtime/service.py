"""`macrowatch run`: the process around the daemon — logs, store, sources, health endpoint, systemd, signals."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from macrowatch.clock import Clock, system_clock
from macrowatch.config import Config, load_config
from macrowatch.runtime import ha, health, logs, sdnotify
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.dashboard import Dashboard
from macrowatch.runtime.health import MetricsRegistry
from macrowatch.runtime.reloads import check_reloadable
from macrowatch.runtime.scheduler import Runner
from macrowatch.runtime.wiring import open_store_for, sources_for
from macrowatch.secrets import SecretFilter, store_secrets, url_secrets
from macrowatch.sources.calendar import calendar_names
from macrowatch.store import Store, is_url

log = logging.getLogger("macrowatch.service")

# The heartbeat job pings systemd's watchdog once the catch-up is done; during the catch-up (a first start
# fetches years of history, longer than WatchdogSec) the main loop pings it while the catch-up still polls or
# evaluates: one silent for this long is stuck, and the watchdog restarts the process.
CATCH_UP_STALL = 300.0


def secrets_of(config: Config) -> list[str]:
    """Every secret value the config expanded (channel URLs and their tokens, the FRED and BLS keys), for log
    scrubbing."""
    out = {part for ch in config.channels.values() for u in ch.urls for part in url_secrets(u)}
    out |= {key for key in (config.fred.api_key, config.bls.api_key) if key}
    if is_url(config.store):
        out |= store_secrets(config.store)
    return sorted(out, key=len, reverse=True)


def build(config: Config, clock: Clock, metrics: MetricsRegistry | None, store: Store | None = None) -> Daemon:
    """The daemon with the real sources: yfinance for prices, fredapi for releases, BLS's schedule and API.

    The sources' retry backoff and FRED's rate limit sleep until the daemon stops, not longer: a stop is never
    stuck behind them (nor behind a burst's wait, `Clock.wait`).
    """
    store = store if store is not None else open_store_for(config)
    stopping = threading.Event()
    sources = sources_for(config, store, stopping)  # yfinance's disk caches stay on this host: wiring.local_dir
    return Daemon(config, store, clock, sources.prices, sources.fred, metrics=metrics, stopping=stopping,
                  bls=sources.bls)


def healthy(supervisor: ha.Supervisor, clock: Clock, every: float):
    """/healthz: a standby waits for the lease (or the SQLite store's lock) and says so; a leader's scheduler
    runs and its heartbeat is recent ("ok")."""
    def check() -> tuple[bool, str]:
        runner = supervisor.runner
        if runner is None:
            lease = supervisor.lease
            return (not supervisor.stopped.is_set(), f"standby: {lease.holder} waits for {lease.waits_for}")
        if not runner.scheduler.running:
            return False, "scheduler not running"
        starting = runner.catch_up.status()
        if starting is not None:  # no job but the catch-up runs yet: a heartbeat in the store is an old one
            return False, starting
        state = runner.daemon.store.load_state("daemon") or {}
        beat = state.get("heartbeat")
        if beat is None:
            return False, "no heartbeat yet"
        age = (clock.now() - dt.datetime.fromisoformat(beat)).total_seconds()
        return (True, "ok") if age <= 3 * every else (False, f"last heartbeat {age:.0f} s ago")
    return check


def run(config_path: Path, config: Config) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT; SIGHUP reloads. Returns the exit code."""
    handler = logs.setup(os.environ.get("MACROWATCH_LOG_LEVEL", "INFO"), sys.stdout,
                         os.environ.get("MACROWATCH_LOG_FORMAT", "kv"))
    scrub = SecretFilter(secrets_of(config))
    handler.addFilter(scrub)
    for chatty in ("apscheduler", "apprise"):  # a line per job run (every 2 s) is noise, not news
        logging.getLogger(chatty).setLevel(logging.WARNING)
    clock = system_clock()
    metrics = health.Metrics()
    store = open_store_for(config)
    beat = min(10.0, (sdnotify.watchdog_interval() or 20.0) / 2)
    current = [config]  # the latest config that loaded: a new leadership starts from it

    def make_runner(fenced) -> Runner:
        """A leadership's runner, over a view of the store that writes only while it leads."""
        daemon = build(current[0], clock, metrics, fenced)

        def on_heartbeat() -> None:
            sdnotify.watchdog()
            sdnotify.status(daemon.status_line())

        return Runner(daemon, heartbeat_every=beat, on_heartbeat=on_heartbeat)

    # On SQLite the lease is SingleInstance: a lock on the store file, so that one instance leads (the others
    # stand by); `status`, `fetch` and `replay` never take it.
    runner = ha.Supervisor(ha.lease_for(config.store, config.ha.lease_seconds), store, make_runner, metrics=metrics)
    server = None
    if config.health is not None:
        # The dashboard reads the store through a connection of its own per request, never the daemon's.
        pages = Dashboard(lambda: current[0], lambda: open_store_for(current[0], read_only=True), clock, scrub.redact)
        server = health.HealthServer(config.health.host, config.health.port, metrics, healthy(runner, clock, beat),
                                     pages)
        server.start()

    def load() -> Config:
        """The edited config; on ConfigError the running one stays, and the next leadership starts from it too."""
        new, _ = load_config(config_path, for_run=True, calendars=calendar_names)
        check_reloadable(current[0], new)  # the store, /healthz, the lease... were set up at the start
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
        leading = runner.runner
        if leading is None:  # standing by: no heartbeat job pings systemd's watchdog
            sdnotify.watchdog()
            sdnotify.status(f"standby: {ha.HOLDER} waits for {runner.lease.waits_for}")
        elif leading.catch_up.retrying() or leading.catch_up.working(CATCH_UP_STALL):  # alive, not stuck
            sdnotify.watchdog()
            sdnotify.status(leading.catch_up.status() or "")
    runner.shutdown()
    if server is not None:
        server.stop()
    store.close()
    return 1 if runner.failed is not None else 0
