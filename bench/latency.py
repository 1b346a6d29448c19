"""Release-to-alert latency: a stub publishes at a random moment of a release window; we time the alert.

    python bench/latency.py           # 24 releases through FRED, 24 through BLS
    python bench/latency.py --quick   # 8 of each (under a minute)

The real pipeline runs in this process: the daemon's release burst (fredapi through FredClient, with its rate
limiter; the BLS API through BlsClient) against stub servers on 127.0.0.1, the engine, the SQLite outbox and
apprise posting json:// to a webhook receiver on 127.0.0.1. Latency is the receiver's arrival time minus the
publication time.

FRED path: the stub FRED publishes the new observation 0.2-3 s after the release time (FRED loads BLS data a little
after 08:30). The baseline is a plain fixed 60-second poll: the wait for its next poll (its phase is uniform over
the minute) plus the same measured time from the detecting poll to the arrival.

BLS path (`bls_series`): the stub BLS publishes the new month 0-1 s after the scheduled second while FRED shows
nothing new; we count the BLS queries each release spent. The gain over FRED alone: FRED's copy appears 1-5 minutes
after the release (uniform), and FRED-only latency is that delay plus the FRED path's median latency.
Last line: a JSON object with p50_s, p99_s, max_s, fred_requests_per_min, baseline_p50_s, baseline_p99_s, and
bls_p50_s, bls_p99_s, bls_queries_per_release, fred_only_p50_s, gain_p50_s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import zoneinfo
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from macrowatch.clock import Clock  # noqa: E402
from macrowatch.config.load import load_config  # noqa: E402
from macrowatch.runtime.daemon import Daemon  # noqa: E402
from macrowatch.sources.base import LatestFetch, PriceFetch  # noqa: E402
from macrowatch.sources.bls import BlsClient  # noqa: E402
from macrowatch.sources.fred import FredClient  # noqa: E402
from macrowatch.store import open_store  # noqa: E402
from stubs.bls import KEY as BLS_KEY  # noqa: E402
from stubs.bls import BlsStub  # noqa: E402
from stubs.fred import KEY, FredStub  # noqa: E402
from stubs.webhook import WebhookReceiver  # noqa: E402

NY = zoneinfo.ZoneInfo("America/New_York")
FIRST = dt.date(2019, 1, 4)


class SetClock(Clock):
    """Real time from a moment the bench sets at each release."""

    def __init__(self) -> None:
        self.base, self.t0 = dt.datetime(2019, 1, 1, tzinfo=dt.UTC), time.monotonic()

    def set(self, when: dt.datetime) -> None:
        self.base, self.t0 = when, time.monotonic()

    def now(self) -> dt.datetime:
        return self.base + dt.timedelta(seconds=time.monotonic() - self.t0)


class NoPrices:
    def daily(self, instruments, start, now, calendar_for):
        return PriceFetch()

    def latest(self, instruments, now, calendar_for):
        return LatestFetch()


def release_days(n: int) -> list[dt.date]:
    """A release every week (only distinct days matter to the engine)."""
    return [FIRST + dt.timedelta(weeks=i) for i in range(n)]


def vintages(days: list[dt.date]) -> list[tuple[dt.date, dt.date, float]]:
    """One new period per release day, first printed that day."""
    return [(d - dt.timedelta(days=35), d, 150000.0 + 200 * i) for i, d in enumerate(days)]


def config_text(days: list[dt.date], fred: FredStub, hook: str) -> str:
    dates = ", ".join(d.isoformat() for d in days)
    return f"""\
sources: {{fred: {{api_key: "{KEY}", url: "{fred.base_url}"}}}}
releases: {{es: {{dates: [{dates}], time: "08:30"}}}}
macro: {{payrolls: {{series: PAYEMS, release: es, measure: change}}}}
channels: {{bench: "{hook}"}}
rules:
  - {{name: jobs, when: {{release: payrolls, outcome: any}}, notify: [bench],
     message: "payrolls {{payrolls.actual:+.0f}}k ({{payrolls.ref_period:%Y-%m-%d}})"}}
"""


def one_release(daemon: Daemon, clock: SetClock, fred: FredStub, hook: WebhookReceiver, rows, i: int,
                day: dt.date, rng: random.Random) -> dict:
    at = dt.datetime.combine(day, dt.time(8, 30), NY)
    clock.set(at)
    before = len(hook.requests)
    burst = threading.Thread(target=daemon.bursts.burst, args=("es", day, at))
    burst.start()
    time.sleep(rng.uniform(0.2, 3.0))
    fred.add_series("PAYEMS", rows[:i + 1])
    published = time.monotonic()
    deadline = published + 30
    while len(hook.requests) <= before and time.monotonic() < deadline:
        time.sleep(0.002)
    burst.join(timeout=30)
    if len(hook.requests) <= before:
        raise SystemExit(f"release {day}: no alert within 30 s")
    arrival = hook.requests[before].at
    detected = min(r.at for r in fred.requests if r.at >= published and "observations" in r.path)
    return {"latency": arrival - published, "processing": arrival - detected}


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


def fred_path(n: int, rng: random.Random) -> tuple[list[dict], float]:
    """The FRED path's results per release, and FRED requests per minute."""
    days = release_days(n + 1)
    rows = vintages(days)
    fred, hook = FredStub().start(), WebhookReceiver()
    try:
        fred.add_series("PAYEMS", rows[:1])  # the first release is history
        with tempfile.TemporaryDirectory(prefix="macrowatch-latency-") as tmp:
            path = Path(tmp) / "bench.yaml"
            path.write_text(config_text(days, fred, hook.url("json")))
            config, _ = load_config(path)
            clock = SetClock()
            clock.set(dt.datetime.combine(days[0], dt.time(12), NY))
            store = open_store(Path(tmp) / "bench.sqlite")
            daemon = Daemon(config, store, clock, NoPrices(), FredClient.from_config(config.fred))
            daemon.start(clock.now())
            started = time.monotonic()
            first_request = len(fred.requests)
            results = [one_release(daemon, clock, fred, hook, rows, i + 1, day, rng)
                       for i, day in enumerate(days[1:])]
            minutes = (time.monotonic() - started) / 60
            requests = len(fred.requests) - first_request
            store.close()
    finally:
        fred.stop()
        hook.stop()
    return results, requests / minutes


