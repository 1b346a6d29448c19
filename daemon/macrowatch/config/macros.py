"""The config's `macro:` section: each macro series, its release, measure, BLS id and consensus (a file, inline
values or feed entries, in the order they are tried)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from macrowatch.config.fields import Reader, close_match, describe
from macrowatch.config.safeio import check_regular
from macrowatch.config.types import BLS_SERIES_ID, ConsensusFeed, Feed, Macro, Measure
from macrowatch.config.yamlsrc import YNode


def bls_series(r: Reader, node: YNode, what: str) -> str | None:
    text = r.string(node, what)
    if text is None or BLS_SERIES_ID.fullmatch(text):
        return text
    hint = f" (did you mean {text.strip().upper()!r}?)" if BLS_SERIES_ID.fullmatch(text.strip().upper()) else ""
    r.error(node.loc, f"{what}: {text!r} is not a BLS series id (5 to 30 upper-case letters and digits, "
                      f"like CES0000000001){hint}")
    return None


_MACRO_KEYS = ["series", "release", "measure", "consensus", "beat_by", "higher_is", "bls_series"]


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
    bls_id = bls_series(r, f["bls_series"], f"{what}.bls_series") if "bls_series" in f else None
    cfile, inline, feeds, ok = None, {}, (), True
    if "consensus" in f:
        cfile, inline, feeds, ok = consensus(r, f["consensus"], f"{what}.consensus", base)
    if None in (series, rel, measure, beat_by, higher_is) or not ok or ("bls_series" in f and bls_id is None):
        return None
    return Macro(mid, series, rel, Measure(measure), cfile, inline, beat_by, higher_is, bls_id, feeds, loc=node.loc)


FEED_KEYS = ["feed", "event", "unit", "country"]
_CONSENSUS_FORMS = ("a CSV file path (series,date,consensus), a mapping of reference month to consensus value or "
                    "a feed entry {feed: forexfactory|nasdaq, event: TITLE, unit: N}")


def consensus(r: Reader, node: YNode, what: str, base: Path
              ) -> tuple[Path | None, dict[dt.date, float], tuple[ConsensusFeed, ...], bool]:
    """`macro.ID.consensus`: one entry, or a list tried in order; (file, inline values, feeds, ok).

    The file or inline entry for the month (at most one) comes first and the feeds after it: the precedence the
    daemon applies, so a list written otherwise is an error rather than an order silently not kept.
    """
    items = node.value if node.is_list else [node]
    if node.is_list and not items:
        r.error(node.loc, f"{what}: must not be an empty list")
        return None, {}, (), False
    cfile, inline, feeds, ok = None, {}, [], True
    table: YNode | None = None  # the file or inline entry
    for n, item in enumerate(items, start=1):
        where = f"{what} #{n}" if node.is_list else what
        if item.is_map and any(key in FEED_KEYS for key in item.value):
            entry = _feed_entry(r, item, where)
            ok = entry is not None and ok
            feeds.extend([entry] if entry else [])
        elif isinstance(item.value, str) or item.is_map:
            if table is not None or feeds:
                why = (f"a second file or inline entry (the first at {table.loc}); one per macro" if table is not None
                       else "a file or inline entry after a feed; it is tried first, so write it first")
                r.error(item.loc, f"{where}: {why}")
                ok = False
                continue
            table = item
            if isinstance(item.value, str):
                cfile = _consensus_file(r, item, what, base)
                ok = cfile is not None and ok
            else:
                values = _inline(r, item, what)
                ok = values is not None and ok
                inline = values or {}
        else:
            also = "" if node.is_list else "; or a list of these"
            r.error(item.loc, f"{where}: expected {_CONSENSUS_FORMS}{also}, got {describe(item.value)}")
            ok = False
    return cfile, inline, tuple(feeds), ok


def _consensus_file(r: Reader, node: YNode, what: str, base: Path) -> Path | None:
    written = base / Path(node.value).expanduser()
    cfile = written.resolve()
    try:
        check_regular(written)  # read later, in full: a device or FIFO is refused now
    except FileNotFoundError:
        r.error(node.loc, f"{what}: file {node.value!r} not found (looked for {cfile})")
        return None
    except OSError as exc:
        r.error(node.loc, f"{what}: file {node.value!r}: {exc.strerror or exc}")
        return None
    return cfile


def _inline(r: Reader, node: YNode, what: str) -> dict[dt.date, float] | None:
    inline, ok = {}, True
    for key, value in node.value.items():
        meant = close_match(key, FEED_KEYS) if isinstance(key, str) else None
        if meant:  # `fed: nasdaq` read as a month would say only that 'fed' is no date
            r.error(node.keys[key], f"{what}: unknown key {key!r} (did you mean {meant!r}?); a feed entry has the "
                                    f"keys {', '.join(FEED_KEYS)}")
            ok = False
            continue
        period = r.month_or_date(YNode(key, node.keys[key]), f"{what} key")
        number = r.number(value, f"{what}[{key}]")
        if period is None or number is None:
            ok = False
        else:
            inline[period] = number
    return inline if ok else None


def _feed_entry(r: Reader, node: YNode, what: str) -> ConsensusFeed | None:
    f = r.mapping(node, what, FEED_KEYS, required=["feed", "event"])
    if f is None or "feed" not in f or "event" not in f:
        return None
    name = r.choice(f["feed"], f"{what}.feed", [feed.value for feed in Feed])
    event = r.string(f["event"], f"{what}.event")
    unit = r.number(f["unit"], f"{what}.unit", above=0) if "unit" in f else 1.0
    country = r.string(f["country"], f"{what}.country") if "country" in f else None
    if name == Feed.FOREXFACTORY and country is not None and not re.fullmatch(r"[A-Za-z]{3}", country.strip()):
        r.error(f["country"].loc, f"{what}.country: ForexFactory names a country by its currency (USD, EUR, "
                                  f"GBP, ...), got {country!r}")
        return None
    if None in (name, event, unit) or ("country" in f and country is None):
        return None
    return ConsensusFeed(Feed(name), event.strip(), unit, country.strip() if country else None, loc=node.loc)
