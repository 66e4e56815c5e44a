"""Growth inside one run of ``stockflow bench events``: the run cut into tenths.

The run's events, in log order, are cut into ten parts of (about) equal event counts. For each
tenth:

* ``events_per_s``: its events / (``occurred_at`` of its last event - that of the tenth
  before's last; the first tenth starts at the run's first event), the commit span of the
  whole run cut in ten;
* ``ms_per_batch``: its span / the batches that committed in it (a batch's events share one
  ``occurred_at``, so the distinct times count the batches): the worker's whole cycle;
* ``mean_commit_ms``: the worker's own ``inventory_commit_duration_seconds`` over the tenth,
  from the metric samples the bench took while waiting (``None`` when no two samples at most
  two tenths' worth of events apart bracket the tenth: a run too short for the polling
  interval, or a worker too busy to answer the scrape at once).

``last_vs_first`` is the last tenth's events/s over the first's: 1.0 is a flat cost per event,
0.5 an event costing twice as much at the end of the run as at its start.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Final

import msgspec

__all__ = ["PARTS", "GrowthCurve", "MetricSample", "Tenth", "growth_curve"]

PARTS: Final = 10
_WIDEST: Final = 2
"""A tenth's commit ms comes from samples at most this many tenths' worth of events apart."""


class MetricSample(msgspec.Struct, frozen=True, kw_only=True):
    """The worker's commit metric at one moment, with the events committed by then."""

    events: int
    commit_seconds_sum: float
    commit_count: float


class Tenth(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    events: int
    seconds: float
    events_per_s: float
    batches: int
    ms_per_batch: float
    mean_commit_ms: float | None


class GrowthCurve(msgspec.Struct, frozen=True, kw_only=True):
    preloaded_events: int
    """Events in the log before the run began (``--preload``)."""
    tenths: list[Tenth]
    last_vs_first: float | None
    """Last tenth's events/s / first tenth's."""
    commit_ms_last_vs_first: float | None
    """Last tenth's mean commit ms / first tenth's (above 1: commits grew slower)."""


def growth_curve(
    times: Sequence[float],
    samples: Sequence[MetricSample] = (),
    *,
    preloaded: int = 0,
    parts: int = PARTS,
) -> GrowthCurve:
    """The curve of a run whose events committed at *times* (Unix seconds, log order)."""
    n = len(times)
    tenths: list[Tenth] = []
    if n >= parts * 2:
        bounds = [round(k * n / parts) for k in range(parts + 1)]
        for k in range(parts):
            lo, hi = bounds[k], bounds[k + 1]
            start = times[0] if k == 0 else times[lo - 1]
            seconds = times[hi - 1] - start
            batches = len(set(times[lo:hi]))
            tenths.append(
                Tenth(
                    index=k + 1,
                    events=hi - lo,
                    seconds=round(seconds, 3),
                    events_per_s=round((hi - lo) / seconds, 1) if seconds > 0 else 0.0,
                    batches=batches,
                    ms_per_batch=round(seconds / batches * 1000, 2) if batches else 0.0,
                    mean_commit_ms=_commit_ms(samples, lo, hi),
                )
            )
    return GrowthCurve(
        preloaded_events=preloaded,
        tenths=tenths,
        last_vs_first=_ratio(tenths[-1].events_per_s, tenths[0].events_per_s) if tenths else None,
        commit_ms_last_vs_first=(
            _ratio(tenths[-1].mean_commit_ms, tenths[0].mean_commit_ms) if tenths else None
        ),
    )


def _commit_ms(samples: Sequence[MetricSample], lo: int, hi: int) -> float | None:
    """Mean commit ms between the last sample at or before *lo* events and the first at or
    after *hi* (the samples are in time order, so their event counts never decrease)."""
    counts = [s.events for s in samples]
    before = bisect.bisect_right(counts, lo) - 1
    after = bisect.bisect_left(counts, hi)
    if before < 0 or after >= len(samples) or after <= before:
        return None
    first, last = samples[before], samples[after]
    if last.events - first.events > _WIDEST * (hi - lo):
        return None  # the samples are too far apart (a scrape waited): not this tenth's mean
    commits = last.commit_count - first.commit_count
    if commits <= 0:
        return None
    return round((last.commit_seconds_sum - first.commit_seconds_sum) / commits * 1000, 2)


def _ratio(last: float | None, first: float | None) -> float | None:
    if last is None or not first:
        return None
    return round(last / first, 3)
