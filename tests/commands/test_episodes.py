"""Real episodes from ../shared/data through `macrowatch replay`, with the expected alerts worked out BY HAND.

Every expectation below was derived from the raw CSV rows (Date,...,Close of prices/<SYMBOL>.csv; the
date,realtime_start,value rows of macro/PAYEMS.csv; macro/consensus.csv) and the rules of DESIGN.md
("The breakout state machine", "Evaluation and alerts"), before replay was run. Each test carries its
reasoning: the dated closes, L, band = L*(1 - approach_pct/100) (support: L*(1 + approach_pct/100)),
up = L*(1 + buffer_pct/100) (buffer 0 here, so up = L), bar 0 and the watch window bars 1..N, and for
payrolls the first print of month m minus month m-1 as published in the SAME release.

Close times are the XNYS session closes (16:00 America/New_York; EST -05:00 until the second Sunday of
March, EDT -04:00 after, back to EST on the first Sunday of November). The Employment Situation is
published at 08:30 America/New_York. The data folder is never copied: the tests skip without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from macrowatch.commands.cli import cli

PAYROLLS = """\
releases:
  es: {fred_release_id: 50, time: "08:30"}
macro:
  payrolls: {series: PAYEMS, release: es, measure: change, beat_by: 25}
"""


def replay(shared_data: Path, tmp_path: Path, config: str, start: str, end: str) -> list[dict]:
    path = tmp_path / "mw.yaml"
    path.write_text(config)
    result = CliRunner().invoke(cli, ["replay", "-c", str(path), "--data", str(shared_data),
                                      "--from", start, "--to", end, "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def fired(alerts: list[dict]) -> list[tuple[str, str]]:
    return [(a["rule"], a["at"]) for a in alerts]


def atom(alert: dict, prefix: str) -> dict:
    """The one evidence entry whose key starts with `prefix` (a level id or a macro id)."""
    found = [v for k, v in alert["evidence"].items() if k.startswith(prefix)]
    assert len(found) == 1, alert["evidence"]
    return found[0]


def level_seen(alerts: list[dict], level: str) -> list[tuple[str, str, float, float]]:
    """(rule, state, level, close) of each alert, as its level atom saw them."""
    out = []
    for a in alerts:
        e = atom(a, level)
        out.append((a["rule"], e["state"], e["level"], pytest.approx(e["close"], abs=1e-4)))
    return out


# ------------------------------------------------------------------------------------------------------
# Episode 1: the Russell 2000 false breakouts of 1400, February-March 2017 (^RUT, prices/RUT.csv).
#
# L = 1400 (static), approach_pct 1.0, buffer_pct 0, fail_within_bars 5:
#   band = 1400 * 0.99 = 1386.00, up = 1400.00.
# Warm-up: 2017-01-31 closed 1361.82 < 1386, so whatever came before, the state on 2017-02-01 is `below`.
# (The highest close before 2017-02-15 is 1396.65 on 2017-02-14: the RUT had never closed above 1400.)
#
#   2017-02-08 1358.74  below
#   2017-02-09 1378.53  below
#   2017-02-10 1388.84  approaching (1386 <= c <= 1400)
#   2017-02-13 1392.38  approaching
#   2017-02-14 1396.65  approaching
#   2017-02-15 1404.21  > 1400: BREAKOUT, bar 0; L frozen at 1400; window = bars 1..5
#   2017-02-16 1399.13  bar 1, <= 1400: FAILED (the false breakout, one day later)
#   2017-02-17 1399.86  failed (1386 <= c <= 1400: stays failed)
#   2017-02-21 1410.34  > 1400 from failed: new BREAKOUT, bar 0
#   2017-02-22 1403.86  bar 1, > 1400
#   2017-02-23 1394.62  bar 2, <= 1400: FAILED
#   2017-02-24 1394.52  failed
#   2017-02-27 1407.97  > 1400: BREAKOUT, bar 0
#   2017-02-28 1386.68  bar 1, <= 1400: FAILED (1386.68 >= band 1386, so failed and not below)
#   2017-03-01 1413.64  > 1400: BREAKOUT, bar 0
#   2017-03-02 1395.67  bar 1, <= 1400: FAILED
#   2017-03-03 1394.13  failed
#   2017-03-06 1384.25  < 1386: BELOW (failed -> below); L follows the market again (static: 1400)
#   2017-03-07..03-15   1374.88 1366.04 1360.12 1365.26 1370.28 1362.38 1382.83: below
#   2017-03-16 1386.03  approaching (>= 1386)
#   2017-03-17 1391.52  approaching
#   2017-03-20 1384.10  < 1386: BELOW
#   2017-03-21..03-31   all < 1386 (the highest, 1385.92 on 03-31, is still under the band): below
# Four breakouts, four failures, no confirmation: no window ever held five closes above 1400.
# 2017-03-12 is the DST switch: 03-06 closes at 16:00 -05:00, 03-20 at 16:00 -04:00.
# ------------------------------------------------------------------------------------------------------
RUT_1400 = """\
instruments:
  rut: {symbol: "^RUT", name: "Russell 2000"}
