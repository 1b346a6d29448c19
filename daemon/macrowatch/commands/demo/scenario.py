"""The demo's bundled scenario: spring 2017, the S&P 500 pressing on 2400 until a jobs report breaks it.

The story, told by the closes hand-placed in TRACKS (everything between them is a seeded random walk bridged
through them, so every run makes the same bars and the same alerts):

- The Nasdaq 100 breaks out to new all-time highs on its own story (02-23), and again after an April dip (04-25).
- The Russell 2000, the high-beta leader, closes above 1400 (02-28), holds one day and slips back (03-02):
  a false breakout.
- The S&P 500 presses on 2400 for fourteen sessions (03-01..03-20) without breaking it, backs off to its
  2320 support (which holds), and presses again from 04-25.
- Friday 05-05: payrolls +211k against +180k expected, a beat; the S&P 500 closes at 2406.20 above 2400 and
  holds above it for the next five closes (confirmed 05-12).

The bars are not real prices (no market data ships with the package); sessions, holidays and close times
are the real XNYS calendar. The payrolls vintages are ALFRED-style: each release brings a first print and
revises the month before.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from macrowatch.config import Config, ConfigError
from macrowatch.config.load import config_from_node
from macrowatch.config.problems import Problems
from macrowatch.config.yamlsrc import load_text
from macrowatch.model import Bar, Vintage
from macrowatch.sources.calendar import close_times

YEAR = 2017
FIRST_SESSION = dt.date(2017, 1, 30)   # the first bar
REPORT_FROM = dt.date(2017, 2, 21)     # the first session reported; the three weeks before warm the levels up
LAST_SESSION = dt.date(2017, 5, 12)    # the last bar: the breakout's fifth close above 2400 (confirmed)
CONFIG_NAME = "macrowatch-demo.yaml"


@dataclass(frozen=True)
class Track:
    """How one instrument's closes are made: hand-placed key closes, a random walk between them, and bands.

    `keys`: "MM-DD:CLOSE ..." in YEAR, the first on FIRST_SESSION and the last on LAST_SESSION.
    `bands`: (from, to, low, high): the walk is clipped to [low, high] on those sessions, so that the noise
    between two key closes cannot cross a level the story needs it not to cross.
    """

    symbol: str
    seed: int
    vol_pct: float          # daily standard deviation of the walk, in percent of the price
    keys: str
    bands: tuple[tuple[str, str, float, float], ...] = ()


# Levels (see CONFIG_YAML): spx-2400 approaching from 2376; rut-1400 approaching from 1386; ndx-ath approaching
# within 1% of its record, and a pullback of more than 1% from the record resets it (the next record is a breakout).
TRACKS = (
    Track("^GSPC", seed=2400, vol_pct=0.3, keys="""
        01-30:2335 02-10:2340 02-17:2351 02-24:2367 02-28:2364
        03-01:2388 03-02:2381 03-03:2384 03-10:2386 03-20:2380
        03-21:2344 03-27:2331 04-05:2352 04-13:2329 04-21:2349 04-24:2370
        04-25:2388 04-26:2387 04-27:2389 05-04:2390
        05-05:2406.2 05-08:2410 05-09:2404 05-10:2411 05-11:2407 05-12:2415""",
          bands=(("02-21", "02-28", 2340, 2372), ("03-01", "03-20", 2378, 2397),
                 ("03-21", "04-24", 2324, 2372), ("04-25", "05-04", 2378, 2397))),
    Track("^NDX", seed=5000, vol_pct=0.3, keys="""
        01-30:5140 02-08:5220 02-15:5330 02-16:5290 02-17:5262
        02-21:5300 02-22:5318 02-23:5345 03-03:5380 03-20:5420 03-21:5405
        04-05:5480 04-07:5440 04-13:5385 04-21:5430 04-24:5462
        04-25:5520 05-12:5600""",
          bands=(("02-24", "04-06", 5340, 5500), ("04-08", "04-24", 5360, 5478))),
    Track("^RUT", seed=1400, vol_pct=0.5, keys="""
        01-30:1360 02-17:1378 02-24:1380 02-27:1394
        02-28:1409 03-01:1411 03-02:1397 03-03:1390 03-08:1372
        03-21:1345 04-13:1342 04-25:1378 05-05:1386 05-12:1382""",
          bands=(("01-30", "02-24", 1340, 1384), ("03-08", "05-12", 1330, 1396))),
)

# The Employment Situation reports: (release day, reference month, payrolls change as first printed (k),
# revision of the month before (k)). The consensus is in CONFIG_YAML, as a user would write it. The first row
# is history the window starts with.
PAYROLLS = (
    (dt.date(2017, 1, 6), dt.date(2016, 12, 1), 156, 19),
    (dt.date(2017, 2, 3), dt.date(2017, 1, 1), 227, -39),   # vs 175 expected: a beat, in the warm-up
    (dt.date(2017, 3, 10), dt.date(2017, 2, 1), 235, 11),   # vs 200: a beat, but the S&P 500 is only pressing
    (dt.date(2017, 4, 7), dt.date(2017, 3, 1), 98, -19),    # vs 180: a miss, the S&P 500 well under 2400
    (dt.date(2017, 5, 5), dt.date(2017, 4, 1), 211, -19),   # vs 180: the beat the thesis waits for
)
PAYEMS_NOV_2016 = 145_200.0   # the level (k) of November 2016, as known before the first row


CONFIG_YAML = """\
# The demo's config: the thesis "the S&P 500 needs the jobs report to break 2400", spring 2017.
# Write your own from this: change the levels and dates, then `macrowatch check -c FILE` and
# `macrowatch run -c FILE` (rules/breakout-jobs.yaml in the repository explains every line).
timezone: America/New_York
calendar: XNYS

instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
  ndx: {symbol: "^NDX", name: "Nasdaq 100"}
  rut: {symbol: "^RUT", name: "Russell 2000"}

levels:
  spx-2400: {instrument: spx, price: 2400}                       # the round number it keeps pressing on
  ndx-ath: {instrument: ndx, kind: all_time_high}                # the Nasdaq's record close
  rut-1400: {instrument: rut, price: 1400, fail_within_bars: 3}  # small caps: 3 closes to prove a breakout
  spx-2320: {instrument: spx, price: 2320, side: support}        # where the thesis is wrong

releases:
  employment-situation:
    time: "08:30"
    dates: [2017-02-03, 2017-03-10, 2017-04-07, 2017-05-05]      # explicit dates: no FRED key needed

macro:
  payrolls:
    series: PAYEMS
    release: employment-situation
    measure: change            # the headline: this month minus last month, as published in one report
    consensus: {2017-01: 175, 2017-02: 200, 2017-03: 180, 2017-04: 180}
    beat_by: 25                # 25k over consensus is a beat, 25k under a miss

channels:
  demo: "${MACROWATCH_DEMO_URLS:-}"   # apprise URLs; `macrowatch demo --notify URL` adds to them

rules:
  - name: spx-pressing-2400
    when: {level: spx-2400, state: approaching}
    for: 3 bars
    cooldown: 10d
    severity: info
    notify: [demo]
    chart: spx
    message: "{spx.name} pressing on {spx-2400.price:.0f}: closed {spx.close:.2f}, no breakout yet"

  - name: rut-false-breakout
    when: {level: rut-1400, entered: failed}
    severity: warning
    notify: [demo]
    chart: rut
    message: "{rut.name} false breakout: back to {rut.close:.2f} after closing above {rut-1400.price:.0f}"

  - name: ndx-new-high
    when: {level: ndx-ath, entered: breakout}
    cooldown: 5d
    severity: info
    notify: [demo]
    chart: ndx
    message: "{ndx.name} new all-time closing high: {ndx.close:.2f}"

  - name: spx-breakout-with-jobs
    when:
      all:
        - {level: spx-2400, state: breakout}
        - {release: payrolls, outcome: beat, within: 1d}
    severity: critical
    notify: [demo]
    chart: spx
    message: >-
      {spx.name} broke {spx-2400.price:.0f} at {spx.close:.2f}; payrolls {payrolls.actual:+.0f}k vs
      {payrolls.consensus:+.0f}k

  - name: spx-breakout-confirmed
    when: {level: spx-2400, entered: confirmed}
    severity: warning
    notify: [demo]
    chart: spx
    message: "{spx.name} held above {spx-2400.price:.0f} for 5 closes: breakout confirmed at {spx.close:.2f}"

  - name: spx-support-lost
    when: {level: spx-2320, entered: breakdown}
    severity: warning
    notify: [demo]
    chart: spx
    message: "{spx.name} closed {spx.close:.2f}, below support {spx-2320.price:.0f}: thesis off"
"""


@dataclass(frozen=True)
class Scenario:
    """The scenario's config, bars and vintages, and the span it plays."""

    config: Config
    bars: Mapping[str, tuple[Bar, ...]]         # symbol -> daily bars, oldest first
    vintages: Mapping[str, tuple[Vintage, ...]]  # series -> every vintage

    @property
    def end(self) -> dt.datetime:
        """The last bar's close: the scenario is over when the clock reads this."""
        return max(bars[-1].at for bars in self.bars.values())


