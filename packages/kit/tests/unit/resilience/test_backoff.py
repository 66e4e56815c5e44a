import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockflow_kit.resilience import backoff_delay

attempts = st.integers(min_value=1, max_value=5000)
seconds = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
bases = st.floats(min_value=1.0, max_value=10.0, allow_nan=False)


def _cap(attempt: int, initial: float, maximum: float, base: float) -> float:
    if initial <= 0 or maximum <= 0:
        return 0.0
    try:
        return min(maximum, initial * base ** (attempt - 1))
    except OverflowError:
        return maximum


@given(attempts, seconds, seconds, bases, st.randoms(use_true_random=False))
def test_every_delay_lies_between_zero_and_the_capped_exponential(
    attempt: int, initial: float, maximum: float, base: float, rng: random.Random
) -> None:
    delay = backoff_delay(attempt, initial=initial, maximum=maximum, exp_base=base, rng=rng)

    assert 0.0 <= delay <= _cap(attempt, initial, maximum, base)
    assert delay <= maximum


@given(attempts, seconds, seconds, bases)
def test_the_delay_is_the_cap_times_the_random_fraction(
    attempt: int, initial: float, maximum: float, base: float
) -> None:
    class Fixed:
        def random(self) -> float:
            return 0.5

    delay = backoff_delay(attempt, initial=initial, maximum=maximum, exp_base=base, rng=Fixed())

    assert delay == _cap(attempt, initial, maximum, base) * 0.5


@given(st.integers(min_value=60, max_value=100_000))
def test_huge_attempt_numbers_are_capped_at_the_maximum_instead_of_overflowing(
    attempt: int,
) -> None:
    class Top:
        def random(self) -> float:
            return 1.0

    assert backoff_delay(attempt, initial=0.1, maximum=5.0, exp_base=2, rng=Top()) == 5.0


def test_the_first_delay_is_capped_by_wait_initial() -> None:
    class Top:
        def random(self) -> float:
            return 1.0

    delays = [backoff_delay(n, initial=0.1, maximum=5.0, exp_base=2, rng=Top()) for n in (1, 2, 3)]

    assert delays == [0.1, 0.2, 0.4]


def test_attempts_are_numbered_from_one() -> None:
    with pytest.raises(ValueError, match="numbered from 1"):
        backoff_delay(0, initial=0.1, maximum=5.0, exp_base=2, rng=random.Random(1))