levels:
  rut-1400: {instrument: rut, price: 1400, approach_pct: 1.0, buffer_pct: 0, fail_within_bars: 5}
rules:
  - name: rut-breakout
    when: {level: rut-1400, entered: breakout}
  - name: rut-false-breakout
    when: {level: rut-1400, entered: failed}
  - name: rut-confirmed
    when: {level: rut-1400, entered: confirmed}
  - name: rut-below
    when: {level: rut-1400, entered: below}
"""


def test_rut_1400_false_breakouts_2017(shared_data, tmp_path):
    alerts = replay(shared_data, tmp_path, RUT_1400, "2017-02-01", "2017-03-31")
    assert fired(alerts) == [
        ("rut-breakout", "2017-02-15T16:00:00-05:00"),
        ("rut-false-breakout", "2017-02-16T16:00:00-05:00"),
        ("rut-breakout", "2017-02-21T16:00:00-05:00"),
        ("rut-false-breakout", "2017-02-23T16:00:00-05:00"),
        ("rut-breakout", "2017-02-27T16:00:00-05:00"),
        ("rut-false-breakout", "2017-02-28T16:00:00-05:00"),
        ("rut-breakout", "2017-03-01T16:00:00-05:00"),
        ("rut-false-breakout", "2017-03-02T16:00:00-05:00"),
        ("rut-below", "2017-03-06T16:00:00-05:00"),
        ("rut-below", "2017-03-20T16:00:00-04:00"),
    ]
    assert level_seen(alerts, "rut-1400") == [
        ("rut-breakout", "breakout", 1400.0, 1404.20996),
        ("rut-false-breakout", "failed", 1400.0, 1399.13),
        ("rut-breakout", "breakout", 1400.0, 1410.33997),
        ("rut-false-breakout", "failed", 1400.0, 1394.62),
        ("rut-breakout", "breakout", 1400.0, 1407.96997),
        ("rut-false-breakout", "failed", 1400.0, 1386.68005),
        ("rut-breakout", "breakout", 1400.0, 1413.64001),
        ("rut-false-breakout", "failed", 1400.0, 1395.67004),
        ("rut-below", "below", 1400.0, 1384.25),
        ("rut-below", "below", 1400.0, 1384.09998),
    ]


# ------------------------------------------------------------------------------------------------------
# Episode 2: the S&P 500 pressing on 2400, March-June 2017 (^GSPC, prices/GSPC.csv).
#
# L = 2400 (static), approach_pct 1.0, buffer 0, fail_within_bars 5: band = 2376.00, up = 2400.00.
# Warm-up: the highest close before 2017-03-01 is 2369.75 (2017-02-27) < 2376: `below` on 03-01.
#
#   2017-02-28 2363.64  below
#   2017-03-01 2395.96  approaching  (1st consecutive close)
#   2017-03-02 2381.92  approaching  (2nd)
#   2017-03-03 2383.12  approaching  (3rd): `for: 3 bars` FIRES
#   2017-03-06 2375.31  < 2376: below (by 0.69)   -> the rule is false again
#   2017-03-07..03-14   2368.39 2362.98 2364.87 2372.60 2373.47 2365.45: below
#   2017-03-15 2385.26  approaching (1st)
#   2017-03-16 2381.38  approaching (2nd)
#   2017-03-17 2378.25  approaching (3rd): `for: 3 bars` fires again (no cooldown); with `cooldown: 15d`
#                       it is held back: 03-03 16:00 EST -> 03-17 16:00 EDT is 13 d 23 h < 15 d
#   2017-03-20 2373.47  below; 03-21..04-24 all below (the highest, 2374.15 on 04-24, < 2376)
#   2017-04-25 2388.61  approaching (1st)
#   2017-04-26 2387.45  approaching (2nd)
#   2017-04-27 2388.77  approaching (3rd): fires (with cooldown too: 55 days after 03-03)
#   2017-04-28..05-12   2384.20 2388.33 2391.17 2388.13 2389.52 2399.29 2399.38 2396.92 2399.63 2394.44
#                       2390.90: all within [2376, 2400]: approaching, no new fire while it holds
#   2017-05-15 2402.32  > 2400: BREAKOUT, bar 0 (L frozen at 2400); window 05-16, 05-17, 05-18, 05-19, 05-22
#   2017-05-16 2400.67  bar 1, > 2400 (by 0.67)
#   2017-05-17 2357.03  bar 2, <= 2400: FAILED. The close is also under the band (2357.03 < 2376), but
#                       DESIGN: `failed` is "the first close <= L inside the watch window", and the failed
#                       state lasts "until a close < band (-> below)": the next close decides that.
#   2017-05-18 2365.72  < 2376: failed -> BELOW
#   2017-05-19 2381.73  approaching (1st)
#   2017-05-22 2394.02  approaching (2nd)
#   2017-05-23 2398.42  approaching (3rd): fires (cooldown: 26 days after 04-27)
#   2017-05-24 2404.39  > 2400: BREAKOUT, bar 0; window = 05-25, 05-26, 05-30 (05-29 Memorial Day), 05-31, 06-01
#   2017-05-25 2415.07  bar 1 > 2400
#   2017-05-26 2415.82  bar 2 > 2400
#   2017-05-30 2412.91  bar 3 > 2400
#   2017-05-31 2411.80  bar 4 > 2400
#   2017-06-01 2430.06  bar 5 > 2400: every close of the window above L: CONFIRMED on 06-01
#   2017-06-02..06-30   lowest 2419.38 (06-27) > 2400: stays confirmed
# ------------------------------------------------------------------------------------------------------
SPX_2400 = """\
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
levels:
  spx-2400: {instrument: spx, price: 2400, approach_pct: 1.0, buffer_pct: 0, fail_within_bars: 5}
