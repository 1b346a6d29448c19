"""A chart of an instrument's recent bars with its levels, breakouts, failures and releases, as PNG bytes.

    chart = draw(bars, levels, releases, alert, name="S&P 500")
    chart.png            # bytes to attach
    chart.levels[0].row  # where the level's line is, for tests and for anyone checking the picture

The level states are recomputed over the bars with the engine's own LevelMachine, so the markers are
the breakouts and failures the rules saw. matplotlib is imported inside `draw` only: it costs about
0.35 s and 30 MB, and most processes that import this package never draw (the Agg canvas is used
directly; pyplot and its global backend are never touched).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from macrowatch.config.types import Level, LevelState
from macrowatch.engine.breakout import LevelMachine
from macrowatch.model import Alert, Bar

SHOW_BARS = 120
CLOSE_COLOR = "#1f77b4"
RANGE_COLOR = "#c7c7c7"
BREAKOUT_COLOR = "#2ca02c"
FAILED_COLOR = "#ff7f0e"
RELEASE_COLOR = "#7f7f7f"
LEVEL_COLORS = ("#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
BREAK_STATES = frozenset({LevelState.BREAKOUT, LevelState.BREAKDOWN})


@dataclass(frozen=True)
class Trace:
    """One level over the bars: the level each bar was judged against and the state each bar entered."""

    prices: tuple[float | None, ...]
    entered: tuple[LevelState | None, ...]


@dataclass(frozen=True)
class LevelLine:
    """A level as drawn: its colour, its price per shown bar and the pixel row of its last point."""

    id: str
    color: str
    prices: tuple[float | None, ...]
    row: int | None      # pixel row from the top at the last shown bar; None when the level has no value there


@dataclass(frozen=True)
class Chart:
    """The PNG and what was drawn on it."""

    png: bytes
    width: int
    height: int
    levels: tuple[LevelLine, ...]
    breakouts: tuple[dt.date, ...]    # sessions of the breakout (breakdown) bars shown
    failures: tuple[dt.date, ...]     # sessions of the failed bars shown
    releases: tuple[dt.datetime, ...]  # release times drawn
    columns: tuple[int, int]          # the pixel columns of the first and the last shown bar


def trace(bars: Sequence[Bar], level: Level) -> Trace:
    """Run the level's state machine over the bars, from a fresh start."""
    machine = LevelMachine(level)
    prices, entered = [], []
    for bar in bars:
        prices.append(machine.price)  # before the close: what this bar is judged against (frozen in a breakout)
        entered.append(machine.close(bar.session, bar.close))
    return Trace(tuple(prices), tuple(entered))


