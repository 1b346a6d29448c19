"""deploy/: the systemd unit says what the daemon relies on, and systemd itself accepts it when present."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from macrowatch.commands.cli import cli

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
    assert systemd_env(ENV.read_text()) == {"FRED_API_KEY": "", "MACROWATCH_TRADING_URLS": "",
                                            "MACROWATCH_OPS_URLS": ""}


# ---- the environment file: read alike by systemd (EnvironmentFile=) and by sh (the install's check step) ----

ENV = DEPLOY / "env.example"
# systemd strips whitespace around an unquoted value and keeps `#` in it; sh splits an unquoted value at a space.
# In double quotes both take `\"`, `\\`, `\$` and `` \` `` as escapes and keep any other backslash, but sh
# expands an unescaped `$` or `` ` ``: a double-quoted value with those four escaped reads the same in both.
ALIKE = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\$`]|\\.)*)"')
ESCAPE = re.compile(r'\\([\\"$`])')


def systemd_env(text: str) -> dict[str, str]:
    """The file as systemd's EnvironmentFile= reads it, for lines in the form both readers agree on."""
    values = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            # systemd before 254 joins a comment ending in a backslash with the next line; sh does not.
            assert not line.endswith("\\"), f"{ENV.name}: a comment ends in a backslash: {line!r}"
            continue
        m = ALIKE.fullmatch(line)
        assert m, f"{ENV.name}: not in the form systemd and sh read alike (VAR=\"value\"): {line!r}"
        values[m[1]] = ESCAPE.sub(r"\1", m[2])  # a later assignment wins, in systemd as in sh
    return values


def readme_block_lines() -> list[str]:
    """The lines of deploy/README.md's shell blocks, in order."""
    lines, inside = [], False
    for line in (DEPLOY / "README.md").read_text().splitlines():
        if line.strip().startswith("```"):
            inside = line.strip() == "```sh"
            continue
        if inside:
            lines.append(line.strip())
    return lines


def check_step() -> str:
    """The install's check with the environment loaded: the sh script of its `sudo sh -c '...'`."""
    steps = [line for line in readme_block_lines() if "macrowatch check" in line and "/etc/macrowatch/env" in line]
    assert len(steps) == 1, "deploy/README.md runs `macrowatch check` with /etc/macrowatch/env loaded, once"
    argv = shlex.split(steps[0])
    assert argv[:3] == ["sudo", "sh", "-c"], steps[0]
    return argv[3]


def run_step(script: str, env_file: Path, exe: str, config: Path) -> subprocess.CompletedProcess[str]:
    script = (script.replace("/etc/macrowatch/env", str(env_file)).replace(EXEC, exe)
              .replace("/etc/macrowatch/config.yaml", str(config)))
    assert str(env_file) in script and exe in script and str(config) in script, script
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30, env=keep)


def test_env_example_is_read_alike_by_sh_and_systemd_with_its_multi_url_example(tmp_path: Path):
    # The example's own "e.g." line, made live as a user would: two URLs in one value, `#` in the Slack one.
    text = ENV.read_text()
    examples = [line.removeprefix("# e.g. ") for line in text.splitlines() if line.startswith("# e.g. ")]
    assert len(examples) == 1 and " " in examples[0] and "#" in examples[0]
    filled = tmp_path / "env"
    # And a secret with the characters the file's header says to escape.
    filled.write_text(text + examples[0] + "\n" + r'FRED_API_KEY="p\$w \"q\" b\\s \`x\` \d"' + "\n")
    expected = systemd_env(filled.read_text())
    assert len(expected["MACROWATCH_TRADING_URLS"].split()) == 2
    assert expected["FRED_API_KEY"] == r'p$w "q" b\s `x` \d'
    dump = tmp_path / "dump-env"  # stands in for macrowatch: prints what the check step handed it
    dump.write_text(f"#!{sys.executable}\nimport json, os\n"
                    f"print(json.dumps({{k: os.environ.get(k) for k in {sorted(expected)!r}}}))\n")
    dump.chmod(0o755)
    result = run_step(check_step(), filled, str(dump), tmp_path / "config.yaml")
    assert result.returncode == 0 and not result.stderr, result.stderr
    assert json.loads(result.stdout) == expected


def test_the_install_checks_the_config_with_its_environment_before_starting_the_unit(tmp_path: Path):
    lines = readme_block_lines()
    start = next(i for i, line in enumerate(lines) if "systemctl enable --now macrowatch" in line)
    check = next(i for i, line in enumerate(lines) if "macrowatch check" in line and "/etc/macrowatch/env" in line)
    assert check < start
    # As installed, env.example's channels are empty: the step fails there, as `run` would, naming them.
    result = run_step(check_step(), ENV, str(Path(sys.executable).parent / "macrowatch"),
                      DEPLOY.parent / "rules" / "breakout-jobs.yaml")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "channels.trading" in result.stderr and "channels.ops" in result.stderr


def test_a_bad_config_stops_the_unit_instead_of_restarting_it_every_5_s(unit, tmp_path: Path):
    # `run` exits 2 on a config it refuses; a restart meets the same config: systemd must leave the unit failed,
    # with the reason in the journal, not start it again every RestartSec.
    assert unit["Service"]["Restart"] == ["on-failure"]
    assert unit["Service"].get("RestartPreventExitStatus") == ["2"]
    config = tmp_path / "config.yaml"
    config.write_text((DEPLOY.parent / "rules" / "breakout-jobs.yaml").read_text())
    result = CliRunner().invoke(cli, ["run", "-c", str(config)],
                                env={"MACROWATCH_TRADING_URLS": "", "MACROWATCH_OPS_URLS": "", "FRED_API_KEY": ""})
    assert result.exit_code == 2, result.output


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


def test_readme_says_which_python_and_how_status_reads_the_service_store(unit):
    readme = (DEPLOY / "README.md").read_text()
    for needed in ("Python 3.11 or newer", "Ubuntu 22.04", "deadsnakes", "uv python install"):
        assert needed in readme
    # `status` outside the unit does not see its $STATE_DIRECTORY: the README names the store the unit keeps.
    assert unit["Service"]["StateDirectory"] == ["macrowatch"]
    store = "/var/lib/macrowatch/macrowatch.sqlite"
    assert f"sudo {EXEC} status -c /etc/macrowatch/config.yaml --store {store}" in readme_block_lines()
