"""A small PNG of a run's growth curve (``stockflow bench events --plots DIR``), with Pillow.

Two bar panels over the tenths of the run: events/s, and the worker's mean commit ms (or, when
the metric samples did not bracket a tenth, the whole batch cycle from the log, labelled so).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from stockflow.bench.growth import GrowthCurve

if TYPE_CHECKING:
    from PIL.ImageDraw import ImageDraw
    from PIL.ImageFont import FreeTypeFont, ImageFont

__all__ = ["write_growth_png"]

_WIDTH: Final = 720
_PANEL: Final = 220
_MARGIN: Final = 48
_BAR: Final = (52, 101, 164)
_INK: Final = (30, 30, 30)
_GRID: Final = (210, 210, 210)


def write_growth_png(curve: GrowthCurve, path: Path, *, title: str) -> Path:
    """Write the plot of *curve* to *path* (parents created); return *path*."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (_WIDTH, 2 * _PANEL + 2 * _MARGIN), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((_MARGIN, 10), title, fill=_INK, font=font)
    rates = [t.events_per_s for t in curve.tenths]
    commits = [t.mean_commit_ms for t in curve.tenths]
    if all(c is not None for c in commits):
        lower = [float(c or 0.0) for c in commits]
        lower_label = "worker mean commit ms per tenth"
    else:
        lower = [t.ms_per_batch for t in curve.tenths]
        lower_label = "ms per batch (log) per tenth"
    _panel(draw, font, rates, top=_MARGIN - 10, label="events/s per tenth of the run")
    _panel(draw, font, lower, top=_MARGIN + _PANEL, label=lower_label)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


def _panel(
    draw: ImageDraw,
    font: ImageFont | FreeTypeFont,
    values: list[float],
    *,
    top: int,
    label: str,
) -> None:
    left, right = _MARGIN, _WIDTH - _MARGIN // 2
    bottom = top + _PANEL - 30
    height = bottom - (top + 24)
    draw.text((left, top + 6), label, fill=_INK, font=font)
    draw.line([(left, bottom), (right, bottom)], fill=_INK)
    peak = max(values, default=0.0) or 1.0
    for fraction in (0.5, 1.0):
        y = bottom - int(height * fraction)
        draw.line([(left, y), (right, y)], fill=_GRID)
        draw.text((4, y - 6), f"{peak * fraction:,.0f}", fill=_INK, font=font)
    slot = (right - left) / max(len(values), 1)
    for i, value in enumerate(values):
        x0 = left + int(i * slot + slot * 0.15)
        x1 = left + int((i + 1) * slot - slot * 0.15)
        y = bottom - int(height * value / peak)
        draw.rectangle([(x0, y), (x1, bottom)], fill=_BAR)
        draw.text((x0, bottom + 4), str(i + 1), fill=_INK, font=font)
        draw.text((x0, y - 12), f"{value:,.0f}", fill=_INK, font=font)
