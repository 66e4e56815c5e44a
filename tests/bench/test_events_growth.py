"""The growth curve of ``stockflow bench events``: the run cut into tenths, and its PNG."""

from __future__ import annotations

from pathlib import Path

from stockflow.bench.growth import MetricSample, growth_curve
from stockflow.bench.growth_plot import write_growth_png


def _times(batches: list[tuple[int, float]]) -> list[float]:
    """Commit times of a log made of (events, commit time) batches."""
    return [at for count, at in batches for _ in range(count)]


def test_a_run_whose_batches_slow_down_shows_it_in_its_last_tenth() -> None:
    # 20 batches of 100 events: 0.1 s apart in the first half, 0.2 s in the second.
    moments = [0.1 * i for i in range(1, 11)] + [1.0 + 0.2 * i for i in range(1, 11)]
    curve = growth_curve(_times([(100, at) for at in moments]), preloaded=7)

    assert [t.events for t in curve.tenths] == [200] * 10
    assert curve.tenths[-1].events_per_s == 500.0  # two batches of 100 in 0.4 s
    assert curve.tenths[-1].batches == 2
    assert curve.tenths[-1].ms_per_batch == 200.0
    # The first tenth starts at its first commit (0.1 s): 200 events by 0.2 s.
    assert curve.tenths[0].events_per_s == 2000.0
    assert curve.last_vs_first == 0.25
    assert curve.preloaded_events == 7
    assert curve.commit_ms_last_vs_first is None  # no metric samples given


def test_commit_ms_per_tenth_comes_from_the_samples_that_bracket_it() -> None:
    times = _times([(10, float(i)) for i in range(1, 21)])  # 200 events, 20 batches
    # A sample every 20 events (a tenth): 100 ms per commit, then 300 ms from 160 events on.
    samples = [
        MetricSample(
            events=e,
            commit_seconds_sum=0.1 * min(e, 160) / 10 + 0.3 * max(e - 160, 0) / 10,
            commit_count=e / 10,
        )
        for e in range(0, 201, 20)
    ]
    curve = growth_curve(times, samples)

    assert curve.tenths[0].mean_commit_ms == 100.0
    assert curve.tenths[-1].mean_commit_ms == 300.0
    assert curve.commit_ms_last_vs_first == 3.0
    # Samples too far apart to tell one tenth from the next give no figure.
    sparse = growth_curve(times, [samples[0], samples[5], samples[10]])
    assert [t.mean_commit_ms for t in sparse.tenths] == [None] * 10


def test_a_run_too_short_to_cut_has_no_tenths() -> None:
    curve = growth_curve([1.0] * 15)
    assert (curve.tenths, curve.last_vs_first) == ([], None)


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    curve = growth_curve(_times([(100, 0.1 * i) for i in range(1, 21)]))
    path = write_growth_png(curve, tmp_path / "plots" / "growth.png", title="a test")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