rules:
  - name: spx-looming
    when: {level: spx-2400, state: approaching}
    for: 3 bars
  - name: spx-looming-quiet
    when: {level: spx-2400, state: approaching}
    for: 3 bars
    cooldown: 15d
  - name: spx-breakout
    when: {level: spx-2400, entered: breakout}
  - name: spx-false-breakout
    when: {level: spx-2400, entered: failed}
  - name: spx-confirmed
    when: {level: spx-2400, entered: confirmed}
"""


def test_spx_2400_pressing_then_confirmed_2017(shared_data, tmp_path):
    alerts = replay(shared_data, tmp_path, SPX_2400, "2017-03-01", "2017-06-30")
    assert fired(alerts) == [
        ("spx-looming", "2017-03-03T16:00:00-05:00"),
        ("spx-looming-quiet", "2017-03-03T16:00:00-05:00"),
        ("spx-looming", "2017-03-17T16:00:00-04:00"),
        ("spx-looming", "2017-04-27T16:00:00-04:00"),
        ("spx-looming-quiet", "2017-04-27T16:00:00-04:00"),
        ("spx-breakout", "2017-05-15T16:00:00-04:00"),
        ("spx-false-breakout", "2017-05-17T16:00:00-04:00"),
        ("spx-looming", "2017-05-23T16:00:00-04:00"),
        ("spx-looming-quiet", "2017-05-23T16:00:00-04:00"),
        ("spx-breakout", "2017-05-24T16:00:00-04:00"),
        ("spx-confirmed", "2017-06-01T16:00:00-04:00"),
    ]
    assert level_seen(alerts, "spx-2400") == [
        ("spx-looming", "approaching", 2400.0, 2383.12012),
        ("spx-looming-quiet", "approaching", 2400.0, 2383.12012),
        ("spx-looming", "approaching", 2400.0, 2378.25),
        ("spx-looming", "approaching", 2400.0, 2388.77002),
        ("spx-looming-quiet", "approaching", 2400.0, 2388.77002),
        ("spx-breakout", "breakout", 2400.0, 2402.32007),
        ("spx-false-breakout", "failed", 2400.0, 2357.03003),
        ("spx-looming", "approaching", 2400.0, 2398.41992),
        ("spx-looming-quiet", "approaching", 2400.0, 2398.41992),
        ("spx-breakout", "breakout", 2400.0, 2404.38989),
        ("spx-confirmed", "confirmed", 2400.0, 2430.06006),
    ]


# ------------------------------------------------------------------------------------------------------
# Episode 3: the S&P 500 around 3000, July-October 2019 (^GSPC).
#
# L = 3000 (static), approach_pct 1.0, buffer 0, fail_within_bars 5: band = 2970.00, up = 3000.00.
# Warm-up: the highest close before June 2019 is 2945.83 (2019-04-30); 2019-06-28 closed 2941.76 and
# 2019-07-01 2964.33, both < 2970: `below`.
#
#   2019-07-02 2973.01  approaching; 07-03 2995.82 (early close), 07-05 2990.41, 07-08 2975.95,
#                       07-09 2979.63, 07-10 2993.07, 07-11 2999.91 (by 0.09): approaching
#   2019-07-12 3013.77  BREAKOUT, bar 0; window 07-15..07-19
#   2019-07-15 3014.30  bar 1 > 3000
#   2019-07-16 3004.04  bar 2 > 3000
#   2019-07-17 2984.42  bar 3 <= 3000: FAILED
#   2019-07-18 2995.11, 07-19 2976.61, 07-22 2985.03: in [2970, 3000]: failed
#   2019-07-23 3005.47  > 3000 from failed: BREAKOUT, bar 0; window 07-24, 07-25, 07-26, 07-29, 07-30
#   2019-07-24 3019.56, 07-25 3003.67, 07-26 3025.86, 07-29 3020.97: bars 1-4 > 3000
#   2019-07-30 3013.18  bar 5 > 3000: CONFIRMED
#   2019-07-31 2980.38  <= 3000 from confirmed: approaching (>= 2970)
#   2019-08-01 2953.56  below; all of August and 09-03 2906.27, 09-04 2937.78 < 2970: below
#   2019-09-05 2976.00, 09-06 2978.71, 09-09 2978.43, 09-10 2979.39: approaching
#   2019-09-11 3000.93  BREAKOUT (by 0.93), bar 0
#   2019-09-12 3009.57  bar 1; 09-13 3007.39 bar 2
#   2019-09-16 2997.96  bar 3 <= 3000: FAILED
#   2019-09-17 3005.70  > 3000 from failed: BREAKOUT, bar 0
#   2019-09-18 3006.73  bar 1; 09-19 3006.79 bar 2
#   2019-09-20 2992.07  bar 3 <= 3000: FAILED
#   2019-09-23 2991.78  failed; 09-24 2966.60 < 2970: below
#   2019-09-25..10-18   between 2887.61 and 2997.95, never above 3000 (approaching/below by the band)
#   2019-10-21 3006.72  BREAKOUT, bar 0
#   2019-10-22 2995.99  bar 1 <= 3000: FAILED
#   2019-10-23 3004.52  > 3000 from failed: BREAKOUT, bar 0; window 10-24, 10-25, 10-28, 10-29, 10-30
#   2019-10-24 3010.29, 10-25 3022.55, 10-28 3039.42, 10-29 3036.89: bars 1-4 > 3000
#   2019-10-30 3046.77  bar 5 > 3000: CONFIRMED
#   2019-10-31 3037.56  confirmed
# ------------------------------------------------------------------------------------------------------
SPX_3000 = """\
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
levels:
  spx-3000: {instrument: spx, price: 3000, approach_pct: 1.0, buffer_pct: 0, fail_within_bars: 5}
