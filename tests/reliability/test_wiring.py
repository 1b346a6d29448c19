"""One place builds the store and the sources from a config (issue [11]): `run`, `fetch` and `status` open the
config's store and place yfinance's disk cache alike, and a `postgresql://` store never becomes a local directory
named `postgresql:` (the cache of such a store goes to the local state directory)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from stubs.fred import KEY, FredStub
from stubs.yahoo import YahooStub

D = dt.date
SPX = [(d, c, c + 5, c - 5, c, 3.0e9) for d, c in zip(
    [D(2019, 11, 25), D(2019, 11, 26), D(2019, 11, 27), D(2019, 11, 29), D(2019, 12, 2)],
    [3133.6, 3140.5, 3153.6, 3141.0, 3113.9], strict=True)]
PAYEMS = [("2019-06-01", "2019-07-05", 151269), ("2019-07-01", "2019-08-02", 151433)]
NOW = "2019-12-02T23:30:00+00:00"  # after the 2019-12-02 close

CONFIG = """\
store: "{store}"
sources:
  fred: {{api_key: "${{MW_TEST_FRED_KEY}}", url: "{fred}"}}
  yahoo: {{url: "{yahoo}"}}
instruments:
  spx: {{symbol: "^GSPC", name: "S&P 500"}}
releases:
  es: {{fred_release_id: 50}}
macro:
  payrolls: {{series: PAYEMS, release: es, measure: change}}
rules:
  - {{name: r, when: {{release: payrolls, outcome: any}}}}
"""


def test_fetch_into_a_postgres_store_makes_no_postgresql_directory(tmp_path, postgres_url, yahoo_stub: YahooStub,
                                                                   fred_stub: FredStub):
    yahoo_stub.add_daily("^GSPC", SPX)
    fred_stub.add_series("PAYEMS", PAYEMS)
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    config = work / "mw.yaml"
    config.write_text(CONFIG.format(store=postgres_url, fred=fred_stub.base_url, yahoo=yahoo_stub.url))
    env = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
    env |= {"MACROWATCH_NOW": NOW, "MW_TEST_FRED_KEY": KEY, "HOME": str(home), "NO_PROXY": "127.0.0.1,localhost"}
    exe = Path(sys.executable).parent / "macrowatch"
    proc = subprocess.run([str(exe), "fetch", "-c", str(config), "--since", "2019-06-01"], capture_output=True,
                          text=True, timeout=60, env=env, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "instrument spx ^GSPC: 5 rows, 2019-11-25 .. 2019-12-02"
    made = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_dir())
    assert not any("postgresql:" in p for p in made), made
    # This host's cache is in the local state directory, where `run` puts it for a PostgreSQL store.
    assert (home / ".local" / "state" / "macrowatch" / "yfinance-cache").is_dir(), made
