"""The Dispatcher: alerts into the outbox first, then each (alert, channel) delivered and retried on its own.

    dispatcher = Dispatcher(store, config.channels, clock, chart_for=chart_source(config, store.bars))
    new = dispatcher.submit(alerts, now)     # recorded before any send; returns the alerts not seen before
    dispatcher.deliver_due(now)              # at every tick: what is due, each channel on its own

A success is recorded at once; a failure is recorded with its masked reason and the next attempt time
(10 s, doubling, at most 15 min), which lives in the store and so survives a restart. A crash between a
send and its record repeats at most that one send: under a leadership (ha.py) each delivery is claimed
before its send, and a claim found unrecorded at the next start or takeover counts as a possible repeat.
A channel that fails is not tried again in the same pass nor before its backoff ends, so a dead receiver
costs one attempt per backoff, and other channels go on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from macrowatch.config.types import Channel
from macrowatch.model import Alert
from macrowatch.notify import render as render_mod
from macrowatch.notify.render import Context, Kind, kind_of
from macrowatch.store.base import Fenced

log = logging.getLogger(__name__)

BACKOFF_FIRST = dt.timedelta(seconds=10)
BACKOFF_MAX = dt.timedelta(minutes=15)
DEFAULT_TIMEOUT = 10.0


class SendFn(Protocol):
    """send.send's signature: one message to a group of URLs, never raising."""

    def __call__(self, urls: Sequence[str], title: str, body: str, png: bytes | None = None,
                 timeout: float = ..., *, markup: str = ...) -> Any: ...


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt did."""

    key: str
    channel: str
    ok: bool
    reason: str = ""                      # masked; "" on success
    attempts: int = 0                     # failed tries before this one
    next_at: dt.datetime | None = None    # the next try, after a failure


def backoff(attempts: int, first: dt.timedelta = BACKOFF_FIRST, cap: dt.timedelta = BACKOFF_MAX) -> dt.timedelta:
    """The wait after the (attempts+1)-th failure: first, doubling, at most cap."""
    return min(cap, first * (2 ** min(attempts, 32)))


def _default_send(*args: Any, **kwargs: Any) -> Any:
    from macrowatch.notify.send import send  # apprise is imported only when something is sent

    return send(*args, **kwargs)


def deliver(alert: Alert, channel: Channel, send: SendFn, png: bytes | None, context: Context | None = None,
            timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, str]:
    """Send one alert to every URL of one channel, rendered for each kind of service: (ok, masked reason)."""
    ok, reason, _ = deliver_each(alert, channel, send, png, context, timeout)
    return ok, reason


def deliver_each(alert: Alert, channel: Channel, send: SendFn, png: bytes | None, context: Context | None = None,
                 timeout: float = DEFAULT_TIMEOUT, reached: frozenset[str] = frozenset(),
                 ) -> tuple[bool, str, frozenset[str]]:
    """Send one alert to each URL of one channel that has not had it yet (by `fingerprint` in `reached`).

    Returns (ok, masked reason, the fingerprints of the URLs that have it now): when one URL fails, the
    retry goes to it alone, not again to the URLs that took it.
    """
    if channel.missing:
        return False, f"environment variable {', '.join(channel.missing)} is not set", reached
    if not channel.urls:
        return False, "the channel has no URLs", reached
    groups: dict[Kind, list[str]] = {}
    for url in channel.urls:
        if fingerprint(url) not in reached:
            groups.setdefault(kind_of(url), []).append(url)
    failures = []
    done = set(reached)
    for kind, urls in groups.items():
        message = render_mod.render(alert, kind, context)
        for url in urls:
            result = send([url], message.title, message.body, png, timeout, markup=message.markup)
            if result.ok:
                done.add(fingerprint(url))
            else:
                failures.append(result.reason or "failed")
    return not failures, "; ".join(failures), frozenset(done)


def fingerprint(url: str) -> str:
    """A URL's short fingerprint, as the outbox keeps it (the URL itself holds tokens: it is never stored)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


