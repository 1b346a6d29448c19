"""systemd's watchdog during a long catch-up: pinged while the catch-up works, never a restart loop.

The heartbeat job pings the watchdog, but it is added only once the catch-up is done, and a first start
fetches years of history: longer than `WatchdogSec` on a slow link, the watchdog would kill the process,
systemd would start it again, and the catch-up would begin anew, for ever. The main loop now pings while
the catch-up still polls or evaluates (a catch-up silent for CATCH_UP_STALL is stuck, and left to the
watchdog). A real `macrowatch run` with a 1 s watchdog and a FRED that holds its answer for seconds.
"""

from __future__ import annotations

import datetime as dt
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from macrowatch.runtime.catchup import CatchUp
from macrowatch.runtime.daemon import Daemon

from .world import WARM, Processes, Scenario, release_at


@pytest.mark.slow
def test_process_a_long_catch_up_keeps_pinging_the_watchdog(tmp_path):
    p = Processes(tmp_path, Scenario(WARM + 12))
    gate = threading.Event()
    window = p.fred._window

    def held(series, query):  # FRED answers only once the test lets it: the catch-up waits on it
        gate.wait(30)
        return window(series, query)

    p.fred._window = held
    with tempfile.TemporaryDirectory(prefix="wd-") as short:  # AF_UNIX paths are short
        path = str(Path(short) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(0.2)
        p.env.update({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
        try:
            run = p.start(release_at(p.scenario.day(WARM)) - dt.timedelta(hours=2))
            messages: list[str] = []
            deadline = time.monotonic() + 30
            while not any("READY=1" in m for m in messages) and time.monotonic() < deadline:
                messages += _receive(sock)
            assert any("READY=1" in m for m in messages), run.output()[-2000:]
            held_until = time.monotonic() + 3.5
            during: list[str] = []
            while time.monotonic() < held_until:
                during += _receive(sock)
            assert "warmed up" not in run.output()                       # still catching up, held by FRED
            assert sum(m.startswith("WATCHDOG=1") for m in during) >= 2, during
            gate.set()
            run.wait_for_line("warmed up")
            assert run.stop() == 0
        finally:
            gate.set()
            sock.close()
            p.close()


def _receive(sock: socket.socket) -> list[str]:
    try:
        return [sock.recv(4096).decode()]
    except TimeoutError:
        return []


def test_a_catch_up_silent_for_too_long_is_left_to_the_watchdog():
    daemon = Daemon.__new__(Daemon)  # only what `working` reads: the progress mark
    catch_up = CatchUp(daemon, 10.0)
    daemon.progress = time.monotonic()
    assert catch_up.working(300.0)
    daemon.progress = time.monotonic() - 301.0
    assert not catch_up.working(300.0)                                   # stuck: no ping, systemd restarts it
    daemon.progress = time.monotonic()
    catch_up.done.set()
    assert not catch_up.working(300.0)                                   # done: the heartbeat job pings
