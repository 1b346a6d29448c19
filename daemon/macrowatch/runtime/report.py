"""What the store knows now, as plain JSON-able data: `macrowatch status` prints it (commands/status.py) and the
dashboard shows it (dashboard.py). Reads only: nothing here writes to the store or sends.

Channels appear by id only: nothing here reads a channel's URLs.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from macrowatch.config.types import Config
from macrowatch.engine.evaluator import Engine
from macrowatch.runtime.calendars import moment, times_from_data
from macrowatch.runtime.history import coming_consensus, stored_forecasts
from macrowatch.runtime.publisher import SOURCE, daily_limit
from macrowatch.sources import files
from macrowatch.store import Store

SILENT_BEATS = 3  # heartbeats missed in a row: the daemon is not running (or is stuck), as /healthz judges it
STALE_AFTER = dt.timedelta(minutes=5)  # for a heartbeat that does not record its interval (an older daemon)
SENT_SHOWN = 5

Report = dict[str, Any]


def collect(config: Config, store: Store, now: dt.datetime) -> Report:
    """Everything `status` shows, as JSON-able data (times ISO-8601, ages in seconds)."""
    return {"store": store.name, "now": now.isoformat(), "leader": leader(store), "daemon": daemon(store, now),
            **engine_levels(config, store), "data": data(config, store, now),
            "next_releases": releases(config, store, now), "queries": queries(config, store, now),
            "outbox": outbox(store)}


def queries(config: Config, store: Store, now: dt.datetime) -> dict[str, Any] | None:
    """BLS API queries counted today and the day's limit, when a macro reads BLS (`bls_series`)."""
    if not any(m.bls_series for m in config.macro.values()):
        return None
    today = now.astimezone(zoneinfo.ZoneInfo(config.timezone)).date()
    return {"bls": {"today": store.queries(SOURCE, today), "limit": daily_limit(config)}}


def _age(now: dt.datetime, then: str | None) -> float | None:
    return None if then is None else (now - dt.datetime.fromisoformat(then)).total_seconds()


def leader(store: Store) -> dict[str, Any] | None:
    """Who holds the lease on a shared (PostgreSQL) store, by the database's clock; None on SQLite."""
    if store.dialect == "sqlite":
        return None
    row = store.lease()
    if row is None:
        return {"holder": None, "held": False, "token": None, "since": None, "expires": None, "expires_in": None}
    wall = lambda t: dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")  # noqa: E731
    return {"holder": row.holder, "held": row.held, "token": row.token, "since": wall(row.since),
            "renewed": wall(row.renewed_at), "expires": wall(row.expires_at), "expires_in": row.expires_at - row.now}


def daemon(store: Store, now: dt.datetime) -> dict[str, Any] | None:
    """The daemon's last record (runtime/liveness.py: at a start, each heartbeat, a clean stop) and what it means now:
    state "running", "stopped" (a clean stop recorded itself) or "silent" (no heartbeat for SILENT_BEATS
    intervals: killed, crashed or stuck); `stale` unless running."""
    saved = store.load_state("daemon")
    if saved is None:
        return None
    age = _age(now, saved.get("heartbeat"))
    every = saved.get("every")
    limit = SILENT_BEATS * every if every else STALE_AFTER.total_seconds()
    state = "stopped" if saved.get("stopped") else "silent" if age is None or age > limit else "running"
    sources = {name: {**s, "last_ok_age": _age(now, s.get("last_ok")),
                      "failing_for": _age(now, s.get("failing_since"))}
               for name, s in sorted((saved.get("sources") or {}).items())}
    return {"pid": saved.get("pid"), "started": saved.get("started"), "heartbeat": saved.get("heartbeat"),
            "heartbeat_age": age, "every": every, "state": state, "stale": state != "running",
            "stopped": saved.get("stopped"), "catching_up": bool(saved.get("catching_up")), "sources": sources,
            "history_missing": list(saved.get("history_missing") or [])}


def engine_levels(config: Config, store: Store) -> dict[str, Any]:
    """Each level's state, value and last close from the saved engine state, and the latest print per macro;
    `levels` None before the first evaluation, `engine_error` when the saved state cannot be read."""
    engine = Engine(config)
    try:
        saved = store.load_state("engine")
        if saved is None:
            return {"levels": None, "prints": [], "engine_error": None}
        engine.load(saved)
    except ValueError as exc:  # StateError, or not JSON
        # A state from another version, or garbled: say so, show the rest of the report. The daemon rebuilds it
        # from the store's history at its next start (runtime/daemon.py).
        return {"levels": None, "prints": [], "engine_error": f"saved engine state unreadable: {exc}"}
    # A level that has seen no close is neither below nor above: its state is None ("no data").
    levels = [{"level": lid, "instrument": m.level.instrument,
               "state": m.state if m.last_close is not None else None, "price": m.price,
               "last_close": m.last_close,
               "session": _iso(engine.sessions.get(m.level.instrument))}
              for lid, m in engine.machines.items()]
    prints = [{"macro": mid, "at": p.at.isoformat(), "ref_period": p.ref_period.isoformat(), "actual": p.actual,
               "consensus": p.consensus, "consensus_source": p.consensus_source, "outcome": p.outcome}
              for mid, (p, _bar) in sorted(engine.prints.items())]
    return {"levels": levels, "prints": prints, "engine_error": None}


