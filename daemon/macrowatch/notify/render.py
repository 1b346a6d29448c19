"""An alert as a title and a body for each kind of service: plain text, Slack mrkdwn, Telegram HTML.

The evidence (what each condition saw) is told in plain words:

    spx-2400 breakout (met): S&P 500 closed 2410.25, above its level 2400 (state breakout)
    payrolls beat within 1d (met): payrolls +250k vs consensus +180k: beat by 70k (consensus from file)

A dynamic level frozen at a breakout whose value has moved on since says both numbers:

    spy-52w breakout (met): SPY closed 294.50, above its frozen 52-week high 293.58 (the 52-week high is now
    294.02; state breakout)

Pure text: no I/O, no third-party import (this module must stay cheap to import in the daemon).
"""

from __future__ import annotations

import datetime as dt
import enum
import html
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from macrowatch.config.types import Outcome
from macrowatch.engine.alerting import level_name

TELEGRAM_LIMIT = 4096       # characters per Telegram message
LINE_MAX = 600              # one evidence line is cut beyond this, so that one huge value cannot crowd out the rest
_PCT_MEASURES = ("pct_change", "yoy_pct")
_SIGNED_MEASURES = ("change", "pct_change", "yoy_pct")
# FRED series published in thousands (so that a payrolls change reads "+250k").
_THOUSANDS = frozenset({"PAYEMS", "USPRIV", "MANEMP", "CE16OV", "UNEMPLOY"})


class Kind(enum.StrEnum):
    """How a service wants its text."""

    PLAIN = "plain"        # plain text: json://, form://, mailto:// and every other service
    SLACK = "slack"        # Slack mrkdwn (*bold*, _italic_, `code`); apprise escapes & < > itself
    TELEGRAM = "telegram"  # Telegram HTML (<b>, <i>, <code>), at most TELEGRAM_LIMIT characters


_KIND_BY_SCHEME = {"slack": Kind.SLACK, "tgram": Kind.TELEGRAM}


def kind_of(url: str) -> Kind:
    """The kind of text a service takes, from its apprise URL's scheme."""
    return _KIND_BY_SCHEME.get(url.split("://", 1)[0].strip().lower(), Kind.PLAIN)


@dataclass(frozen=True)
class Message:
    """An alert rendered for one kind of service; `markup` tells apprise what the body is."""

    kind: Kind
    title: str
    body: str
    markup: str      # "text" (apprise converts it), "native" (Slack mrkdwn, sent as is) or "html"
    cut: int = 0     # evidence lines left out to fit the service's limit


@dataclass(frozen=True)
class MacroFormat:
    """How a macro series' numbers read: signed for changes, with a unit ("k", "%")."""

    measure: str = "level"
    unit: str = ""


@dataclass(frozen=True)
class Context:
    """What the config adds to an alert's text: instrument names for ids, levels in words, units, the local time
    zone."""

    names: Mapping[str, str] = field(default_factory=dict)   # instrument and level ids -> instrument name
    macros: Mapping[str, MacroFormat] = field(default_factory=dict)
    tz: str | None = None
    levels: Mapping[str, str] = field(default_factory=dict)  # level ids -> the level in words ("52-week high")

    @classmethod
    def from_config(cls, config: Any) -> Context:
        """The context of a loaded macrowatch Config."""
        names = {iid: inst.name for iid, inst in config.instruments.items()}
        names |= {lid: names.get(lv.instrument, lv.instrument) for lid, lv in config.levels.items()}
        macros = {mid: MacroFormat(str(m.measure), _unit(str(m.measure), m.series))
                  for mid, m in config.macro.items()}
        levels = {lid: level_name(lv) for lid, lv in config.levels.items()}
        return cls(names, macros, config.timezone, levels)


def _unit(measure: str, series: str) -> str:
    if measure in _PCT_MEASURES:
        return "%"
    return "k" if series.upper() in _THOUSANDS else ""


# ---- rendering ----------------------------------------------------------------------------------------

def render(alert: Any, kind: Kind, context: Context | None = None) -> Message:
    """The alert as title and body for a kind of service."""
    context = context or Context()
    if kind is Kind.SLACK:
        return _slack(alert, context)
    if kind is Kind.TELEGRAM:
        return _telegram(alert, context)
    return _plain(alert, context)


def title_of(alert: Any) -> str:
    """`[SEVERITY] rule`: the one-line title every kind shares."""
    return f"[{str(alert.severity).upper()}] {alert.rule}"