rules:
  - name: spx-breakout
    when: {level: spx-3000, entered: breakout}
  - name: spx-false-breakout
    when: {level: spx-3000, entered: failed}
  - name: spx-confirmed
    when: {level: spx-3000, entered: confirmed}
"""


def test_spx_3000_breakouts_failures_confirmations_2019(shared_data, tmp_path):
    alerts = replay(shared_data, tmp_path, SPX_3000, "2019-07-01", "2019-10-31")
    assert level_seen(alerts, "spx-3000") == [
        ("spx-breakout", "breakout", 3000.0, 3013.77002),
        ("spx-false-breakout", "failed", 3000.0, 2984.41992),
        ("spx-breakout", "breakout", 3000.0, 3005.46997),
        ("spx-confirmed", "confirmed", 3000.0, 3013.17993),
        ("spx-breakout", "breakout", 3000.0, 3000.92993),
        ("spx-false-breakout", "failed", 3000.0, 2997.95996),
        ("spx-breakout", "breakout", 3000.0, 3005.69995),
        ("spx-false-breakout", "failed", 3000.0, 2992.07007),
        ("spx-breakout", "breakout", 3000.0, 3006.71997),
        ("spx-false-breakout", "failed", 3000.0, 2995.98999),
        ("spx-breakout", "breakout", 3000.0, 3004.52002),
        ("spx-confirmed", "confirmed", 3000.0, 3046.77002),
    ]
    days = ["2019-07-12", "2019-07-17", "2019-07-23", "2019-07-30", "2019-09-11", "2019-09-16", "2019-09-17",
            "2019-09-20", "2019-10-21", "2019-10-22", "2019-10-23", "2019-10-30"]
    assert [a["at"] for a in alerts] == [f"{d}T16:00:00-04:00" for d in days]


# ------------------------------------------------------------------------------------------------------
# Episode 4: payroll prints April 2019 - April 2020 (macro/PAYEMS.csv, macro/consensus.csv), beat_by 25.
#
# actual = first print of month m - value of m-1 in the SAME release (realtime_start = release day);
# consensus from consensus.csv (series PAYEMS, date = m); surprise = actual - consensus;
# beat: surprise >= 25, miss: surprise <= -25, else inline. prior = the m-1 change as known that day.
#
#   release     m        rows (value of m, value of m-1, same realtime_start)   actual cons surprise outcome
#   2019-04-05  2019-03  150816 - 150620 (Feb as revised on 04-05)               196   175   +21  inline
#               prior: Feb 150620 - Jan 150587 = 33
#   2019-05-03  2019-04  151095 - 150832                                         263   181   +82  beat
#   2019-06-07  2019-05  151095 - 151020 (Apr revised down from its first print  75   185  -110  miss
#                        151095: with the first print of April it would be 0)
#               prior: Apr 151020 - Mar 150796 = 224
#   2019-07-05  2019-06  151308 - 151084                                         224   160   +64  beat
#               prior: May 151084 - Apr 151012 = 72
#   2019-08-02  2019-07  151431 - 151267                                         164   164     0  inline
#   2019-09-06  2019-08  151541 - 151411                                         130   160   -30  miss
#   2019-10-04  2019-09  151722 - 151586                                         136   140    -4  inline
#   2019-11-01  2019-10  151945 - 151817                                         128    89   +39  beat
#   2019-12-06  2019-11  152252 - 151986                                         266   186   +80  beat
#   2020-01-10  2019-12  152383 - 152238                                         145   164   -19  inline
#   2020-02-07  2020-01  152186 - 151961 (benchmark-revised vintage)             225   160   +65  beat
#   2020-03-06  2020-02  152544 - 152271                                         273   175   +98  beat
#   2020-04-03  2020-03  151786 - 152487 (Feb as revised on 04-03; its first     -701  -100  -601  miss
#                        print 152544 would give -758)
#               prior: Feb 152487 - Jan 152212 = 275
# Each release is one evaluation at 08:30 New York time (EDT -04:00 until 2019-11-03 and again from
# 2020-03-08, EST -05:00 between); closes of ^GSPC evaluate in between, so a `{release, outcome}` atom
# without `within` is false again before the next release and every matching print fires once.
# ------------------------------------------------------------------------------------------------------
JOBS = """\
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
""" + PAYROLLS + """\
rules:
  - name: jobs-beat
    when: {release: payrolls, outcome: beat}
  - name: jobs-miss
    when: {release: payrolls, outcome: miss}
  - name: jobs-inline
    when: {release: payrolls, outcome: inline}
