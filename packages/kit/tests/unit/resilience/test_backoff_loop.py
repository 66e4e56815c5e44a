"""``Backoff``: the jittered delay of hand-written retry loops, with no real sleeping."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockflow_kit.resilience import Backoff
from stockflow_kit.resilience.testing import ManualClock, set_testing


class Fixed:
    """A random source that always answers the same fraction."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction

    def random(self) -> float:
        return self.fraction


async def test_each_wait_sleeps_the_full_jitter_delay_and_counts_an_attempt() -> None:
    clock = ManualClock()
    backoff = Backoff(base=0.1, cap=5.0, sleep=clock.sleep, rng=Fixed(1.0))

    slept = [await backoff.wait() for _ in range(8)]

    assert slept == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])
    assert clock.sleeps == slept
    assert backoff.attempts == 8


async def test_the_delay_is_the_cap_times_the_random_fraction() -> None:
    clock = ManualClock()
    backoff = Backoff(base=1.0, cap=60.0, exp_base=3.0, sleep=clock.sleep, rng=Fixed(0.25))

    assert [await backoff.wait() for _ in range(3)] == [0.25, 0.75, 2.25]


async def test_reset_starts_again_from_the_first_delay() -> None:
    clock = ManualClock()
    backoff = Backoff(base=0.5, cap=5.0, sleep=clock.sleep, rng=Fixed(1.0))
    for _ in range(4):
        await backoff.wait()

    backoff.reset()

    assert backoff.attempts == 0
    assert await backoff.wait() == 0.5


async def test_the_test_mode_of_retries_does_not_turn_the_backoff_off() -> None:
    clock = ManualClock()
    backoff = Backoff(base=0.1, sleep=clock.sleep, rng=Fixed(1.0))

    with set_testing(True):
        delay = await backoff.wait()

    assert delay == 0.1


@settings(deadline=None)  # up to 200 attempts per example: a loaded machine is not a failure
@given(
    attempts=st.integers(min_value=1, max_value=200),
    base=st.floats(min_value=0.0, max_value=100.0),
    cap=st.floats(min_value=0.0, max_value=1000.0),
    exp_base=st.floats(min_value=1.0, max_value=10.0),
    rng=st.randoms(use_true_random=False),
)
def test_every_delay_lies_between_zero_and_the_capped_exponential(
    attempts: int, base: float, cap: float, exp_base: float, rng: random.Random
) -> None:
    backoff = Backoff(base=base, cap=cap, exp_base=exp_base, rng=rng)

    for n in range(1, attempts + 1):
        ceiling = min(cap, base * exp_base ** min(n - 1, 1000)) if base > 0 and cap > 0 else 0.0
        assert 0.0 <= backoff.next_delay() <= ceiling
    assert backoff.attempts == attempts


@pytest.mark.parametrize(
    ("base", "cap", "exp_base"), [(-0.1, 5.0, 2.0), (0.1, -1.0, 2.0), (0.1, 5.0, 0.5)]
)
def test_impossible_settings_are_refused(base: float, cap: float, exp_base: float) -> None:
    with pytest.raises(ValueError, match="exp_base"):
        Backoff(base=base, cap=cap, exp_base=exp_base)