def when_line(alert: Any, context: Context) -> str:
    """When and on what the alert fired, with its labels."""
    at = alert.at.astimezone(zoneinfo.ZoneInfo(context.tz)) if context.tz else alert.at
    labels = "".join(f", {k}={v}" for k, v in alert.labels.items())
    return f"{at:%Y-%m-%d %H:%M %Z} ({alert.trigger} evaluation{labels})"


def evidence_lines(alert: Any, context: Context | None = None) -> list[tuple[str, bool, str]]:
    """(condition, whether it held, what it saw in words) for each condition of the alert."""
    context = context or Context()
    if getattr(alert, "trigger", None) == "briefing":
        return []  # its evidence is the what-if as data (notify/briefing.py says it), no conditions of its own
    return [(str(key), bool(entry.get("holds")) if isinstance(entry, Mapping) else False,
             _clip(describe(str(key), entry, context)))
            for key, entry in alert.evidence.items()]


def _met(holds: bool) -> str:
    return "met" if holds else "not met"


def _plain(alert: Any, context: Context) -> Message:
    lines = [alert.message, when_line(alert, context)]
    evidence = evidence_lines(alert, context)
    if evidence:
        lines += ["", "Evidence:"] + [f"- {key} ({_met(ok)}): {text}" for key, ok, text in evidence]
    return Message(Kind.PLAIN, title_of(alert), "\n".join(lines), "text")


def _slack(alert: Any, context: Context) -> Message:
    lines = [f"*{_slack_safe(alert.message)}*", f"_{when_line(alert, context)}_"]
    evidence = evidence_lines(alert, context)
    if evidence:
        lines.append("")
        lines += [f"• `{key}` ({_met(ok)}): {text}" for key, ok, text in evidence]
    return Message(Kind.SLACK, title_of(alert), "\n".join(lines), "native")


def _slack_safe(text: str) -> str:
    # A '*' inside the bold headline would end the bold early.
    return text.replace("*", "∗")


def _telegram(alert: Any, context: Context) -> Message:
    e = _esc
    evidence = [f"• <code>{e(key)}</code> ({_met(ok)}): {e(text)}" for key, ok, text in evidence_lines(alert, context)]
    note = _cut_note(len(evidence), len(evidence))

    def head(message: str) -> list[str]:
        return [f"<b>{e(title_of(alert))}</b>", f"<b>{e(message)}</b>", f"<i>{e(when_line(alert, context))}</i>"]

    def fits(n: int) -> bool:
        return wire_len("\n".join(head(alert.message[:n] + "…") + ["", note])) <= TELEGRAM_LIMIT

    lines = head(alert.message)
    if wire_len("\n".join(lines + ["", note])) > TELEGRAM_LIMIT:
        # Only a message longer than the whole limit is cut, before escaping so that the HTML stays whole.
        lo, hi = 0, len(alert.message)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
        lines = head(alert.message[:lo] + "…")
    body, cut = fit(lines, evidence, TELEGRAM_LIMIT)
    # The title goes in the body: Telegram has no title field, and the whole text must be measured at once.
    return Message(Kind.TELEGRAM, "", body, "html", cut)


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def wire_len(text: str) -> int:
    """Characters on the wire: apprise sends each newline to Telegram as CR LF."""
    return len(text) + text.count("\n")


def fit(head: list[str], evidence: list[str], limit: int) -> tuple[str, int]:
    """Head lines and as many evidence lines as fit in `limit`; the evidence is cut, never the head.

    Returns the text and how many evidence lines were left out (a closing line says so). The head must fit
    with that closing line.
    """
    full = "\n".join(head + ([""] + evidence if evidence else []))
    if wire_len(full) <= limit:
        return full, 0
    kept: list[str] = []
    for n in range(len(evidence), -1, -1):
        kept = evidence[:n]
        text = "\n".join(head + [""] + kept + [_cut_note(len(evidence) - n, len(evidence))])
        if wire_len(text) <= limit:
            return text, len(evidence) - n
    return "\n".join(head + ["", _cut_note(len(evidence), len(evidence))]), len(evidence)


def _cut_note(left_out: int, total: int) -> str:
    return (f"<i>… evidence cut to fit {TELEGRAM_LIMIT} characters: {left_out} of {total} conditions not shown "
            f"(macrowatch status shows all)</i>")


def _clip(text: str) -> str:
    return text if len(text) <= LINE_MAX else text[:LINE_MAX - 1] + "…"


# ---- evidence in words --------------------------------------------------------------------------------