PAYROLLS = "CES0000000001"


def monthly(n: int) -> list[tuple[dt.date, dt.date, tuple[int, str, str]]]:
    """(release day, period, BLS row) of n monthly releases: on the 5th, of the month before (value 150000 + 200 i)."""
    out = []
    for i in range(n):
        day = dt.date(2019 + i // 12, i % 12 + 1, 5)
        period = (day - dt.timedelta(days=10)).replace(day=1)
        out.append((day, period, (period.year, f"M{period.month:02d}", str(150000 + 200 * i))))
    return out


def bls_path(n: int, rng: random.Random) -> list[dict]:
    """The BLS path's results per release: latency and the BLS queries it spent."""
    releases = monthly(n + 1)
    days = [day for day, _period, _row in releases]
    fred, bls, hook = FredStub().start(), BlsStub().start(), WebhookReceiver()
    try:
        day, period, row = releases[0]
        fred.add_series("PAYEMS", [(period, day, float(row[2]))])  # history; FRED shows nothing new after it
        bls.add_series(PAYROLLS, [row])
        with tempfile.TemporaryDirectory(prefix="macrowatch-latency-bls-") as tmp:
            path = Path(tmp) / "bench.yaml"
            text = config_text(days, fred, hook.url("json")).replace(
                "sources: {", f'sources: {{bls: {{api_key: "{BLS_KEY}", url: "{bls.base_url}"}}, ').replace(
                "measure: change}", f"measure: change, bls_series: {PAYROLLS}}}")
            path.write_text(text)
            config, _ = load_config(path)
            clock = SetClock()
            clock.set(dt.datetime.combine(days[0], dt.time(12), NY))
            store = open_store(Path(tmp) / "bench.sqlite")
            daemon = Daemon(config, store, clock, NoPrices(), FredClient.from_config(config.fred),
                            bls=BlsClient.from_config(config.bls))
            daemon.start(clock.now())
            results = []
            for i, day in enumerate(days[1:], start=1):
                at = dt.datetime.combine(day, dt.time(8, 30), NY)
                clock.set(at)
                before, queries = len(hook.requests), len(bls.calls())
                burst = threading.Thread(target=daemon.bursts.burst, args=("es", day, at))
                burst.start()
                time.sleep(rng.uniform(0.0, 1.0))
                bls.publish(PAYROLLS, [releases[i][2]])
                published = time.monotonic()
                while len(hook.requests) <= before and time.monotonic() < published + 30:
                    time.sleep(0.002)
                burst.join(timeout=30)
                if len(hook.requests) <= before:
                    raise SystemExit(f"release {day}: no alert within 30 s")
                results.append({"latency": hook.requests[before].at - published,
                                "queries": len(bls.calls()) - queries})
            store.close()
    finally:
        fred.stop()
        bls.stop()
        hook.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 releases of each path instead of 24")
    parser.add_argument("--releases", type=int, default=None)
    args = parser.parse_args()
    n = args.releases or (8 if args.quick else 24)
    rng = random.Random(20190802)
    results, per_min = fred_path(n, rng)
    latency = [r["latency"] for r in results]
    baseline = [rng.uniform(0, 60) + r["processing"] for r in results]
    report = {"releases": n, "p50_s": round(statistics.median(latency), 3), "p99_s": round(percentile(latency, 99), 3),
              "max_s": round(max(latency), 3), "fred_requests_per_min": round(per_min, 1),
              "processing_p50_s": round(statistics.median(r["processing"] for r in results), 3),
              "baseline_p50_s": round(statistics.median(baseline), 3),
              "baseline_p99_s": round(percentile(baseline, 99), 3)}
    print(f"FRED, {n} releases: p50 {report['p50_s']} s, p99 {report['p99_s']} s, max {report['max_s']} s; "
          f"poll to arrival {report['processing_p50_s']} s; {report['fred_requests_per_min']} FRED requests/min; "
          f"60-s poll baseline p50 {report['baseline_p50_s']} s, p99 {report['baseline_p99_s']} s")
    bls = bls_path(n, rng)
    bls_latency = [r["latency"] for r in bls]
    fred_only = [rng.uniform(60, 300) + report["p50_s"] for _ in bls]
    gain = [f - b for f, b in zip(fred_only, bls_latency, strict=True)]
    report |= {"bls_p50_s": round(statistics.median(bls_latency), 3),
               "bls_p99_s": round(percentile(bls_latency, 99), 3), "bls_max_s": round(max(bls_latency), 3),
               "bls_queries_per_release": round(statistics.mean(r["queries"] for r in bls), 1),
               "bls_queries_max": max(r["queries"] for r in bls),
               "fred_only_p50_s": round(statistics.median(fred_only), 1),
               "gain_p50_s": round(statistics.median(gain), 1)}
    print(f"BLS, {n} releases: p50 {report['bls_p50_s']} s, p99 {report['bls_p99_s']} s, max {report['bls_max_s']} s; "
          f"{report['bls_queries_per_release']} BLS queries per release (at most {report['bls_queries_max']}); "
          f"FRED alone (its copy 1-5 min later) p50 {report['fred_only_p50_s']} s: {report['gain_p50_s']} s sooner")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
