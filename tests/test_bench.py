"""The bench scripts run and print their figures (no timing is asserted: machines are noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the bench scripts, run as processes

BENCH = Path(__file__).resolve().parent.parent / "bench"


def last_json(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=BENCH.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


REPLAY = ["bench/replay.py", "--sizes", "3,6", "--years", "2", "--repeat", "1"]


@pytest.fixture(scope="module")
def replay_report() -> dict:
    """The replay bench, run once for the tests that read its report."""
    return last_json(REPLAY)


@pytest.mark.parametrize("args, keys", [
    (REPLAY, {"replay_s", "load_s", "ratio", "alerts", "sizes"}),
    (["bench/latency.py", "--releases", "3"], {"p50_s", "p99_s", "max_s", "fred_requests_per_min",
                                               "baseline_p50_s"}),
    (["bench/footprint.py", "--idle", "2"], {"ready_s", "rss_mb", "idle_cpu_pct"}),
    (["bench/dashboard.py", "--levels", "20", "--instruments", "5", "--repeat", "2"],
     {"page_ms", "page_max_ms", "page_kb", "chart_ms", "chart_cached_ms"}),
], ids=["replay", "latency", "footprint", "dashboard"])
def test_bench_prints_its_figures(args, keys, request):
    report = request.getfixturevalue("replay_report") if args is REPLAY else last_json(args)
    assert keys <= set(report)
    assert all(isinstance(report[k], int | float | list) for k in keys)


def test_replay_bench_grows_with_instruments(replay_report):
    report = replay_report
    small, large = report["sizes"]
    assert large["bars"] == 2 * small["bars"] and large["instruments"] == 6
