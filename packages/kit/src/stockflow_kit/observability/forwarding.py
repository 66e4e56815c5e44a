"""Metrics of a helper process shown on its parent's ``/metrics``.

A service that runs part of its work in a child process (a feeder, a worker) has two
registries: its own and the child's. The child sends its exposition text now and then
(:func:`prometheus_client.generate_latest`); the parent keeps the latest in a
:class:`ForwardedMetrics` and serves a :class:`MergedMetrics` of both, so one scrape sees
everything. Families with the same name are merged into one (a Prometheus exposition may not
name a family twice), the child's samples told apart by a label (``process="feeder"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = ["Collectable", "ForwardedMetrics", "MergedMetrics"]


class Collectable(Protocol):
    """What an exposition reads: a registry, a collector, or a view of several."""

    def collect(self) -> Iterable[Metric]: ...


class ForwardedMetrics:
    """The latest metrics another process sent, with *labels* added to every sample.

    Args:
        labels: Added to each sample (they must not clash with the child's own labels).
    """

    def __init__(self, labels: Mapping[str, str]) -> None:
        self.labels = dict(labels)
        self._text = ""

    def update(self, text: str) -> None:
        """Replace what is shown with *text* (Prometheus text format)."""
        self._text = text

    def clear(self) -> None:
        """Show nothing (the process is gone; its counters restart with it)."""
        self._text = ""

    def collect(self) -> Iterator[Metric]:
        if not self._text:
            return
        for family in text_string_to_metric_families(self._text):
            family.samples = [
                Sample(s.name, {**s.labels, **self.labels}, s.value, s.timestamp, s.exemplar)
                for s in family.samples
            ]
            yield family


class MergedMetrics:
    """Several sources exposed as one: same-named families merged (see the module docstring)."""

    def __init__(self, *sources: Collectable) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for source in self.sources:
            for family in source.collect():
                known = merged.get(family.name)
                if known is None:
                    copy = Metric(family.name, family.documentation, family.type, family.unit)
                    copy.samples = list(family.samples)
                    merged[family.name] = copy
                elif known.type == family.type:
                    known.samples.extend(family.samples)
        yield from merged.values()
