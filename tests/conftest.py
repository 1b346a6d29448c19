"""Shared test fixtures. No test reaches beyond 127.0.0.0/8: a guard fails any other connection."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

# The stub servers (Yahoo, FRED, a webhook receiver) and their fixtures: yahoo_stub, fred_stub, webhook;
# and a throwaway PostgreSQL server: postgres_server, postgres_url (a fresh database per test).
# tests/ is on sys.path (the rootdir conftest, no __init__.py), so the stub package imports as `stubs`.
pytest_plugins = ["stubs.yahoo", "stubs.fred", "stubs.webhook", "stubs.postgres"]

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_local(address) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX
        return True
    host = address[0]
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: resolving it would already be network use


def _guarded(real):
    def connect(self, address):
        if not _is_local(address):
            raise AssertionError(f"test tried to reach {address!r}: tests never touch the network")
        return real(self, address)
    return connect


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _guarded(_real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded(_real_connect_ex))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the repo; the test skips when it is absent (a user's fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA
