"""`macrowatch fetch` as a user runs it: the console script against stub Yahoo and FRED servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from macrowatch.model import Vintage
from macrowatch.store import open_store
from stubs.fred import KEY, FredStub
from stubs.yahoo import YahooStub

D = dt.date
SESSIONS = [D(2019, 11, 25), D(2019, 11, 26), D(2019, 11, 27), D(2019, 11, 29), D(2019, 12, 2)]
SPX = [(d, c, c + 5, c - 5, c, 3.0e9) for d, c in zip(SESSIONS, [3133.6, 3140.5, 3153.6, 3141.0, 3113.9],
                                                          strict=True)]
RUT = [(d, c, c + 5, c - 5, c, 9.0e8) for d, c in zip(SESSIONS, [1624.5, 1623.8, 1634.7, 1624.5, 1605.9],
                                                          strict=True)]
PAYEMS = [("2019-06-01", "2019-07-05", 151269), ("2019-07-01", "2019-08-02", 151433),
          ("2019-06-01", "2019-08-02", 151248), ("2019-08-01", "2019-09-06", 151563)]
NOW = "2019-12-02T23:30:00+00:00"  # after the 2019-12-02 close

CONFIG = """\
store: state/mw.sqlite
sources:
  fred: {{api_key: "${{MW_TEST_FRED_KEY}}", url: "{fred}"}}
  yahoo: {{url: "{yahoo}"}}
instruments:
  spx: {{symbol: "^GSPC", name: "S&P 500"}}
  rut: {{symbol: "^RUT", name: "Russell 2000"}}
levels:
  spx-3100: {{instrument: spx, price: 3100}}
releases:
  es: {{fred_release_id: 50}}
macro:
  payrolls: {{series: PAYEMS, release: es, measure: change}}
rules:
  - {{name: r, when: {{level: spx-3100, state: breakout}}}}
"""


@pytest.fixture
def stubs(yahoo_stub: YahooStub, fred_stub: FredStub):
    yahoo_stub.add_daily("^GSPC", SPX)
    yahoo_stub.add_daily("^RUT", RUT)
    fred_stub.add_series("PAYEMS", PAYEMS)
    return yahoo_stub, fred_stub


def run_fetch(tmp_path: Path, yahoo: YahooStub, fred: FredStub, key: str = KEY):
    config = tmp_path / "mw.yaml"
    config.write_text(CONFIG.format(fred=fred.base_url, yahoo=yahoo.url))
    env = {**os.environ, "MACROWATCH_NOW": NOW, "MW_TEST_FRED_KEY": key, "HOME": str(tmp_path),
           "NO_PROXY": "127.0.0.1,localhost"}
    exe = Path(sys.executable).parent / "macrowatch"
    return subprocess.run([str(exe), "fetch", "-c", str(config), "--since", "2019-06-01"], capture_output=True,
                          text=True, timeout=120, env=env)


def test_fetch_stores_everything_and_prints_what_it_holds(tmp_path, stubs):
    yahoo, fred = stubs
    proc = run_fetch(tmp_path, yahoo, fred)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "instrument spx ^GSPC: 5 rows, 2019-11-25 .. 2019-12-02",
        "instrument rut ^RUT: 5 rows, 2019-11-25 .. 2019-12-02",
        "series PAYEMS: 4 rows, 2019-06-01 .. 2019-08-01",
    ]
    with open_store(tmp_path / "state" / "mw.sqlite") as store:
        assert [b.close for b in store.bars("spx")] == [c for _, c, *_ in SPX]
        assert store.bars("rut")[-1].at == dt.datetime(2019, 12, 2, 21, 0, tzinfo=dt.UTC)  # the 16:00 ET close
        assert Vintage(D(2019, 6, 1), D(2019, 8, 2), 151248.0) in store.vintages("PAYEMS")
    assert {r.host for r in yahoo.requests} <= {"fc.yahoo.com", "query1.finance.yahoo.com",
                                                "query2.finance.yahoo.com", "guce.yahoo.com"}
    assert all(KEY not in line for line in (proc.stdout + proc.stderr).splitlines())


def test_a_failing_source_is_named_and_the_others_still_stored(tmp_path, stubs):
    yahoo, fred = stubs
    yahoo.fault("unknown", "^RUT")
    proc = run_fetch(tmp_path, yahoo, fred, key="not-the-key")
    assert proc.returncode == 1
    assert "instrument spx ^GSPC: 5 rows, 2019-11-25 .. 2019-12-02" in proc.stdout
    assert "instrument rut ^RUT: no rows" in proc.stdout
    assert "series PAYEMS: no rows" in proc.stdout
    failures = [line for line in proc.stderr.splitlines() if line.startswith("macrowatch fetch: failed: ")]
    assert [line.split(": ")[2].split(" ")[:2] for line in failures] == [["instrument", "rut"], ["series", "PAYEMS"]]
    assert "api_key" in failures[1] and "not-the-key" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_refetch_replaces_nothing_twice(tmp_path, stubs):
    yahoo, fred = stubs
    assert run_fetch(tmp_path, yahoo, fred).returncode == 0
    proc = run_fetch(tmp_path, yahoo, fred)
    assert proc.returncode == 0, proc.stderr
    assert "instrument spx ^GSPC: 5 rows, 2019-11-25 .. 2019-12-02" in proc.stdout
    assert "series PAYEMS: 4 rows, 2019-06-01 .. 2019-08-01" in proc.stdout
