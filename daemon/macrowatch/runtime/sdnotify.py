"""systemd's notify protocol (sd_notify(3)) without a dependency: READY, WATCHDOG, STATUS, STOPPING.

Outside systemd ($NOTIFY_SOCKET unset) every call is a no-op returning False, so the daemon calls them
unconditionally.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("macrowatch.sdnotify")


def _address(path: str) -> str | bytes:
    # '@' names a socket in the abstract namespace, which the kernel spells with a leading NUL byte.
    return b"\0" + path[1:].encode() if path.startswith("@") else path


def notify(state: str) -> bool:
    """Send `state` (newline-separated KEY=VALUE lines) to $NOTIFY_SOCKET; False when unset or unsent."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path or path[0] not in "/@":
        return False  # unset, or a transport this module does not speak (e.g. vsock:)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # Never wait: a listener that stopped reading (a full queue) must not stall the heartbeat job,
            # and with it a SIGTERM that waits for running jobs.
            sock.sendto(state.encode(), socket.MSG_DONTWAIT, _address(path))
    except OSError as exc:
        # Not fatal: the service keeps running, systemd merely does not hear this message.
        log.warning("sd_notify to %s failed: %s", path, exc)
        return False
    return True


def _one_line(text: str) -> str:
    return " ".join(text.split())


def ready(status: str | None = None) -> bool:
    """Tell systemd start-up (or a reload) is complete, with an optional status line."""
    return notify("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""))


def reloading() -> bool:
    """Tell systemd a reload has begun; send `ready()` when it is done."""
    # MONOTONIC_USEC lets systemd >= 253 tell this reload from an earlier one; older versions ignore it.
    return notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")


def watchdog() -> bool:
    """Keep-alive ping for WatchdogSec=."""
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    """Set the one-line status `systemctl status` shows."""
    return notify(f"STATUS={_one_line(text)}")


def stopping() -> bool:
    """Tell systemd the service is shutting down."""
    return notify("STOPPING=1")


def watchdog_interval() -> float | None:
    """The watchdog timeout in seconds from $WATCHDOG_USEC, when it is meant for this process; else None.

    Ping at least twice per interval (sd_watchdog_enabled(3) recommends half of it).
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    try:
        value = int(usec)
        if pid and int(pid) != os.getpid():
            return None  # set for another process (inherited by a child): not ours to feed
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None