"""

JOBS_EXPECTED = [  # (rule, at, actual, consensus, surprise)
    ("jobs-inline", "2019-04-05T08:30:00-04:00", 196, 175, 21),
    ("jobs-beat", "2019-05-03T08:30:00-04:00", 263, 181, 82),
    ("jobs-miss", "2019-06-07T08:30:00-04:00", 75, 185, -110),
    ("jobs-beat", "2019-07-05T08:30:00-04:00", 224, 160, 64),
    ("jobs-inline", "2019-08-02T08:30:00-04:00", 164, 164, 0),
    ("jobs-miss", "2019-09-06T08:30:00-04:00", 130, 160, -30),
    ("jobs-inline", "2019-10-04T08:30:00-04:00", 136, 140, -4),
    ("jobs-beat", "2019-11-01T08:30:00-04:00", 128, 89, 39),
    ("jobs-beat", "2019-12-06T08:30:00-05:00", 266, 186, 80),
    ("jobs-inline", "2020-01-10T08:30:00-05:00", 145, 164, -19),
    ("jobs-beat", "2020-02-07T08:30:00-05:00", 225, 160, 65),
    ("jobs-beat", "2020-03-06T08:30:00-05:00", 273, 175, 98),
    ("jobs-miss", "2020-04-03T08:30:00-04:00", -701, -100, -601),
]


def test_payroll_outcomes_2019_to_march_2020(shared_data, tmp_path):
    alerts = replay(shared_data, tmp_path, JOBS, "2019-04-01", "2020-04-30")
    seen = []
    for a in alerts:
        e = atom(a, "payrolls")
        assert e["outcome"] == a["rule"].removeprefix("jobs-")
        assert e["released_at"] == a["at"]
        assert e["consensus_source"] == "consensus (data)"
        seen.append((a["rule"], a["at"], e["actual"], e["consensus"], e["surprise"]))
    assert seen == JOBS_EXPECTED


def test_payrolls_march_2020_first_print(shared_data, tmp_path):
    """-701k against -100k: March 2020 less February as revised in the same release (2020-04-03)."""
    alerts = replay(shared_data, tmp_path, JOBS, "2020-04-01", "2020-04-30")
    assert fired(alerts) == [("jobs-miss", "2020-04-03T08:30:00-04:00")]
    e = atom(alerts[0], "payrolls")
    assert (e["holds"], e["outcome"], e["actual"], e["consensus"], e["surprise"], e["prior"], e["ref_period"]) == (
        True, "miss", -701.0, -100.0, -601.0, 275.0, "2020-03-01")


def test_payrolls_prior_month_as_revised_2019(shared_data, tmp_path):
    """2019-06-07: May 151095 - April 151020 (as revised that day) = 75, not 151095 - 151095 = 0."""
    alerts = replay(shared_data, tmp_path, JOBS, "2019-04-01", "2019-07-31")
    got = [(a["rule"], atom(a, "payrolls")["actual"], atom(a, "payrolls")["prior"]) for a in alerts]
    assert got == [("jobs-inline", 196.0, 33.0), ("jobs-beat", 263.0, 189.0), ("jobs-miss", 75.0, 224.0),
                   ("jobs-beat", 224.0, 72.0)]


# ------------------------------------------------------------------------------------------------------
# Episode 5: a level state together with a payrolls beat `within: 1d` (2017, ^GSPC around 2400).
#
# The spx-2400 states are those of episode 2. At a release (08:30) the level is in the state of the
# last close (the day before). Payroll prints in the window (same-release arithmetic as in episode 4):
#   release     m        rows                 actual cons surprise outcome  spx-2400 at the prior close
#   2017-03-10  2017-02  145798 - 145563       235   200   +35  beat     03-09 2364.87 < 2376: below
#   2017-04-07  2017-03  145858 - 145760        98   180   -82  miss     (below)
#   2017-05-05  2017-04  146063 - 145852       211   185   +26  beat     05-04 2389.52: approaching
#               (a beat by 1k: +26 >= 25; prior: Mar 145852 - Feb 145773 = 79)
#   2017-06-02  2017-05  146135 - 145997       138   185   -47  miss     (confirmed since 06-01)
#   2017-07-07  2017-06  146404 - 146182       222   179   +43  beat     07-06 2409.75 > 2400: confirmed
#               (confirmed since 2017-06-01; no close <= 2400 from 06-01 to 07-06; prior 146182 - 146030 = 152)
# Rule spx-jobs (state in [approaching, breakout]): true at 2017-05-05 08:30 -> fires; still true at the
# 05-05 16:00 close (2399.29 approaching, 7.5 h after the print: no second alert); false at the 05-08 close
# (3 d 7.5 h > 1d). On 03-10 the level is below, on 07-07 it is confirmed: no alert.
# Rule spx-held-jobs (state confirmed): only 2017-07-07 08:30.
# ------------------------------------------------------------------------------------------------------
SPX_2400_JOBS = SPX_2400.split("rules:")[0] + PAYROLLS + """\
rules:
  - name: spx-jobs
    when:
      all:
        - {level: spx-2400, state: [approaching, breakout]}
        - {release: payrolls, outcome: beat, within: 1d}
  - name: spx-held-jobs
    when:
      all:
        - {level: spx-2400, state: confirmed}
        - {release: payrolls, outcome: beat, within: 1d}
