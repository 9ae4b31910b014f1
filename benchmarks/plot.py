"""``--plot PATH``: a PNG of each measured path next to its ceiling, and the ratio between them.

Drawn with matplotlib's Agg backend (no display needed). The PNG's text chunks say what is in it
(``Scenarios``, ``Paths``, ``Title``), so a script can check a chart without looking at the picture.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

from benchmarks import Result

__all__ = ["plot_results"]


def plot_results(
    results: Sequence[Result], path: str | Path, *, title: str = "minos.networks benchmarks"
) -> Path:
    """Write the chart of ``results`` to ``path`` as a PNG and return the path.

    Left: messages per second of each path and of its ceiling, on a log scale. Right: the ratio of the
    two (1.0 = the path costs nothing over its ceiling).

    Raises:
        ValueError: ``results`` is empty.
    """
    if not results:
        raise ValueError("no results to plot; run at least one scenario")
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    from matplotlib import pyplot

    labels = [textwrap.fill(f"{result.scenario}: {result.path}", 46, max_lines=3) for result in results]
    rows = list(range(len(results)))[::-1]  # the first result on top
    height = 0.38
    figure, (rates, ratios) = pyplot.subplots(
        1, 2, figsize=(13, 1.2 + 0.62 * len(results)), gridspec_kw={"width_ratios": [3, 2]}, sharey=True
    )
    try:
        rates.barh([row + height / 2 for row in rows], [r.ceiling_msgs_per_s for r in results], height,
                   label="ceiling, or the peer (same run)", color="#b8c4d6")  # fmt: skip
        rates.barh([row - height / 2 for row in rows], [r.msgs_per_s for r in results], height,
                   label="minos.networks", color="#2f6db5")  # fmt: skip
        rates.set_xscale("log")
        lowest = min(min(r.msgs_per_s, r.ceiling_msgs_per_s) for r in results)
        rates.set_xlim(left=10 ** math.floor(math.log10(max(lowest, 1.0))))  # bars start a decade below
        rates.set_xlabel("messages (or requests) per second, log scale")
        rates.set_yticks(rows, labels, fontsize=8)
        rates.legend(loc="lower left", bbox_to_anchor=(0, 1), ncols=2, fontsize=8, frameon=False)
        rates.grid(axis="x", which="both", alpha=0.3)
        ratios.barh(rows, [result.ratio for result in results], 0.6, color="#2f6db5")
        ratios.axvline(1.0, color="#888888", linestyle="--", linewidth=1)
        for row, result in zip(rows, results, strict=True):
            ratios.annotate(f"{result.ratio:.2f}", (result.ratio, row), xytext=(3, 0),
                            textcoords="offset points", va="center", fontsize=8)  # fmt: skip
        ratios.set_xlim(0, max(1.1, max(result.ratio for result in results) * 1.15))
        ratios.set_xlabel("ratio of the ceiling (1.0 = no overhead); peer-*: ours / peer")
        figure.suptitle(title)
        figure.tight_layout()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        scenarios = list(dict.fromkeys(result.scenario for result in results))
        figure.savefig(
            target,
            format="png",
            dpi=100,
            metadata={
                "Title": title,
                "Scenarios": ", ".join(scenarios),
                "Paths": "\n".join(f"{result.scenario}: {result.path}" for result in results),
                "Description": "each path's throughput next to its ceiling measured in the same run, and the ratio",
            },
        )
    finally:
        pyplot.close(figure)
    return target
