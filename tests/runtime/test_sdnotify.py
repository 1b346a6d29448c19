"""sd_notify against real AF_UNIX datagram sockets: a path in a temporary directory and an abstract name."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from macrowatch.runtime import sdnotify


class Receiver:
    """A datagram socket standing in for systemd's notify socket."""

    def __init__(self, sock: socket.socket, env: str):
        self.sock, self.env = sock, env

    def messages(self) -> list[str]:
        """Every datagram received so far."""
        out = []
        self.sock.setblocking(False)
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return out


@pytest.fixture
def short_dir(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, or a shorter directory when tmp_path would exceed AF_UNIX's 108-byte path limit."""
    if len(str(tmp_path)) < 90:
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(prefix="sd-") as d:
        yield Path(d)


@pytest.fixture(params=["path", "abstract"])
def receiver(request, short_dir: Path, monkeypatch) -> Iterator[Receiver]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        env = str(short_dir / "notify")
        sock.bind(env)
    else:
        name = f"macrowatch-test-{uuid.uuid4().hex}"
        sock.bind(b"\0" + name.encode())
        env = "@" + name
    monkeypatch.setenv("NOTIFY_SOCKET", env)
    with sock:
        yield Receiver(sock, env)


@pytest.mark.parametrize("call, expected", [
    (lambda: sdnotify.ready(), "READY=1"),
    (lambda: sdnotify.ready("watching 3 instruments"), "READY=1\nSTATUS=watching 3 instruments"),
    (lambda: sdnotify.watchdog(), "WATCHDOG=1"),
    (lambda: sdnotify.status("polling\nprices"), "STATUS=polling prices"),
    (lambda: sdnotify.stopping(), "STOPPING=1"),
    (lambda: sdnotify.notify("EXTEND_TIMEOUT_USEC=5000000"), "EXTEND_TIMEOUT_USEC=5000000"),
], ids=["ready", "ready-status", "watchdog", "status-one-line", "stopping", "raw"])
def test_messages_arrive(receiver: Receiver, call, expected: str):
    assert call() is True
    assert receiver.messages() == [expected]


def test_reloading_carries_a_monotonic_timestamp(receiver: Receiver):
    assert sdnotify.reloading()
    [msg] = receiver.messages()
    first, second = msg.split("\n")
    assert first == "RELOADING=1" and second.startswith("MONOTONIC_USEC=") and int(second.split("=")[1]) > 0


def test_unset_socket_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False
    assert sdnotify.watchdog() is False


@pytest.mark.parametrize("value", ["", "vsock:2:1234", "relative/path"])
def test_unsupported_addresses_are_a_no_op(monkeypatch, value):
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert sdnotify.ready() is False


def test_a_missing_socket_returns_false_without_raising(monkeypatch, short_dir: Path, caplog):
    monkeypatch.setenv("NOTIFY_SOCKET", str(short_dir / "gone"))
    assert sdnotify.watchdog() is False
    assert "sd_notify" in caplog.text


@pytest.mark.parametrize("usec, pid, expected", [
    ("30000000", None, 30.0),
    ("30000000", "self", 30.0),
    ("30000000", "other", None),
    ("0", None, None),
    ("junk", None, None),
    (None, None, None),
], ids=["set", "pid-matches", "pid-other", "zero", "junk", "unset"])
def test_watchdog_interval(monkeypatch, usec, pid, expected):
    for var, value in (("WATCHDOG_USEC", usec),
                       ("WATCHDOG_PID", {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(pid))):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)
    assert sdnotify.watchdog_interval() == expected


def test_a_listener_that_stopped_reading_never_blocks_the_sender(tmp_path, monkeypatch):
    """A full socket queue makes notify() fail at once (False), never wait: a heartbeat must not hang."""
    import socket as socket_mod
    import time

    from macrowatch.runtime import sdnotify as sd

    path = str(tmp_path / "full.sock")
    listener = socket_mod.socket(socket_mod.AF_UNIX, socket_mod.SOCK_DGRAM)
    listener.bind(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    try:
        began = time.monotonic()
        results = [sd.notify("WATCHDOG=1") for _ in range(2000)]  # far more than the queue holds
        assert time.monotonic() - began < 10
        assert results[0] is True and results[-1] is False
    finally:
        listener.close()
