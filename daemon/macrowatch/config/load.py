"""Load a config file, or a directory of *.yaml files merged, into a frozen Config."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from macrowatch.config import macros, sections
from macrowatch.config import rules as rules_mod
from macrowatch.config.fields import Reader, close_match, describe, known_ids, suggest
from macrowatch.config.problems import ConfigError, Loc, Problem, Problems
from macrowatch.config.types import BlsSource, BreakoutParams, Config, Duration, FredSource, Ha
from macrowatch.config.yamlsrc import YNode, load_file

TOP_KEYS = ["timezone", "calendar", "store", "poll", "health", "ha", "sources", "instruments", "levels",
            "breakout", "releases", "macro", "channels", "rules"]
ID_SECTIONS = ["instruments", "levels", "releases", "macro", "channels"]


@dataclass
class _Item:
    """A section entry or setting, with the file it came from (paths in it are relative to that file)."""

    node: YNode
    base: Path
    key_loc: Loc


@dataclass
class _Merged:
    settings: dict[str, _Item] = field(default_factory=dict)
    entries: dict[str, dict[str, _Item]] = field(default_factory=lambda: {s: {} for s in ID_SECTIONS})
    rules: list[_Item] = field(default_factory=list)
    rules_loc: Loc | None = None
    rules_invalid: bool = False  # a `rules:` that is no list (reported): no second error saying there are none
    # A misspelt section key (`instrumnets:`, reported): the ids written under it, so that no reference to them
    # is reported again as unknown; "rules" in it: no second error saying there are no rules.
    misspelt: dict[str, set[str]] = field(default_factory=dict)


def config_files(path: Path, problems: Problems) -> list[Path]:
    """The file itself, or a directory's *.yaml / *.yml files (but rule tests) in name order."""
    if path.is_dir():
        # Rule tests (`*.test.yaml`) live beside the rule sets they test; they are not config.
        # Not `is_file()`: a *.yaml that is a device or a FIFO is reported when read, not skipped unseen.
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and not p.is_dir()
                       and not p.name.endswith((".test.yaml", ".test.yml")))
        if not files:
            problems.error(Loc(str(path)), "directory holds no *.yaml config files")
        return files
    if not path.exists():
        problems.error(Loc(str(path)), "no such config file or directory")
        return []
    return [path]


def load_config(path: str | Path, *, for_run: bool = False, channels: bool = True,
                calendars: Callable[[], frozenset[str]] | None = None) -> tuple[Config, list[Problem]]:
    """Load and validate; return the config and its warnings, or raise ConfigError with every problem.

    `for_run`: a channel whose ${VAR} is unset is an error (the daemon cannot deliver), not a warning.
    `channels`: False for a command that sends nothing (`replay`, `calendar`): an unset ${VAR} of a channel is
    not mentioned at all.
    `calendars`: the known exchange calendar codes (None: not checked).
    """
    problems = Problems()
    path = Path(path)
    files = config_files(path, problems)
    merged, loaded = _Merged(), 0
    for f in files:
        root = load_file(f, problems)
        if root is not None and _merge(root, f, merged, problems):
            loaded += 1
    config = None
    if loaded:  # build even after errors, so that every problem is reported at once
        config = _build(Reader(problems), merged, files, for_run if channels else None,
                        calendars() if calendars else None)
    if problems.errors or config is None:
        raise ConfigError(problems.items)
    return config, problems.warnings


def config_from_node(root: YNode, file: Path, problems: Problems,
                     calendars: Callable[[], frozenset[str]] | None = None) -> Config | None:
    """A config written inside another YAML file (a rule test's inline `config:`); problems go to `problems`."""
    merged = _Merged()
    if not _merge(root, file, merged, problems):
        return None
    return _build(Reader(problems), merged, [file], False, calendars() if calendars else None)


