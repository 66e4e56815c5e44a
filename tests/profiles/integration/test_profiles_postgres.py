"""The profiles service on PostgreSQL with NATS JetStream: what it stores, how concurrent
writers meet, and its ``ProfileUpdated`` on the real bus (read back by another connection)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from tests.profiles.conftest import STAFF, body, client, customer, profiles_settings

from stockflow.contracts.profiles import PROFILES_EVENTS_TOPIC
from stockflow.profiles.bootstrap import ProfilesService, build
from stockflow_kit.messaging import Bus, Envelope, make_bus

pytestmark = pytest.mark.integration


@dataclass
class Running:
    service: ProfilesService
    http: httpx.AsyncClient
    bus_url: str


@pytest.fixture
async def running(profiles_database: str, jetstream_url: str) -> AsyncIterator[Running]:
    bus = make_bus(jetstream_url, name="profiles-test")
    await bus.start()
    service = build(
        profiles_settings(database_url=profiles_database, bus_url=jetstream_url), bus=bus
    )
    await service.start()
    try:
        async with client(service.app) as http:
            yield Running(service, http, jetstream_url)
    finally:
        await service.stop()
        await bus.close()


async def read_events(bus: Bus, *, expect: int, within: float = 20.0) -> list[Envelope]:
    subscription = await bus.subscribe(PROFILES_EVENTS_TOPIC, "profiles-it-reader")
    seen: list[Envelope] = []
    deadline = asyncio.get_running_loop().time() + within
    while len(seen) < expect and asyncio.get_running_loop().time() < deadline:
        deliveries = await subscription.fetch(100, max_wait=0.5)
        await subscription.ack(deliveries)
        seen += [d.envelope for d in deliveries]
    return seen


async def test_every_change_reaches_the_real_bus_once(running: Running) -> None:
    assert (
        await running.http.put("/profiles/alice", json=body(), headers=customer("alice"))
    ).status_code == 200
    renamed = body(name="Alice B")
    for _ in range(2):  # the second is a replay: no change, no event
        response = await running.http.put(
            "/profiles/alice", json=renamed, headers=customer("alice")
        )
        assert response.status_code == 200
    other = make_bus(running.bus_url, name="profiles-test-reader")
    await other.start()
    try:
        published = await read_events(other, expect=2)
        await asyncio.sleep(0.5)
        published += await read_events(other, expect=1, within=1.0)  # nothing more comes
    finally:
        await other.close()
    assert [(e.type, e.source, e.subject, e.sequence) for e in published] == [
        ("ProfileUpdated", "profiles", "alice", 1),
        ("ProfileUpdated", "profiles", "alice", 2),
    ]
    assert published[1].data["name"] == "Alice B"


async def test_concurrent_writers_of_one_profile_are_serialized(running: Running) -> None:
    await running.http.put("/profiles/alice", json=body(), headers=customer("alice"))
    names = [f"Alice {n}" for n in range(8)]
    responses = await asyncio.gather(
        *(
            running.http.put("/profiles/alice", json=body(name=name), headers=customer("alice"))
            for name in names
        )
    )
    assert [r.status_code for r in responses] == [200] * len(names)
    assert sorted(r.json()["version"] for r in responses) == list(range(2, 2 + len(names)))
    final = (await running.http.get("/profiles/alice", headers=customer("alice"))).json()
    assert final["version"] == 1 + len(names)


async def test_concurrent_creators_of_one_profile_never_both_win(running: Running) -> None:
    responses = await asyncio.gather(
        *(
            running.http.put("/profiles/bob", json=body(name=f"Bob {n}"), headers=customer("bob"))
            for n in range(6)
        )
    )
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 409}, [r.text for r in responses]
    final = (await running.http.get("/profiles/bob", headers=customer("bob"))).json()
    assert final["version"] == statuses.count(200)


async def test_names_postgresql_text_refuses_are_stored(running: Running) -> None:
    name = "Nul \x00 in a name"
    response = await running.http.put(
        "/profiles/alice",
        json=body(name=name, preferences={"big": 2**70}),
        headers=customer("alice"),
    )
    assert response.status_code == 200, response.text
    read = (await running.http.get("/profiles/alice", headers=customer("alice"))).json()
    assert (read["name"], read["preferences"]) == (name, {"big": 2**70})


async def test_pages_are_in_byte_order_of_the_user_ids(running: Running) -> None:
    users = ["b", "B", "a", "A-1", "a.2", "Z", "xy"]
    for user in users:
        response = await running.http.put(f"/profiles/{user}", json=body(), headers=customer(user))
        assert response.status_code == 200, response.text
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = (await running.http.get("/profiles", params=params, headers=STAFF)).json()
        seen += [p["user_id"] for p in page["profiles"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == sorted(users)
