"""The dashboard's cost per request: `GET /` of a config with 500 levels, and a level's chart, over real HTTP.

    python bench/dashboard.py                  # 500 levels on 100 instruments, 2 years of bars, 200 alerts stored
    python bench/dashboard.py --levels 100     # a smaller config

The store is filled as the daemon leaves it: the bars (seeded random walks on the XNYS sessions) fed through the
engine as a replay does, its saved state, the last 200 alerts it fired in the outbox (delivered), a release with its
consensus and the daemon's heartbeat. The dashboard is served on 127.0.0.1 as `macrowatch run` serves it (a
read-only store connection per request). Last line: a JSON object with page_ms (median of --repeat GETs of /),
page_max_ms, page_kb, levels, alerts_stored (the page shows the last 50), chart_ms (a level's chart, drawn) and
chart_cached_ms (the same chart again: kept until the next close).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from macrowatch.clock import FakeClock
from macrowatch.config.load import load_config
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Bar, Bars
from macrowatch.runtime.dashboard import Dashboard
from macrowatch.runtime.health import HealthServer, Metrics
from macrowatch.runtime.service import secrets_of
from macrowatch.secrets import SecretFilter
from macrowatch.sources.calendar import close_times
from macrowatch.store import open_reader, open_store

KINDS = ["{kind: all_time_high}", "{kind: high_of, bars: 252}", "{price: %.2f}", "{kind: low_of, bars: 252}",
         "{price: %.2f, side: support}"]
END = dt.date(2022, 11, 18)


def walks(instruments: int, years: int) -> tuple[list[dt.date], dict[dt.date, dt.datetime], list[list[float]]]:
    closes_at = close_times("XNYS", END - dt.timedelta(days=int(365.25 * years)), END)
    days = sorted(closes_at)
    rng = random.Random(7)
    out = []
    for _ in range(instruments):
        price, closes = 100.0, []
        for _ in days:
            price *= 1 + rng.gauss(0.0003, 0.012)
            closes.append(round(price, 4))
        out.append(closes)
    return days, closes_at, out


def config_text(levels: int, instruments: int, series: list[list[float]]) -> str:
    insts = [f"  i{k}: {{symbol: I{k}, name: Instrument {k}}}" for k in range(instruments)]
    lvls = []
    for n in range(levels):
        k = n % instruments
        kind = KINDS[n % len(KINDS)]
        if "%" in kind:
            kind = kind % (sorted(series[k])[len(series[k]) // 2] * (0.95 + 0.01 * (n // instruments)))
        lvls.append(f"  l{n}: {{instrument: i{k}, {kind[1:-1]}}}")
    rules = [f"  - {{name: r{n}, when: {{level: l{n}, entered: {'breakdown' if n % 5 in (3, 4) else 'breakout'}}}, "
             f"notify: [desk], chart: i{n % instruments}}}" for n in range(levels)]
    return ("store: bench.sqlite\ninstruments:\n" + "\n".join(insts) + "\nlevels:\n" + "\n".join(lvls)
            + '\nreleases:\n  es: {time: "08:30", dates: [2022-12-02]}\n'
            + "macro:\n  payrolls: {series: PAYEMS, release: es, measure: change, consensus: {2022-11: 200}}\n"
            + "channels:\n  desk: json://127.0.0.1:9/hook?token=BenchT0kenXYZ\nrules:\n" + "\n".join(rules) + "\n")


def fill(root: Path, levels: int, instruments: int, years: int) -> tuple[object, Path, int]:
    """The config, its store, filled as the daemon leaves it, and the number of alerts in its outbox."""
    days, closes_at, series = walks(instruments, years)
    path = root / "bench.yaml"
    path.write_text(config_text(levels, instruments, series))
    config, _ = load_config(path)
    bars = {f"i{k}": [Bar(d, closes_at[d], c, c * 1.004, c * 0.996, c, 1e6) for d, c in zip(days, closes, strict=True)]
            for k, closes in enumerate(series)}
    engine = Engine(config)
    alerts = engine.feed({i: Bars.from_list(b) for i, b in bars.items()})
    now = dt.datetime.combine(END + dt.timedelta(days=3), dt.time(10), dt.UTC)
    with open_store(root / "bench.sqlite") as store:
        for iid, b in bars.items():
            store.put_bars(iid, b)
        store.save_state("engine", engine.to_data())
        store.save_state("daemon", {"started": now.isoformat(), "heartbeat": now.isoformat(), "pid": 1, "every": 10,
                                    "sources": {"prices": {"last_ok": now.isoformat(), "failing_since": None,
                                                           "error": None}}})
        kept = sorted(alerts, key=lambda a: a.at)[-200:]
        for alert in kept:
            store.enqueue(alert, ["desk"], alert.at)
            store.mark_sent(alert.key, "desk", alert.at + dt.timedelta(seconds=1))
    return config, root / "bench.sqlite", len(kept)


def timed_get(url: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as r:
        body = r.read()
    return time.perf_counter() - t0, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=500)
    parser.add_argument("--instruments", type=int, default=100)
    parser.add_argument("--years", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20, help="GETs of the page; the median counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="macrowatch-bench-") as tmp:
        config, store_path, outbox = fill(Path(tmp), args.levels, args.instruments, args.years)
        now = FakeClock(dt.datetime.combine(END + dt.timedelta(days=3), dt.time(10), dt.UTC))
        dashboard = Dashboard(lambda: config, lambda: open_reader(store_path), now,
                              SecretFilter(secrets_of(config)).redact)
        server = HealthServer("127.0.0.1", 0, Metrics(), pages=dashboard)
        server.start()
        try:
            timed_get(server.url + "/")  # the first request imports what the page needs
            pages = [timed_get(server.url + "/") for _ in range(args.repeat)]
            chart_s, png = timed_get(server.url + "/levels/l0.png")
            cached_s, _ = timed_get(server.url + "/levels/l0.png")
        finally:
            server.stop()
    times = [t for t, _ in pages]
    report = {"levels": args.levels, "instruments": args.instruments, "alerts_stored": outbox,
              "page_ms": round(1000 * statistics.median(times), 1), "page_max_ms": round(1000 * max(times), 1),
              "page_kb": round(len(pages[-1][1]) / 1024, 1), "chart_ms": round(1000 * chart_s, 1),
              "chart_cached_ms": round(1000 * cached_s, 1), "chart_kb": round(len(png) / 1024, 1)}
    print(f"GET / with {args.levels} levels: median {report['page_ms']} ms, max {report['page_max_ms']} ms, "
          f"{report['page_kb']} KB; a chart {report['chart_ms']} ms, again {report['chart_cached_ms']} ms")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
