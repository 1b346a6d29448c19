"""A loaded config back to plain YAML data, every default written out (`macrowatch check --show`).

Secrets stay as written: a channel or API key shows its `${VAR}` text, never the expanded value; a store
URL's password shows as ***.
"""

from __future__ import annotations

from typing import Any

from macrowatch.config.types import (
    AllOf,
    AnyOf,
    BreakoutParams,
    Condition,
    Config,
    ConsensusFeed,
    Ha,
    Level,
    LevelEntered,
    LevelIn,
    Macro,
    NarrowRange,
    NewExtreme,
    Not,
    ReleaseOutcome,
    Rule,
)
from macrowatch.secrets import store_name


def dump(config: Config) -> dict[str, Any]:
    """The effective config as plain data that loads back to an equal Config."""
    out: dict[str, Any] = {
        "timezone": config.timezone,
        "calendar": config.calendar,
        "poll": {"intraday": str(config.poll_intraday)},
        "breakout": _breakout(config.breakout),
    }
    if config.store:
        out["store"] = _store(config.store)
    if config.health:
        out["health"] = {"listen": f"{config.health.host}:{config.health.port}"}
    if config.ha != Ha() or str(config.store or "").startswith(("postgresql://", "postgres://")):
        out["ha"] = {"lease": f"{config.ha.lease_seconds}s"}
    sources: dict[str, Any] = {}
    for name, source in (("fred", config.fred), ("bls", config.bls)):
        written = {k: v for k, v in (("api_key", source.api_key_source), ("url", source.url)) if v}
        if written:
            sources[name] = written
    if config.yahoo.url:
        sources["yahoo"] = {"url": config.yahoo.url}
    feeds = {name: {"url": feed.url} for name, feed in vars(config.consensus).items() if feed.url}
    if feeds:
        sources["consensus"] = feeds
    if sources:
        out["sources"] = sources
    out["instruments"] = {i.id: {"symbol": i.symbol, "name": i.name} | ({"calendar": i.calendar} if i.calendar else {})
                          for i in config.instruments.values()}
    out["levels"] = {lvl.id: _level(lvl) for lvl in config.levels.values()}
    out["releases"] = {
        r.id: {"time": r.time.strftime("%H:%M")}
        | ({"fred_release_id": r.fred_release_id} if r.fred_release_id else {})
        | ({"bls": r.bls} if r.bls else {})
        | ({"dates": [d.isoformat() for d in r.dates]} if r.dates else {})
        | ({"briefing": {"before": str(r.briefing.before), "notify": list(r.briefing.notify)}} if r.briefing else {})
        for r in config.releases.values()}
    out["macro"] = {m.id: _macro(m) for m in config.macro.values()}
    out["channels"] = {c.id: c.source for c in config.channels.values()}
    out["rules"] = [_rule(r) for r in config.rules]
    return out


def _store(target: str) -> str:
    """A path as is; a postgresql:// URL with its password (expanded from the environment) as ***."""
    return store_name(target)


def _breakout(p: BreakoutParams) -> dict[str, Any]:
    return {"approach_pct": p.approach_pct, "buffer_pct": p.buffer_pct, "fail_within_bars": p.fail_within_bars}


def _level(lvl: Level) -> dict[str, Any]:
    out: dict[str, Any] = {"instrument": lvl.instrument, "kind": lvl.kind.value, "side": lvl.side.value}
    for key in ("price", "bars"):
        if getattr(lvl, key) is not None:
            out[key] = getattr(lvl, key)
    if lvl.since is not None:
        out["since"] = lvl.since.isoformat()
    return out | _breakout(lvl.breakout)


def _macro(m: Macro) -> dict[str, Any]:
    out: dict[str, Any] = {"series": m.series, "release": m.release, "measure": m.measure.value,
                           "beat_by": m.beat_by, "higher_is": m.higher_is}
    entries: list[Any] = []
    if m.consensus_file is not None:
        entries.append(str(m.consensus_file))
    elif m.consensus:
        entries.append({d.isoformat(): v for d, v in m.consensus.items()})
    entries += [_feed(f) for f in m.feeds]
    if entries:
        out["consensus"] = entries[0] if len(entries) == 1 else entries
    if m.bls_series:
        out["bls_series"] = m.bls_series
    return out


def _feed(f: ConsensusFeed) -> dict[str, Any]:
    return {"feed": f.feed.value, "event": f.event, "unit": f.unit} | ({"country": f.country} if f.country else {})


def condition(c: Condition) -> dict[str, Any]:
    """A condition as it is written in YAML."""
    match c:
        case LevelIn():
            return {"level": c.level, "state": [str(s) for s in c.states]}
        case LevelEntered():
            return {"level": c.level, "entered": str(c.state)}
        case ReleaseOutcome():
            return {"release": c.macro, "outcome": c.outcome.value} | ({"within": str(c.within)} if c.within else {})
        case NarrowRange():
            return {"instrument": c.instrument, "narrow_range": {"bars": c.bars, "pct": c.pct}}
        case NewExtreme():
            return {"instrument": c.instrument, c.key: "all" if c.bars is None else f"{c.bars} bars"}
        case AllOf():
            return {"all": [condition(i) for i in c.items]}
        case AnyOf():
            return {"any": [condition(i) for i in c.items]}
        case Not():
            return {"not": condition(c.item)}
    raise TypeError(f"not a condition: {c!r}")


def _rule(r: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"name": r.name, "when": condition(r.when), "severity": r.severity.value,
                           "on": sorted(t.value for t in r.on)}
    optional = {"notify": list(r.notify), "for": r.for_ and str(r.for_),
                "cooldown": r.cooldown and str(r.cooldown), "chart": r.chart,
                "message": r.message and r.message.text, "labels": dict(r.labels) or None,
                "score": r.score and {"direction": r.score.direction.value}
                | ({"instrument": r.score.instrument} if r.score.instrument else {})}
    return out | {k: v for k, v in optional.items() if v}
