"""The config's sections other than rules and macro (macros.py): settings, sources, instruments, levels, releases,
channels."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from pathlib import Path

from macrowatch.config.fields import Reader, describe, suggest
from macrowatch.config.types import (
    BlsSource,
    BreakoutParams,
    Briefing,
    Channel,
    ConsensusSources,
    Feed,
    FeedSource,
    FredSource,
    Ha,
    Health,
    Instrument,
    Level,
    LevelKind,
    Release,
    Side,
    YahooSource,
)
from macrowatch.config.yamlsrc import YNode

BREAKOUT_KEYS = ("approach_pct", "buffer_pct", "fail_within_bars")


def timezone(r: Reader, node: YNode) -> str | None:
    name = r.string(node, "timezone")
    if name is None:
        return None
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        r.error(node.loc, f"timezone: unknown time zone {name!r} (an IANA name like America/New_York)")
        return None
    return name


def calendar(r: Reader, node: YNode, what: str, known: frozenset[str] | None) -> str | None:
    name = r.string(node, what)
    if name is not None and known is not None and name not in known:
        r.error(node.loc, f"{what}: unknown exchange calendar {name!r}{suggest(name, known)} "
                          "(an exchange_calendars code like XNYS or CMES)")
        return None
    return name


def store(r: Reader, node: YNode, base: Path) -> str | None:
    text = r.string(node, "store")
    if text is None:
        return None
    if re.match(r"^postgres(ql)?://", text):
        return text
    if "://" in text:
        r.error(node.loc, "store: expected a file path or a postgresql:// URL")
        return None
    return str((base / Path(text).expanduser()).resolve())


def poll(r: Reader, node: YNode):
    fields = r.mapping(node, "poll", ["intraday"])
    if fields and "intraday" in fields:
        d = r.duration(fields["intraday"], "poll.intraday", bars=False)
        if d is not None and d.as_timedelta().total_seconds() < 60:
            r.error(fields["intraday"].loc, "poll.intraday: must be at least 1m")
            return None
        return d
    return None


def health(r: Reader, node: YNode) -> Health | None:
    fields = r.mapping(node, "health", ["listen"], required=["listen"])
    if not fields or "listen" not in fields:
        return None
    listen = fields["listen"]
    if isinstance(listen.value, int) and not isinstance(listen.value, bool):
        listen = YNode(str(listen.value), listen.loc)  # `listen: 9108`: YAML reads a bare PORT as a number
    text = r.string(listen, "health.listen")
    if text is None:
        return None
    m = re.fullmatch(r"(?:\[?([0-9A-Za-z.:-]*?)\]?:)?(\d{1,5})", text.strip())
    if not m or not 0 < int(m.group(2)) < 65536:
        r.error(fields["listen"].loc, f"health.listen: expected HOST:PORT or PORT, got {text!r}")
        return None
    return Health(m.group(1) or "127.0.0.1", int(m.group(2)))


HA_LEASE_MIN, HA_LEASE_MAX = 3, 600


def ha(r: Reader, node: YNode) -> Ha | None:
    fields = r.mapping(node, "ha", ["lease"])
    if not fields or "lease" not in fields:
        return None if fields is None else Ha()
    value = fields["lease"].value
    m = re.fullmatch(r"\s*(\d{1,6})\s*(s|m)\s*", value) if isinstance(value, str) else None
    seconds = int(m.group(1)) * (60 if m.group(2) == "m" else 1) if m else None
    if seconds is None or not HA_LEASE_MIN <= seconds <= HA_LEASE_MAX:
        shown = repr(value) if isinstance(value, str) else describe(value)
        r.error(fields["lease"].loc, f"ha.lease: expected seconds ('Ns') or minutes ('Nm') from "
                                     f"{HA_LEASE_MIN}s to {HA_LEASE_MAX // 60}m, got {shown}")
        return None
    return Ha(seconds)


def _url(r: Reader, node: YNode, what: str) -> str | None:
    text = r.string(node, what)
    if text is not None and not re.match(r"^https?://[^/\s]+", text):
        r.error(node.loc, f"{what}: expected an http:// or https:// URL, got {text!r}")
        return None
    return text.rstrip("/") if text else None


def _api_source(r: Reader, node: YNode, what: str) -> tuple[str | None, str | None, str | None]:
    """(key, key as written, url) of `sources.fred` or `sources.bls`; an unset key means keyless (warned at load)."""
    f = r.mapping(node, what, ["api_key", "url"]) or {}
    key = src = None
    if "api_key" in f and (src := r.string(f["api_key"], f"{what}.api_key", expand=False)) is not None:
        key, _missing = r.expand(src)
    url = _url(r, f["url"], f"{what}.url") if "url" in f else None
    return key or None, src, url


def _consensus_sources(r: Reader, node: YNode) -> ConsensusSources:
    """`sources.consensus`: each feed optional, `{}` for the default URL."""
    fields = r.mapping(node, "sources.consensus", [f.value for f in Feed]) or {}
    feeds = {}
    for name, feed_node in fields.items():
        f = r.mapping(feed_node, f"sources.consensus.{name}", ["url"]) or {}
        feeds[name] = FeedSource(url=_url(r, f["url"], f"sources.consensus.{name}.url") if "url" in f else None)
    return ConsensusSources(**feeds)


def sources(r: Reader, node: YNode) -> dict[str, FredSource | BlsSource | YahooSource | ConsensusSources]:
    """The Config fields of `sources:` that are set (fred, bls, yahoo, consensus)."""
    fields = r.mapping(node, "sources", ["fred", "bls", "yahoo", "consensus"]) or {}
    out: dict[str, FredSource | BlsSource | YahooSource | ConsensusSources] = {}
    if "fred" in fields:
        key, src, url = _api_source(r, fields["fred"], "sources.fred")
        out["fred"] = FredSource(api_key=key, api_key_source=src, url=url)
    if "bls" in fields:
        key, src, url = _api_source(r, fields["bls"], "sources.bls")
        out["bls"] = BlsSource(api_key=key, api_key_source=src, url=url)
    if "yahoo" in fields:
        y = r.mapping(fields["yahoo"], "sources.yahoo", ["url"]) or {}
        out["yahoo"] = YahooSource(url=_url(r, y["url"], "sources.yahoo.url") if "url" in y else None)
    if "consensus" in fields:
        out["consensus"] = _consensus_sources(r, fields["consensus"])
    return out


def breakout(r: Reader, fields: dict[str, YNode], what: str, base: BreakoutParams) -> BreakoutParams:
    """Breakout parameters from the keys present in `fields`, the rest from `base`; None marks a bad one."""
    params = {k: getattr(base, k) for k in BREAKOUT_KEYS}
    if "approach_pct" in fields:
        params["approach_pct"] = r.number(fields["approach_pct"], f"{what}.approach_pct", minimum=0, below=50)
    if "buffer_pct" in fields:
        params["buffer_pct"] = r.number(fields["buffer_pct"], f"{what}.buffer_pct", minimum=0, below=50)
    if "fail_within_bars" in fields:
        params["fail_within_bars"] = r.integer(fields["fail_within_bars"], f"{what}.fail_within_bars",
                                               minimum=1, maximum=250)
    return BreakoutParams(**params)


def instrument(r: Reader, iid: str, node: YNode, known_calendars: frozenset[str] | None) -> Instrument | None:
    what = f"instruments.{iid}"
    f = r.mapping(node, what, ["symbol", "name", "calendar"], required=["symbol"])
    if f is None or "symbol" not in f:
        return None
    symbol = r.string(f["symbol"], f"{what}.symbol")
    if symbol is not None and (symbol != symbol.strip() or " " in symbol):
        r.error(f["symbol"].loc, f"{what}.symbol: a ticker symbol has no spaces, got {symbol!r}")
        symbol = None
    name = r.string(f["name"], f"{what}.name") if "name" in f else symbol
    cal = calendar(r, f["calendar"], f"{what}.calendar", known_calendars) if "calendar" in f else None
    if symbol is None or name is None or ("calendar" in f and cal is None):
        return None
    return Instrument(iid, symbol, name, cal, loc=node.loc)


_LEVEL_KEYS = ["instrument", "price", "kind", "side", "since", "bars", *BREAKOUT_KEYS]


def level(r: Reader, lid: str, node: YNode, defaults: BreakoutParams) -> Level | None:
    what = f"levels.{lid}"
    f = r.mapping(node, what, _LEVEL_KEYS, required=["instrument"])
    if f is None or "instrument" not in f:
        return None
    ok = True
    instrument_id = r.string(f["instrument"], f"{what}.instrument")
    kind_name = "price" if "kind" not in f else r.choice(f["kind"], f"{what}.kind", [k.value for k in LevelKind])
    if kind_name is None:
        return None
    kind = LevelKind(kind_name)
    price = since = bars = None
    needs = {LevelKind.PRICE: "price", LevelKind.HIGH_OF: "bars", LevelKind.LOW_OF: "bars",
             LevelKind.RANGE_HIGH: "since", LevelKind.RANGE_LOW: "since"}.get(kind)
    for key in ("price", "since", "bars"):
        if key in f and key != needs:
            article = "an" if kind.value[0] in "aeiou" else "a"
            r.error(f[key].loc, f"{what}.{key}: does not apply to kind {kind.value}"
                    + ("" if kind is LevelKind.PRICE else f" ({article} {kind.value} level follows the market)"))
            ok = False
    if needs and needs not in f:
        r.error(node.loc, f"{what}: kind {kind.value} needs the key {needs!r}")
        ok = False
    if "price" in f and needs == "price":
        ok = (price := r.number(f["price"], f"{what}.price", above=0)) is not None and ok
    if "since" in f and needs == "since":
        ok = (since := r.date(f["since"], f"{what}.since")) is not None and ok
    if "bars" in f and needs == "bars":
        ok = (bars := r.integer(f["bars"], f"{what}.bars", minimum=1, maximum=100_000)) is not None and ok
    side = kind.side or Side.RESISTANCE
    if "side" in f:
        given = r.choice(f["side"], f"{what}.side", [s.value for s in Side])
        if given is None:
            ok = False
        elif kind.side is not None and Side(given) is not kind.side:
            r.error(f["side"].loc, f"{what}.side: kind {kind.value} is a {kind.side.value} level; "
                                   f"side {given} does not apply")
            ok = False
        else:
            side = Side(given)
    params = breakout(r, f, what, defaults)
    if instrument_id is None or not ok or None in vars(params).values():
        return None
    return Level(lid, instrument_id, kind, side, params, price, since, bars, loc=node.loc)


CALENDAR_KEYS = ("fred_release_id", "bls", "dates")  # where a release's dates come from (at least one)


def briefing(r: Reader, node: YNode, what: str) -> Briefing | None:
    """`releases.ID.briefing: {before: DURATION, notify: [CHANNEL...]}`; the channels are checked against the
    config's in load.py (they are parsed after the releases)."""
    f = r.mapping(node, what, ["before", "notify"], required=["before", "notify"])
    if f is None or "before" not in f or "notify" not in f:
        return None
    before = r.duration(f["before"], f"{what}.before", bars=False)
    items = r.string_list(f["notify"], f"{what}.notify")
    notify = tuple(name for name, _loc in items)
    if len(set(notify)) != len(notify):
        r.error(f["notify"].loc, f"{what}.notify: a channel is listed twice")
        return None
    if before is None or not notify:  # a bad channel name was reported by string_list
        return None
    return Briefing(before, notify, loc=node.loc)


