"""A small PNG of a run's growth curve (``stockflow bench events --plots DIR``), with matplotlib.

Two bar panels over the tenths of the run: events/s, and the worker's mean commit ms (or, when
the metric samples did not bracket a tenth, the whole batch cycle from the log, labelled so).
"""

from __future__ import annotations

from pathlib import Path

from stockflow.bench.growth import GrowthCurve

__all__ = ["write_growth_png"]


def write_growth_png(curve: GrowthCurve, path: Path, *, title: str) -> Path:
    """Write the plot of *curve* to *path* (parents created); return *path*."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    tenths = [t.index for t in curve.tenths]  # 1-based
    rates = [t.events_per_s for t in curve.tenths]
    commits = [t.mean_commit_ms for t in curve.tenths]
    if all(c is not None for c in commits):
        lower = [float(c or 0.0) for c in commits]
        lower_label = "worker mean commit ms"
    else:
        lower = [t.ms_per_batch for t in curve.tenths]
        lower_label = "ms per batch (log)"
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7.2, 5.0), sharex=True)
    try:
        figure.suptitle(title, fontsize=10)
        top.bar(tenths, rates, color="#3465a4")
        top.set_ylabel("events/s")
        bottom.bar(tenths, lower, color="#cc0000")
        bottom.set_ylabel(lower_label)
        bottom.set_xlabel(f"tenth of the run (after {curve.preloaded_events:,} events of history)")
        bottom.set_xticks(tenths)
        for axes in (top, bottom):
            axes.grid(axis="y", color="#d3d3d3")
            axes.set_axisbelow(True)
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=100)
    finally:
        plt.close(figure)
    return path