def draw(bars: Sequence[Bar], levels: Iterable[Level], releases: Iterable[dt.datetime] = (),
         alert: Alert | None = None, *, name: str | None = None, show: int = SHOW_BARS,
         size: tuple[float, float] = (9.0, 4.8), dpi: int = 100) -> Chart:
    """Draw the last `show` bars (states computed over all of them) with levels, markers and releases."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not bars:
        raise ValueError("no bars to chart")
    traces = {lv.id: trace(bars, lv) for lv in levels}
    start = max(0, len(bars) - show)
    shown = bars[start:]
    xs = list(range(len(shown)))
    fig = Figure(figsize=size, dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _bars(ax, shown, xs)
    lines = _levels(ax, traces, start, xs)
    breakouts, failures = _markers(ax, shown, traces, start)
    drawn = _releases(ax, shown, releases)
    _axes(ax, shown, xs, _title(shown, alert, name))
    fig.tight_layout()
    canvas.draw()
    height = int(fig.bbox.height)
    rows = tuple(_pixel_row(ax, height, xs[-1], line) for line in lines)
    left, right = (int(round(ax.transData.transform((x, 0))[0])) for x in (xs[0], xs[-1]))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return Chart(buf.getvalue(), int(fig.bbox.width), height,
                 tuple(LevelLine(ln.id, ln.color, ln.prices, r) for ln, r in zip(lines, rows, strict=True)),
                 breakouts, failures, drawn, (left, right))


def _bars(ax: Any, shown: Sequence[Bar], xs: list[int]) -> None:
    ax.vlines(xs, [b.low for b in shown], [b.high for b in shown], color=RANGE_COLOR, linewidth=1.0, zorder=1)
    ax.plot(xs, [b.close for b in shown], color=CLOSE_COLOR, linewidth=1.4, label="close", zorder=3)


def _levels(ax: Any, traces: Mapping[str, Trace], start: int, xs: list[int]) -> list[LevelLine]:
    lines = []
    for i, (lid, tr) in enumerate(traces.items()):
        prices = tr.prices[start:]
        color = LEVEL_COLORS[i % len(LEVEL_COLORS)]
        ys = [float("nan") if p is None else p for p in prices]
        ax.plot(xs, ys, color=color, linewidth=2.0, drawstyle="steps-mid", label=lid, zorder=2)
        lines.append(LevelLine(lid, color, tuple(prices), None))
    return lines


def _markers(ax: Any, shown: Sequence[Bar], traces: Mapping[str, Trace],
             start: int) -> tuple[tuple[dt.date, ...], tuple[dt.date, ...]]:
    up, failed = set(), set()
    for tr in traces.values():
        for i, state in enumerate(tr.entered[start:]):
            if state in BREAK_STATES:
                up.add(i)
            elif state is LevelState.FAILED:
                failed.add(i)
    for idx, color, marker, label in ((up, BREAKOUT_COLOR, "^", "breakout"), (failed, FAILED_COLOR, "X", "failed")):
        if idx:
            ax.scatter(sorted(idx), [shown[i].close for i in sorted(idx)], color=color, marker=marker, s=70,
                       zorder=4, label=label)
    return tuple(shown[i].session for i in sorted(up)), tuple(shown[i].session for i in sorted(failed))


def _releases(ax: Any, shown: Sequence[Bar], releases: Iterable[dt.datetime]) -> tuple[dt.datetime, ...]:
    """Vertical lines half a bar before the first close at or after each release (within the shown bars)."""
    drawn = []
    for t in sorted(set(releases)):
        i = next((i for i, b in enumerate(shown) if b.at >= t), None)
        if i is None or (i == 0 and t.astimezone(shown[0].at.tzinfo).date() != shown[0].session):
            continue  # after the last bar, or before the first shown session
        ax.axvline(i - 0.5, color=RELEASE_COLOR, linestyle="--", linewidth=1.0, zorder=1,
                   label="release" if not drawn else None)
        drawn.append(t)
    return tuple(drawn)


def _axes(ax: Any, shown: Sequence[Bar], xs: list[int], title: str) -> None:
    step = max(1, len(xs) // 6)
    ticks = xs[::step]
    ax.set_xticks(ticks, [shown[i].session.isoformat() for i in ticks], fontsize=8)
    ax.set_xlim(-1, len(xs))
    ax.grid(True, color="#eeeeee", linewidth=0.6)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=7, framealpha=0.8)


def _title(shown: Sequence[Bar], alert: Alert | None, name: str | None) -> str:
    head = name or "chart"
    period = f"{shown[0].session} to {shown[-1].session}"
    if alert is None:
        return f"{head}, {period}"
    return f"{head}: {alert.rule} [{alert.severity}] at {alert.at:%Y-%m-%d}, {period}"


def _pixel_row(ax: Any, height: int, x: int, line: LevelLine) -> int | None:
    price = line.prices[x] if x < len(line.prices) else None
    if price is None:
        return None
    return height - int(round(ax.transData.transform((x, price))[1]))


# ---- charts for alerts --------------------------------------------------------------------------------

def release_times(alert: Alert) -> list[dt.datetime]:
    """The release times an alert's evidence names (its `released_at` values)."""
    out = []
    for entry in alert.evidence.values():
        value = entry.get("released_at") if isinstance(entry, Mapping) else None
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                continue
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            out.append(value)
    return out


def chart_source(config: Any, bars_for: Callable[[str], Sequence[Bar]],
                 releases_for: Callable[[Alert], Iterable[dt.datetime]] | None = None,
                 show: int = SHOW_BARS) -> Callable[[Alert], bytes | None]:
    """A `chart_for(alert)` for the Dispatcher: the PNG of the alert's `chart:` instrument, or None.

    `bars_for(instrument)` gives its bars (all that are known: dynamic levels need the history);
    `releases_for(alert)` adds release times to the ones the alert's evidence names.
    """
    def chart_for(alert: Alert) -> bytes | None:
        inst = config.instruments.get(alert.chart) if alert.chart else None
        if inst is None:
            return None
        bars = [b for b in bars_for(inst.id) if b.at <= alert.at]
        if not bars:
            return None
        levels = [lv for lv in config.levels.values() if lv.instrument == inst.id]
        times = set(release_times(alert)) | set(releases_for(alert) if releases_for else ())
        return draw(bars, levels, times, alert, name=inst.name, show=show).png

    return chart_for