"""


def test_spx_2400_with_payrolls_beat_2017(shared_data, tmp_path):
    alerts = replay(shared_data, tmp_path, SPX_2400_JOBS, "2017-03-01", "2017-07-31")
    assert fired(alerts) == [("spx-jobs", "2017-05-05T08:30:00-04:00"),
                             ("spx-held-jobs", "2017-07-07T08:30:00-04:00")]
    got = []
    for a in alerts:
        lv, jobs = atom(a, "spx-2400"), atom(a, "payrolls")
        assert lv["holds"] and jobs["holds"]
        got.append((lv["state"], lv["level"], pytest.approx(lv["close"], abs=1e-4), jobs["outcome"],
                    jobs["actual"], jobs["consensus"], jobs["surprise"], jobs["prior"]))
    assert got == [("approaching", 2400.0, 2389.52002, "beat", 211.0, 185.0, 26.0, 79.0),
                   ("confirmed", 2400.0, 2409.75, "beat", 222.0, 179.0, 43.0, 152.0)]


# ------------------------------------------------------------------------------------------------------
# Episode 5b: the same combination over 2019 (^GSPC around 3000, states of episode 3; prints of episode 4).
#   2019-06-07 miss; 2019-07-05 beat 224 vs 160 with spx-3000 approaching (07-03 close 2995.82, an early
#   13:00 close; 07-05 is the next session) -> fires; 08-02 inline; 09-06 miss; 10-04 inline;
#   2019-11-01 beat 128 vs 89 with spx-3000 confirmed (since 10-30; 10-31 close 3037.56) -> fires;
#   2019-12-06 beat 266 vs 186, still confirmed (no close <= 3000 from 10-30 to 12-05; 12-05 3117.43)
#   -> fires (there were closes between the two beats, at which the atom was false: >1d after 11-01 08:30).
# ------------------------------------------------------------------------------------------------------
SPX_3000_JOBS = SPX_3000.split("rules:")[0] + PAYROLLS + """\
rules:
  - name: spx-3000-jobs
    when:
      all:
        - {level: spx-3000, state: [approaching, breakout, confirmed]}
        - {release: payrolls, outcome: beat, within: 1d}
