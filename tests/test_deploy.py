"""deploy/: the systemd unit says what the daemon relies on, and systemd itself accepts it when present."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNIT = DEPLOY / "macrowatch.service"
EXEC = "/opt/macrowatch/.venv/bin/macrowatch"
MAX_EXPOSURE = 2.0  # deploy/README.md quotes the measured score; a change that loosens the sandbox fails here


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value in order (systemd keys may repeat), comments and blanks skipped."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None and "=" in line, f"not a key=value line in a section: {raw!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text())


@pytest.mark.parametrize("key, value", [
    ("Type", "notify"), ("NotifyAccess", "main"), ("WatchdogSec", "60"), ("Restart", "on-failure"),
    ("RestartSec", "5"), ("DynamicUser", "yes"), ("StateDirectory", "macrowatch"),
    ("ConfigurationDirectory", "macrowatch"), ("EnvironmentFile", "-/etc/macrowatch/env"),
    ("ExecReload", "/bin/kill -HUP $MAINPID"), ("KillSignal", "SIGTERM"), ("TimeoutStopSec", "30"),
    ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("PrivateDevices", "yes"),
    ("NoNewPrivileges", "yes"), ("ProtectKernelTunables", "yes"), ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"), ("ProtectControlGroups", "yes"), ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"), ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("RestrictNamespaces", "yes"), ("RestrictRealtime", "yes"), ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"), ("SystemCallArchitectures", "native"), ("CapabilityBoundingSet", ""),
    ("UMask", "0077"), ("SystemCallErrorNumber", "EPERM"),
])
def test_service_settings(unit, key, value):
    assert unit["Service"].get(key) == [value], f"{key}= in {UNIT.name}"


def test_exec_start_runs_the_daemon_on_the_etc_config(unit):
    assert unit["Service"]["ExecStart"] == [f"{EXEC} run -c /etc/macrowatch/config.yaml"]


def test_log_format_and_syscall_filter(unit):
    service = unit["Service"]
    assert "MACROWATCH_LOG_FORMAT=kv" in service["Environment"]
    assert service["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]


def test_network_and_install(unit):
    assert unit["Unit"]["After"] == ["network-online.target"] and unit["Unit"]["Wants"] == ["network-online.target"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_every_group_of_settings_is_commented():
    # Each run of settings is introduced by a comment saying why: no bare block of directives.
    lines = UNIT.read_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#") and (i == 0 or not lines[i - 1].strip()):
            raise AssertionError(f"line {i + 1} starts a group of settings without a comment: {line!r}")


def test_env_example_holds_names_not_secrets():
    values = dict(line.split("=", 1) for line in (DEPLOY / "env.example").read_text().splitlines()
                  if line and not line.startswith("#"))
    assert values == {"FRED_API_KEY": "", "MACROWATCH_TRADING_URLS": "", "MACROWATCH_OPS_URLS": ""}


def quoted_exposure() -> tuple[str, str]:
    """The exposure deploy/README.md and the README's Deployment section quote: ("1.2", "OK")."""
    deploy = re.search(r"rates it \*\*(\d\.\d) (\w+)\*\*", (DEPLOY / "README.md").read_text())
    main = re.search(r"`systemd-analyze security` rates it (\d\.\d) (\w+)", (DEPLOY.parent / "README.md").read_text())
    assert deploy and main, "deploy/README.md and README.md each quote the exposure score"
    assert deploy.groups() == main.groups(), "the two READMEs quote different exposure scores"
    return deploy.groups()


def test_readme_quotes_the_exposure_and_installs_the_files():
    readme = (DEPLOY / "README.md").read_text()
    assert float(quoted_exposure()[0]) <= MAX_EXPOSURE
    for path in ("deploy/macrowatch.service", "deploy/env.example", "/etc/macrowatch/env", EXEC.rsplit("/", 1)[0]):
        assert path in readme


# ---- systemd's own checks (skipped where systemd-analyze is absent) ---------------------------------

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze not on PATH: the unit's checks need it "
                                          "(Debian: apt-get install systemd)")


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at a stand-in executable, so that verify judges the unit, not the host."""
    fake = tmp_path / "macrowatch"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(EXEC, str(fake)))
    return copy


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60)


@needs_systemd
def test_systemd_analyze_verify_finds_no_error(unit_copy: Path):
    result = analyze("verify", str(unit_copy))
    # Messages about other units of the host are not ours to judge; any about this one fail the test.
    ours = [line for line in (result.stdout + result.stderr).splitlines() if UNIT.name in line]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


@needs_systemd
def test_systemd_analyze_security_exposure(unit_copy: Path):
    result = analyze("security", "--offline=yes", "--no-pager", str(unit_copy))
    if result.returncode != 0 and "offline" in result.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert m, result.stdout + result.stderr
    assert float(m[1]) <= MAX_EXPOSURE
    assert quoted_exposure() == (m[1], m[2]), f"the READMEs must quote the measured {m[1]} {m[2]}"
