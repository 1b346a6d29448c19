"""README's "Your first thesis" runs as written: its files, its commands and the output it shows (issue [14]).

Each block of the section is marked by an HTML comment before it:

    <!-- walkthrough: file NAME -->      the block is the file NAME
    <!-- walkthrough: add-to NAME -->    lines to add to NAME for the path with keys (checked, not replayed)
    <!-- walkthrough: console -->        `$ COMMAND` lines, each followed by the output it prints (compared)
    <!-- walkthrough: commands -->       commands run in order, each to exit 0 (`export` sets the environment;
                                         a channel's URLs become the local webhook receiver's)
    <!-- walkthrough: skip: WHY -->      commands needing keys, the internet or root: their files and configs checked

Everything runs in a temporary folder with the installed `macrowatch` console script, HOME pointing at a folder
shown in the README as /home/you.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from stubs import webhook as webhook_stub

webhook = webhook_stub.webhook  # the receiver fixture

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
SHOWN_HOME = "/home/you"
MARK = re.compile(r"^<!-- walkthrough: ([\w-]+):? ?([^\n]*?) -->\n```(\w+)\n(.*?)\n```$", re.S | re.M)
VAR = re.compile(r"\$\{(\w+)")
ALERT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d [-+]\d{4} \[\w+\] ([\w-]+):", re.M)


@dataclass(frozen=True)
class Block:
    kind: str
    arg: str
    lang: str
    text: str


def section() -> str:
    found = re.search(r"^## Your first thesis\n(.*?)(?=^## )", README, re.S | re.M)
    assert found, "README.md has no '## Your first thesis' section"
    return found.group(1)


def blocks() -> list[Block]:
    return [Block(*m.groups()) for m in MARK.finditer(section())]


def console(text: str) -> list[tuple[str, str]]:
    """(command, expected output) of each `$ ` line of a console block."""
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            assert out, f"console block output before any command: {line!r}"
            out[-1][1].append(line)
    return [(cmd, "\n".join(lines)) for cmd, lines in out]


def commands(text: str) -> list[str]:
    """The command lines of an sh block, comments dropped."""
    lines = (line.split(" #", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


class Walk:
    """The temporary folder, the environment and the console script the walkthrough runs with."""

    def __init__(self, tmp: Path):
        self.dir = tmp / "work"
        self.dir.mkdir()
        self.home = tmp / "home"
        self.home.mkdir()
        self.exe = Path(sys.executable).with_name("macrowatch")
        if not self.exe.exists():
            pytest.skip("no macrowatch console script beside the interpreter")
        drop = {"STATE_DIRECTORY", "MACROWATCH_CONFIG", "FRED_API_KEY", "BLS_API_KEY", "MACROWATCH_DEBUG"}
        self.env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("MACROWATCH_")}
        self.env.update(HOME=str(self.home), MPLCONFIGDIR=str(tmp / "mpl"), TMPDIR=str(tmp), COLUMNS="200")

    def run(self, command: str, env: dict[str, str] | None = None, cwd: Path | None = None):
        argv = shlex.split(command)
        assert argv[0] == "macrowatch", f"the walkthrough runs macrowatch only: {command}"
        proc = subprocess.run([str(self.exe), *argv[1:]], cwd=cwd or self.dir, env={**self.env, **(env or {})},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        out = proc.stdout.replace(str(self.home), SHOWN_HOME).rstrip("\n")
        assert "Traceback" not in out, f"{command}\n{out}"
        return proc.returncode, out


def test_the_section_has_every_step_marked():
    kinds = [(b.kind, b.arg) for b in blocks()]
    assert ("file", "thesis.yaml") in kinds and ("file", "thesis.test.yaml") in kinds
    assert [k for k, _ in kinds].count("console") >= 4 and ("commands", "") in kinds
    cmds = [cmd for b in blocks() if b.kind == "console" for cmd, _ in console(b.text)]
    assert any(c.startswith("macrowatch demo --data") for c in cmds)
    for name in ("check", "replay", "test"):
        assert any(c.startswith(f"macrowatch {name} ") for c in cmds), name
    # Every fenced block of the section is marked, so none of them can drift unseen.
    assert section().count("\n```\n") == len(blocks())


@pytest.mark.slow
def test_the_walkthrough_runs_as_the_readme_shows(tmp_path, webhook):
    walk = Walk(tmp_path)
    keyed: dict[str, str] = {}
    ran = []
    for block in blocks():
        if block.kind == "file":
            (walk.dir / block.arg).write_text(block.text + "\n")
        elif block.kind == "add-to":
            keyed[block.arg] = (walk.dir / block.arg).read_text() + block.text + "\n"
        elif block.kind == "console":
            for command, shown in console(block.text):
                code, out = walk.run(command)
                assert code == 0, f"{command}\n{out}"
                assert out == shown, f"README shows another output for `{command}`:\n{out}"
                ran.append(command)
        elif block.kind == "commands":
            ran += run_commands(walk, block.text, webhook)
        elif block.kind == "skip":
            check_skipped(walk, block.text, keyed)
        else:
            pytest.fail(f"unknown walkthrough mark {block.kind!r}")
    assert any(c.startswith("macrowatch replay ") and "--send" in c for c in ran)


def run_commands(walk: Walk, text: str, receiver: webhook_stub.WebhookReceiver) -> list[str]:
    """Run a `commands` block: every command exits 0; the channel's URLs are the receiver's."""
    env: dict[str, str] = {}
    ran = []
    for command in commands(text):
        if command.startswith("export "):
            name, _value = command.removeprefix("export ").split("=", 1)
            assert re.fullmatch(r"MACROWATCH_\w+_URLS", name), command
            env[name] = receiver.url("json")
            continue
        before = len(receiver.requests)
        code, out = walk.run(command, env)
        assert code == 0, f"{command}\n{out}"
        got = receiver.requests[before:]
        if command.startswith("macrowatch notify-test"):
            channel = shlex.split(command)[2]
            assert out == f"notify-test: channel {channel}: sent to 1 URL" and len(got) == 1, out
        elif command.startswith("macrowatch replay") and "--send" in command:
            printed = [m[1] for m in ALERT.finditer(out)]
            assert printed, out
            titles = [r.json()["title"].split("] ", 1)[1] for r in got]
            assert titles == printed, "replay --send delivers in the order printed (time order)"
            assert f"{len(printed)} of {len(printed)} sent" in out, out
        elif command.startswith("macrowatch check"):
            assert ": ok:" in out and "warning" not in out, out
        ran.append(command)
    return ran


def check_skipped(walk: Walk, text: str, keyed: dict[str, str]) -> None:
    """Commands that need keys, the internet or root are not run: the configs they name pass `macrowatch check`
    (with the keys' lines added and the keys set), and the files they install exist."""
    for command in commands(text):
        argv = shlex.split(command.split("&&")[0])
        if argv[0] == "export":
            continue
        if argv[0] == "macrowatch":
            config = argv[argv.index("-c") + 1]
            body = keyed.get(config) or (walk.dir / config).read_text()
            keys = {v: "test-key" for v in VAR.findall(body) if v.endswith("_KEY")}
            checked = walk.dir / "keyed" / config
            checked.parent.mkdir(exist_ok=True)
            checked.write_text(body)
            code, out = walk.run(f"macrowatch check -c {checked}", keys)
            assert code == 0 and "api_key" not in out, out
            assert keys, f"{command}: a command needing keys with a config naming none"
        elif argv[:2] == ["sudo", "install"]:
            source = Path(argv[-2])
            assert (walk.dir / source).exists() or (REPO / source).exists(), command
            if source.name == "env.example":
                defined = set(re.findall(r"^(\w+)=", (REPO / source).read_text(), re.M))
                named = {v for body in [(walk.dir / "thesis.yaml").read_text(), *keyed.values()]
                         for v in VAR.findall(body)}
                assert named <= defined, f"{source} lacks {named - defined}"
        else:
            assert argv[:2] == ["sudo", "systemctl"], f"a skipped command the test does not know: {command}"
