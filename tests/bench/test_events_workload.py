"""The events benchmark's workload: deterministic, realistic in mix, sized by events."""

from __future__ import annotations

import itertools
from collections import Counter

from stockflow.bench.workload import ReferenceModel, generate_workload
from stockflow.contracts.inventory_commands import COMMAND_TYPES


def test_the_same_seed_gives_the_same_envelopes_and_another_seed_does_not() -> None:
    first = generate_workload(events=3000, skus=50, seed=7)
    again = generate_workload(events=3000, skus=50, seed=7)
    other = generate_workload(events=3000, skus=50, seed=8)
    key = [(e.id, e.type, e.subject, e.data) for e in first.envelopes]
    assert key == [(e.id, e.type, e.subject, e.data) for e in again.envelopes]
    assert key != [(e.id, e.type, e.subject, e.data) for e in other.envelopes]


def test_the_workload_is_sized_by_the_events_the_rules_produce() -> None:
    workload = generate_workload(events=20_000, skus=200, seed=1)
    assert 20_000 <= workload.expected_events < 20_010
    replay = ReferenceModel()
    for envelope in workload.envelopes:
        replay.apply(envelope.type, envelope.data, envelope.id)
    assert replay.events == workload.expected_events
    assert replay.stock() == workload.model.stock()


def test_every_sku_is_received_first_and_every_type_is_a_published_command() -> None:
    workload = generate_workload(events=5000, skus=100, seed=2)
    distinct = list({e.id: e for e in workload.envelopes}.values())  # first copy of each
    first = distinct[:100]
    assert {e.type for e in first} == {"ReceiveStock"}
    assert {e.data["sku"] for e in first} == set(workload.skus)
    assert {e.type for e in workload.envelopes} == set(COMMAND_TYPES)


def test_the_mix_has_hot_skus_multi_line_orders_settlements_and_duplicates() -> None:
    workload = generate_workload(events=50_000, skus=500, seed=3)
    envelopes = workload.envelopes
    kinds = Counter(e.type for e in envelopes)
    assert kinds["ReserveStock"] > kinds["ShipStock"] > kinds["ReleaseReservation"] > 0
    assert kinds["ReceiveStock"] > kinds["AdjustStock"] > 0
    lines = Counter(len(e.data["lines"]) for e in envelopes if e.type == "ReserveStock")
    assert set(lines) == {1, 2, 3, 4}
    hot = set(workload.skus[:100])
    touched = [
        line["sku"] for e in envelopes if e.type == "ReserveStock" for line in e.data["lines"]
    ]
    assert 0.75 < sum(sku in hot for sku in touched) / len(touched) < 0.85
    duplicates = len(envelopes) - workload.unique
    assert 0.03 < duplicates / workload.unique < 0.07
    ids = [e.id for e in envelopes]
    adjacent = sum(a == b for a, b in itertools.pairwise(ids))
    assert 0 < adjacent < duplicates  # some right away, the others redelivered later
    assert 0 < workload.model.rejections < workload.unique * 0.2


def test_settlements_name_only_orders_that_were_reserved_before() -> None:
    workload = generate_workload(events=10_000, skus=100, seed=4)
    reserved: set[str] = set()
    for envelope in workload.envelopes:
        if envelope.type == "ReserveStock":
            reserved.add(envelope.data["order_id"])
        elif envelope.type in {"ShipStock", "ReleaseReservation"}:
            assert envelope.data["order_id"] in reserved