"""


def test_spx_3000_with_payrolls_beat_2019(shared_data, tmp_path):
    alerts = replay(shared_data, tmp_path, SPX_3000_JOBS, "2019-06-01", "2019-12-31")
    assert fired(alerts) == [("spx-3000-jobs", "2019-07-05T08:30:00-04:00"),
                             ("spx-3000-jobs", "2019-11-01T08:30:00-04:00"),
                             ("spx-3000-jobs", "2019-12-06T08:30:00-05:00")]
    got = [(atom(a, "spx-3000")["state"], pytest.approx(atom(a, "spx-3000")["close"], abs=1e-4),
            atom(a, "payrolls")["actual"], atom(a, "payrolls")["consensus"]) for a in alerts]
    assert got == [("approaching", 2995.82007, 224.0, 160.0), ("confirmed", 3037.56006, 128.0, 89.0),
                   ("confirmed", 3117.42993, 266.0, 186.0)]


# ------------------------------------------------------------------------------------------------------
# Episode 6: the S&P 500 breaking down through 2600 support, December 2018 (side: support, the mirror).
#
# L = 2600, approach_pct 1.0, buffer 0, fail_within_bars 5: band = 2600 * 1.01 = 2626.00, down = 2600.00.
#   above: close > 2626; approaching: 2600 <= close <= 2626; breakdown: close < 2600.
# Warm-up: after 2018-05-03 (2629.73) every close up to 2018-12-13 is > 2626 (the lowest: 2632.56 on
# 2018-11-23, 2633.08 on 2018-12-07): `above`, whatever happened around 2600 in February-April 2018.
#   2018-12-13 2650.54  above
#   2018-12-14 2599.95  < 2600 (by 0.05), straight from above: BREAKDOWN, bar 0
#                       window: 12-17, 12-18, 12-19, 12-20, 12-21
#   2018-12-17 2545.94, 12-18 2546.16, 12-19 2506.96, 12-20 2467.42: bars 1-4 < 2600
#   2018-12-21 2416.62  bar 5 < 2600: every close of the window stayed below L: CONFIRMED
#   2018-12-24..2019-01-14  2351.10 ... 2596.64 (01-10), 2596.26 (01-11), 2582.61 (01-14): all < 2600: confirmed
#   2019-01-15 2610.30  >= 2600 from confirmed, <= 2626: APPROACHING
#   2019-01-16 2616.10  approaching
#   2019-01-17 2635.96  > 2626: ABOVE
# (2018-12-05 was a market closure: the data have no row and the window skips it.)
# ------------------------------------------------------------------------------------------------------
SPX_2600_SUPPORT = """\
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
levels:
  spx-2600s: {instrument: spx, price: 2600, side: support, approach_pct: 1.0, buffer_pct: 0, fail_within_bars: 5}
