"""``RecentIds``: the writer's memory of the message ids it committed, oldest evicted first."""

from __future__ import annotations

from stockflow.inventory.service_layer.pipelining import RecentIds


def test_it_keeps_the_newest_ids_up_to_its_capacity() -> None:
    recent = RecentIds(5)
    recent.add_all(["a", "b", "c"])
    recent.add_all(["d", "e", "f", "g"])

    assert len(recent) == 5
    assert [i for i in "abcdefg" if i in recent] == ["c", "d", "e", "f", "g"]


def test_an_id_added_again_keeps_its_first_place_in_line() -> None:
    recent = RecentIds(3)
    recent.add_all(["a", "b", "c"])
    recent.add_all(["a", "d"])  # "a" is not refreshed: it goes first

    assert [i for i in "abcd" if i in recent] == ["b", "c", "d"]


def test_a_batch_larger_than_the_capacity_leaves_its_last_ids() -> None:
    recent = RecentIds(2)
    recent.add_all(["a", "b", "c", "d"])
    assert [i for i in "abcd" if i in recent] == ["c", "d"]