def _iso(d: dt.date | None) -> str | None:
    return d.isoformat() if d else None


def data(config: Config, store: Store, now: dt.datetime) -> list[dict[str, Any]]:
    """Per configured instrument and series (and any the store keeps from an earlier config): rows held, the
    last session or period and its age in days."""
    held = {(kind, ident): (rows, last) for kind, ident, rows, _first, last in store.summary()}
    today = now.astimezone(zoneinfo.ZoneInfo(config.timezone)).date()
    configured = [("instrument", iid) for iid in config.instruments]
    configured += [("series", s) for s in sorted({m.series for m in config.macro.values()})]
    stray = [k for k in sorted(held) if k not in configured]  # kept from an earlier config: still shown
    out = []
    for kind, ident in configured + stray:
        rows, last = held.get((kind, ident), (0, None))
        inst = config.instruments.get(ident) if kind == "instrument" else None
        out.append({"kind": kind, "id": ident, "symbol": inst.symbol if inst else None, "rows": rows,
                    "last": last, "age_days": (today - dt.date.fromisoformat(last)).days if last else None,
                    "configured": (kind, ident) in configured})
    return out


def releases(config: Config, store: Store, now: dt.datetime) -> list[dict[str, Any]]:
    """Each release's next time (from the stored release calendar, else the config's dates) with the consensus
    its macros would be judged against, soonest first."""
    saved = store.load_state("schedule") or {}
    schedule = saved.get("releases") or {}
    times = times_from_data(saved.get("times") or {})  # a day's time from the BLS schedule wins over `time:`
    seen = stored_forecasts(config, store)
    out = []
    for rid, release in config.releases.items():
        if rid in schedule:
            dates, source = [dt.date.fromisoformat(d) for d in schedule[rid]], "calendar"
        else:
            dates, source = list(release.dates), "config"
        upcoming = sorted(t for t in (moment(config, rid, d, times) for d in dates) if t >= now)
        out.append({"release": rid, "next": upcoming[0].isoformat() if upcoming else None, "source": source,
                    "in_seconds": (upcoming[0] - now).total_seconds() if upcoming else None,
                    "schedule_updated": saved.get("updated") if source == "calendar" else None,
                    "consensus": _consensus(config, store, rid, upcoming[0] if upcoming else None, seen)})
    return sorted(out, key=lambda r: (r["next"] is None, r["next"] or "", r["release"]))


def _consensus(config: Config, store: Store, release_id: str, at: dt.datetime | None,
               seen: files.Seen | None) -> list[dict[str, Any]]:
    """The consensus each macro of the release's next print would be judged against now, and its source, for
    the macros given one (a file, values or a feed)."""
    out = []
    for m in config.macro.values():
        if m.release != release_id or not (m.consensus_file or m.consensus or m.feeds):
            continue
        try:
            found = coming_consensus(m, at, store.vintages(m.series), seen) if at else None
        except files.DataError as exc:
            out.append({"macro": m.id, "period": None, "consensus": None, "source": f"unreadable: {exc}"})
            continue
        period, value, source = found or (None, None, "none yet: the mean of the last 12 first prints")
        out.append({"macro": m.id, "period": period.isoformat() if period else None, "consensus": value,
                    "source": source})
    return out


def outbox(store: Store) -> dict[str, Any]:
    """Deliveries not sent yet, the latest sends and the possible repeats counted so far."""
    sent = []
    for key, channel, at in store.sent_log(SENT_SHOWN):
        # The key is rule|labels|event (engine._alert); the rule and the event name the alert.
        parts = key.split("|")
        sent.append({"at": at.isoformat(), "channel": channel, "rule": parts[0],
                     "labels": parts[1] if len(parts) > 2 else "", "event": parts[-1] if len(parts) > 1 else ""})
    total, repeated = store.repeats(SENT_SHOWN)
    return {"pending": store.pending(), "sent": sent, "possible_repeats": total,
            "repeated": [{"key": k, "channel": c, "repeats": n} for k, c, n in repeated]}


def ago(seconds: float | None) -> str:
    """A duration as one rounded unit: 45s, 12m, 3h, 2d."""
    if seconds is None:
        return "never"
    s = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{int(s // size)}{unit}"
    return f"{int(s)}s"
