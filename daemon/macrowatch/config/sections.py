"""The config's sections other than rules: settings, sources, instruments, levels, releases, macro, channels."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from pathlib import Path

from macrowatch.config.fields import Reader, describe, suggest
from macrowatch.config.safeio import check_regular
from macrowatch.config.types import (
    BreakoutParams,
    Channel,
    FredSource,
    Ha,
    Health,
    Instrument,
    Level,
    LevelKind,
    Macro,
    Measure,
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


def sources(r: Reader, node: YNode) -> tuple[FredSource, YahooSource]:
    fields = r.mapping(node, "sources", ["fred", "yahoo"]) or {}
    fred, yahoo = FredSource(), YahooSource()
    if "fred" in fields:
        f = r.mapping(fields["fred"], "sources.fred", ["api_key", "url"]) or {}
        key = src = None
        if "api_key" in f and (src := r.string(f["api_key"], "sources.fred.api_key", expand=False)) is not None:
            key, _missing = r.expand(src)  # an unset key means the keyless CSV (warned at load)
        url = _url(r, f["url"], "sources.fred.url") if "url" in f else None
        fred = FredSource(api_key=key or None, api_key_source=src, url=url)
    if "yahoo" in fields:
        y = r.mapping(fields["yahoo"], "sources.yahoo", ["url"]) or {}
        yahoo = YahooSource(url=_url(r, y["url"], "sources.yahoo.url") if "url" in y else None)
    return fred, yahoo


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


def release(r: Reader, rid: str, node: YNode) -> Release | None:
    what = f"releases.{rid}"
    f = r.mapping(node, what, ["fred_release_id", "time", "dates"])
    if f is None:
        return None
    ok = "fred_release_id" in f or "dates" in f
    if not ok:
        r.error(node.loc, f"{what}: needs fred_release_id (FRED's release calendar) or dates, or both")
    fred_id = r.integer(f["fred_release_id"], f"{what}.fred_release_id", minimum=1) \
        if "fred_release_id" in f else None
    at = r.clock_time(f["time"], f"{what}.time") if "time" in f else dt.time(8, 30)
    dates = []
    if "dates" in f:
        d = f["dates"]
        if not d.is_list or not d.value:
            r.error(d.loc, f"{what}.dates: expected a list of dates")
        else:
            dates = [r.date(item, f"{what}.dates") for item in d.value]
    if not ok or at is None or None in dates or ("fred_release_id" in f and fred_id is None):
        return None
    if len(set(dates)) != len(dates):
        r.error(f["dates"].loc, f"{what}.dates: a date is listed twice")
        return None
    return Release(rid, at, fred_id, tuple(sorted(dates)), loc=node.loc)


_MACRO_KEYS = ["series", "release", "measure", "consensus", "beat_by", "higher_is"]


def macro(r: Reader, mid: str, node: YNode, base: Path) -> Macro | None:
    what = f"macro.{mid}"
    f = r.mapping(node, what, _MACRO_KEYS, required=["series", "release"])
    if f is None or "series" not in f or "release" not in f:
        return None
    series = r.string(f["series"], f"{what}.series")
    rel = r.string(f["release"], f"{what}.release")
    measure = r.choice(f["measure"], f"{what}.measure", [m.value for m in Measure]) if "measure" in f \
        else Measure.LEVEL.value
    beat_by = r.number(f["beat_by"], f"{what}.beat_by", minimum=0) if "beat_by" in f else 0.0
    higher_is = r.choice(f["higher_is"], f"{what}.higher_is", ["better", "worse"]) if "higher_is" in f \
        else "better"
    cfile, inline, ok = None, {}, True
    if "consensus" in f:
        c = f["consensus"]
        if isinstance(c.value, str):
            written = base / Path(c.value).expanduser()
            cfile = written.resolve()
            try:
                check_regular(written)  # read later, in full: a device or FIFO is refused now
            except FileNotFoundError:
                r.error(c.loc, f"{what}.consensus: file {c.value!r} not found (looked for {cfile})")
                ok = False
            except OSError as exc:
                r.error(c.loc, f"{what}.consensus: file {c.value!r}: {exc.strerror or exc}")
                ok = False
        elif c.is_map:
            for key, value in c.value.items():
                period = r.month_or_date(YNode(key, c.keys[key]), f"{what}.consensus key")
                number = r.number(value, f"{what}.consensus[{key}]")
                if period is None or number is None:
                    ok = False
                else:
                    inline[period] = number
        else:
            r.error(c.loc, f"{what}.consensus: expected a CSV file path (series,date,consensus) or a "
                           "mapping of reference month to consensus value")
            ok = False
    if None in (series, rel, measure, beat_by, higher_is) or not ok:
        return None
    return Macro(mid, series, rel, Measure(measure), cfile, inline, beat_by, higher_is, loc=node.loc)


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
