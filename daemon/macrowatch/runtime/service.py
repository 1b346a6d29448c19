"""`macrowatch run`: the process around the daemon — logs, store, sources, health endpoint, systemd, signals."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from macrowatch.clock import Clock, system_clock
from macrowatch.config import Config, load_config
from macrowatch.runtime import ha, health, logs, sdnotify, storewait
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.dashboard import Dashboard
from macrowatch.runtime.health import MetricsRegistry
from macrowatch.runtime.reloads import check_reloadable
from macrowatch.runtime.scheduler import Runner
from macrowatch.runtime.wiring import open_store_for, sources_for
from macrowatch.secrets import SecretFilter, store_secrets, url_secrets
from macrowatch.sources.calendar import calendar_names
from macrowatch.store import Store, StoreError, is_url

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
    """Run the daemon in the foreground until SIGTERM/SIGINT; SIGHUP reloads. Returns the exit code.

    A PostgreSQL store that cannot be opened at start is waited for (storewait.py), the process up and saying
    why (log, systemd status, /healthz): exiting would only have systemd restart it every few seconds, for ever.
    """
    handler = logs.setup(os.environ.get("MACROWATCH_LOG_LEVEL", "INFO"), sys.stdout,
                         os.environ.get("MACROWATCH_LOG_FORMAT", "kv"))
    scrub = SecretFilter(secrets_of(config))
    handler.addFilter(scrub)
    for chatty in ("apscheduler", "apprise"):  # a line per job run (every 2 s) is noise, not news
        logging.getLogger(chatty).setLevel(logging.WARNING)
    clock = system_clock()
    metrics = health.Metrics()
    beat = min(10.0, (sdnotify.watchdog_interval() or 20.0) / 2)
    current = [config]  # the latest config that loaded: a new leadership starts from it
    stopping = threading.Event()  # SIGTERM/SIGINT, also before there is a Supervisor to stop
    supervisor: list[ha.Supervisor] = []
    reload_queued = threading.Event()  # a SIGHUP while the store is waited for: applied once it opens
    verdict = [lambda: (False, "starting: opening the store")]  # /healthz of the phase under way

    def make_runner(fenced) -> Runner:
        """A leadership's runner, over a view of the store that writes only while it leads."""
        daemon = build(current[0], clock, metrics, fenced)

        def on_heartbeat() -> None:
            sdnotify.watchdog()
            sdnotify.status(daemon.status_line())

        return Runner(daemon, heartbeat_every=beat, on_heartbeat=on_heartbeat)

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
            if not supervisor:
                reload_queued.set()
                return
            sdnotify.reloading()
            supervisor[0].request_reload(load)
            sdnotify.notify("READY=1")
        else:
            log.info("%s: stopping", signal.Signals(signum).name)
            sdnotify.stopping()
            stopping.set()
            if supervisor:
                supervisor[0].stop()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    log.info("starting: %s", config.summary())
    server = serve_health(config, current, clock, metrics, lambda: verdict[0](), scrub.redact)
    try:
        opened = open_or_wait(config, stopping, verdict, scrub.redact)
    except StoreError as exc:
        if server is not None:
            server.stop()
        if not is_url(config.store):
            raise  # a SQLite file that cannot be opened: an error at once, as ever (exit 1, the message)
        log.error("cannot use the store: %s; waiting would not change this: exiting (2), which systemd does not "
                  "restart", exc)
        return 2
    if opened is None:  # stopped while waiting
        if server is not None:
            server.stop()
        log.info("stopped while waiting for the store")
        return 0
    store, lease = opened
    runner = ha.Supervisor(lease, store, make_runner, metrics=metrics)
    verdict[0] = healthy(runner, clock, beat)
    supervisor.append(runner)
    runner.start()
    if stopping.is_set():  # a SIGTERM between the store opening and now
        runner.stop()
    if reload_queued.is_set():
        runner.request_reload(load)
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


def serve_health(config: Config, current: list[Config], clock: Clock, metrics: health.Metrics,
                 check: health.Healthy, redact: Callable[[str], str]) -> health.HealthServer | None:
    """/healthz, /metrics and the dashboard when `health:` is set, from the start (also while the store is waited
    for); every reason and page masked by `redact`, as the log is."""
    if config.health is None:
        return None
    # The dashboard reads the store through a connection of its own per request, never the daemon's.
    pages = Dashboard(lambda: current[0], lambda: open_store_for(current[0], read_only=True), clock, redact)
    server = health.HealthServer(config.health.host, config.health.port, metrics, check, pages, redact=redact)
    server.start()
    return server


def open_or_wait(config: Config, stopping: threading.Event, verdict: list,
                 redact: Callable[[str], str]) -> tuple[Store, ha.Leadership] | None:
    """The store and its lease (ha.lease_for); None when stopped first. A SQLite store opens at once or raises;
    a PostgreSQL one is waited for (storewait.py) while systemd hears READY with the reason, its watchdog is fed
    and /healthz (`verdict`) answers 503 "waiting for the store: REASON", secrets masked by `redact`."""
    def open_both() -> tuple[Store, ha.Leadership]:
        store = open_store_for(config)
        try:  # On SQLite the lease is SingleInstance: a lock on the store file, so that one instance leads (the
            # others stand by; `status`, `fetch` and `replay` never take it); on PostgreSQL a connection of its own.
            return store, ha.lease_for(config.store, config.ha.lease_seconds)
        except BaseException:
            store.close()
            raise

    if not is_url(config.store):
        return open_both()
    told: list[bool] = []

    def on_wait(reason: str) -> None:
        text = redact(f"waiting for the store: {reason}")
        verdict[0] = lambda: (False, text)
        if not told:  # Type=notify: without READY=1 systemd kills the process at TimeoutStartSec
            sdnotify.ready(text)
            told.append(True)
        sdnotify.watchdog()
        sdnotify.status(text)

    opened = storewait.wait_for(open_both, stopping, on_wait)
    if opened is not None and stopping.is_set():  # opened just as a stop came
        store, lease = opened
        lease.stop()  # never started: this closes its connection
        store.close()
        return None
    return opened
