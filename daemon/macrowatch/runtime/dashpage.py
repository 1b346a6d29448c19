"""The dashboard's HTML: one server-rendered page from a `View`, no JavaScript, refreshed by the browser every 30 s.

Every value goes through `Html.text`: masked (the known secrets become ***) and HTML-escaped, so that a rule
name or a message holding markup is shown as text. Markup comes only from the literals in this module.
"""

from __future__ import annotations

import datetime as dt
import html
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from macrowatch.config.types import Config
from macrowatch.notify.render import Context, evidence_lines
from macrowatch.runtime.report import ago
from macrowatch.store import ChannelState, StoredAlert

REFRESH_S = 30
# A level state's colour: quiet grey, approaching amber, breaking green (breakdown red), confirmed blue, failed orange.
STATE_COLORS = {"below": "#6b7280", "above": "#6b7280", "approaching": "#b45309", "breakout": "#15803d",
                "breakdown": "#b91c1c", "confirmed": "#1d4ed8", "failed": "#c2410c", None: "#9ca3af"}
SEVERITY_COLORS = {"info": "#4b5563", "warning": "#b45309", "critical": "#b91c1c"}
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.2em 2em;color:#111827;background:#fff}
h1{font-size:1.3em;margin:0 0 .2em} h2{font-size:1.1em;margin:1.4em 0 .4em}
p.meta{color:#4b5563;margin:0} table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}
th{background:#f3f4f6;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:0 7px;border-radius:9px;color:#fff;font-size:.9em}
ul.plain{margin:0;padding-left:1.1em} .muted{color:#6b7280} .bad{color:#b91c1c}
div.row{display:flex;flex-wrap:wrap;gap:0 2.5em} div.row>div{flex:1 1 22em}
"""


@dataclass(frozen=True)
class View:
    """What the page shows, read from the store at one moment (dashboard.gather)."""

    config: Config
    now: dt.datetime
    store: str
    levels: dict[str, Any]          # report.engine_levels
    releases: list[dict[str, Any]]  # report.releases
    alerts: list[StoredAlert]
    daemon: dict[str, Any] | None   # report.daemon
    outbox: dict[str, Any]          # report.outbox
    leader: dict[str, Any] | None   # report.leader (None on SQLite)


class Html:
    """Escaped, masked text and times in the config's timezone."""

    def __init__(self, mask: Callable[[str], str], timezone: str, now: dt.datetime):
        self._mask = mask
        self.zone = zoneinfo.ZoneInfo(timezone)
        self.now = now

    def text(self, value: object) -> str:
        """Any value as page text: its secrets masked, then HTML-escaped (quotes too)."""
        return html.escape(self._mask("-" if value is None else str(value)), quote=True)

    def when(self, value: dt.datetime | str | None, seconds: bool = False) -> str:
        """A time in the config's timezone, escaped."""
        if value is None:
            return "-"
        t = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        return self.text(t.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z"))

    def row(self, *cells: str, cls: Iterable[str] = ()) -> str:
        """A table row of cells already made safe (`text`, or markup built from it)."""
        classes = list(cls) + [""] * len(cells)
        return "<tr>" + "".join(f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>"
                                for v, c in zip(cells, classes, strict=False)) + "</tr>"


def render(view: View, mask: Callable[[str], str]) -> str:
    """The whole page."""
    h = Html(mask, view.config.timezone, view.now)
    # A SQLite store by its file name (the whole path on hover); a PostgreSQL one by its URL, password masked.
    store = view.store if "://" in view.store else view.store.rsplit("/", 1)[-1]
    body = [f'<h1>macrowatch</h1><p class=meta>store <span title="{h.text(view.store)}">{h.text(store)}</span>, '
            f"as of {h.when(view.now, True)}; "
            f"this page reloads itself every {REFRESH_S} s</p>",
            *_levels(h, view), *_releases(h, view),
            # The short sections side by side, above the alerts (up to ALERTS_SHOWN rows: the longest section).
            "<div class=row><div>", *_sources(h, view.daemon), "</div><div>", *_outbox(h, view.outbox),
            "</div><div>", *_leader(h, view.leader), "</div></div>", *_alerts(h, view)]
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f'<meta http-equiv="refresh" content="{REFRESH_S}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>macrowatch</title><style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _table(head: Iterable[str], rows: list[str], table_id: str) -> list[str]:
    ths = "".join(f"<th>{c}</th>" for c in head)
    return [f'<table id="{table_id}"><thead><tr>{ths}</tr></thead><tbody>', *rows, "</tbody></table>"]


def badge(h: Html, label: object, color: str) -> str:
    """A coloured label (a level state, a severity)."""
    return f'<span class=badge style="background:{color}">{h.text(label)}</span>'


def _num(x: float | None, signed: bool = False) -> str:
    return "-" if x is None else f"{x:+,.2f}" if signed else f"{x:,.2f}"


# ---- sections -----------------------------------------------------------------------------------------

def _levels(h: Html, view: View) -> list[str]:
    head = ['<h2 id="levels">Levels</h2>']
    if view.levels.get("engine_error"):
        return [*head, f"<p class=bad>{h.text(view.levels['engine_error'])}</p>"]
    if view.levels.get("levels") is None:
        return [*head, "<p class=muted>no evaluations yet: the daemon evaluates the rules at each close</p>"]
    rows = [_level_row(h, view.config, lv) for lv in view.levels["levels"]]
    return [*head, *_table(["level (chart)", "instrument", "last close", "session, age", "level", "state",
                            "distance"], rows, "levels-table"),
            "<p class=muted>distance: how far the level is from the last close, in % of the close "
            "(+: above it)</p>"]


def _level_row(h: Html, config: Config, lv: dict[str, Any]) -> str:
    inst = config.instruments.get(lv["instrument"])
    name = f"{inst.name} ({inst.symbol})" if inst else lv["instrument"]
    session = dt.date.fromisoformat(lv["session"]) if lv.get("session") else None
    if session is None:
        when = "no close yet"
    else:
        days = (h.now.astimezone(h.zone).date() - session).days
        when = f"{session}, " + ("today" if days <= 0 else f"{ago(days * 86400)} ago")
    close, price = lv["last_close"], lv["price"]
    distance = f"{(price / close - 1) * 100:+.2f}%" if close and price is not None else "-"
    link = f'<a href="/levels/{h.text(quote(lv["level"], safe=""))}.png">{h.text(lv["level"])}</a>'
    state = badge(h, lv["state"] or "no data", STATE_COLORS.get(lv["state"], STATE_COLORS[None]))
    return h.row(link, h.text(name), h.text(_num(close)), h.text(when), h.text(_num(price)), state, h.text(distance),
                 cls=["", "", "num", "", "num", "", "num"])


def _releases(h: Html, view: View) -> list[str]:
    head = ['<h2 id="releases">Next releases</h2>']
    if not view.releases:
        return [*head, "<p class=muted>no releases in the config</p>"]
    rows = []
    for r in view.releases:
        when = (h.when(r["next"]) + h.text(f" (in {ago(r['in_seconds'])})")) if r["next"] else "no upcoming date known"
        origin = "release calendar" if r["source"] == "calendar" else "config's dates"
        rows.append(h.row(h.text(r["release"]), when, h.text(origin), _consensus(h, r["consensus"])))
    return [*head, *_table(["release", "next", "dates from", "consensus"], rows, "releases-table")]


def _consensus(h: Html, entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "<span class=muted>none configured</span>"
    items = []
    for c in entries:
        if c["consensus"] is None:
            items.append(f"{h.text(c['macro'])}: {h.text(c['source'])}")
        else:
            period = f" for {c['period'][:7]}" if c["period"] else ""
            items.append(f"{h.text(c['macro'])}: {h.text(_num(c['consensus'], True) + period)} "
                         f"<span class=muted>from {h.text(c['source'])}</span>")
    return "<ul class=plain>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _alerts(h: Html, view: View) -> list[str]:
    head = [f'<h2 id="alerts">Last {len(view.alerts)} alerts</h2>' if view.alerts else '<h2 id="alerts">Alerts</h2>']
    if not view.alerts:
        return [*head, "<p class=muted>no alerts yet</p>"]
    context = Context.from_config(view.config)
    rows = []
    for stored in view.alerts:
        a = stored.alert
        evidence = "".join(f"<li>{h.text('met' if ok else 'not met')}: {h.text(words)}</li>"
                           for _key, ok, words in evidence_lines(a, context))
        labels = "".join(f"<br><span class=muted>{h.text(k)}={h.text(v)}</span>" for k, v in a.labels.items())
        rows.append(h.row(h.when(a.at), h.text(a.rule) + labels,
                          badge(h, a.severity, SEVERITY_COLORS.get(str(a.severity), "#4b5563")), h.text(a.message),
                          f"<ul class=plain>{evidence}</ul>" if evidence else "-",
                          "<ul class=plain>" + "".join(f"<li>{_delivery(h, d)}</li>" for d in stored.deliveries)
                          + "</ul>"))
    return [*head, *_table(["time", "rule", "severity", "message", "evidence", "delivery"], rows, "alerts-table")]


def _delivery(h: Html, d: ChannelState) -> str:
    """One channel's delivery, by channel id (its URLs never appear)."""
    repeat = f" <span class=bad>(possible repeat x{d.repeats})</span>" if d.repeats else ""
    if d.sent_at is not None:
        return f"{h.text(d.channel)}: sent {h.when(d.sent_at, True)}{repeat}"
    if d.claimed:
        return f"{h.text(d.channel)}: sending{repeat}"
    if not d.attempts:
        return f"{h.text(d.channel)}: pending{repeat}"
    tries = f"{d.attempts} failed {'try' if d.attempts == 1 else 'tries'}"
    return (f"{h.text(d.channel)}: <span class=bad>{h.text(tries)}</span>, next {h.when(d.next_at, True)}"
            f" <span class=muted>({h.text(d.last_error)})</span>{repeat}")


def _sources(h: Html, d: dict[str, Any] | None) -> list[str]:
    head = ['<h2 id="sources">Sources</h2>']
    if d is None:
        return [*head, "<p class=muted>no heartbeat recorded: the daemon has not run on this store</p>"]
    state = {"running": f"running, last heartbeat {ago(d['heartbeat_age'])} ago",
             "stopped": "stopped (a clean stop)",
             "silent": f"not running? last heartbeat {ago(d['heartbeat_age'])} ago"}[d["state"]]
    if d.get("catching_up"):
        state = "catching up (no heartbeat until it is done)"
    line = f"<p>daemon: pid {h.text(d['pid'])}, started {h.when(d['started'])}, {h.text(state)}</p>"
    rows = []
    for name, s in d["sources"].items():
        if s.get("failing_since"):
            status = (f"<span class=bad>failing for {h.text(ago(s['failing_for']))}</span> (since "
                      f"{h.when(s['failing_since'])}): {h.text(s.get('error') or 'unknown error')}")
        elif s.get("last_ok"):
            status = f"ok, last success {h.text(ago(s['last_ok_age']))} ago"
        else:
            status = "not polled yet"
        rows.append(h.row(h.text(name), status))
    missing = "".join(f"<p class=bad>history missing: {h.text(m)}; the rules that read it wait</p>"
                      for m in d.get("history_missing") or [])
    return [*head, line, *_table(["source", "health"], rows, "sources-table"), missing]


def _outbox(h: Html, outbox: dict[str, Any]) -> list[str]:
    out = ['<h2 id="outbox">Outbox</h2>',
           f"<p>{h.text(outbox['pending'])} {'delivery' if outbox['pending'] == 1 else 'deliveries'} pending; "
           f"possible repeats: {h.text(outbox['possible_repeats'])}</p>"]
    if outbox["repeated"]:
        out.append("<ul>" + "".join(f"<li>{h.text(r['key'])} to {h.text(r['channel'])}: {h.text(r['repeats'])}</li>"
                                    for r in outbox["repeated"]) + "</ul>")
    return out


def _leader(h: Html, leader: dict[str, Any] | None) -> list[str]:
    head = '<h2 id="leader">Leader</h2>'
    if leader is None:
        return [head, "<p>SQLite store: one instance, which holds the store's lock (no lease)</p>"]
    if leader["token"] is None:
        return [head, "<p>none yet: no instance has taken the lease on this store</p>"]
    if leader["held"]:
        return [head, f"<p>{h.text(leader['holder'])} since {h.when(leader['since'])} (token "
                      f"{h.text(leader['token'])}), lease renewed {h.when(leader['renewed'], True)}, expires in "
                      f"{h.text(ago(leader['expires_in']))}</p>"]
    who = f"the lease of {h.text(leader['holder'])}" if leader["holder"] else "the lease (released at a clean stop)"
    return [head, f"<p class=bad>none: {who} (token {h.text(leader['token'])}) ended "
                  f"{h.text(ago(-leader['expires_in']))} ago; a running standby takes it at its next poll</p>"]