def release(r: Reader, rid: str, node: YNode) -> Release | None:
    what = f"releases.{rid}"
    f = r.mapping(node, what, ["fred_release_id", "bls", "time", "dates", "briefing"])
    if f is None:
        return None
    ok = any(key in f for key in CALENDAR_KEYS)
    if not ok:
        r.error(node.loc, f"{what}: needs fred_release_id (FRED's release calendar), bls (the BLS schedule) "
                          "or dates; any of them may be combined")
    fred_id = r.integer(f["fred_release_id"], f"{what}.fred_release_id", minimum=1) \
        if "fred_release_id" in f else None
    title = r.string(f["bls"], f"{what}.bls") if "bls" in f else None
    at = r.clock_time(f["time"], f"{what}.time") if "time" in f else dt.time(8, 30)
    dates = []
    if "dates" in f:
        d = f["dates"]
        if not d.is_list or not d.value:
            r.error(d.loc, f"{what}.dates: expected a list of dates")
        else:
            dates = [r.date(item, f"{what}.dates") for item in d.value]
    brief = briefing(r, f["briefing"], f"{what}.briefing") if "briefing" in f else None
    if not ok or at is None or None in dates or ("fred_release_id" in f and fred_id is None) \
            or ("bls" in f and title is None) or ("briefing" in f and brief is None):
        return None
    if len(set(dates)) != len(dates):
        r.error(f["dates"].loc, f"{what}.dates: a date is listed twice")
        return None
    return Release(rid, at, fred_id, tuple(sorted(dates)), title, brief, loc=node.loc)


def channel(r: Reader, cid: str, node: YNode) -> Channel | None:
    what = f"channels.{cid}"
    items = r.string_list(node, what, expand=False)
    if not items:
        return None
    urls, missing, sources_ = [], [], []
    for text, _loc in items:
        sources_.append(text)
        expanded, unset = r.expand(text)
        missing.extend(unset)
        urls.extend(u for u in re.split(r"[\s,]+", expanded) if u)
    return Channel(cid, " ".join(sources_), tuple(urls), tuple(dict.fromkeys(missing)), loc=node.loc)


def check_channel_urls(r: Reader, ch: Channel) -> None:
    """Each expanded URL must look like an apprise URL (scheme://...); the URL itself is never shown."""
    for i, url in enumerate(ch.urls, 1):
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url):
            r.error(ch.loc, f"channels.{ch.id}: URL #{i} is not an apprise URL (scheme://...)")
