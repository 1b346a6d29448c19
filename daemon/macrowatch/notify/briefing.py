"""A briefing (runtime/briefings.py) as a title and a body per kind of service, from its evidence (the what-if as
data, engine/whatif.py `to_data`), as notify/render.py renders an alert:

    Briefing: employment-situation at Fri 2017-05-05 08:30 EDT
    payrolls (PAYEMS change) for 2017-04: consensus +185k (consensus from data); prior first print +98k (2017-03)
      beat at +210k or more, miss at +160k or less, inline between
    If it came out now:
      beat (+210k): nothing fires
      miss (+160k): payrolls-miss-at-2400 fires
    Rules on this release:
      spx-breakout-with-jobs: beat no, inline no, miss no
        spx-2400 breakout (not met): spx-2400 approaching (2389.52, 0.44 % below)

Pure text, as render.py: no I/O.
"""

from __future__ import annotations

import datetime as dt
import html
import zoneinfo
from collections.abc import Mapping
from typing import Any

from macrowatch.notify.render import (
    TELEGRAM_LIMIT,
    Context,
    Kind,
    MacroFormat,
    Message,
    describe,
    fit,
    macro_amount,
    num,
)

_WORDS = {">=": "or more", "<=": "or less", ">": "above", "<": "below"}


def render(alert: Any, kind: Kind, context: Context | None = None) -> Message:
    """The briefing for a kind of service."""
    context = context or Context()
    head, body = lines(alert.evidence, context)
    if kind is Kind.SLACK:
        text = "\n".join([f"*{head}*", *(_slack(line) for line in body)])
        return Message(Kind.SLACK, head, text, "native")
    if kind is Kind.TELEGRAM:
        esc = [_telegram(line) for line in body]
        text, cut = fit([f"<b>{html.escape(head, quote=False)}</b>"], esc, TELEGRAM_LIMIT)
        return Message(Kind.TELEGRAM, "", text, "html", cut)
    return Message(Kind.PLAIN, head, "\n".join(text for _level, text in body), "text")


def text(evidence: Mapping[str, Any], context: Context | None = None) -> str:
    """The briefing as plain text, its headline first (what `macrowatch briefing` prints)."""
    head, body = lines(evidence, context or Context())
    return "\n".join([head, *(t for _level, t in body)])


def lines(e: Mapping[str, Any], context: Context) -> tuple[str, list[tuple[str, str]]]:
    """The headline, and the body's lines with their kind ("series", "plain", "rule", "now")."""
    at = _when(e.get("at"), context.tz)
    head = f"Briefing: {e.get('release')} at {at}"
    out: list[tuple[str, str]] = []
    for s in e.get("series", []):
        out += _series(s, context.macros.get(s.get("macro"), MacroFormat()))
    scenarios = e.get("scenarios", [])
    values = {s.get("macro"): s.get("values", {}) for s in e.get("series", [])}
    out.append(("plain", "If it came out now:"))
    for sc in scenarios:
        shown = ", ".join(macro_amount(v.get(sc["outcome"]), context.macros.get(m, MacroFormat()))
                          for m, v in values.items() if sc["outcome"] in v)
        fires = sc.get("fires") or []
        said = f"{', '.join(fires)} {'fires' if len(fires) == 1 else 'fire'}" if fires else "nothing fires"
        out.append(("plain", f"  {sc['outcome']}{f' ({shown})' if shown else ''}: {said}"))
    rules = e.get("rules", [])
    out.append(("plain", "Rules on this release:" if rules else "No rule names this release."))
    for r in rules:
        verdicts = []
        for outcome, v in r.get("outcomes", {}).items():
            why = v.get("why") or ""
            note = f" ({why})" if why and why != "its condition would not hold" else ""
            verdicts.append(f"{outcome} {'FIRES' if v.get('fires') else 'no'}{note}")
        out.append(("rule", f"  {r.get('rule')}: {', '.join(verdicts)}"))
        for key, entry in (r.get("now") or {}).items():
            held = "met" if isinstance(entry, Mapping) and entry.get("holds") else "not met"
            out.append(("now", f"    {key} ({held}): {condition_words(key, entry, context)}"))
    return head, out


def _series(s: Mapping[str, Any], f: MacroFormat) -> list[tuple[str, str]]:
    where = f"{s.get('macro')} ({s.get('series')} {s.get('measure')})" + (
        f" for {_month(s.get('ref_period'))}" if s.get("ref_period") else "")
    if s.get("consensus") is None:
        said = f"{where}: {s.get('why') or 'no consensus'}"
    else:
        said = f"{where}: consensus {macro_amount(s['consensus'], f)} ({_source(s.get('source'))})"
        if s.get("why"):
            said += f"; {s['why']}"
    if s.get("prior") is not None:
        said += f"; prior first print {macro_amount(s['prior'], f)}" + (
            f" ({_month(s.get('prior_period'))})" if s.get("prior_period") else "")
    out = [("series", said)]
    if s.get("beat") and s.get("miss"):
        (bop, bv), (mop, mv) = s["beat"], s["miss"]
        out.append(("plain", f"  beat at {macro_amount(bv, f)} {_WORDS[bop]}, "
                             f"miss at {macro_amount(mv, f)} {_WORDS[mop]}, inline between"))
    return out


def condition_words(key: str, entry: Any, context: Context) -> str:
    """A condition as it stands: a level as "spx-2400 approaching (2389.52, 0.44 % below)", the rest as alerts
    say it (render.describe)."""
    ident = key.split(" ", 1)[0]
    if isinstance(entry, Mapping) and "state" in entry:
        state, close, level = entry.get("state"), entry.get("close"), entry.get("level")
        if close is None:
            return f"{ident} {state} (no close yet)"
        if level is None:
            return f"{ident} {state} ({num(close)}; the level is not known yet)"
        gap = 100.0 * abs(close - level) / level if level else 0.0
        where = "above" if close > level else "below" if close < level else "at"
        return f"{ident} {state} ({close:.2f}, {gap:.2f} % {where})" if where != "at" else \
            f"{ident} {state} ({close:.2f}, at the level)"
    return describe(key, entry, context)


def _source(source: Any) -> str:
    text = str(source or "none")
    return text.replace("consensus (", "consensus from ").rstrip(")") if text.startswith("consensus (") else text


def _month(value: Any) -> str:
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    return f"{value:%Y-%m}" if isinstance(value, dt.date) else str(value)


def _when(value: Any, tz: str | None) -> str:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        return str(value)
    if tz and value.tzinfo is not None:
        value = value.astimezone(zoneinfo.ZoneInfo(tz))
    return f"{value:%a %Y-%m-%d %H:%M %Z}".strip()


def _slack(line: tuple[str, str]) -> str:
    kind, text = line
    if kind == "rule":
        name, rest = text.strip().split(": ", 1)
        return f"  `{name}`: {rest}"
    return f"*{text}*" if kind == "series" else text


def _telegram(line: tuple[str, str]) -> str:
    kind, text = line
    if kind == "rule":
        name, rest = text.strip().split(": ", 1)
        return f"  <code>{html.escape(name, quote=False)}</code>: {html.escape(rest, quote=False)}"
    esc = html.escape(text, quote=False)
    return f"<b>{esc}</b>" if kind == "series" else esc
