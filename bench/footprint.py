"""Footprint of `macrowatch run`: time to READY, memory and CPU when idle, with 20 instruments.

    python bench/footprint.py           # a minute idle
    python bench/footprint.py --quick   # 20 s idle

The daemon runs as a subprocess against a stub Yahoo and a stub FRED on 127.0.0.1 (tests/stubs), with its
clock on a Saturday (no session open, so it is idle as it is most of the week). READY is systemd's: the
bench listens on a NOTIFY_SOCKET and times READY=1 from the spawn. RSS is read from /proc after the idle
time, CPU as the process's user+system time over it. Last line: a JSON object with ready_s, rss_mb and
idle_cpu_pct (of one core).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from stubs.fred import KEY, FredStub  # noqa: E402
from stubs.yahoo import YahooStub  # noqa: E402

SYMBOLS = [f"S{i:02d}" for i in range(20)]


def config_text(yahoo: YahooStub, fred: FredStub) -> str:
    instruments = "\n".join(f"  i{k}: {{symbol: {s}}}" for k, s in enumerate(SYMBOLS))
    levels = "\n".join(f"  l{k}: {{instrument: i{k}, kind: all_time_high}}" for k in range(len(SYMBOLS)))
    rules = "\n".join(f"  - {{name: r{k}, when: {{level: l{k}, entered: breakout}}}}" for k in range(len(SYMBOLS)))
    return f"""\
store: state/mw.sqlite
sources:
  fred: {{api_key: "{KEY}", url: "{fred.base_url}"}}
  yahoo: {{url: "{yahoo.url}"}}
instruments:
{instruments}
levels:
{levels}
releases: {{es: {{fred_release_id: 50, time: "08:30"}}}}
macro: {{payrolls: {{series: PAYEMS, release: es, measure: change}}}}
rules:
{rules}
  - {{name: jobs, when: {{release: payrolls, outcome: any}}}}
"""


def bars():
    import datetime as dt

    from macrowatch.sources.calendar import close_times
    days = sorted(close_times("XNYS", dt.date(2019, 1, 1), dt.date(2019, 11, 29)))
    return [(d, 100 + i * 0.1, 101 + i * 0.1, 99 + i * 0.1, 100 + i * 0.1, 1e6) for i, d in enumerate(days)]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 s idle instead of 60 s")
    parser.add_argument("--idle", type=float, default=None, help="seconds idle")
    args = parser.parse_args()
    idle = args.idle or (20 if args.quick else 60)
    yahoo, fred = YahooStub(), FredStub().start()
    rows = bars()
    for s in SYMBOLS:
        yahoo.add_daily(s, rows)
    fred.add_series("PAYEMS", [("2019-09-01", "2019-10-04", 151000), ("2019-10-01", "2019-11-01", 151128)])
    fred.add_release(50, ["2019-11-01", "2019-12-06"])
    with tempfile.TemporaryDirectory(prefix="macrowatch-footprint-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "mw.yaml").write_text(config_text(yahoo, fred))
        sock_path = str(tmp_path / "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.settimeout(60)
        env = {**os.environ, "NOTIFY_SOCKET": sock_path, "HOME": tmp, "NO_PROXY": "127.0.0.1,localhost",
               "MACROWATCH_NOW": "2019-11-30T12:00:00-05:00"}
        exe = Path(sys.executable).parent / "macrowatch"
        began = time.monotonic()
        proc = subprocess.Popen([str(exe), "run", "-c", str(tmp_path / "mw.yaml")], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while b"READY=1" not in sock.recv(4096):
                pass
            ready = time.monotonic() - began
            time.sleep(5)  # the catch-up after READY (history fetch, warm-up) is not idle time
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(idle)
            cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
            rss = rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            sock.close()
            yahoo.stop()
            fred.stop()
    report = {"ready_s": round(ready, 3), "rss_mb": round(rss, 1), "idle_cpu_pct": round(cpu, 2),
              "idle_s": idle, "instruments": len(SYMBOLS)}
    print(f"READY after {report['ready_s']} s; RSS {report['rss_mb']} MB after {idle} s idle; "
          f"idle CPU {report['idle_cpu_pct']} % of a core")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
