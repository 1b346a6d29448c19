"""`macrowatch run` as a process with a config: the one helper every process test starts the daemon with.

`Daemon` starts `macrowatch run -c CONFIG` (the console script beside this interpreter) with its output, stdout
and stderr, in a log file; with `now`, its clock starts there (MACROWATCH_NOW) and runs at real speed, and
`clock()` is the test's reading of it. `wait_for_line` waits for a line and fails, showing the log, if the
process ends first or the line does not come. `environment` is the environment the process tests give it;
`free_port` a port for its /healthz that no other test, even in another xdist worker, is handed meanwhile.
`STUB_SOURCES` is the part of a process test's config that points it at the stub FRED and Yahoo.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

EXE = Path(sys.executable).parent / "macrowatch"
READY_TIMEOUT = 60.0

# The sources and the instrument of a process test's config: the stub FRED (its key from $MW_TEST_FRED_KEY) and
# Yahoo on 127.0.0.1, and the S&P 500 they serve. A piece of a config template: the whole is formatted with fred=
# (FredStub.base_url) and yahoo= (YahooStub.url), its braces doubled as the rest's.
STUB_SOURCES = """\
sources:
  fred: {{api_key: "${{MW_TEST_FRED_KEY}}", url: "{fred}"}}
  yahoo: {{url: "{yahoo}"}}
instruments:
  spx: {{symbol: "^GSPC", name: "S&P 500"}}
"""


# free_port's ports: below the kernel's ephemeral range (32768-60999 by default), where no bind to port 0 (a stub
# server) and no outgoing connection lands, one block per pytest-xdist worker (PYTEST_XDIST_WORKER gw0, gw1, ...):
# a port found free here stays free until the daemon binds it, whatever runs beside the test.
PORT_BASE, PORT_BLOCK = 20000, 500
_ports = itertools.count()


def free_port() -> int:
    """A loopback port nothing listens on now and nothing else is handed (for a daemon's /healthz)."""
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    first = PORT_BASE + worker * PORT_BLOCK
    for _ in range(PORT_BLOCK):
        port = first + next(_ports) % PORT_BLOCK
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # a daemon of an earlier test still holds it
            return port
    raise RuntimeError(f"no free port in {first}..{first + PORT_BLOCK - 1}")


def wait_until(check: Callable[[], object], timeout: float = READY_TIMEOUT, what: str = "") -> None:
    """Wait until `check()` is true; fail, saying for `what`, after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.02)


def healthz(port: int, timeout: float = 5.0) -> tuple[int, str]:
    """A daemon's /healthz: (status, body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as r:
            return r.status, r.read().decode().strip()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode().strip()


def macrowatch(*args: str) -> list[str]:
    """The argv of a macrowatch command (the console script of this environment)."""
    return [str(EXE), *args]


def environment(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment with HOME in the test's folder, no proxy for loopback, and key=value logs."""
    return {**os.environ, "HOME": str(home), "NO_PROXY": "127.0.0.1,localhost", "MACROWATCH_LOG_FORMAT": "kv",
            **extra}


class Daemon:
    """One `macrowatch run` process, its log, and (with `now`) its clock."""

    def __init__(self, config: Path, env: dict[str, str], log: Path, now: dt.datetime | None = None,
                 name: str = "the daemon"):
        self.config, self.log, self.now, self.name = config, log, now, name
        self.t0 = time.monotonic()
        if now is not None:
            env = {**env, "MACROWATCH_NOW": now.isoformat()}
        with log.open("w") as out:
            self.proc = subprocess.Popen(macrowatch("run", "-c", str(config)), stdout=out, stderr=subprocess.STDOUT,
                                         env=env)
        self.killed_at: float | None = None
        self._kill_lock = threading.Lock()

    def clock(self) -> dt.datetime:
        """The daemon's time as the test reads it: `now` at the start, then real time."""
        assert self.now is not None, "a daemon started without `now` runs on the real clock"
        return self.now + dt.timedelta(seconds=time.monotonic() - self.t0)

    def output(self) -> str:
        return self.log.read_text()

    def wait_for_line(self, text: str, timeout: float = READY_TIMEOUT) -> float:
        """Wait for a line holding `text`; return the monotonic time it was seen."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in {self.name}'s output:\n{self.output()[-3000:]}")
            time.sleep(0.02)
        return time.monotonic()

    def logged_at(self, text: str) -> float:
        """The Unix time stamped on the first log line holding `text` (processes on one host share its clock)."""
        line = next(line for line in self.output().splitlines() if text in line)
        stamp = line.split(" ", 1)[0].removeprefix("ts=")
        return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    def kill(self) -> None:
        """SIGKILL, once (from any thread); `killed_at` is when, in seconds since the start. Does not wait."""
        with self._kill_lock:
            if self.killed_at is None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
                self.killed_at = time.monotonic() - self.t0

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        """Teardown: a process still running is killed and reaped."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
