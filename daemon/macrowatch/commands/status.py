"""`macrowatch status`: what the store knows now, as aligned text or JSON. Reads only (`open_reader`: nothing
is written or created beside the store); never sends.

The report is plain data (`collect`), so that `--format json` and the text (`render`) cannot disagree.
Channels appear by id only: nothing here reads a channel's URLs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import zoneinfo
from pathlib import Path
from typing import Any

import click

from macrowatch.clock import system_clock
from macrowatch.commands.common import load_or_exit
from macrowatch.config.types import Config
from macrowatch.engine.evaluator import Engine
from macrowatch.runtime.calendars import moment, times_from_data
from macrowatch.runtime.history import coming_consensus, stored_forecasts
from macrowatch.runtime.publisher import SOURCE, daily_limit
from macrowatch.runtime.wiring import open_store_for, store_target
from macrowatch.sources import files
from macrowatch.store import Store, StoreError

NO_EVALUATIONS = "no evaluations yet: `macrowatch run` evaluates the rules (`fetch` only stores data)"
SILENT_BEATS = 3  # heartbeats missed in a row: the daemon is not running (or is stuck), as /healthz judges it
STALE_AFTER = dt.timedelta(minutes=5)  # for a heartbeat that does not record its interval (an older daemon)
SERVICE_STORE = "/var/lib/macrowatch/macrowatch.sqlite"  # deploy/macrowatch.service: StateDirectory=macrowatch
SENT_SHOWN = 5

Report = dict[str, Any]


def command(config_path: Path, store: str | None, fmt: str) -> None:
    """Print the report of the store (`store`, else the config's) as text or JSON; exit 1 when there is none."""
    config = load_or_exit(config_path)
    try:
        opened = open_existing(config, store)
    except StoreError as exc:
        click.echo(f"macrowatch status: {exc}", err=True)
        sys.exit(1)
    with opened:
        report = collect(config, opened, system_clock().now())
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
    else:
        for line in render(report, config.timezone):
            click.echo(line)


def open_existing(config: Config, store: str | None = None) -> Store:
    """Open `store` (a path or URL), else the config's store, to read only; one that does not exist is an error
    here, not created empty."""
    target = store_target(config, store)
    try:
        return open_store_for(config, target, read_only=True)
    except StoreError as exc:
        if not str(exc).startswith("no store at"):
            raise
        hint = "" if target is not None or os.environ.get("STATE_DIRECTORY") else (
            f"; the systemd service's store is elsewhere: `sudo macrowatch status --store {SERVICE_STORE} -c ...`")
        raise StoreError(f"{exc}: run `macrowatch run` or `macrowatch fetch` first{hint}") from None


def collect(config: Config, store: Store, now: dt.datetime) -> Report:
    """Everything `status` shows, as JSON-able data (times ISO-8601, ages in seconds)."""
    return {"store": store.name, "now": now.isoformat(), "leader": _leader(store), "daemon": _daemon(store, now),
            **_engine(config, store), "data": _data(config, store, now),
            "next_releases": _releases(config, store, now), "queries": _queries(config, store, now),
            "outbox": _outbox(store)}


def _queries(config: Config, store: Store, now: dt.datetime) -> dict[str, Any] | None:
    """BLS API queries counted today and the day's limit, when a macro reads BLS (`bls_series`)."""
    if not any(m.bls_series for m in config.macro.values()):
        return None
    today = now.astimezone(zoneinfo.ZoneInfo(config.timezone)).date()
    return {"bls": {"today": store.queries(SOURCE, today), "limit": daily_limit(config)}}


# ---- gathering --------------------------------------------------------------------------------------

def _age(now: dt.datetime, then: str | None) -> float | None:
    return None if then is None else (now - dt.datetime.fromisoformat(then)).total_seconds()


def _leader(store: Store) -> dict[str, Any] | None:
    """Who holds the lease on a shared (PostgreSQL) store, by the database's clock; None on SQLite."""
    if store.dialect == "sqlite":
        return None
    row = store.lease()
    if row is None:
        return {"holder": None, "held": False, "token": None, "since": None, "expires": None, "expires_in": None}
    wall = lambda t: dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")  # noqa: E731
    return {"holder": row.holder, "held": row.held, "token": row.token, "since": wall(row.since),
            "renewed": wall(row.renewed_at), "expires": wall(row.expires_at), "expires_in": row.expires_at - row.now}


def _daemon(store: Store, now: dt.datetime) -> dict[str, Any] | None:
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


def _engine(config: Config, store: Store) -> dict[str, Any]:
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


def _data(config: Config, store: Store, now: dt.datetime) -> list[dict[str, Any]]:
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


def _releases(config: Config, store: Store, now: dt.datetime) -> list[dict[str, Any]]:
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


def _outbox(store: Store) -> dict[str, Any]:
    sent = []
    for key, channel, at in store.sent_log(SENT_SHOWN):
        # The key is rule|labels|event (engine._alert); the rule and the event name the alert.
        parts = key.split("|")
        sent.append({"at": at.isoformat(), "channel": channel, "rule": parts[0],
                     "labels": parts[1] if len(parts) > 2 else "", "event": parts[-1] if len(parts) > 1 else ""})
    total, repeated = store.repeats(SENT_SHOWN)
    return {"pending": store.pending(), "sent": sent, "possible_repeats": total,
            "repeated": [{"key": k, "channel": c, "repeats": n} for k, c, n in repeated]}


# ---- text -------------------------------------------------------------------------------------------

def ago(seconds: float | None) -> str:
    """A duration as one rounded unit: 45s, 12m, 3h, 2d."""
    if seconds is None:
        return "never"
    s = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{int(s // size)}{unit}"
    return f"{int(s)}s"


def _when(iso: str | None, zone: zoneinfo.ZoneInfo, seconds: bool = False) -> str:
    form = "%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z"
    return dt.datetime.fromisoformat(iso).astimezone(zone).strftime(form) if iso else "-"


def _num(x: float | None, signed: bool = False) -> str:
    return "-" if x is None else f"{x:+.2f}" if signed else f"{x:.2f}"


def table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Rows with their columns padded to a common width (the last column is not padded)."""
    if not rows:
        return []
    keep = [i for i in range(len(rows[0])) if any(r[i] for r in rows)]  # a column empty everywhere: gone
    rows = [[r[i] for i in keep] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]).rstrip()
            for r in rows]


def render(report: Report, timezone: str) -> list[str]:
    """The report as lines of aligned text, times in the config's timezone."""
    zone = zoneinfo.ZoneInfo(timezone)
    lines = [f"store: {report['store']}"]
    lines += _leader_lines(report.get("leader"), zone)
    lines += _daemon_lines(report["daemon"], zone)
    lines += _level_lines(report, zone)
    lines += _data_lines(report["data"])
    lines += _release_lines(report["next_releases"], zone)
    lines += [f"BLS queries today: {q['today']} of {q['limit']}" for q in (report.get("queries") or {}).values()]
    lines += _outbox_lines(report["outbox"], zone)
    return lines


def _leader_lines(leader: dict[str, Any] | None, zone: zoneinfo.ZoneInfo) -> list[str]:
    if leader is None:
        return []  # SQLite: one instance, no lease
    if leader["token"] is None:
        return ["leader: none yet (no instance has taken the lease on this store)"]
    if leader["held"]:
        return [f"leader: {leader['holder']} since {_when(leader['since'], zone)} (token {leader['token']}), "
                f"lease renewed {_when(leader['renewed'], zone, seconds=True)}, expires in "
                f"{ago(leader['expires_in'])}"]
    ended = ago(-leader["expires_in"])
    if leader["holder"] is None:
        return [f"leader: none: the last leader released the lease (token {leader['token']}) {ended} ago, at a "
                "clean stop; a running standby takes it at its next poll"]
    return [f"leader: none: the lease of {leader['holder']} (token {leader['token']}) expired {ended} ago; "
            "a running standby takes it at its next poll"]


def _daemon_lines(d: dict[str, Any] | None, zone: zoneinfo.ZoneInfo) -> list[str]:
    if d is None:
        return ["daemon: no heartbeat recorded (`macrowatch run` has not run on this store)"]
    head = f"daemon: pid {d['pid']}, started {_when(d['started'], zone)}, "
    if d["state"] == "stopped":
        head += f"stopped at {_when(d['stopped'], zone, seconds=True)} (a clean stop)"
    elif d.get("catching_up"):
        # One record when a start begins; the heartbeat comes once its catch-up is done.
        head += f"catching up (no heartbeat until it is done), last record {ago(d['heartbeat_age'])} ago"
        if d["state"] == "silent":
            head += "; or stopped during it: a first start fetches years of history, a restart only what it missed"
    elif d["state"] == "silent":
        head += f"not running? last heartbeat {ago(d['heartbeat_age'])} ago (killed, crashed or stuck: a clean " \
                "stop says so)"
    else:
        head += f"last heartbeat {ago(d['heartbeat_age'])} ago"
    rows = []
    for name, s in d["sources"].items():
        if s.get("failing_since"):
            rows.append([name, f"failing for {ago(s['failing_for'])} (since {_when(s['failing_since'], zone)}): "
                               f"{s.get('error') or 'unknown error'}"])
        elif s.get("last_ok"):
            rows.append([name, f"ok, last success {ago(s['last_ok_age'])} ago"])
        else:
            rows.append([name, "not polled yet"])
    missing = [f"history missing: {m}; the rules that read it wait" for m in d.get("history_missing") or []]
    return [head, *table(rows), *missing]


def _level_lines(report: Report, zone: zoneinfo.ZoneInfo) -> list[str]:
    if report["engine_error"]:
        return [f"levels: {report['engine_error']}"]
    if report["levels"] is None:
        return [f"levels: {NO_EVALUATIONS}"]
    rows = [[lv["level"], lv["instrument"], lv["state"] or "no data", _num(lv["price"]),
             f"last close {_num(lv['last_close'])}" + (f" on {lv['session']}" if lv["session"] else "")]
            for lv in report["levels"]]
    lines = ["levels:", *table(rows)]
    if report["prints"]:
        rows = [[p["macro"], _when(p["at"], zone), f"actual {_num(p['actual'], True)}",
                 f"consensus {_num(p['consensus'], True)}", p["outcome"]] for p in report["prints"]]
        lines += ["last releases:", *table(rows)]
    return lines


def _data_lines(data: list[dict[str, Any]]) -> list[str]:
    if not any(d["rows"] for d in data):
        return ["data: no bars or observations stored yet"]
    rows = []
    for d in data:
        what = "last close" if d["kind"] == "instrument" else "last period"
        when = (f"{what} {d['last']} ({'today' if d['age_days'] == 0 else ago(d['age_days'] * 86400) + ' ago'})"
                if d["last"] else "no data")
        noun = "bar" if d["kind"] == "instrument" else "row"
        count = f"{d['rows']} {noun}{'' if d['rows'] == 1 else 's'}"
        rows.append([d["kind"], d["id"], d["symbol"] or "", when, count + ("" if d["configured"]
                                                                          else " (not in config)")])
    return ["data:", *table(rows)]


def _release_lines(releases: list[dict[str, Any]], zone: zoneinfo.ZoneInfo) -> list[str]:
    if not releases:
        return []
    rows = []
    for r in releases:
        origin = "from the release calendar" if r["source"] == "calendar" else "from the config's dates"
        if r["next"]:
            rows.append([r["release"], _when(r["next"], zone), f"in {ago(r['in_seconds'])}", origin])
        else:
            rows.append([r["release"], "no upcoming date known", "", origin])
    lines = ["next releases:"]
    for line, r in zip(table(rows), releases, strict=True):
        lines.append(line)
        lines += [f"    {c['macro']}: consensus {_num(c['consensus'], True)}"
                  + (f" for {c['period'][:7]}" if c["period"] else "") + f" ({c['source']})"
                  if c["consensus"] is not None else f"    {c['macro']}: consensus {c['source']}"
                  for c in r["consensus"]]
    return lines


def _outbox_lines(outbox: dict[str, Any], zone: zoneinfo.ZoneInfo) -> list[str]:
    lines = [f"outbox: {outbox['pending']} pending"]
    if outbox.get("possible_repeats"):
        shown = ", ".join(f"{r['key']} to {r['channel']}" for r in outbox["repeated"])
        lines.append(f"possible repeats: {outbox['possible_repeats']} (a send whose record was lost in a crash or a "
                     f"failover, or that had no answer in time, sent again): {shown}")
    if not outbox["sent"]:
        return [*lines, "last sent: nothing sent yet"]
    rows = [[_when(s["at"], zone), s["channel"], s["rule"], s["event"]] for s in outbox["sent"]]
    return [*lines, "last sent:", *table(rows)]
