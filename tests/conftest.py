"""Shared test fixtures. No test reaches beyond 127.0.0.0/8: a guard fails any other connection."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Optional real market history (prices/ and macro/ CSV files, as `macrowatch replay --data` reads them): the
# folder beside the repository, or wherever MACROWATCH_TEST_DATA points.
DATA_VAR = "MACROWATCH_TEST_DATA"
SHARED_DATA = Path(os.environ.get(DATA_VAR) or REPO.parent / "shared" / "data")

# The stub servers (Yahoo, FRED, BLS, a webhook receiver) and their fixtures: yahoo_stub, fred_stub, bls_stub, webhook;
# and a throwaway PostgreSQL server: postgres_server, postgres_url (a fresh database per test).
# tests/ is on sys.path (the rootdir conftest, no __init__.py), so the stub package imports as `stubs`.
pytest_plugins = ["stubs.yahoo", "stubs.fred", "stubs.bls", "stubs.forecasts", "stubs.webhook", "stubs.postgres"]

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


def data_missing(path: Path) -> str | None:
    """Why the real-history tests cannot run with `path`, said so that a user knows what to do; None when they can."""
    if path.is_dir() and (path / "prices").is_dir():
        return None
    return (f"optional real market history not found at {path} (a folder with prices/ and macro/ CSV files): "
            f"these tests replay real episodes; set {DATA_VAR}=/path/to/data to run them")


@pytest.fixture
def shared_data() -> Path:
    """The real market history; the test skips, saying how to get it in, when it is absent (a fresh clone)."""
    why = data_missing(SHARED_DATA)
    if why:
        pytest.skip(why)
    return SHARED_DATA
