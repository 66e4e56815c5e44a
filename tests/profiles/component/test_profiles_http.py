"""The profiles HTTP API in-process: who may see and write what, conditional writes, pages,
refused input, and the ``ProfileUpdated`` that follows every change (through the outbox)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.profiles.conftest import (
    AUTH,
    STAFF,
    System,
    body,
    client,
    customer,
    profiles_settings,
)

from stockflow.contracts.profiles import MAX_ADDRESSES, PROFILES_EVENTS_TOPIC
from stockflow.platform.sql import migrate
from stockflow.profiles.adapters.orm import MIGRATIONS, OUTBOX
from stockflow.profiles.bootstrap import build
from stockflow.profiles.domain.model import Precondition
from stockflow.profiles.entrypoints.http import parse_if_match
from stockflow_kit.messaging import Envelope, InMemoryBus, decode_envelope

HOME = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}


async def events(system: System, *, expect: int) -> list[Envelope]:
    """The ``ProfileUpdated`` envelopes relayed so far (waits for *expect* of them)."""
    subscription = await system.bus.subscribe(PROFILES_EVENTS_TOPIC, "test-reader")
    seen: list[Envelope] = []
    for _ in range(50):
        deliveries = await subscription.fetch(100, max_wait=0.1)
        await subscription.ack(deliveries)
        seen += [d.envelope for d in deliveries]
        if len(seen) >= expect:
            break
    return seen


async def test_the_owner_creates_reads_and_replaces_their_profile(system: System) -> None:
    created = await system.put("alice", body(addresses=[HOME], preferences={"news": True}))
    assert created.status_code == 200, created.text
    view = created.json()
    assert view["user_id"] == "alice"
    assert view["version"] == 1
    assert view["addresses"] == [{"label": "", "line2": "", **HOME}]
    assert view["preferences"] == {"news": True}
    assert view["updated_at"].endswith("Z")
    assert created.headers["etag"] == '"1"'

    read = await system.http.get("/profiles/alice", headers=customer("alice"))
    assert read.status_code == 200
    assert read.json() == view
    assert read.headers["etag"] == '"1"'

    replaced = await system.put("alice", body(name="Alice B"))
    assert replaced.json()["version"] == 2
    assert replaced.json()["addresses"] == []
    assert replaced.json()["preferences"] == {}


async def test_another_customer_is_told_the_profile_does_not_exist(system: System) -> None:
    await system.put("bob", body(name="Bob", email="bob@example.com"))
    hidden = await system.http.get("/profiles/bob", headers=customer("alice"))
    missing = await system.http.get("/profiles/nobody", headers=customer("alice"))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"
    assert hidden.json()["title"] == missing.json()["title"]
    assert "Bob" not in hidden.text


async def test_staff_read_any_profile_but_write_only_their_own(system: System) -> None:
    await system.put("bob", body(name="Bob", email="bob@example.com"))
    read = await system.http.get("/profiles/bob", headers=STAFF)
    assert read.status_code == 200
    assert read.json()["name"] == "Bob"
    as_staff = {**STAFF, "X-Stockflow-User": "sam"}
    refused = await system.http.put("/profiles/bob", json=body(name="Hacked"), headers=as_staff)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    own = await system.http.put("/profiles/sam", json=body(name="Sam"), headers=as_staff)
    assert own.status_code == 200
    assert (await system.http.get("/profiles/bob", headers=STAFF)).json()["name"] == "Bob"


async def test_a_customer_cannot_write_another_profile_existing_or_not(system: System) -> None:
    await system.put("bob", body(name="Bob", email="bob@example.com"))
    for target in ("bob", "nobody"):
        response = await system.http.put(
            f"/profiles/{target}", json=body(), headers=customer("alice")
        )
        assert response.status_code == 403, response.text
    assert (await system.http.get("/profiles/nobody", headers=STAFF)).status_code == 404


async def test_a_replay_of_the_same_body_changes_nothing_and_publishes_nothing(
    system: System,
) -> None:
    first = await system.put("alice", body())
    again = await system.put("alice", body())
    assert again.status_code == 200
    assert again.json() == first.json()
    published = await events(system, expect=1)
    assert [e.sequence for e in published] == [1]


async def test_if_match_makes_a_write_conditional(system: System) -> None:
    await system.put("alice", body())
    stale = await system.put("alice", body(name="Alice B"), **{"If-Match": '"7"'})
    assert stale.status_code == 412, stale.text
    assert stale.headers["content-type"] == "application/problem+json"
    assert "version 1" in stale.json()["detail"]
    current = await system.put("alice", body(name="Alice B"), **{"If-Match": '"1"'})
    assert current.status_code == 200
    assert current.json()["version"] == 2
    # The answer was lost and the client retries the same write: it already succeeded.
    retried = await system.put("alice", body(name="Alice B"), **{"If-Match": '"1"'})
    assert retried.status_code == 200
    assert retried.json()["version"] == 2
    listed = await system.put("alice", body(name="Alice C"), **{"If-Match": '"5", "2"'})
    assert listed.json()["version"] == 3
    anything = await system.put("alice", body(name="Alice D"), **{"If-Match": "*"})
    assert anything.json()["version"] == 4


async def test_if_match_on_a_missing_profile_fails(system: System) -> None:
    for value in ('"1"', "*"):
        response = await system.put("alice", body(), **{"If-Match": value})
        assert response.status_code == 412, response.text
    assert (await system.http.get("/profiles/alice", headers=customer("alice"))).status_code == 404


@pytest.mark.parametrize("value", ['W/"1"', "1", '"a"', '"1" "2"', "", '"01x"'])
async def test_an_if_match_naming_no_version_fails_whatever_its_form(
    system: System, value: str
) -> None:
    await system.put("alice", body())
    response = await system.put("alice", body(name="B"), **{"If-Match": value})
    assert response.status_code == 412, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert 'If-Match: "1"' in response.json()["detail"]


@pytest.mark.parametrize(
    ("value", "versions"),
    [
        (None, None),
        ("*", "any"),
        ('"3"', {3}),
        (' "3" , W/"4", "x,y", "5",, ', {3, 5}),
        ('"3" "4"', set()),
        ('"03", "0"', {0}),
        ("3", set()),
    ],
)
def test_if_match_is_read_as_rfc_9110_entity_tags(value: str | None, versions: object) -> None:
    precondition = parse_if_match(value)
    if versions is None:
        assert precondition is None
    elif versions == "any":
        assert precondition == Precondition()
    else:
        assert precondition == Precondition(frozenset(versions))  # type: ignore[arg-type]


async def test_every_change_publishes_a_profile_updated_through_the_outbox(
    system: System,
) -> None:
    await system.put("alice", body())
    await system.put("alice", body(name="Alice B"), **{"X-Correlation-ID": "corr-profile-42"})
    await system.put("bob", body(name="Bob", email="bob@example.com"))
    published = await events(system, expect=3)
    assert [(e.type, e.subject, e.sequence) for e in published] == [
        ("ProfileUpdated", "alice", 1),
        ("ProfileUpdated", "alice", 2),
        ("ProfileUpdated", "bob", 1),
    ]
    assert published[1].data == {
        "user_id": "alice",
        "name": "Alice B",
        "email": "alice@example.com",
        "version": 2,
    }
    assert published[1].source == "profiles"
    assert published[1].correlation_id == "corr-profile-42"
    for _ in range(100):  # relayed, then removed
        async with system.service.database.reader.connect() as connection:
            left = (await connection.execute(select(func.count()).select_from(OUTBOX))).scalar()
        if left == 0:
            break
        await asyncio.sleep(0.02)
    assert left == 0


async def test_staff_page_through_every_profile_by_user_id(system: System) -> None:
    users = ["dave", "alice", "carol", "bob", "erin"]
    for user in users:
        await system.put(user, body(name=user.title()))
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await system.http.get("/profiles", params=params, headers=STAFF)).json()
        assert len(page["profiles"]) <= 2
        seen += [p["user_id"] for p in page["profiles"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == sorted(users)


async def test_only_staff_list_profiles(system: System) -> None:
    response = await system.http.get("/profiles", headers=customer("alice"))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "A"},
        {"email": "a@b.c"},
        {"name": "", "email": "a@b.c"},
        {"name": "A", "email": "not-an-email"},
        {"name": "A", "email": "a@b.c\n"},
        {"name": "A", "email": "a b@c.d"},
        {"name": "A", "email": "a@b.c", "nickname": "x"},
        {"name": "A", "email": "a@b.c", "addresses": [HOME] * (MAX_ADDRESSES + 1)},
        {"name": "A", "email": "a@b.c", "addresses": [{**HOME, "country": "usa"}]},
        {"name": "A", "email": "a@b.c", "addresses": [{**HOME, "country": "US\n"}]},
        {"name": "A", "email": "a@b.c", "preferences": {"x": None}},
        {"name": "A", "email": "a@b.c", "preferences": {"x": 1.5}},
        {"name": "x" * 201, "email": "a@b.c"},
        [],
    ],
)
async def test_bad_bodies_are_refused_with_a_422_problem(system: System, payload: Any) -> None:
    response = await system.http.put("/profiles/alice", json=payload, headers=customer("alice"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["correlation_id"]


async def test_bad_paths_identities_and_bodies_are_problems(system: System) -> None:
    bad_id = await system.http.get("/profiles/!bad", headers=customer("alice"))
    assert bad_id.status_code == 422
    no_user = await system.http.get("/profiles/alice", headers=AUTH)
    assert no_user.status_code == 422
    bad_role = {**customer("alice"), "X-Stockflow-Role": "admin"}
    assert (await system.http.get("/profiles/alice", headers=bad_role)).status_code == 422
    not_json = await system.http.put(
        "/profiles/alice",
        content=b"{oops",
        headers={**customer("alice"), "Content-Type": "application/json"},
    )
    assert not_json.status_code == 422
    form = await system.http.put(
        "/profiles/alice",
        content=b"a=b",
        headers={**customer("alice"), "Content-Type": "text/plain"},
    )
    assert form.status_code == 415
    bad_cursor = await system.http.get("/profiles", params={"cursor": "!!"}, headers=STAFF)
    assert bad_cursor.status_code == 422
    bad_limit = await system.http.get("/profiles", params={"limit": "0"}, headers=STAFF)
    assert bad_limit.status_code == 422


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/profiles/alice"), ("PUT", "/profiles/alice"), ("GET", "/profiles")],
)
async def test_every_route_requires_the_service_credential(
    system: System, method: str, path: str
) -> None:
    identity = {"X-Stockflow-User": "alice", "X-Stockflow-Role": "staff"}
    for auth in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        response = await system.http.request(
            method, path, json=body(), headers={**identity, **auth}
        )
        assert response.status_code == 401, (auth, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_the_openapi_document_declares_the_credential_and_the_precondition(
    system: System,
) -> None:
    spec = (await system.http.get("/openapi.json")).json()
    put = spec["paths"]["/profiles/{user_id}"]["put"]
    assert put["security"] == [{"serviceCredential": []}]
    assert any(p["name"] == "If-Match" for p in put["parameters"])
    assert "412" in put["responses"]
    assert spec["paths"]["/profiles"]["get"]["security"] == [{"serviceCredential": []}]


async def test_a_name_with_unusual_characters_round_trips(system: System) -> None:
    name = "Zoë \x00 \u2028 \U0001f600"
    created = await system.put("alice", body(name=name, preferences={"big": 2**70}))
    assert created.status_code == 200, created.text
    read = (await system.http.get("/profiles/alice", headers=customer("alice"))).json()
    assert read["name"] == name
    assert read["preferences"] == {"big": 2**70}


async def test_the_event_is_stored_in_the_outbox_with_the_change(bus: InMemoryBus) -> None:
    """With the relay not running, the committed change has its event waiting in the outbox."""
    service = build(profiles_settings(), bus=bus)
    await migrate(service.database, MIGRATIONS)
    try:
        async with client(service.app) as http:
            response = await http.put("/profiles/alice", json=body(), headers=customer("alice"))
            assert response.status_code == 200
            unchanged = await http.put("/profiles/alice", json=body(), headers=customer("alice"))
            assert unchanged.status_code == 200
        async with service.database.reader.connect() as connection:
            rows = (await connection.execute(select(OUTBOX))).all()
        assert [row.topic for row in rows] == [PROFILES_EVENTS_TOPIC]
        envelope = decode_envelope(rows[0].body)
        assert (envelope.type, envelope.subject, envelope.sequence) == (
            "ProfileUpdated",
            "alice",
            1,
        )
    finally:
        await service.database.dispose()