def describe(key: str, entry: Any, context: Context) -> str:
    """One condition's evidence as a sentence."""
    ident = key.split(" ", 1)[0]
    if not isinstance(entry, Mapping):
        return str(entry)
    if "state" in entry:
        return _level_words(context.names.get(ident, ident), context.levels.get(ident, "level"), entry)
    if "outcome" in entry or "print" in entry:
        return _release_words(ident, entry, context.macros.get(ident, MacroFormat()), context.tz)
    if "range_pct" in entry or set(entry) == {"holds", "bars"}:
        return _range_words(context.names.get(ident, ident), entry)
    return ", ".join(f"{k} {_value(v)}" for k, v in entry.items() if k != "holds") or "nothing recorded"


def _level_words(name: str, what: str, e: Mapping[str, Any]) -> str:
    state, close, level = e.get("state"), e.get("close"), e.get("level")
    if close is None:
        return f"{name}: no close yet (state {state})"
    if level is None:
        return f"{name} closed {_price(close)}; its level is not known yet (state {state})"
    where = "above" if close > level else "below" if close < level else "at"
    now = e.get("level_now")
    if now is not None:  # frozen at a breakout while the level moved on: both numbers, or it reads as wrong
        return (f"{name} closed {_price(close)}, {where} its frozen {what} {num(level)} "
                f"(the {what} is now {num(now)}; state {state})")
    return f"{name} closed {_price(close)}, {where} its level {num(level)} (state {state})"


def _release_words(macro: str, e: Mapping[str, Any], f: MacroFormat, tz: str | None) -> str:
    if e.get("print", "") is None or "actual" not in e:
        return f"{macro}: no release seen yet"
    actual, consensus = e.get("actual"), e.get("consensus")
    signed = f.measure in _SIGNED_MEASURES
    words = f"{macro} {_amount(actual, f.unit, signed)}"
    if consensus is None:
        words += ": no consensus to judge it by"
    else:
        surprise = e.get("surprise")
        surprise = actual - consensus if surprise is None and actual is not None else surprise
        words += f" vs consensus {_amount(consensus, f.unit, signed)}: {_verdict(e.get('outcome'), surprise, f)}"
    source = _source(e.get("consensus_source"))
    if source:
        words += f" ({source})"
    period, released = _date(e.get("ref_period")), _datetime(e.get("released_at"), tz)
    if period or released:
        words += "; " + ", ".join(p for p in (f"for {period}" if period else "",
                                              f"released {released}" if released else "") if p)
    return words


def _verdict(outcome: Any, surprise: Any, f: MacroFormat) -> str:
    by = f" by {_amount(abs(surprise), f.unit, False)}" if isinstance(surprise, int | float) else ""
    # The evidence may come back from JSON (the outbox): a plain string, which finds its Outcome key all the same.
    return {Outcome.BEAT: f"beat{by}", Outcome.MISS: f"missed{by}",
            Outcome.INLINE: f"in line (off{by or ' by 0'})"}.get(str(outcome), f"outcome {outcome}")


def _source(source: Any) -> str | None:
    if not source or source == "none":
        return None
    text = str(source)
    m = re.fullmatch(r"consensus \((\w+)\)", text)
    if m:
        return f"consensus from {m[1]}"
    if text in ("file", "inline", "config", "data"):
        return f"consensus from {text}"
    return f"consensus: {text}"


def _range_words(name: str, e: Mapping[str, Any]) -> str:
    if "range_pct" not in e:
        return f"{name}: only {e.get('bars', 0)} closes so far"
    return (f"{name}: closes within {e['range_pct']:.2f}% of their low "
            f"({_price(e.get('low'))} to {_price(e.get('high'))})")


def _price(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else str(value)


def num(value: Any) -> str:
    """A price or value with at most two decimals and no trailing zeros: 2400, 2410.25, 3.7."""
    if not isinstance(value, int | float):
        return str(value)
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def macro_amount(value: Any, f: MacroFormat) -> str:
    """A macro series' value as its alerts say it: signed for a change, with its unit ("+250k", "+0.3%", "3.7")."""
    return _amount(value, f.unit, f.measure in _SIGNED_MEASURES)


def _amount(value: Any, unit: str, signed: bool) -> str:
    if not isinstance(value, int | float):
        return "n/a"
    text = num(value)
    if signed and value > 0:
        text = "+" + text
    return text + unit


def _value(v: Any) -> str:
    return num(v) if isinstance(v, float) else str(v)


def _date(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value[:10])
        except ValueError:
            return value
    if isinstance(value, dt.date):
        return f"{value:%Y-%m}" if value.day == 1 else value.isoformat()  # a month's data: the month
    return str(value)


def _datetime(value: Any, tz: str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, dt.datetime):
        return str(value)
    if tz and value.tzinfo is not None:
        value = value.astimezone(zoneinfo.ZoneInfo(tz))
    return f"{value:%Y-%m-%d %H:%M %Z}".strip()
