"""Paced publishing: a token bucket that keeps the rate and bounds catch-up bursts."""

from __future__ import annotations

import pytest

from stockflow.bench.pacing import TokenBucket, batch_for_rate
from stockflow_kit.resilience.testing import ManualClock


async def test_the_bucket_hands_out_the_rate_and_starts_with_one_batch() -> None:
    clock = ManualClock()
    bucket = TokenBucket(1000.0, 10, clock=clock, sleep=clock.sleep)
    for _ in range(11):
        await bucket.take(10)
    assert clock() == pytest.approx(0.1)  # the first batch at once, then 10 ms each


async def test_after_a_stall_it_catches_up_by_at_most_one_batch() -> None:
    clock = ManualClock()
    bucket = TokenBucket(100.0, 5, clock=clock, sleep=clock.sleep)
    await bucket.take(5)
    clock.advance(60.0)  # the publisher was stuck for a minute
    await bucket.take(5)
    assert clock.sleeps == []
    await bucket.take(5)
    assert clock.sleeps == [pytest.approx(0.05)]


async def test_more_than_a_batch_at_once_is_refused() -> None:
    bucket = TokenBucket(100.0, 5)
    with pytest.raises(ValueError, match="0 to 5"):
        await bucket.take(6)


def test_batches_are_about_a_hundredth_of_a_second_of_the_rate() -> None:
    assert [batch_for_rate(r, most=1000) for r in (10, 5_000, 1e6)] == [1, 50, 1000]


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(0.0, 1)
