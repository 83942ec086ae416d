"""The comparison charts: one PNG per table, each row's ratio as a bar against its target.

A ratio chart reads faster than a table of 28 rows: the bar is ours over
theirs on a log scale (so 0.5x and 2x are the same distance from 1x), green
where the row's target is met, red where it is missed, grey where the row
has no target.  ``make bench`` draws them into ``bench/charts/`` next to the
README's tables; ``python -m bench.chart`` redraws them from the last results.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

CHARTS = Path(__file__).resolve().parent / "charts"
RESULTS = Path(__file__).resolve().parent / "results"

_MET, _MISSED, _NONE = "#2e7d32", "#c62828", "#9e9e9e"


def _short(label: str, width: int = 84) -> str:
    """A row label cut to fit the chart's margin."""
    return label if len(label) <= width else label[: width - 1] + "…"


def _target(row: dict[str, Any]) -> float | None:
    """The target ratio of a results row (``{"op": "<=", "ratio": 0.5}``), if it has one."""
    target = row.get("target")
    return float(target["ratio"]) if isinstance(target, dict) and target.get("ratio") else None


def ratio_chart(rows: list[dict[str, Any]], title: str, ours: str, theirs: str, path: Path) -> Path | None:
    """Draw ``rows`` (the ``benchmarks`` list of a results JSON) to ``path``; None when no row has a ratio."""
    drawn = [r for r in rows if isinstance(r.get("ratio"), int | float) and r["ratio"] > 0]
    if not drawn:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display here; only files are written
    import matplotlib.pyplot as plt

    drawn.reverse()  # the first row of the table at the top
    targets = [_target(r) for r in drawn]
    labels = [_short(str(r["label"])) for r in drawn]
    ratios = [float(r["ratio"]) for r in drawn]
    colours = [_NONE if r.get("met") is None else _MET if r["met"] else _MISSED for r in drawn]
    low = min([*ratios, *(t for t in targets if t)])
    high = max([*ratios, *(t for t in targets if t)])
    fig, ax = plt.subplots(figsize=(13, 0.34 * len(drawn) + 1.4))
    y = list(range(len(drawn)))
    ax.barh(y, [math.log2(v) for v in ratios], color=colours, height=0.6)
    for i, target in enumerate(targets):
        if target:
            ax.plot([math.log2(target)] * 2, [i - 0.4, i + 0.4], color="black", linewidth=1.5)
        ax.text(math.log2(ratios[i]), i, f" {ratios[i]:.2f}x", va="center", ha="left" if ratios[i] >= 1 else "right")
    ax.axvline(0, color="black", linewidth=0.8)
    lo, hi = math.floor(math.log2(low) - 0.5), math.ceil(math.log2(high) + 0.5)
    ax.set_xlim(lo, hi)
    ticks = list(range(lo, hi + 1))
    ax.set_xticks(ticks, [f"{2.0**t:g}x" for t in ticks])
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel(f"{ours} / {theirs} (log scale; left of 1x is {ours} faster or smaller, except throughput)")
    ax.set_title(f"{title} — bars: green met, red missed, grey no target; black tick: target", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw(results: Path = RESULTS, charts: Path = CHARTS) -> list[Path]:
    """Redraw every chart whose results file exists; the paths written."""
    written: list[Path] = []
    for stem, title, ours, theirs in (
        ("latest", "pycontainerd against containerd", "pycontainerd", "containerd"),
        ("docker", "pydockerd against dockerd", "pydockerd", "dockerd"),
    ):
        source = results / f"{stem}.json"
        if not source.exists():
            continue
        rows = json.loads(source.read_text())["benchmarks"]
        done = ratio_chart(rows, title, ours, theirs, charts / f"{ours}.png")
        if done:
            written.append(done)
    return written


if __name__ == "__main__":
    for p in draw():
        print(p)
    sys.exit(0)