class Dispatcher:
    """The outbox's writer and deliverer; the store holds all its state (next tries included)."""

    def __init__(self, store: Any, channels: Mapping[str, Channel], clock: Any, send: SendFn = _default_send,
                 chart_for: Callable[[Alert], bytes | None] | None = None, *, context: Context | None = None,
                 timeout: float = DEFAULT_TIMEOUT, first: dt.timedelta = BACKOFF_FIRST,
                 cap: dt.timedelta = BACKOFF_MAX):
        self.store = store
        self.channels = channels
        self.clock = clock
        self.send = send
        self.chart_for = chart_for
        self.context = context
        self.timeout = timeout
        self.first, self.cap = first, cap
        # In memory (a restart probes each channel once, then the stored next tries rule):
        self._blocked: dict[str, dt.datetime] = {}  # channel -> no try before this
        self._streak: dict[str, int] = {}           # channel -> failures in a row
        self._unrecorded: dict[tuple[str, str], dt.datetime] = {}  # (key, channel) sent, its record refused

    def submit(self, alerts: Iterable[Alert], now: dt.datetime) -> list[Alert]:
        """Write every alert and its deliveries to the outbox before any send; return the ones not seen before.

        An alert whose rule notifies no channel is recorded with no delivery: the caller prints it.
        """
        return [a for a in alerts if self.store.enqueue(a, list(a.notify), now)]

    def deliver_due(self, now: dt.datetime) -> list[Outcome]:
        """Try every delivery due at `now`, each on its own; record each result as soon as it is known."""
        charts: dict[str, bytes | None] = {}
        outcomes = []
        self._record_late()
        # A next try later than the cap from now comes from a clock stepped back since: it is due now.
        latest = now + self.cap
        for d in self.store.due(now, latest):
            if now < self._blocked.get(d.channel, now) <= latest:
                continue  # this channel failed in this pass or is backing off: one probe per backoff
            if (d.key, d.channel) in self._unrecorded:
                continue  # sent; only its record waits for the store
            if d.key not in charts:
                charts[d.key] = self._chart(d.alert)
            try:
                if not self._claim(d):
                    continue  # sent meanwhile
                outcome = self._attempt(d, charts[d.key])
            except Fenced as exc:
                # Another instance leads now (ha.py): it delivers the rest, and counts a claim left here.
                log.warning("delivery stopped: %s", exc)
                break
            if not outcome.ok and outcome.next_at is not None:
                self._blocked[d.channel] = max(outcome.next_at, now + dt.timedelta(microseconds=1))
            else:
                self._blocked.pop(d.channel, None)
            outcomes.append(outcome)
        return outcomes

    def _claim(self, d: Any) -> bool:
        """Mark the delivery as ours before sending it (a store with no leadership to check claims nothing)."""
        claim = getattr(self.store, "claim", None)
        return True if claim is None else bool(claim(d.key, d.channel, self.clock.now()))

    def pending(self) -> int:
        """How many deliveries are not sent yet."""
        return int(self.store.pending())

    def _attempt(self, d: Any, png: bytes | None) -> Outcome:
        channel = self.channels.get(d.channel)
        reached = d.reached
        if channel is None:
            ok, reason = False, f"channel {d.channel!r} is not in the config"
        else:
            try:
                ok, reason, reached = deliver_each(d.alert, channel, self.send, png, self.context, self.timeout,
                                                   d.reached)
            except Exception as exc:  # noqa: BLE001 - one bad delivery must not stop the others
                ok, reason = False, f"internal error {type(exc).__name__}"  # its text may hold a URL
        at = self.clock.now()
        if ok:
            self._streak.pop(d.channel, None)
            if not self._record(self.store.mark_sent, d.key, d.channel, at):
                self._unrecorded[(d.key, d.channel)] = at  # never sent again by this process
            log.info("alert %s sent to channel %s", d.key, d.channel)
            return Outcome(d.key, d.channel, True, "", d.attempts)
        # The channel's failures in a row count too: a dead receiver with many alerts queued backs off as one.
        failures = max(d.attempts, self._streak.get(d.channel, 0))
        self._streak[d.channel] = failures + 1
        next_at = at + backoff(failures, self.first, self.cap)
        # Refused: backs off in memory (and a retry may repeat the alert to the URLs that took it).
        self._record(self.store.mark_failed, d.key, d.channel, at, reason, next_at, reached)
        log.warning("alert %s to channel %s failed (attempt %d): %s; next try at %s", d.key, d.channel,
                    d.attempts + 1, reason, next_at.isoformat(timespec="seconds"))
        return Outcome(d.key, d.channel, False, reason, d.attempts, next_at)

    def _record(self, write: Callable[..., None], key: str, channel: str, *args: Any) -> bool:
        """Record a delivery's result; False when the store refuses the write (a full or read-only disk).

        The send's outcome stands either way: an exception here would send the alert again on the next pass,
        every pass, for as long as the disk is full. A lost leadership (Fenced) still stops the pass.
        """
        try:
            write(key, channel, *args)
        except Fenced:
            raise
        except Exception as exc:  # noqa: BLE001 - any store's error; the daemon goes on
            log.error("alert %s to channel %s: the store refused the result (%s)", key, channel, exc)
            return False
        return True

    def _record_late(self) -> None:
        """Record the successes the store refused before, as soon as it takes writes again."""
        for (key, channel), at in list(self._unrecorded.items()):
            try:
                self.store.mark_sent(key, channel, at)
            except Exception:  # noqa: BLE001 - still refused: kept in memory, tried again on the next pass
                return
            del self._unrecorded[(key, channel)]

    def _chart(self, alert: Alert) -> bytes | None:
        if self.chart_for is None or not alert.chart:
            return None
        try:
            return self.chart_for(alert)
        except Exception as exc:  # noqa: BLE001 - a chart that cannot be drawn must not stop the text
            log.warning("chart for alert %s failed (%s: %s); sending the text alone", alert.key,
                        type(exc).__name__, exc)
            return None
