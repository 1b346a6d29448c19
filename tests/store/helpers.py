"""What the tests ask of a store beyond what the daemon does, written on its public queries."""

from __future__ import annotations

from macrowatch.store import Store


def was_sent(store: Store, key: str, channel: str) -> bool:
    """Whether the alert has been delivered to the channel: it is in the store's sent log."""
    return any((k, c) == (key, channel) for k, c, _at in store.sent_log(limit=1_000_000))
