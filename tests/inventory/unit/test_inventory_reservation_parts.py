"""The members' batch route (ADR 0010): many parts of spanning reservations in one request,
one commit, one answer per part; malformed requests are problems; a stale lease commits
nothing. One leased member on the in-memory store, called in-process over ASGI."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from tests.inventory.conftest import SERVICE_TOKEN, memory_settings

from stockflow.contracts.inventory_parts import PARTS_ROUTE
from stockflow.inventory.adapters.event_store.memory import InMemoryEventStore
from stockflow.inventory.bootstrap import InventoryService, build
from stockflow.inventory.service_layer.leases import LeasedOwnership
from stockflow.inventory.service_layer.ownership import partition_of
from stockflow_kit.messaging import InMemoryBus

TOKEN = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
PARTITIONS = 16


def sku_in(partition: int, n: int = 0) -> str:
    return [f"SKU-{k}" for k in range(400) if partition_of(f"SKU-{k}", PARTITIONS) == partition][n]


P, Q = 3, 7
A, B = sku_in(P), sku_in(Q)


class Member:
    def __init__(self, service: InventoryService, store: InMemoryEventStore) -> None:
        self.service, self.store = service, store
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=service.app), base_url="http://m", headers=TOKEN
        )

    @property
    def ownership(self) -> LeasedOwnership:
        ownership = self.service.writer.ownership
        assert isinstance(ownership, LeasedOwnership)
        return ownership

    async def parts(self, *parts: dict[str, Any]) -> list[dict[str, Any]]:
        response = await self.http.post(PARTS_ROUTE, json={"parts": list(parts)})
        assert response.status_code == 200, response.text
        answers: list[dict[str, Any]] = response.json()["parts"]
        return answers

    def held(self, sku: str) -> dict[str, int]:
        state = self.service.writer.states.get(sku)
        return dict(state.reservations) if state is not None else {}

    def batches(self) -> float:
        registry = self.service.registry
        assert isinstance(registry, CollectorRegistry)
        return registry.get_sample_value("inventory_batch_size_count") or 0.0


def reserve(order_id: str, lines: dict[str, int], key: str | None = None) -> dict[str, Any]:
    return {
        "op": "reserve",
        "key": key or f"k-{uuid.uuid4()}",
        "order_id": order_id,
        "lines": [{"sku": sku, "qty": qty} for sku, qty in lines.items()],
    }


def release(order_id: str, skus: list[str], key: str | None = None) -> dict[str, Any]:
    return {"op": "release", "key": key or f"k-{uuid.uuid4()}", "order_id": order_id, "skus": skus}


@pytest.fixture
async def member(bus: InMemoryBus) -> AsyncIterator[Member]:
    store = InMemoryEventStore()
    settings = memory_settings(
        assignment="leases",
        member_id="m1",
        partitions=PARTITIONS,
        lease_ttl=60,
        lease_interval=20,  # no lease round of its own during a test: the test moves leases
        low_stock_threshold=0,
    )
    service = build(settings, bus=bus, event_store=store, registry=CollectorRegistry())
    await service.start()
    member = Member(service, store)
    for sku in (A, B):
        response = await member.http.post(f"/inventory/{sku}/receipts", json={"qty": 10})
        assert response.status_code == 201, response.text
    yield member
    await member.http.aclose()
    await service.stop()


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"not json", "application/json", 422),
        (b'{"parts": []}', "application/json", 422),
        (b'{"parts": [{"op": "steal", "key": "k", "order_id": "o", "skus": ["A"]}]}', None, 422),
        (b'{"parts": [{"op": "reserve", "key": "k", "order_id": "o", "lines": []}]}', None, 422),
        (b'{"parts": [{"op": "release", "key": "", "order_id": "o", "skus": ["A"]}]}', None, 422),
        (
            b'{"parts": [{"op": "reserve", "key": "k", "order_id": "o", "lines": [{"sku": "A", "qty": 0}]}]}',
            None,
            422,
        ),
        (
            b'{"parts": [{"op": "release", "key": "k", "order_id": "o", "skus": ["A"]}]}',
            "text/plain",
            415,
        ),
    ],
    ids=[
        "not-json",
        "no-parts",
        "unknown-op",
        "no-lines",
        "empty-key",
        "zero-qty",
        "not-json-type",
    ],
)
async def test_a_malformed_parts_request_is_a_problem_and_changes_nothing(
    member: Member, content: bytes, content_type: str | None, status: int
) -> None:
    before = await member.store.read_all(limit=1000)
    headers = {"Content-Type": content_type or "application/json"}
    response = await member.http.post(PARTS_ROUTE, content=content, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == status
    assert await member.store.read_all(limit=1000) == before


async def test_two_parts_with_one_key_are_a_problem(member: Member) -> None:
    parts = [release("o-1", [A], key="same"), release("o-2", [B], key="same")]
    response = await member.http.post(PARTS_ROUTE, json={"parts": parts})
    assert response.status_code == 422
    assert "key of its own" in response.json()["detail"]


async def test_the_parts_route_needs_the_service_credential(member: Member) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=member.service.app), base_url="http://m"
    ) as anonymous:
        response = await anonymous.post(PARTS_ROUTE, json={"parts": [release("o", [A])]})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_every_part_is_answered_on_its_own_after_one_commit(member: Member) -> None:
    first = reserve("o-held", {A: 2}, key="k-held")
    assert [a["outcome"] for a in await member.parts(first)] == ["reserved"]
    batches = member.batches()
    answers = await member.parts(
        reserve("o-1", {A: 3, B: 1}),
        reserve("o-short", {B: 50}),
        reserve("o-held", {A: 5}, key="k-held"),  # the key again, with another part
        release("o-held", [A]),
        reserve("o-2", {A: 1}),
    )
    assert [(a["status"], a["outcome"], a.get("holds")) for a in answers] == [
        (200, "reserved", True),
        (200, "rejected", False),
        (409, "refused", None),
        (200, "released", None),
        (200, "reserved", True),
    ]
    assert member.batches() == batches + 1  # one commit for the whole request
    # A retry of the first part: applied once, since released, so it holds nothing now.
    assert [(a["outcome"], a["holds"]) for a in await member.parts(first)] == [("not_held", False)]
    assert member.held(A) == {"o-1": 3, "o-2": 1}
    assert member.held(B) == {"o-1": 1}
    held_events = [e for e in await member.store.read_stream(A) if b"o-held" in e.data]
    assert [e.type for e in held_events] == ["StockReserved", "ReservationReleased"]


async def test_a_repeated_request_changes_nothing_and_reads_the_present(member: Member) -> None:
    parts = [reserve("o-1", {A: 1}), reserve("o-2", {B: 11})]
    first = await member.parts(*parts)
    assert [a["outcome"] for a in first] == ["reserved", "rejected"]
    before = await member.store.read_all(limit=1000)
    again = await member.parts(*parts)
    assert [(a["status"], a.get("holds")) for a in again] == [(200, True), (200, False)]
    assert await member.store.read_all(limit=1000) == before


async def test_a_part_of_a_partition_not_held_here_is_misdirected_and_the_rest_decided(
    member: Member,
) -> None:
    member.ownership.lost([Q])  # as after a handover: Q is someone else's now
    member.service.writer.drop_partition(Q)
    answers = await member.parts(reserve("o-1", {A: 1}), reserve("o-2", {B: 1}))
    assert [(a["status"], a["outcome"]) for a in answers] == [(200, "reserved"), (421, "undecided")]
    assert [e.type for e in await member.store.read_stream(B)] == ["StockReceived"]


async def test_parts_under_a_stale_epoch_commit_nothing(member: Member) -> None:
    """The member still believes it holds Q (its lease round has not run), but Q was taken
    over in the store: the commit's lease claim fails, nothing of the request is written,
    and every part of that commit is undecided (the coordinator re-drives it)."""
    epoch = member.ownership.held[Q]
    assert await member.store.release(Q, "m1", epoch)
    assert await member.store.acquire(Q, "intruder", 60) == epoch + 1
    assert member.ownership.held[Q] == epoch  # stale
    before = await member.store.read_all(limit=1000)

    answers = await member.parts(reserve("o-1", {A: 1}), reserve("o-2", {B: 1}))

    assert [(a["status"], a["outcome"]) for a in answers] == [(421, "undecided")] * 2
    assert await member.store.read_all(limit=1000) == before
    assert Q not in member.ownership.held  # the writer dropped the partition it lost
    again = await member.parts(reserve("o-1", {A: 1}), reserve("o-2", {B: 1}))
    assert [(a["status"], a["outcome"]) for a in again] == [(200, "reserved"), (421, "undecided")]
    assert [e.type for e in await member.store.read_stream(B)] == ["StockReceived"]
