"""Rules: conditions, combinators, durations, message templates; every reference checked at load."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Any

from macrowatch.config.fields import ID_RE, MAX_BARS, Reader, describe, known_ids, suggest
from macrowatch.config.problems import Loc
from macrowatch.config.types import (
    RULE_OUTCOMES,
    TEMPLATE_FIELDS,
    AllOf,
    AnyOf,
    Channel,
    Condition,
    Direction,
    Instrument,
    Level,
    LevelEntered,
    LevelIn,
    LevelState,
    Macro,
    NarrowRange,
    NewExtreme,
    Not,
    Outcome,
    ReleaseOutcome,
    Rule,
    Score,
    Severity,
    Template,
    TemplateField,
    Trigger,
)
from macrowatch.config.yamlsrc import YNode

RULE_KEYS = ["name", "when", "severity", "notify", "for", "cooldown", "chart", "message", "on", "labels", "score"]
MAX_CONDITION_DEPTH = 16
MAX_FORMAT_WIDTH = 200
INSTRUMENT_TESTS = ["narrow_range", "new_high", "new_low"]  # what an instrument atom asks of its closes
_BARS_RE = re.compile(r"^\s*(\d{1,9})\s*bars?\s*$")


@dataclass
class Known:
    """The ids a rule may name. A value of None: declared but invalid (already reported)."""

    instruments: dict[str, Instrument | None]
    levels: dict[str, Level | None]
    macro: dict[str, Macro | None]
    channels: dict[str, Channel | None]
    # Ids written under a misspelt section key (`instrumnets:`), by section: that typo is the one error
    # reported, not every reference to an id under it.
    misspelt: dict[str, frozenset[str]] = _field(default_factory=dict)

    def hidden(self, section: str) -> frozenset[str]:
        """The ids under a misspelt `section` key (already reported)."""
        return self.misspelt.get(section, frozenset())


def _ref(r: Reader, node: YNode, what: str, table: dict[str, Any], kind: str,
         hidden: frozenset[str] = frozenset()) -> str | None:
    name = r.string(node, what)
    if name is None:
        return None
    if name not in table:
        if name not in hidden:  # an id under a misspelt section key: the typo is the error
            r.error(node.loc, f"{what}: unknown {kind} {name!r}{suggest(name, table)}{known_ids(table)}")
        return None
    return name


def condition(r: Reader, node: YNode, known: Known, depth: int = 0) -> Condition | None:
    """One condition: an atom or an all/any/not combinator."""
    if depth > MAX_CONDITION_DEPTH:
        r.error(node.loc, f"when: conditions nested deeper than {MAX_CONDITION_DEPTH}")
        return None
    if not node.is_map:
        r.error(node.loc, f"when: expected a condition mapping, got {describe(node.value)}")
        return None
    keys = set(node.value)
    combinator = keys & {"all", "any", "not"}
    if combinator:
        return _combinator(r, node, known, depth, combinator)
    if "level" in keys:
        return _level_atom(r, node, known)
    if "release" in keys:
        return _release_atom(r, node, known)
    if "instrument" in keys:
        return _instrument_atom(r, node, known)
    starts = ["level", "release", "instrument", "all", "any", "not"]
    if not node.keys:
        r.error(node.loc, "when: empty condition; a condition starts with one of: " + ", ".join(starts))
        return None
    # Name the key that looks like a misspelt start, else the first one.
    key = next((k for k in node.keys if suggest(k, starts)), next(iter(node.keys)))
    r.error(node.keys[key], f"when: unknown condition key {key!r}{suggest(key, starts)}; a condition starts "
                            "with one of: " + ", ".join(starts))
    return None


def _combinator(r: Reader, node: YNode, known: Known, depth: int, combinator: set[str]) -> Condition | None:
    if len(node.value) != 1:
        other = sorted(set(node.value) - {sorted(combinator)[0]})[0]
        r.error(node.keys[other], f"when: {sorted(combinator)[0]!r} stands alone in its mapping; "
                                  f"put {other!r} in a condition of its own")
        return None
    (key, value), = node.value.items()
    if key == "not":
        inner = condition(r, value, known, depth + 1)
        return Not(inner, loc=node.loc) if inner is not None else None
    if not value.is_list or not value.value:
        got = "an empty list" if value.is_list else describe(value.value)
        r.error(value.loc, f"when.{key}: expected a non-empty list of conditions, got {got}")
        return None
    items = [condition(r, item, known, depth + 1) for item in value.value]
    if None in items:
        return None
    return (AllOf if key == "all" else AnyOf)(tuple(items), loc=node.loc)


def _level_atom(r: Reader, node: YNode, known: Known) -> Condition | None:
    f = r.mapping(node, "when (level)", ["level", "state", "entered"])
    if f is None:
        return None
    if ("state" in f) == ("entered" in f):
        r.error(node.loc, "when (level): give exactly one of 'state' (holds now) or 'entered' "
                          "(changed at this evaluation)")
        return None
    level_id = _ref(r, f["level"], "when.level", known.levels, "level", known.hidden("levels"))
    lvl = known.levels.get(level_id) if level_id else None
    if lvl is None:
        return None
    key = "state" if "state" in f else "entered"
    items = r.string_list(f[key], f"when.{key}")
    if not items:
        return None
    states = [s.value for s in lvl.states]
    bad = [(s, loc) for s, loc in items if s not in states]
    for s, loc in bad:
        r.error(loc, f"when.{key}: {s!r} is not a state of {lvl.side.value} level {lvl.id}{suggest(s, states)}"
                     f" (states: {', '.join(states)})")
    if bad:
        return None
    if key == "entered":
        if len(items) != 1:
            r.error(f[key].loc, "when.entered: takes one state")
            return None
        return LevelEntered(lvl.id, LevelState(items[0][0]), loc=node.loc)
    return LevelIn(lvl.id, tuple(dict.fromkeys(LevelState(s) for s, _ in items)), loc=node.loc)


def _release_atom(r: Reader, node: YNode, known: Known) -> Condition | None:
    f = r.mapping(node, "when (release)", ["release", "outcome", "within"])
    if f is None:
        return None
    macro_id = _ref(r, f["release"], "when.release", known.macro, "macro series", known.hidden("macro"))
    choices = [o.value for o in RULE_OUTCOMES]
    outcome = r.choice(f["outcome"], "when.outcome", choices) if "outcome" in f else Outcome.ANY
    within = r.duration(f["within"], "when.within") if "within" in f else None
    if macro_id is None or outcome is None or ("within" in f and within is None):
        return None
    return ReleaseOutcome(macro_id, Outcome(outcome), within, loc=node.loc)


def _instrument_atom(r: Reader, node: YNode, known: Known) -> Condition | None:
    f = r.mapping(node, "when (instrument)", ["instrument", *INSTRUMENT_TESTS])
    if f is None:
        return None
    tests = [k for k in INSTRUMENT_TESTS if k in f]
    if len(tests) > 1:
        r.error(node.keys[tests[1]], f"when (instrument): {tests[0]!r} and {tests[1]!r} in one condition; write "
                                     "one test per condition and combine them with 'all' or 'any'")
        return None
    if not tests:
        if set(node.value) <= {"instrument"}:  # else a misspelt test key is the error, already reported
            r.error(node.loc, "when (instrument): missing the test: 'narrow_range', 'new_high' or 'new_low'")
        return None
    inst = _ref(r, f["instrument"], "when.instrument", known.instruments, "instrument",
                known.hidden("instruments"))
    if tests[0] == "narrow_range":
        return _narrow_range(r, f["narrow_range"], inst, node.loc)
    key = tests[0]
    bars = _lookback(r, f[key], f"when.{key}")
    if inst is None or bars is None:
        return None
    return NewExtreme(inst, None if bars == "all" else bars, low=key == "new_low", loc=node.loc)


def _narrow_range(r: Reader, node: YNode, inst: str | None, loc: Loc) -> Condition | None:
    nr = r.mapping(node, "when.narrow_range", ["bars", "pct"], required=["bars", "pct"])
    if nr is None or "bars" not in nr or "pct" not in nr:
        return None
    bars = r.integer(nr["bars"], "when.narrow_range.bars", minimum=2, maximum=10_000)
    pct = r.number(nr["pct"], "when.narrow_range.pct", above=0)
    if inst is None or bars is None or pct is None:
        return None
    return NarrowRange(inst, bars, pct, loc=loc)


def _lookback(r: Reader, node: YNode, what: str) -> int | str | None:
    """`N bars` (the closes before this one) as N, or "all"; None after an error."""
    v = node.value
    if v == "all":
        return v
    m = _BARS_RE.match(v) if isinstance(v, str) else None
    if m is None or int(m.group(1)) <= 0:
        shown = repr(v) if isinstance(v, str) else describe(v)
        # A bare number is the likely slip: say how to write it.
        hint = f" (write '{v} bars')" if isinstance(v, int) and not isinstance(v, bool) and v > 0 else ""
        r.error(node.loc, f"{what}: {shown} is not a count of bars; use 'N bars' with N > 0, or 'all'{hint}")
        return None
    if int(m.group(1)) > MAX_BARS:
        r.error(node.loc, f"{what}: {v.strip()} is too long (at most {MAX_BARS} bars)")
        return None
    return int(m.group(1))


def template(r: Reader, node: YNode, known: Known) -> Template | None:
    """A message template; every field must name a known id and a documented attribute."""
    text = r.string(node, "message")
    if text is None:
        return None
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        r.error(node.loc, f"message: bad template: {exc} (write {{{{ and }}}} for literal braces)")
        return None
    fields, ok = [], True
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        field = _template_field(r, node.loc, name, known)
        if field is None:
            ok = False
            continue
        if not _try_format(r, node.loc, name, spec or "", conversion, field):
            ok = False
            continue
        fields.append(field)
    return Template(text, tuple(dict.fromkeys(fields))) if ok else None


def _template_field(r: Reader, loc: Loc, name: str, known: Known) -> TemplateField | None:
    m = re.fullmatch(r"([^.\[\]]+)\.([a-z_]+)", name)
    if not m:
        r.error(loc, f"message: field {{{name}}} must be written ID.FIELD, e.g. {{spx.close}}")
        return None
    ident, attr = m.groups()
    kinds = [k for k, table in (("instrument", known.instruments), ("level", known.levels),
                                ("macro", known.macro)) if ident in table]
    if not kinds:
        everything = [*known.instruments, *known.levels, *known.macro]
        if not any(ident in known.hidden(s) for s in ("instruments", "levels", "macro")):
            r.error(loc, f"message: {{{name}}} names {ident!r}, which is no instrument, level or macro series"
                         f"{suggest(ident, everything)}{known_ids(everything)}")
        return None
    kind = kinds[0]
    if attr not in TEMPLATE_FIELDS[kind]:
        article = "an" if kind[0] in "aeiou" else "a"
        r.error(loc, f"message: {{{name}}}: {article} {kind} has no field {attr!r}"
                     f"{suggest(attr, TEMPLATE_FIELDS[kind])} (fields: {', '.join(TEMPLATE_FIELDS[kind])})")
        return None
    return TemplateField(ident, kind, attr)


def _try_format(r: Reader, loc: Loc, name: str, spec: str, conversion: str | None, field: TemplateField) -> bool:
    if "{" in spec:
        r.error(loc, f"message: {{{name}}}: nested fields in a format spec are not allowed")
        return False
    if conversion and conversion not in ("r", "s", "a"):
        r.error(loc, f"message: {{{name}}}: conversion !{conversion} is not one of !r, !s, !a")
        return False
    # A width or precision of millions would build a string of that size at every send.
    if any(int(n) > MAX_FORMAT_WIDTH for n in re.findall(r"\d+", spec)):
        r.error(loc, f"message: {{{name}}}: format spec {spec!r}: widths and precisions go up to {MAX_FORMAT_WIDTH}")
        return False
    value: Any = TEMPLATE_FIELDS[field.kind][field.attr]
    if conversion:
        value = {"r": repr, "s": str, "a": ascii}[conversion](value)
    try:
        format(value, spec)
    except (ValueError, TypeError) as exc:
        r.error(loc, f"message: {{{name}}}: format spec {spec!r} does not fit this field: {exc}")
        return False
    return True


def rule(r: Reader, node: YNode, index: int, known: Known) -> Rule | None:
    """One entry of `rules:`."""
    r.problems.rule = f"#{index + 1}"
    try:
        return _rule(r, node, known)
    finally:
        r.problems.rule = None


def _rule(r: Reader, node: YNode, known: Known) -> Rule | None:
    if node.is_map and isinstance(node.value.get("name", YNode(None, node.loc)).value, str):
        r.problems.rule = node.value["name"].value
    f = r.mapping(node, "rule", RULE_KEYS, required=["name", "when"])
    if f is None:
        return None
    name = r.string(f["name"], "name") if "name" in f else None
    if name is not None and not ID_RE.match(name):
        r.error(f["name"].loc, f"name: {name!r} is not a valid rule name (a letter, then letters, digits, "
                               "'-' or '_', at most 64)")
        name = None
    when = condition(r, f["when"], known) if "when" in f else None
    severity = r.choice(f["severity"], "severity", [s.value for s in Severity]) if "severity" in f else "warning"
    notify = tuple(_ref(r, YNode(c, loc), "notify", known.channels, "channel", known.hidden("channels"))
                   for c, loc in r.string_list(f["notify"], "notify")) if "notify" in f else ()
    for_ = r.duration(f["for"], "for") if "for" in f else None
    cooldown = r.duration(f["cooldown"], "cooldown") if "cooldown" in f else None
    chart = _ref(r, f["chart"], "chart", known.instruments, "instrument", known.hidden("instruments")) \
        if "chart" in f else None
    message = template(r, f["message"], known) if "message" in f else None
    on = _triggers(r, f["on"]) if "on" in f else frozenset({Trigger.CLOSE, Trigger.RELEASE})
    labels = _labels(r, f["labels"]) if "labels" in f else {}
    score = _score(r, f["score"], known) if "score" in f else None
    if "notify" in f and len(set(notify)) != len(notify):
        r.error(f["notify"].loc, "notify: a channel is listed twice")
        return None
    parsed = [name, when, severity, on, labels, *notify]
    optional = [("for", for_), ("cooldown", cooldown), ("chart", chart), ("message", message), ("score", score)]
    if None in parsed or any(key in f and value is None for key, value in optional):
        return None
    return Rule(name, when, Severity(severity), notify, for_, cooldown, chart, message, on, labels, score,
                loc=node.loc)


def _score(r: Reader, node: YNode, known: Known) -> Score | None:
    """`score: {instrument: ID, direction: long|short}`: either key may be left out, not both."""
    f = r.mapping(node, "score", ["instrument", "direction"])
    if f is None:
        return None
    if not f:
        if not node.value:  # else an unknown key is the error, already reported
            r.error(node.loc, "score: give 'instrument', 'direction' or both")
        return None
    inst = _ref(r, f["instrument"], "score.instrument", known.instruments, "instrument",
                known.hidden("instruments")) if "instrument" in f else None
    directions = [d.value for d in Direction]
    direction = r.choice(f["direction"], "score.direction", directions) if "direction" in f else Direction.LONG
    if direction is None or ("instrument" in f and inst is None):
        return None
    return Score(inst, Direction(direction), loc=node.loc)


def _triggers(r: Reader, node: YNode) -> frozenset[Trigger] | None:
    items = r.string_list(node, "on")
    names = [t.value for t in Trigger]
    ok = bool(items)
    for value, loc in items:
        if value not in names:
            r.error(loc, f"on: {value!r} is not one of {', '.join(names)}{suggest(value, names)}")
            ok = False
    return frozenset(Trigger(v) for v, _ in items) if ok else None


def _labels(r: Reader, node: YNode) -> dict[str, str] | None:
    if not node.is_map:
        r.error(node.loc, f"labels: expected a mapping of names to values, got {describe(node.value)}")
        return None
    out: dict[str, str] | None = {}
    for key, value in node.value.items():
        if not r.id(key, node.keys[key], "labels"):
            out = None
        elif not value.is_scalar or value.value is None or isinstance(value.value, bool):
            r.error(value.loc, f"labels.{key}: expected a string or number, got {describe(value.value)}")
            out = None
        elif out is not None:
            out[key] = str(value.value)
    return out
