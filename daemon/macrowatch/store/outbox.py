"""The outbox and the sent log: an alert is written here before any send, and each channel's fate after."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..model import Alert
from ..secrets import blank_urls
from . import lease
from .base import Db, Fenced, StoreError, Tx, from_utc_text, utc_text

ERROR_MAX = 200
# Who writes, as Store passes it: (holder, fencing token); a token of None checks no lease (one instance).
Writer = tuple[str, int | None]
_UNCLAIM = "claimed_by = NULL, claimed_at = NULL, claim_token = NULL"

_DUE = (
    "SELECT d.alert_key, d.channel, d.attempts, d.next_at, d.last_error, a.payload, d.reached, d.unsure "
    "FROM deliveries d JOIN alerts a ON a.key = d.alert_key "
    "WHERE d.sent_at IS NULL AND (d.next_at <= ? OR d.next_at > ?) "
    "ORDER BY d.next_at, a.at, a.seq, d.alert_key, d.channel")


@dataclass(frozen=True)
class Delivery:
    """One alert still to be sent to one channel; `attempts` counts the failed tries so far."""

    key: str
    channel: str
    attempts: int
    next_at: dt.datetime
    last_error: str | None
    alert: Alert
    reached: frozenset[str] = frozenset()  # fingerprints of the channel's URLs that have it already
    unsure: frozenset[str] = frozenset()   # ... and of those whose send's outcome was unknown once (a repeat)


def enqueue(db: Db, alert: Alert, channels: list[str], now: dt.datetime, writer: Writer | None = None) -> bool:
    """Write the alert and one delivery per channel at once; False, and nothing written, for a known key."""
    with db.transaction() as tx:
        fence(tx, db, writer)
        # `seq` numbers the alerts in the order queued: one writer at a time (a Db's connection is shared under a
        # lock; one instance leads), and should two ever take one number, the key breaks the tie.
        if not tx.execute("INSERT INTO alerts (key, rule, at, payload, enqueued_at, seq) VALUES (?, ?, ?, ?, ?, "
                          "(SELECT COALESCE(MAX(seq), 0) + 1 FROM alerts)) ON CONFLICT (key) DO NOTHING",
                          (alert.key, alert.rule, utc_text(alert.at), _payload(alert), utc_text(now))):
            return False
        for channel in dict.fromkeys(channels):  # a channel named twice is still one delivery
            tx.execute("INSERT INTO deliveries (alert_key, channel, next_at) VALUES (?, ?, ?)",
                       (alert.key, channel, utc_text(now)))
    return True


def due(db: Db, now: dt.datetime, latest: dt.datetime | None = None) -> list[Delivery]:
    """Unsent deliveries whose next attempt is at or before `now`, the longest waiting first, then in the order the
    alerts fired: by their time, then in the order they were queued (the engine's order), never by key.

    `latest`: no next attempt is meant to be later than this (the backoff's cap from now); one that is comes
    from a clock that was stepped back since it was set, and is due now rather than that much later.
    """
    bounds = (utc_text(now), utc_text(latest) if latest is not None else "9999")
    return [Delivery(key, channel, attempts, from_utc_text(next_at), error, _alert(payload), _reached(reached),
                     _reached(unsure))
            for key, channel, attempts, next_at, error, payload, reached, unsure in db.query(_DUE, bounds)]


def _reached(text: str | None) -> frozenset[str]:
    try:
        found = json.loads(text) if text else []
    except ValueError:
        return frozenset()  # unreadable: every URL is tried again (a possible repeat, never a loss)
    return frozenset(f for f in found if isinstance(f, str)) if isinstance(found, list) else frozenset()


def claim(db: Db, key: str, channel: str, at: dt.datetime, writer: Writer) -> bool:
    """Mark the delivery as being sent by `writer`, before the send; False when it is sent already."""
    holder, token = writer
    with db.transaction() as tx:
        fence(tx, db, writer)
        if tx.execute("UPDATE deliveries SET claimed_by = ?, claimed_at = ?, claim_token = ? "
                      "WHERE alert_key = ? AND channel = ? AND sent_at IS NULL",
                      (holder, utc_text(at), token, key, channel)):
            return True
        _must_exist(tx, db.name, key, channel)
        return False


def mark_sent(db: Db, key: str, channel: str, at: dt.datetime, writer: Writer | None = None) -> None:
    """Record a success and clear the claim; a second success keeps the first time.

    With a writer, the claim must still be its own: once the next leader has taken the delivery over (and
    counted it as a possible repeat), this late record is refused with Fenced.
    """
    with db.transaction() as tx:
        fence(tx, db, writer)
        mine, params = ("", ()) if writer is None else (" AND claimed_by = ?", (writer[0],))
        if tx.execute(f"UPDATE deliveries SET sent_at = ?, {_UNCLAIM} WHERE alert_key = ? AND channel = ? "
                      f"AND sent_at IS NULL{mine}", (utc_text(at), key, channel, *params)):
            return
        rows = _must_exist(tx, db.name, key, channel)
        if writer is not None and rows[0][0] is None:
            raise Fenced(f"store {db.name}: the delivery of alert {key!r} to channel {channel!r} was taken over "
                         f"from {writer[0]}; its send is not recorded (the new leader counts a possible repeat)")


def mark_failed(db: Db, key: str, channel: str, at: dt.datetime, error: str, next_at: dt.datetime,
                writer: Writer | None = None, reached: Iterable[str] = (), unsure: Iterable[str] = (),
                repeats: int = 0) -> None:
    """Record a failed try and when to try again, and clear the claim; a delivery already sent stays sent.

    `reached`: the fingerprints of the channel's URLs that have the alert now (the retry skips them).
    `unsure`: those of the URLs whose send's outcome was unknown (each may have the alert once); `repeats`:
    the possible repeats this try adds (the URLs new in `unsure`: their retry may be a second copy).
    """
    done = json.dumps(sorted(set(reached))) if reached else None
    maybe = json.dumps(sorted(set(unsure))) if unsure else None
    with db.transaction() as tx:
        fence(tx, db, writer)
        mine, params = ("", ()) if writer is None else (" AND (claimed_by IS NULL OR claimed_by = ?)", (writer[0],))
        if not tx.execute(f"UPDATE deliveries SET attempts = attempts + 1, last_at = ?, last_error = ?, "
                          f"next_at = ?, reached = COALESCE(?, reached), unsure = COALESCE(?, unsure), "
                          f"repeats = repeats + ?, {_UNCLAIM} "
                          f"WHERE alert_key = ? AND channel = ? AND sent_at IS NULL{mine}",
                          (utc_text(at), short_error(error), utc_text(next_at), done, maybe, int(repeats), key,
                           channel, *params)):
            _must_exist(tx, db.name, key, channel)


def take_over(db: Db, writer: Writer) -> list[tuple[str, str, str, dt.datetime]]:
    """At the start of a leadership: every delivery claimed and not recorded as sent is a possible repeat.

    Its claim is cleared (a late record by the old claimant is then refused) and its `repeats` count goes
    up by one; it is sent again as usual. Returns (key, channel, claimed_by, claimed_at) of each.
    """
    with db.transaction() as tx:
        fence(tx, db, writer)
        rows = tx.query("SELECT alert_key, channel, claimed_by, claimed_at FROM deliveries "
                        "WHERE sent_at IS NULL AND claimed_by IS NOT NULL ORDER BY claimed_at, alert_key, channel")
        if rows:
            tx.execute(f"UPDATE deliveries SET repeats = repeats + 1, {_UNCLAIM} "
                       "WHERE sent_at IS NULL AND claimed_by IS NOT NULL")
    return [(key, channel, by, from_utc_text(at)) for key, channel, by, at in rows]


def repeats(db: Db, limit: int) -> tuple[int, list[tuple[str, str, int]]]:
    """The possible repeats counted so far, and the latest `limit` deliveries that had one."""
    total = db.query("SELECT COALESCE(SUM(repeats), 0) FROM deliveries")[0][0]
    rows = db.query("SELECT d.alert_key, d.channel, d.repeats FROM deliveries d JOIN alerts a ON a.key = d.alert_key "
                    "WHERE d.repeats > 0 ORDER BY a.enqueued_at DESC, d.alert_key, d.channel LIMIT ?", (int(limit),))
    return int(total), [(key, channel, int(n)) for key, channel, n in rows]


def fence(tx: Tx, db: Db, writer: Writer | None) -> None:
    """Refuse the transaction when the writer carries a token that no longer leads."""
    if writer is not None and writer[1] is not None:
        lease.check(tx, db, writer[0], writer[1])


def pending(db: Db) -> int:
    """How many deliveries are not sent yet, due or not."""
    return int(db.query("SELECT COUNT(*) FROM deliveries WHERE sent_at IS NULL")[0][0])


def sent_log(db: Db, limit: int) -> list[tuple[str, str, dt.datetime]]:
    """The latest `limit` successful sends as (key, channel, sent_at), newest first."""
    rows = db.query("SELECT alert_key, channel, sent_at FROM deliveries WHERE sent_at IS NOT NULL "
                    "ORDER BY sent_at DESC, alert_key, channel LIMIT ?", (int(limit),))
    return [(key, channel, from_utc_text(at)) for key, channel, at in rows]


@dataclass(frozen=True)
class ChannelState:
    """Where one channel's delivery of a stored alert stands (sent, or failed `attempts` times so far)."""

    channel: str
    sent_at: dt.datetime | None
    attempts: int
    last_error: str | None   # short and masked as stored (`short_error`)
    next_at: dt.datetime     # the next try, while not sent
    repeats: int             # possible repeats counted for it
    claimed: bool            # a send is under way (or was, when its sender died)


@dataclass(frozen=True)
class StoredAlert:
    """An alert in the outbox with its deliveries, one per channel."""

    alert: Alert
    enqueued_at: dt.datetime
    deliveries: tuple[ChannelState, ...]


def recent(db: Db, limit: int) -> list[StoredAlert]:
    """The latest `limit` alerts by their time, newest first, with each channel's delivery: two reads."""
    rows = db.query("SELECT key, payload, enqueued_at FROM alerts ORDER BY at DESC, key LIMIT ?", (int(limit),))
    if not rows:
        return []
    marks = ", ".join("?" * len(rows))
    found: dict[str, list[ChannelState]] = {}
    for key, channel, sent_at, attempts, error, next_at, n, claimed_by in db.query(
            "SELECT alert_key, channel, sent_at, attempts, last_error, next_at, repeats, claimed_by FROM deliveries "
            f"WHERE alert_key IN ({marks}) ORDER BY alert_key, channel", [r[0] for r in rows]):
        found.setdefault(key, []).append(ChannelState(channel, from_utc_text(sent_at) if sent_at else None,
                                                      int(attempts), error, from_utc_text(next_at), int(n),
                                                      claimed_by is not None))
    return [StoredAlert(_alert(payload), from_utc_text(enqueued), tuple(found.get(key, ())))
            for key, payload, enqueued in rows]


def short_error(error: str) -> str:
    """The error as stored: its first line, URLs blanked, at most ERROR_MAX characters."""
    # The caller masks secrets; blanking anything URL-shaped as well means a missed one is still not kept.
    line = next((s.strip() for s in str(error).splitlines() if s.strip()), "") or "unknown error"
    line = blank_urls(line)
    return line if len(line) <= ERROR_MAX else line[:ERROR_MAX - 1] + "…"


def _must_exist(tx: Tx, name: str, key: str, channel: str) -> list[tuple]:
    rows = tx.query("SELECT sent_at FROM deliveries WHERE alert_key = ? AND channel = ?", (key, channel))
    if not rows:
        raise StoreError(f"store {name}: no delivery of alert {key!r} to channel {channel!r} in the outbox")
    return rows


def _payload(alert: Alert) -> str:
    data = alert.to_json() | {"key": alert.key, "notify": list(alert.notify), "chart": alert.chart,
                              "trigger": alert.trigger}
    return json.dumps(data, sort_keys=True)


def _alert(payload: str) -> Alert:
    d: dict[str, Any] = json.loads(payload)
    return Alert(d["rule"], dt.datetime.fromisoformat(d["at"]), d["severity"], d["labels"], d["message"],
                 d["evidence"], d["key"], tuple(d["notify"]), d["chart"], d["trigger"])
