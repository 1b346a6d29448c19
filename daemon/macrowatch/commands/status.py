"""`macrowatch status`: what the store knows now, as aligned text or JSON. Reads only (`open_reader`: nothing
is written or created beside the store); never sends.

The report is plain data (`collect`, in runtime/report.py, which the dashboard shows as well), so that
`--format json` and the text (`render`) cannot disagree. Channels appear by id only: nothing here reads a channel's
URLs.
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
from macrowatch.runtime.report import Report, ago, collect
from macrowatch.runtime.wiring import open_store_for, store_target
from macrowatch.store import Store, StoreError

NO_EVALUATIONS = "no evaluations yet: `macrowatch run` evaluates the rules (`fetch` only stores data)"
SERVICE_STORE = "/var/lib/macrowatch/macrowatch.sqlite"  # deploy/macrowatch.service: StateDirectory=macrowatch


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


# ---- text -------------------------------------------------------------------------------------------

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
