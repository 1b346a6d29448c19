"""Replay throughput: N instruments x 20 years of daily bars with 20 rules, against just loading the CSVs.

    python bench/replay.py            # 50, 200 and 500 instruments x 20 years
    python bench/replay.py --quick    # 50 and 200 instruments x 10 years (under a minute)

Instruments are made from the real series in ../shared/data/prices (scaled and shifted, so each has its
own levels) or, when that folder is absent, from seeded random walks on the XNYS sessions. Prints one
line per size and, last, a JSON object: replay_s, load_s, ratio (replay / load), alerts, scored_s (the
replay and `--score` at 1, 5 and 20 sessions over every alert) and score_pct (what scoring adds, in % of
the replay) of the largest size, and `sizes` with every size's figures. Each figure is the best of --repeat
runs (3).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from macrowatch.commands.replay import load_history
from macrowatch.commands.score import score
from macrowatch.config.load import load_config
from macrowatch.engine.evaluator import Engine
from macrowatch.runtime.history import run
from macrowatch.sources.calendar import close_times

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "prices"
BASES = ["GSPC", "NDX", "DJI", "RUT", "SPY", "QQQ", "DIA", "IWM"]
KINDS = ["{kind: all_time_high}", "{kind: high_of, bars: 252}", "{price: %.2f}",
         "{kind: low_of, bars: 252}", "{price: %.2f, side: support}"]


def base_series(years: int) -> list[tuple[list[str], list[float]]]:
    """(dates, closes) of the real series (or random walks), each the last `years` years."""
    start = dt.date(2022, 11, 18) - dt.timedelta(days=int(365.25 * years))
    if SHARED.is_dir():
        out = []
        for name in BASES:
            frame = pd.read_csv(SHARED / f"{name}.csv")
            frame = frame[frame["Date"] >= start.isoformat()]
            out.append((frame["Date"].tolist(), frame["Close"].astype(float).tolist()))
        return out
    days = [d.isoformat() for d in sorted(close_times("XNYS", start, dt.date(2022, 11, 18)))]
    rng = random.Random(7)
    out = []
    for _ in BASES:
        price, closes = 100.0, []
        for _ in days:
            price *= 1 + rng.gauss(0.0003, 0.012)
            closes.append(price)
        out.append((days, closes))
    return out


def write_data(root: Path, n: int, bases) -> tuple[Path, Path]:
    """DIR/prices/I<k>.csv for k < n and a config with a level each and 20 rules."""
    prices = root / "prices"
    prices.mkdir(parents=True)
    instruments, levels = [], []
    for k in range(n):
        dates, closes = bases[k % len(bases)]
        scale = 1 + 0.013 * k
        rows = ["Date,Open,High,Low,Close,Adj Close,Volume"]
        for d, c in zip(dates, closes, strict=True):
            v = round(c * scale, 4)
            rows.append(f"{d},{v},{v},{v},{v},{v},1000")
        (prices / f"I{k}.csv").write_text("\n".join(rows) + "\n")
        instruments.append(f"  i{k}: {{symbol: I{k}}}")
        kind = KINDS[k % len(KINDS)]
        if "%" in kind:
            kind = kind % (sorted(closes)[len(closes) // 2] * scale)
        levels.append(f"  l{k}: {{instrument: i{k}, {kind[1:-1]}}}")
    rules = []
    for r in range(20):
        k = (r * 37) % n
        lvl = f"l{k}"
        side_states = "[breakdown, failed]" if k % len(KINDS) in (3, 4) else "[breakout, failed]"
        conditions = [f"{{level: {lvl}, entered: {'breakdown' if k % len(KINDS) in (3, 4) else 'breakout'}}}",
                      f"{{level: {lvl}, state: {side_states}}}",
                      f"{{all: [{{level: {lvl}, entered: confirmed}}, "
                      f"{{instrument: i{k}, narrow_range: {{bars: 10, pct: 3}}}}]}}",
                      f"{{any: [{{level: {lvl}, entered: failed}}, {{level: l{(k + 1) % n}, entered: failed}}]}}"]
        rules.append(f"  - {{name: r{r}, when: {conditions[r % 4]}}}")
    config = root / "bench.yaml"
    config.write_text("instruments:\n" + "\n".join(instruments) + "\nlevels:\n" + "\n".join(levels)
                      + "\nrules:\n" + "\n".join(rules) + "\n")
    return root, config


def measure(n: int, bases, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="macrowatch-bench-") as tmp:
        data, config_path = write_data(Path(tmp), n, bases)
        config, _ = load_config(config_path)
        files = sorted((data / "prices").glob("*.csv"))
        load_s = replay_s = scored_s = float("inf")
        for _ in range(repeat):  # the best of `repeat` runs of each: the machine's noise only ever adds
            gc.collect()
            t0 = time.perf_counter()
            frames = [pd.read_csv(f, parse_dates=["Date"]) for f in files]
            load_s = min(load_s, time.perf_counter() - t0)
            bars = sum(len(f) for f in frames)
            del frames
            gc.collect()
            t0 = time.perf_counter()
            history = load_history(config, data)
            alerts = run(Engine(config), history)
            t1 = time.perf_counter()
            scores = score(config, history, alerts, None, None, (1, 5, 20))
            t2 = time.perf_counter()
            replay_s, scored_s = min(replay_s, t1 - t0), min(scored_s, t2 - t0)
    return {"instruments": n, "bars": bars, "load_s": round(load_s, 3), "replay_s": round(replay_s, 3),
            "ratio": round(replay_s / load_s, 2), "alerts": len(alerts),
            "us_per_bar": round(1e6 * replay_s / bars, 2), "scored_s": round(scored_s, 3),
            "score_pct": round(100 * (scored_s / replay_s - 1), 1),
            "scored_alerts": sum(1 for r in scores.returns if r is not None and r[0] == r[0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 and 200 instruments x 10 years")
    parser.add_argument("--sizes", default=None, help="comma-separated instrument counts")
    parser.add_argument("--years", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the best counts")
    args = parser.parse_args()
    sizes = [int(s) for s in (args.sizes or ("50,200" if args.quick else "50,200,500")).split(",")]
    years = args.years or (10 if args.quick else 20)
    bases = base_series(years)
    close_times("XNYS", dt.date(2000, 1, 1), dt.date(2000, 1, 2))  # the calendar's first load is not replay
    results = []
    for n in sizes:
        r = measure(n, bases, args.repeat)
        results.append(r)
        print(f"{n:4d} instruments x {years} years ({r['bars']} bars): replay {r['replay_s']:.2f} s, "
              f"load {r['load_s']:.2f} s, ratio {r['ratio']:.2f}, {r['us_per_bar']:.1f} us/bar, "
              f"{r['alerts']} alerts; replay and score {r['scored_s']:.2f} s (+{r['score_pct']:.1f} %)", flush=True)
    last = results[-1]
    print(json.dumps({"replay_s": last["replay_s"], "load_s": last["load_s"], "ratio": last["ratio"],
                      "alerts": last["alerts"], "scored_s": last["scored_s"], "score_pct": last["score_pct"],
                      "years": years, "data": "shared" if SHARED.is_dir() else "synthetic",
                      "sizes": results}))


if __name__ == "__main__":
    sys.exit(main())