def _merge(root: YNode, file: Path, merged: _Merged, problems: Problems) -> bool:
    """Add a file's keys to `merged`; False when the file is no mapping (reported, nothing to add)."""
    if not root.is_map:
        problems.error(root.loc, f"a config file is a mapping of keys ({', '.join(TOP_KEYS[:4])}, ...), "
                                 f"got {describe(root.value)}")
        return False
    base = file.parent.resolve()
    for key, node in root.value.items():
        kloc = root.keys[key]
        if key not in TOP_KEYS:
            problems.error(kloc, f"unknown key {key!r}{suggest(key, TOP_KEYS)}; allowed: {', '.join(TOP_KEYS)}")
            meant = close_match(key, TOP_KEYS)
            if meant in (*ID_SECTIONS, "rules"):
                merged.misspelt.setdefault(meant, set()).update(node.value if node.is_map else ())
        elif key == "rules":
            if node.value is None:
                pass  # `rules:` with every rule commented out: reported below as no rules
            elif not node.is_list:
                problems.error(node.loc, f"rules: expected a list of rules, got {describe(node.value)}")
                merged.rules_invalid = True
            else:
                merged.rules.extend(_Item(item, base, item.loc) for item in node.value)
            merged.rules_loc = merged.rules_loc or kloc
        elif key in ID_SECTIONS:
            _merge_section(key, node, base, merged.entries[key], problems)
        elif key in merged.settings:
            problems.error(kloc, f"{key}: set twice (also at {merged.settings[key].key_loc})")
        else:
            merged.settings[key] = _Item(node, base, kloc)
    return True


def _merge_section(section: str, node: YNode, base: Path, into: dict[str, _Item], problems: Problems) -> None:
    if node.value is None:
        return  # an empty section, e.g. `channels:` with everything commented out
    if not node.is_map:
        problems.error(node.loc, f"{section}: expected a mapping of id to definition, got {describe(node.value)}")
        return
    for ident, value in node.value.items():
        kloc = node.keys[ident]
        if ident in into:
            problems.error(kloc, f"{section}.{ident}: defined twice (also at {into[ident].key_loc})")
            continue
        if Reader(problems).id(ident, kloc, section):
            into[ident] = _Item(value, base, kloc)


def _build(r: Reader, m: _Merged, files: list[Path], for_run: bool | None,
           calendars: frozenset[str] | None) -> Config | None:
    s = m.settings
    kw: dict[str, Any] = {}
    if "timezone" in s:
        kw["timezone"] = sections.timezone(r, s["timezone"].node)
    if "calendar" in s:
        kw["calendar"] = sections.calendar(r, s["calendar"].node, "calendar", calendars)
    if "store" in s:
        kw["store"] = sections.store(r, s["store"].node, s["store"].base)
    if "poll" in s:
        kw["poll_intraday"] = sections.poll(r, s["poll"].node) or Duration(5, "m")
    if "health" in s:
        kw["health"] = sections.health(r, s["health"].node)
    if "ha" in s:
        kw["ha"] = sections.ha(r, s["ha"].node) or Ha()
        if not str(kw.get("store") or "").startswith(("postgresql://", "postgres://")):
            r.problems.warn(s["ha"].key_loc, "ha: has no effect with a SQLite store (one instance runs); "
                                             "several instances need a postgresql:// store")
    if "sources" in s:
        kw.update(sections.sources(r, s["sources"].node))
    defaults = BreakoutParams()
    if "breakout" in s:
        fields = r.mapping(s["breakout"].node, "breakout", sections.BREAKOUT_KEYS) or {}
        defaults = sections.breakout(r, fields, "breakout", defaults)
        if None in vars(defaults).values():
            defaults = BreakoutParams()
    kw["breakout"] = defaults

    e = m.entries
    instruments = {i: sections.instrument(r, i, it.node, calendars) for i, it in e["instruments"].items()}
    levels = {i: sections.level(r, i, it.node, defaults) for i, it in e["levels"].items()}
    releases = {i: sections.release(r, i, it.node) for i, it in e["releases"].items()}
    macro = {i: macros.macro(r, i, it.node, it.base) for i, it in e["macro"].items()}
    channels = {i: sections.channel(r, i, it.node) for i, it in e["channels"].items()}
    _cross_check(r, instruments, levels, releases, macro, channels, for_run, e, m.misspelt)
    fred = kw.get("fred") or FredSource()
    if fred.api_key_source and not fred.api_key:
        r.problems.warn(s["sources"].key_loc, "sources.fred.api_key: empty after expanding the environment; "
                        "the keyless fredgraph CSV is used (no vintages)")
    bls = kw.get("bls") or BlsSource()
    if bls.api_key_source and not bls.api_key:
        r.problems.warn(s["sources"].key_loc, "sources.bls.api_key: empty after expanding the environment; "
                        "the BLS API is queried without a key (25 queries a day)")

    known = rules_mod.Known(instruments, levels, macro, channels,
                            {k: frozenset(v) for k, v in m.misspelt.items()})
    rules = _rules(r, m.rules, known, m.rules_loc or Loc(str(files[0]), 1, 1),
                   m.rules_invalid or "rules" in m.misspelt)
    if r.problems.errors:
        return None
    return Config(files=tuple(files), **kw,
                  instruments=MappingProxyType(instruments), levels=MappingProxyType(levels),
                  releases=MappingProxyType(releases), macro=MappingProxyType(macro),
                  channels=MappingProxyType(channels), rules=tuple(rules))


