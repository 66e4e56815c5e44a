import pytest

from stockflow_kit.resilience.testing import ManualClock, is_testing, set_testing


def test_set_testing_switches_the_mode_and_restores_it_as_a_context_manager() -> None:
    set_testing(False)
    assert not is_testing()

    with set_testing(True):
        assert is_testing()
    assert not is_testing()


async def test_the_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(10.0)
    assert clock() == 10.0

    clock.advance(1.5)
    await clock.sleep(2.0)

    assert clock() == 13.5
    assert clock.sleeps == [2.0]
    assert repr(clock) == "<ManualClock now=13.5>"


def test_the_manual_clock_never_goes_back() -> None:
    with pytest.raises(ValueError, match="cannot go back"):
        ManualClock().advance(-1)
