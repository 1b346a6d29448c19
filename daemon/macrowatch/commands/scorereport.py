"""`macrowatch replay --score --report DIR`: a PNG per rule (its returns per horizon against the baseline's
distribution) and an index.html that shows them under the summary table.

matplotlib is imported inside `draw` only, and its Agg canvas used directly, as notify/chart.py does.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np

from macrowatch.engine.scoring import RuleScore

RULE_COLOR = "#d62728"
BASELINE_COLOR = "#9e9e9e"


def write(folder: Path, rules: Sequence[RuleScore], horizons: tuple[int, ...], table: list[list[str]],
          caption: str) -> list[Path]:
    """Write RULE.png per scorable rule and index.html (`table`: the summary's rows, the header first) into
    `folder` (made if missing); the paths written, index.html last."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for r in rules:
        if r.instrument:
            path = folder / f"{r.rule}.png"
            path.write_bytes(draw(r, horizons))
            written.append(path)
    index = folder / "index.html"
    index.write_text(page(rules, table, caption), encoding="utf-8")
    return [*written, index]


def draw(r: RuleScore, horizons: tuple[int, ...], dpi: int = 100) -> bytes:
    """One panel per horizon: the baseline's returns as a histogram (density), the rule's as ticks on it, and
    both means as vertical lines; returns in %."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.6 * len(horizons), 3.4), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(horizons), squeeze=False)[0]
    for col, (ax, s) in enumerate(zip(axes, r.summaries, strict=True)):
        base = 100 * r.baseline[:, col][~np.isnan(r.baseline[:, col])]
        mine = 100 * r.returns[:, col][~np.isnan(r.returns[:, col])]
        if len(base):
            ax.hist(base, bins=40, density=True, color=BASELINE_COLOR, alpha=0.6, label="every session")
            ax.axvline(float(base.mean()), color=BASELINE_COLOR, linestyle="--", linewidth=1.2, label="its mean")
        if len(mine):
            ax.plot(mine, np.zeros(len(mine)), "|", color=RULE_COLOR, markersize=22, markeredgewidth=1.6,
                    label="each alert", clip_on=False)
            ax.axvline(float(mine.mean()), color=RULE_COLOR, linewidth=1.6, label="their mean")
        ax.axvline(0.0, color="black", linewidth=0.6)
        ax.set_title(f"{s.horizon} session{'s' if s.horizon != 1 else ''}: {s.n} alert{'s' if s.n != 1 else ''}",
                     fontsize=10)
        ax.set_xlabel("return, %")
        ax.set_yticks([])
        if col == 0:
            ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{r.rule}: {r.instrument} {r.direction.value}", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def page(rules: Sequence[RuleScore], rows: list[list[str]], caption: str) -> str:
    """index.html: the summary table, then each rule's picture; every value escaped."""
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in rows[0])
    body = "\n".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    pictures = "\n".join(f'<h2>{e(r.rule)}</h2>\n<img src="{e(quote(r.rule + ".png"))}" alt="{e(r.rule)}">'
                         for r in rules if r.instrument)
    skipped = "".join(f"<li>{e(r.rule)}: not scored: {e(r.why)}</li>" for r in rules if not r.instrument)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>macrowatch scores</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px;text-align:right}} td:first-child,td:nth-child(2)
{{text-align:left}} table{{border-collapse:collapse}} tr:nth-child(even){{background:#f2f2f2}}</style></head>
<body>
<h1>Which alerts were worth acting on</h1>
<p>{e(caption[:1].upper() + caption[1:])}. No costs; the horizons of alerts close together overlap.</p>
<table>
<tr>{head}</tr>
{body}
</table>
{f"<ul>{skipped}</ul>" if skipped else ""}
{pictures}
</body></html>
"""