def _cross_check(r: Reader, instruments, levels, releases, macro, channels, for_run, entries, misspelt) -> None:
    # From the written nodes, not the parsed objects: a bad reference is reported even in an invalid entry.
    for section, key, table, kind, target in (("levels", "instrument", instruments, "instrument", "instruments"),
                                              ("macro", "release", releases, "release", "releases")):
        for ident, item in entries[section].items():
            ref = item.node.value.get(key) if item.node.is_map else None
            if ref is not None and isinstance(ref.value, str) and ref.value not in table:
                if ref.value not in misspelt.get(target, ()):  # under a misspelt key: the typo is the error
                    r.error(ref.loc, f"{section}.{ident}.{key}: unknown {kind} {ref.value!r}"
                                     f"{suggest(ref.value, table)}{known_ids(table)}")
                if section == "levels":
                    levels[ident] = None
                else:
                    macro[ident] = None
    # Message templates name ids without saying their kind, so an id may stand in one namespace only.
    seen: dict[str, str] = {}
    for section, table in (("instruments", instruments), ("levels", levels), ("macro", macro)):
        for ident in table:
            if ident in seen:
                r.error(entries[section][ident].key_loc,
                        f"{section}.{ident}: the id is also used in {seen[ident]} "
                        f"(at {entries[seen[ident]][ident].key_loc}); ids of instruments, levels and "
                        "macro series must differ, as message templates name them alone")
            else:
                seen[ident] = section
    _briefing_channels(r, releases, channels, entries, misspelt)
    for ch in channels.values():
        if ch is None or (for_run is None and (ch.missing or not ch.urls)):
            continue  # for_run None: the command sends nothing, an unset channel is no concern of it
        if ch.missing:
            msg = (f"channels.{ch.id}: environment variable {', '.join(ch.missing)} is not set; "
                   "this channel cannot deliver")
            (r.error if for_run else r.problems.warn)(ch.loc, msg)
        elif not ch.urls:
            (r.error if for_run else r.problems.warn)(ch.loc, f"channels.{ch.id}: no URL after expanding the "
                                                              "environment; this channel cannot deliver")
        else:
            sections.check_channel_urls(r, ch)


def _briefing_channels(r: Reader, releases, channels, entries, misspelt) -> None:
    """Each channel a release's `briefing.notify` names must be one of the config's (the releases are parsed before
    the channels, so the check is here)."""
    for rid, release in releases.items():
        if release is None or release.briefing is None:
            continue
        node = entries["releases"][rid].node.value["briefing"].value["notify"]
        where = {item.value: item.loc for item in (node.value if node.is_list else [node])
                 if isinstance(item.value, str)}
        for name in release.briefing.notify:
            if name not in channels and name not in misspelt.get("channels", ()):
                r.error(where.get(name, node.loc), f"releases.{rid}.briefing.notify: unknown channel {name!r}"
                                                   f"{suggest(name, channels)}{known_ids(channels)}")
                releases[rid] = None


def _rules(r: Reader, items: list[_Item], known: rules_mod.Known, where: Loc, invalid: bool) -> list:
    if not items:
        if not invalid:
            r.error(where, "no rules: a config needs at least one rule under 'rules:'")
        return []
    out, first = [], {}
    for index, item in enumerate(items):
        name = item.node.value.get("name") if item.node.is_map else None
        if name is not None and isinstance(name.value, str):
            if name.value in first:
                r.problems.rule = name.value
                r.error(name.loc, f"name: duplicate rule name (first at {first[name.value]})")
                r.problems.rule = None
                rules_mod.rule(r, item.node, index, known)  # still parsed, to report all its errors at once
                continue
            first[name.value] = name.loc
        rule = rules_mod.rule(r, item.node, index, known)
        if rule is not None:
            out.append(rule)
    return out
