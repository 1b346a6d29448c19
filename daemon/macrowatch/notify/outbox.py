"""The Dispatcher: alerts into the outbox first, then each (alert, channel) delivered and retried on its own.

    dispatcher = Dispatcher(store, config.channels, clock, chart_for=chart_source(config, store.bars))
    new = dispatcher.submit(alerts, now)     # recorded before any send; returns the alerts not seen before
    dispatcher.deliver_due(now)              # at every tick: what is due, each channel on its own

What is due goes out by its next try, then in the order the alerts fired: by their time, then in the order they
were submitted (the engine's), whatever their keys (which begin with the rule's name).

A success is recorded at once; a failure is recorded with its masked reason and the next attempt time
(10 s, doubling, at most 15 min), which lives in the store and so survives a restart. A crash between a
send and its record repeats at most that one send: under a leadership (ha.py) each delivery is claimed
before its send, and a claim found unrecorded at the next start or takeover counts as a possible repeat.
A channel that fails is not tried again in the same pass nor before its backoff ends, so a dead receiver
costs one attempt per backoff, and other channels go on.

A send whose outcome is unknown (the request was written and no answer came in time: the receiver may have
it) is a failure counted as a possible repeat, per URL, and retried once; if that retry's outcome is unknown
too, the URL is taken as reached (recorded, with a warning that it is unconfirmed): a receiver that answers
too late gets an alert at most twice, and the second time is counted. A refused connection or an error
status wrote nothing the receiver kept: it is retried as before and not counted.
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
from macrowatch.notify import briefing
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
    repeats: int = 0                      # possible repeats it adds: URLs whose outcome was unknown a first time
    unconfirmed: bool = False             # sent, but some URL taken as reached after a second unknown outcome


@dataclass(frozen=True)
class Tried:
    """What one try of a channel did; the sets hold URL fingerprints."""

    ok: bool
    reason: str                           # masked; "" on success
    reached: frozenset[str]               # the URLs that have the alert now
    unsure: frozenset[str] = frozenset()  # the URLs whose send's outcome was unknown, this try or before
    unconfirmed: tuple[str, ...] = ()     # why each URL taken as reached on a second unknown outcome


def backoff(attempts: int, first: dt.timedelta = BACKOFF_FIRST, cap: dt.timedelta = BACKOFF_MAX) -> dt.timedelta:
    """The wait after the (attempts+1)-th failure: first, doubling, at most cap."""
    return min(cap, first * (2 ** min(attempts, 32)))


def _default_send(*args: Any, **kwargs: Any) -> Any:
    from macrowatch.notify.send import send  # apprise is imported only when something is sent

    return send(*args, **kwargs)


def deliver(alert: Alert, channel: Channel, send: SendFn, png: bytes | None, context: Context | None = None,
            timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, str]:
    """Send one alert to every URL of one channel, rendered for each kind of service: (ok, masked reason)."""
    tried = deliver_each(alert, channel, send, png, context, timeout)
    return tried.ok, tried.reason


def deliver_each(alert: Alert, channel: Channel, send: SendFn, png: bytes | None, context: Context | None = None,
                 timeout: float = DEFAULT_TIMEOUT, reached: frozenset[str] = frozenset(),
                 unsure: frozenset[str] = frozenset()) -> Tried:
    """Send one alert to each URL of one channel that has not had it yet (by `fingerprint` in `reached`).

    When one URL fails, the retry goes to it alone, not again to the URLs that took it. A URL whose send's
    outcome is unknown (`result.unknown`) joins `unsure`; one that was in `unsure` already is taken as
    reached instead: it may have the alert twice already, and is never sent a third copy.
    """
    if channel.missing:
        return Tried(False, f"environment variable {', '.join(channel.missing)} is not set", reached, unsure)
    if not channel.urls:
        return Tried(False, "the channel has no URLs", reached, unsure)
    groups: dict[Kind, list[str]] = {}
    for url in channel.urls:
        if fingerprint(url) not in reached:
            groups.setdefault(kind_of(url), []).append(url)
    failures, unconfirmed = [], []
    done, maybe = set(reached), set(unsure)
    # A briefing (runtime/briefings.py) has its own text, from its evidence.
    render = briefing.render if alert.trigger == "briefing" else render_mod.render
    for kind, urls in groups.items():
        message = render(alert, kind, context)
        for url in urls:
            result = send([url], message.title, message.body, png, timeout, markup=message.markup)
            unknown = bool(getattr(result, "unknown", False))
            if result.ok or (unknown and fingerprint(url) in maybe):
                done.add(fingerprint(url))
                if not result.ok:
                    unconfirmed.append(result.reason or "no answer")
            else:
                if unknown:
                    maybe.add(fingerprint(url))
                failures.append(result.reason or "failed")
    return Tried(not failures, "; ".join(failures), frozenset(done), frozenset(maybe), tuple(unconfirmed))


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
        self._unsure: dict[tuple[str, str], frozenset[str]] = {}  # (key, channel) -> URLs of unknown outcome

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
        # The URLs of unknown outcome: the store's, and this process's own should the store have refused them.
        unsure = frozenset(getattr(d, "unsure", frozenset())) | self._unsure.get((d.key, d.channel), frozenset())
        tried = Tried(False, f"channel {d.channel!r} is not in the config", d.reached, unsure)
        if channel is not None:
            try:
                tried = deliver_each(d.alert, channel, self.send, png, self.context, self.timeout, d.reached, unsure)
            except Exception as exc:  # noqa: BLE001 - one bad delivery must not stop the others
                # Its text may hold a URL. Nothing is known of its URLs: a retry may repeat to the ones reached.
                tried = Tried(False, f"internal error {type(exc).__name__}", d.reached, unsure)
        ok, reason, reached = tried.ok, tried.reason, tried.reached
        repeats = len(tried.unsure - unsure)
        if repeats:
            log.warning("possible repeat: alert %s to channel %s: the outcome of %d send(s) is unknown (%s); "
                        "sent again once (at most one repeat)", d.key, d.channel, repeats, reason)
        at = self.clock.now()
        if ok:
            self._streak.pop(d.channel, None)
            self._unsure.pop((d.key, d.channel), None)
            if not self._record(self.store.mark_sent, d.key, d.channel, at):
                self._unrecorded[(d.key, d.channel)] = at  # never sent again by this process
            if tried.unconfirmed:
                log.warning("alert %s to channel %s taken as sent, unconfirmed: a second send had no answer in "
                            "time either (%s); no third copy", d.key, d.channel, "; ".join(tried.unconfirmed))
            else:
                log.info("alert %s sent to channel %s", d.key, d.channel)
            return Outcome(d.key, d.channel, True, "", d.attempts, unconfirmed=bool(tried.unconfirmed))
        if tried.unsure:
            self._unsure[(d.key, d.channel)] = tried.unsure
        # The channel's failures in a row count too: a dead receiver with many alerts queued backs off as one.
        failures = max(d.attempts, self._streak.get(d.channel, 0))
        self._streak[d.channel] = failures + 1
        next_at = at + backoff(failures, self.first, self.cap)
        # Refused: backs off in memory (and a retry may repeat the alert to the URLs that took it).
        self._record(self.store.mark_failed, d.key, d.channel, at, reason, next_at, reached, tried.unsure, repeats)
        log.warning("alert %s to channel %s failed (attempt %d): %s; next try at %s", d.key, d.channel,
                    d.attempts + 1, reason, next_at.isoformat(timespec="seconds"))
        return Outcome(d.key, d.channel, False, reason, d.attempts, next_at, repeats)

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
