import asyncio
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockflow_kit.resilience import (
    DEADLINE_HEADER,
    Deadline,
    DeadlineExceededError,
    current_deadline,
    format_deadline_header,
    parse_deadline_header,
)
from stockflow_kit.resilience.testing import ManualClock


def test_the_remaining_time_shrinks_with_the_clock_and_stops_at_zero(clock: ManualClock) -> None:
    deadline = Deadline.after(2.0, clock=clock)

    clock.advance(0.5)
    assert deadline.remaining() == 1.5
    assert not deadline.expired
    clock.advance(2.0)
    assert deadline.remaining() == 0.0
    assert deadline.expired


def test_the_attempt_timeout_is_the_smaller_of_its_own_limit_and_the_remaining_time(
    clock: ManualClock,
) -> None:
    deadline = Deadline(3.0, clock=clock)

    assert deadline.timeout(1.0) == 1.0
    assert deadline.timeout(5.0) == 3.0
    assert deadline.timeout() == 3.0


def test_check_raises_only_once_the_deadline_has_passed(clock: ManualClock) -> None:
    deadline = Deadline(1.0, clock=clock)
    deadline.check()

    clock.advance(1.0)

    with pytest.raises(DeadlineExceededError, match="deadline passed"):
        deadline.check()


def test_a_bound_deadline_is_current_inside_the_block_and_in_tasks_started_there(
    clock: ManualClock,
) -> None:
    deadline = Deadline(5.0, clock=clock)

    async def seen_by_a_task() -> Deadline | None:
        return current_deadline()

    assert current_deadline() is None
    with deadline.bind() as bound:
        assert bound is deadline
        assert current_deadline() is deadline
        assert asyncio.run(seen_by_a_task()) is deadline
    assert current_deadline() is None


def test_binding_a_looser_deadline_keeps_the_tighter_one_current(clock: ManualClock) -> None:
    tight = Deadline(1.0, clock=clock)
    loose = Deadline(10.0, clock=clock)

    with tight.bind(), loose.bind() as bound:
        assert bound is tight
        assert current_deadline() is tight
        with Deadline(0.5, clock=clock).bind() as tighter:
            assert current_deadline() is tighter


@given(st.integers(min_value=0, max_value=10**9))
def test_the_header_round_trips_the_remaining_milliseconds(milliseconds: int) -> None:
    sender, receiver = ManualClock(50.0), ManualClock(7.0)

    received = parse_deadline_header(str(milliseconds), clock=receiver)

    assert received is not None
    assert format_deadline_header(received) == str(milliseconds)
    assert math.isclose(received.remaining(), milliseconds / 1000)
    sent = Deadline(milliseconds / 1000, clock=sender)
    assert abs(int(format_deadline_header(sent)) - milliseconds) <= 1


def test_the_header_rounds_down_and_never_goes_negative(clock: ManualClock) -> None:
    deadline = Deadline(1.2345, clock=clock)
    assert format_deadline_header(deadline) == "1234"

    clock.advance(5)
    assert format_deadline_header(deadline) == "0"


def test_a_server_can_cap_the_budget_a_client_asks_for(clock: ManualClock) -> None:
    deadline = parse_deadline_header("600000", clock=clock, max_seconds=30.0)

    assert deadline is not None
    assert deadline.remaining() == 30.0


@pytest.mark.parametrize("absent", [None, "", "  "])
def test_a_missing_header_gives_no_deadline(absent: str | None) -> None:
    assert parse_deadline_header(absent) is None


@pytest.mark.parametrize("bad", ["-5", "1.5", "12ms", "٣", "1" * 13, "0x10"])
def test_a_malformed_header_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=DEADLINE_HEADER):
        parse_deadline_header(bad)


def test_a_deadline_needs_a_number() -> None:
    with pytest.raises(ValueError, match="NaN"):
        Deadline(math.nan)
