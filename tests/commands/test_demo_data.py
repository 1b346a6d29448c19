"""`macrowatch demo --data DIR`: the demo's scenario as a data directory that `replay --data` reads, telling the
same story the demo announces (issue [14])."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from commands.test_demo import EXPECTED
from macrowatch.commands.cli import cli
from macrowatch.commands.demo import scenario as sc
from macrowatch.sources import files

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d) [-+]\d{4} \[(\w+)\] ([\w-]+): (.*)$")


def _write(target: Path):
    result = CliRunner().invoke(cli, ["demo", "--data", str(target)])
    assert result.exit_code == 0, result.output
    return result


def _replay(config: Path, data: Path, *args: str) -> list[tuple[str, ...]]:
    result = CliRunner().invoke(cli, ["replay", "-c", str(config), "--data", str(data), *args])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1] == f"{len(result.stdout.splitlines())} alerts"
    return [LINE.match(line).groups() for line in result.stdout.splitlines()]


def test_demo_data_writes_the_scenario_as_replay_files_and_runs_nothing(tmp_path):
    target = tmp_path / "demo-data"
    result = _write(target)
    s = sc.scenario()
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        "macro/PAYEMS.csv", "macro/consensus.csv", "macrowatch-demo.yaml",
        "prices/GSPC.csv", "prices/NDX.csv", "prices/RUT.csv"]
    for symbol, bars in s.bars.items():
        cols = files.read_prices(files.price_file(target, symbol))
        assert list(cols.close) == [b.close for b in bars]
        assert str(files.price_file(target, symbol)) in result.stdout
    assert files.read_vintages(target / "macro" / "PAYEMS.csv") == list(s.vintages["PAYEMS"])
    table = files.read_consensus(target / "macro" / "consensus.csv")
    assert table == {("PAYEMS", s.config.macro["payrolls"].measure): dict(s.config.macro["payrolls"].consensus)}
    assert (target / sc.CONFIG_NAME).read_text() == sc.CONFIG_YAML
    assert "Warming up" not in result.stdout and "alerts in" not in result.stdout  # the daemon did not run
    assert f"macrowatch replay -c {target / sc.CONFIG_NAME} --data {target} --from {sc.REPORT_FROM}" in result.stdout
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    _write(target)                                       # again: the same bytes, nothing added
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before


def test_replaying_the_demo_data_with_the_demos_config_gives_the_alerts_the_demo_announces(tmp_path):
    target = tmp_path / "demo-data"
    _write(target)
    got = _replay(target / sc.CONFIG_NAME, target, "--from", str(sc.REPORT_FROM))
    assert got == list(EXPECTED)


def test_the_consensus_file_judges_the_releases_of_a_config_without_one(tmp_path):
    target = tmp_path / "demo-data"
    _write(target)
    text = (target / sc.CONFIG_NAME).read_text()
    inline = "    consensus: {2017-01: 175, 2017-02: 200, 2017-03: 180, 2017-04: 180}\n"
    assert inline in text
    bare = tmp_path / "bare.yaml"
    bare.write_text(text.replace(inline, ""))
    got = _replay(bare, target, "--from", "2017-05-01")
    assert ("2017-05-05 16:00", "critical", "spx-breakout-with-jobs",
            "S&P 500 broke 2400 at 2406.20; payrolls +211k vs +180k") in got


def test_an_unwritable_target_is_one_line_and_exit_1(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["demo", "--data", str(blocker / "sub")])
    assert result.exit_code == 1
    assert result.stderr.startswith("macrowatch demo: cannot write ") and "Traceback" not in result.output