rules:
  - name: spx-breakdown
    when: {level: spx-2600s, entered: breakdown}
  - name: spx-false-breakdown
    when: {level: spx-2600s, entered: failed}
  - name: spx-breakdown-confirmed
    when: {level: spx-2600s, entered: confirmed}
  - name: spx-back-to-support
    when: {level: spx-2600s, entered: approaching}
  - name: spx-back-above
    when: {level: spx-2600s, entered: above}
"""


def test_spx_2600_support_breakdown_2018(shared_data, tmp_path):
    alerts = replay(shared_data, tmp_path, SPX_2600_SUPPORT, "2018-12-01", "2019-01-31")
    assert fired(alerts) == [
        ("spx-breakdown", "2018-12-14T16:00:00-05:00"),
        ("spx-breakdown-confirmed", "2018-12-21T16:00:00-05:00"),
        ("spx-back-to-support", "2019-01-15T16:00:00-05:00"),
        ("spx-back-above", "2019-01-17T16:00:00-05:00"),
    ]
    assert level_seen(alerts, "spx-2600s") == [
        ("spx-breakdown", "breakdown", 2600.0, 2599.94995),
        ("spx-breakdown-confirmed", "confirmed", 2600.0, 2416.62012),
        ("spx-back-to-support", "approaching", 2600.0, 2610.30005),
        ("spx-back-above", "above", 2600.0, 2635.95996),
    ]