@functools.cache
def scenario() -> Scenario:
    """The bundled scenario (built once; deterministic)."""
    config = load_config_text(CONFIG_YAML)
    closes = close_times(config.calendar, FIRST_SESSION, LAST_SESSION)
    bars = {t.symbol: tuple(make_bars(t, closes)) for t in TRACKS}
    return Scenario(config, bars, {"PAYEMS": tuple(payems_vintages())})


def load_config_text(text: str, name: str = CONFIG_NAME) -> Config:
    """A Config from YAML text; raises ConfigError (warnings, like a channel without URLs, are dropped)."""
    from macrowatch.sources.calendar import calendar_names

    problems = Problems()
    root = load_text(text, name, problems)
    config = config_from_node(root, Path(name), problems, calendar_names) if root is not None else None
    if problems.errors or config is None:
        raise ConfigError(problems.errors)
    return config


def key_closes(track: Track) -> dict[dt.date, float]:
    """The hand-placed closes of a track, by session."""
    out = {}
    for token in track.keys.split():
        day, close = token.split(":")
        out[_day(day)] = float(close)
    return out


def _day(mm_dd: str) -> dt.date:
    return dt.date.fromisoformat(f"{YEAR}-{mm_dd}")


def make_closes(track: Track, sessions: list[dt.date]) -> list[float]:
    """The track's close for every session: the key closes, a Brownian bridge between them, clipped to bands."""
    keys = key_closes(track)
    index = {d: i for i, d in enumerate(sessions)}
    missing = sorted(set(keys) - set(index))
    if missing or sessions[0] not in keys or sessions[-1] not in keys:
        raise ValueError(f"{track.symbol}: key closes must be sessions from the first to the last: {missing}")
    rng = random.Random(track.seed)
    closes = [0.0] * len(sessions)
    anchors = sorted(keys)
    for a, b in zip(anchors, anchors[1:], strict=False):
        i, j = index[a], index[b]
        closes[i:j + 1] = _bridge(rng, keys[a], keys[b], j - i, track.vol_pct)
    for first, last, low, high in track.bands:
        for k, d in enumerate(sessions):
            if _day(first) <= d <= _day(last) and d not in keys:  # a key close is placed on purpose
                closes[k] = min(high, max(low, closes[k]))
    return [round(c, 2) for c in closes]


def _bridge(rng: random.Random, a: float, b: float, n: int, vol_pct: float) -> list[float]:
    """n+1 values from a to b: the straight line plus a random walk pinned to zero at both ends."""
    walk = [0.0]
    for _ in range(n):
        walk.append(walk[-1] + rng.gauss(0.0, a * vol_pct / 100))
    return [a + (b - a) * k / n + walk[k] - walk[n] * k / n for k in range(n + 1)]


def make_bars(track: Track, closes_at: Mapping[dt.date, dt.datetime]) -> list[Bar]:
    """Daily bars at the sessions' real close times, with an open and a range drawn around each close."""
    sessions = sorted(closes_at)
    closes = make_closes(track, sessions)
    rng = random.Random(track.seed + 1)  # a stream of its own: the ranges do not shift the closes
    sd = track.vol_pct / 100
    bars, prev = [], closes[0]
    for day, close in zip(sessions, closes, strict=True):
        open_ = round(prev * (1 + rng.gauss(0.0, sd / 3)), 2)
        high = round(max(open_, close) * (1 + abs(rng.gauss(0.0, sd / 2))), 2)
        low = round(min(open_, close) * (1 - abs(rng.gauss(0.0, sd / 2))), 2)
        bars.append(Bar(day, closes_at[day], open_, high, low, close))
        prev = close
    return bars


def payems_vintages() -> list[Vintage]:
    """PAYEMS levels (k) as ALFRED lists them: each release's first print and its revision of the month before."""
    prior_month = dt.date(2016, 11, 1)
    known = {prior_month: PAYEMS_NOV_2016}
    out = [Vintage(prior_month, dt.date(2016, 12, 2), PAYEMS_NOV_2016)]
    for day, month, change, revision in PAYROLLS:
        known[prior_month] += revision
        out.append(Vintage(prior_month, day, known[prior_month]))
        known[month] = known[prior_month] + change
        out.append(Vintage(month, day, known[month]))
        prior_month = month
    return sorted(out, key=lambda v: (v.date, v.realtime_start))
