"""A throwaway PostgreSQL cluster on 127.0.0.1 for the tests, and a fresh database per test.

    def test_it(postgres_url):          # postgresql://macrowatch@127.0.0.1:PORT/t_...
        with open_store(postgres_url) as store: ...

The cluster is made once per session with the distribution's `initdb` and `pg_ctl` (Debian's
`postgresql` package puts them in /usr/lib/postgresql/N/bin, off the PATH) in a temporary directory, with
`trust` authentication, listening on 127.0.0.1 only, on a free port, with durability off (fsync) because
nothing here must survive a power cut. PostgreSQL refuses to run as root: as root, the cluster runs as the
`postgres` user when there is one, else as `nobody`. Where the server cannot start (not installed, the
driver missing, a sandbox without shared memory) the tests that need it are skipped, saying why.
`MACROWATCH_TEST_POSTGRES` set to an admin URL uses that server instead (each test still gets its own
database, dropped afterwards).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemonproc import free_port

ENV_URL = "MACROWATCH_TEST_POSTGRES"
SUPERUSER = "macrowatch"
START_TIMEOUT_S = 60
_counter = itertools.count()


@dataclass
class PostgresServer:
    """A running server: its admin URL (database `postgres`) and a way to make databases on it."""

    host: str
    port: int
    user: str
    admin_db: str = "postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        """Run one statement as the superuser on the admin database (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(self.url(self.admin_db), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def create_database(self) -> str:
        name = f"t_{os.getpid()}_{next(_counter)}"
        self.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop a test's database, ending the sessions a killed daemon may have left (any server version)."""
        import psycopg

        try:
            self.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
            self.execute(f'DROP DATABASE IF EXISTS "{name}"')
        except psycopg.Error:
            pass  # a throwaway cluster goes whole at the end of the session


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: on the PATH, else the newest /usr/lib/postgresql/N/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(found[-1]).parent if found else None


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that drops root (initdb and postgres refuse to run as root), and that user."""
    if os.geteuid() != 0:
        return [], None
    for user in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            continue
        runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
        if runuser:
            return [runuser, "-u", user, "--"], entry
        setpriv = shutil.which("setpriv")
        if setpriv:
            return [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"], entry
    return [], None


class _Cluster:
    """initdb + pg_ctl start in a temporary directory; stop() removes it all."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.prefix, user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="macrowatch-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()  # one per pytest-xdist worker: each worker runs its own cluster
        if user is not None:
            os.chown(self.root, user.pw_uid, user.pw_gid)

    def _run(self, *argv: str, timeout: float) -> None:
        proc = subprocess.run([*self.prefix, *argv], capture_output=True, text=True, timeout=timeout,
                              cwd=self.root, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            if self.log.exists():
                tail += self.log.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"{Path(argv[0]).name} failed: " + " | ".join(tail))

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync", timeout=START_TIMEOUT_S)
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='{self.root}' "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", str(START_TIMEOUT_S), "start", timeout=START_TIMEOUT_S + 10)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop",
                          timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _driver_missing() -> str | None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]' installs it)"
    return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session: $MACROWATCH_TEST_POSTGRES, or a throwaway cluster."""
    if why := _driver_missing():
        pytest.skip(f"PostgreSQL tests skipped: {why}")
    if url := os.environ.get(ENV_URL):
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(url)
        yield PostgresServer(info.get("host", "127.0.0.1"), int(info.get("port", 5432)), info.get("user", SUPERUSER),
                             info.get("dbname", "postgres"))
        return
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL tests skipped: PostgreSQL is not installed (no initdb on the PATH or in "
                    "/usr/lib/postgresql/*/bin; `apt-get install postgresql` installs it)")
    cluster = _Cluster(bindir)
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        cluster.stop()
        pytest.skip(f"PostgreSQL tests skipped: a throwaway server could not start here ({exc})")
    try:
        yield PostgresServer("127.0.0.1", cluster.port, SUPERUSER)
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database on the session's server, dropped after the test."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)
