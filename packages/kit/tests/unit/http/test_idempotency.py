"""The Idempotency-Key helper, through a tiny FastAPI service called in process.

The service records receipts, deduped by message id. Two routes share one effect, ``POST /things/{thing}/receipts`` (key optional) and
``POST /internal/things`` (key required). The effect keeps an inbox of message ids, as a
real service does, and reports a duplicate when it finds one. Requests can be held at two
points by naming a gate in a header, so tests can interleave requests deterministically:
``X-Hold-Before-Check`` (before the inbox is read) and ``X-Hold-After-Apply`` (after the
effect, before the answer is returned).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from stockflow_kit.http import (
    DEFAULT_IDEMPOTENCY_CALLER,
    IDEMPOTENCY_ERRORS,
    IDEMPOTENCY_NAMESPACE,
    IDEMPOTENT_REPLAYED_HEADER,
    ErrorTable,
    Handled,
    Idempotency,
    IdempotencyConflictError,
    IdempotencyContext,
    IdempotencyInProgressError,
    IdempotencyRecord,
    IdempotencyStore,
    InMemoryIdempotencyStore,
    SqliteIdempotencyStore,
    idempotency_message_id,
    idempotency_request_hash,
    install_problem_handlers,
)

RECEIPTS = "POST /things/{thing}/receipts"


class Gates:
    """Named points where a request waits until the test opens them."""

    def __init__(self) -> None:
        self.reached: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.opened: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def hold(self, name: str | None) -> None:
        if name is None:
            return
        self.reached[name].set()
        await self.opened[name].wait()


class Ledger:
    """The state of the service, shared by its replicas: applied receipts and the inbox."""

    def __init__(self) -> None:
        self.applied: list[dict[str, object]] = []
        self.inbox: set[str] = set()
        self.gates = Gates()
        self.arrived: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.arrivals = 0


def replica(store: IdempotencyStore, ledger: Ledger) -> FastAPI:
    """One replica of the service (its own Idempotency helper) over a shared store and ledger."""
    # The caller would be the authenticated identity; a header stands in for it here.
    idem = Idempotency(store, caller=lambda request: request.headers.get("X-Caller", "service"))
    app = FastAPI()
    install_problem_handlers(app, ErrorTable().update(IDEMPOTENCY_ERRORS))

    def effect(request: Request, body: bytes, thing: str) -> Callable[..., Awaitable[Handled]]:
        async def apply(ctx: IdempotencyContext | None) -> Handled:
            await ledger.gates.hold(request.headers.get("X-Hold-Before-Check"))
            if ctx is not None and ctx.message_id in ledger.inbox:
                return Handled(500, b"unused", duplicate=True)
            if ctx is not None:
                ledger.inbox.add(ctx.message_id)
            ledger.applied.append({"thing": thing, **json.loads(body)})
            answer = json.dumps({"thing": thing, "receipt": len(ledger.applied)}).encode()
            await ledger.gates.hold(request.headers.get("X-Hold-After-Apply"))
            return Handled(201, answer)

        return apply

    async def arrive() -> None:
        ledger.arrivals += 1
        ledger.arrived[ledger.arrivals].set()

    @app.post("/things/{thing}/receipts", openapi_extra={"parameters": [idem.openapi_parameter()]})
    async def receive(thing: str, request: Request) -> Response:
        body = await request.body()
        await arrive()
        return await idem.handle(request, body, effect(request, body, thing))

    @app.post(
        "/internal/things",
        openapi_extra={"parameters": [idem.openapi_parameter(required=True)]},
    )
    async def receive_internal(request: Request) -> Response:
        body = await request.body()
        await arrive()
        return await idem.handle(request, body, effect(request, body, "internal"), required=True)

    return app


Post = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture
def store() -> InMemoryIdempotencyStore:
    return InMemoryIdempotencyStore()


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def app(store: InMemoryIdempotencyStore, ledger: Ledger) -> FastAPI:
    return replica(store, ledger)


async def post_to(
    app: ASGIApp, url: str, body: object = None, *, key: str | None = None, **headers: str
) -> httpx.Response:
    """POST *body* (JSON) to *app* with Idempotency-Key *key* and the other *headers*."""
    sent = {k.replace("_", "-"): v for k, v in headers.items()}
    if key is not None:
        sent["Idempotency-Key"] = key
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(url, json={"qty": 1} if body is None else body, headers=sent)


@pytest.fixture
def post(app: FastAPI) -> Post:
    """``await post(url, body, key=..., **headers)`` against the one replica."""

    async def post(url: str, body: object = None, **kwargs: str) -> httpx.Response:
        return await post_to(app, url, body, **kwargs)

    return post


# ---------------------------------------------------------------- replay and conflict


async def test_a_retry_with_the_same_body_replays_the_first_answer(
    post: Post, ledger: Ledger
) -> None:
    first = await post("/things/a/receipts", {"qty": 2}, key="k-1")
    retry = await post("/things/a/receipts", {"qty": 2}, key="k-1")

    assert (first.status_code, first.json()) == (201, {"thing": "a", "receipt": 1})
    assert (retry.status_code, retry.content) == (201, first.content)
    assert retry.headers["content-type"] == "application/json"
    assert retry.headers[IDEMPOTENT_REPLAYED_HEADER] == "true"
    assert IDEMPOTENT_REPLAYED_HEADER not in first.headers
    assert ledger.applied == [{"thing": "a", "qty": 2}]


async def test_a_retry_with_another_body_is_a_conflict(post: Post, ledger: Ledger) -> None:
    await post("/things/a/receipts", {"qty": 2}, key="k-1")

    other = await post("/things/a/receipts", {"qty": 3}, key="k-1")

    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"] == "/problems/idempotency-key-reused"
    assert "'k-1'" in other.json()["detail"]
    assert len(ledger.applied) == 1


async def test_the_path_and_the_query_are_part_of_the_request(post: Post) -> None:
    await post("/things/a/receipts?batch=1", key="k-1")

    other_path = await post("/things/b/receipts?batch=1", key="k-1")
    other_query = await post("/things/a/receipts?batch=2", key="k-1")
    same = await post("/things/a/receipts?batch=1", key="k-1")

    assert [other_path.status_code, other_query.status_code] == [409, 409]
    assert same.status_code == 201
    assert same.headers[IDEMPOTENT_REPLAYED_HEADER] == "true"


async def test_an_error_answer_of_the_handler_is_recorded_and_replayed() -> None:
    store = InMemoryIdempotencyStore()
    idem = Idempotency(store)
    app = FastAPI()
    runs = 0

    @app.post("/refused")
    async def refused(request: Request) -> Response:
        async def refuse(ctx: IdempotencyContext | None) -> Handled:
            nonlocal runs
            runs += 1
            return Handled(409, b'{"title": "Out of stock"}', "application/problem+json")

        return await idem.handle(request, await request.body(), refuse)

    answers = [await post_to(app, "/refused", key="k-1") for _ in range(2)]

    assert [(a.status_code, a.headers["content-type"]) for a in answers] == [
        (409, "application/problem+json")
    ] * 2
    assert runs == 1


# ---------------------------------------------------------------- scopes


async def test_the_same_key_on_two_routes_is_two_keys(
    post: Post, ledger: Ledger, store: InMemoryIdempotencyStore
) -> None:
    receipt = await post("/things/a/receipts", key="k-1")
    internal = await post("/internal/things", key="k-1")

    assert [receipt.status_code, internal.status_code] == [201, 201]
    assert IDEMPOTENT_REPLAYED_HEADER not in internal.headers
    assert [a["thing"] for a in ledger.applied] == ["a", "internal"]
    assert await store.get(f"{RECEIPTS}|service", "k-1") is not None
    assert await store.get("POST /internal/things|service", "k-1") is not None


async def test_the_same_key_from_two_callers_is_two_keys(post: Post, ledger: Ledger) -> None:
    alice = await post("/things/a/receipts", {"qty": 1}, key="k-1", X_Caller="alice")
    bob = await post("/things/a/receipts", {"qty": 5}, key="k-1", X_Caller="bob")
    alice_again = await post("/things/a/receipts", {"qty": 1}, key="k-1", X_Caller="alice")

    assert [alice.status_code, bob.status_code, alice_again.status_code] == [201, 201, 201]
    assert alice_again.content == alice.content
    assert [a["qty"] for a in ledger.applied] == [1, 5]


async def test_without_a_caller_every_request_is_from_the_default_caller() -> None:
    store, app = InMemoryIdempotencyStore(), FastAPI()
    idem = Idempotency(store)

    @app.post("/things/{thing}")
    async def create(thing: str, request: Request) -> Response:
        async def apply(ctx: IdempotencyContext | None) -> Handled:
            return Handled(201, b"{}")

        return await idem.handle(request, await request.body(), apply)

    await post_to(app, "/things/a", key="k-1")

    assert await store.get(f"POST /things/{{thing}}|{DEFAULT_IDEMPOTENCY_CALLER}", "k-1")


async def test_a_starlette_route_and_a_mount_are_scoped_by_their_templates() -> None:
    store = InMemoryIdempotencyStore()
    idem = Idempotency(store)

    async def create(request: Request) -> Response:
        async def apply(ctx: IdempotencyContext | None) -> Handled:
            return Handled(201, b"{}")

        return await idem.handle(request, await request.body(), apply)

    routes = [Route("/things/{id}", create, methods=["POST"])]
    app = Starlette(routes=[*routes, Mount("/v2", routes=routes)])

    answers = [await post_to(app, url, key="k-1") for url in ("/things/a", "/v2/things/a")]

    assert [a.status_code for a in answers] == [201, 201]  # two scopes: no conflict
    assert await store.get("POST /things/{id}|anyone", "k-1") is not None
    assert await store.get("POST /v2/things/{id}|anyone", "k-1") is not None


async def test_a_request_that_was_not_routed_is_scoped_by_its_path() -> None:
    store = InMemoryIdempotencyStore()
    idem = Idempotency(store)

    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)

        async def apply(ctx: IdempotencyContext | None) -> Handled:
            return Handled(201, b"{}")

        response = await idem.handle(request, await request.body(), apply)
        await response(scope, receive, send)

    await post_to(bare, "/raw/a", key="k-1")

    assert await store.get("POST /raw/a|anyone", "k-1") is not None


# ---------------------------------------------------------------- the key header


@pytest.mark.parametrize(
    "key",
    [b"", b"   ", b"x" * 201, "cl\u00e9".encode(), b"tab\there"],
    ids=["empty", "spaces", "too-long", "not-ascii", "control-character"],
)
async def test_a_malformed_key_is_422_and_nothing_is_applied(
    app: FastAPI, ledger: Ledger, key: bytes
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            "/things/a/receipts", json={"qty": 1}, headers=[(b"Idempotency-Key", key)]
        )

    assert response.status_code == 422
    assert response.json()["type"] == "/problems/invalid-idempotency-key"
    assert ledger.applied == []


async def test_a_repeated_key_header_is_422(app: FastAPI, ledger: Ledger) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            "/things/a/receipts",
            json={"qty": 1},
            headers=[("Idempotency-Key", "k-1"), ("Idempotency-Key", "k-2")],
        )

    assert response.status_code == 422
    assert ledger.applied == []


async def test_a_key_of_the_longest_length_is_accepted(post: Post, ledger: Ledger) -> None:
    longest = "k" * 200

    first = await post("/things/a/receipts", key=longest)
    retry = await post("/things/a/receipts", key=longest)

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.headers[IDEMPOTENT_REPLAYED_HEADER] == "true"
    assert len(ledger.applied) == 1


@pytest.mark.parametrize("key", ['"8e03978e-40d5-43e8"', "a key with spaces", " x", "~!@#"])
async def test_a_key_is_any_printable_ascii_text_taken_as_sent(
    post: Post, store: InMemoryIdempotencyStore, key: str
) -> None:
    response = await post("/things/a/receipts", key=key)

    assert response.status_code == 201
    assert await store.get(f"{RECEIPTS}|service", key.strip()) is not None


async def test_a_route_that_requires_a_key_refuses_a_request_without_one(
    post: Post, ledger: Ledger
) -> None:
    refused = await post("/internal/things")
    optional = [await post("/things/a/receipts") for _ in range(2)]

    assert refused.status_code == 400
    assert refused.json()["type"] == "/problems/idempotency-key-required"
    assert [r.status_code for r in optional] == [201, 201]
    assert [a["thing"] for a in ledger.applied] == ["a", "a"]  # no key: applied each time


async def test_the_openapi_document_describes_the_header(app: FastAPI) -> None:
    operations = app.openapi()["paths"]

    receipts = operations["/things/{thing}/receipts"]["post"]["parameters"]
    internal = operations["/internal/things"]["post"]["parameters"]
    header = next(p for p in receipts if p["name"] == "Idempotency-Key")
    assert [p["name"] for p in receipts] == ["thing", "Idempotency-Key"]
    assert header["in"] == "header"
    assert header["required"] is False
    assert header["schema"]["maxLength"] == 200
    assert re.fullmatch(header["schema"]["pattern"].strip("^$"), "k-1")
    assert not re.fullmatch(header["schema"]["pattern"].strip("^$"), "   ")
    assert "24 hours" in header["description"]
    assert [p["required"] for p in internal if p["name"] == "Idempotency-Key"] == [True]


# ---------------------------------------------------------------- who writes the record


class CountingStore(InMemoryIdempotencyStore):
    """An in-memory store that counts its puts."""

    def __init__(self) -> None:
        super().__init__()
        self.puts = 0

    async def put(self, record: IdempotencyRecord) -> IdempotencyRecord:
        self.puts += 1
        return await super().put(record)


async def test_a_handler_that_records_the_answer_itself_is_not_written_twice() -> None:
    store, app = CountingStore(), FastAPI()
    idem = Idempotency(store)

    @app.post("/things")
    async def create(request: Request) -> Response:
        async def apply(ctx: IdempotencyContext | None) -> Handled:
            assert ctx is not None
            await store.put(ctx.record(201, b'{"id": 7}'))  # "in the effect's transaction"
            return Handled(201, b'{"id": 7}', recorded=True)

        return await idem.handle(request, await request.body(), apply)

    first = await post_to(app, "/things", key="k-1")
    retry = await post_to(app, "/things", key="k-1")

    assert store.puts == 1
    assert (first.status_code, retry.status_code, retry.content) == (201, 201, b'{"id": 7}')
    assert retry.headers[IDEMPOTENT_REPLAYED_HEADER] == "true"


async def test_a_record_stored_first_by_another_replica_is_the_answer() -> None:
    """The helper's put loses to a concurrent request elsewhere: the stored answer wins."""
    store, app = InMemoryIdempotencyStore(), FastAPI()
    idem = Idempotency(store)
    winner: list[IdempotencyRecord] = []

    @app.post("/things")
    async def create(request: Request) -> Response:
        async def apply(ctx: IdempotencyContext | None) -> Handled:
            assert ctx is not None
            winner.append(await store.put(ctx.record(201, b'{"by": "other"}')))
            return Handled(201, b'{"by": "me"}')

        return await idem.handle(request, await request.body(), apply)

    response = await post_to(app, "/things", key="k-1")

    assert response.content == b'{"by": "other"}'
    assert response.headers[IDEMPOTENT_REPLAYED_HEADER] == "true"


# ---------------------------------------------------------------- concurrency and duplicates


async def test_concurrent_requests_with_one_key_apply_the_effect_once_and_answer_the_same(
    app: FastAPI, ledger: Ledger
) -> None:
    first = asyncio.create_task(
        post_to(app, "/things/a/receipts", key="k-1", X_Hold_After_Apply="a")
    )
    await ledger.gates.reached["a"].wait()  # the first has applied, not answered
    second = asyncio.create_task(post_to(app, "/things/a/receipts", key="k-1"))
    await ledger.arrived[2].wait()  # the second is at the helper, waiting for the first
    ledger.gates.opened["a"].set()

    answers = await asyncio.gather(first, second)

    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].content == answers[1].content
    assert answers[1].headers[IDEMPOTENT_REPLAYED_HEADER] == "true"
    assert len(ledger.applied) == 1


async def test_a_duplicate_effect_replays_the_answer_stored_by_the_first_request(
    store: InMemoryIdempotencyStore, ledger: Ledger
) -> None:
    one, two = replica(store, ledger), replica(store, ledger)
    late = asyncio.create_task(
        post_to(two, "/things/a/receipts", key="k-1", X_Hold_Before_Check="b")
    )
    await ledger.gates.reached["b"].wait()  # replica two found no record, and waits
    first = await post_to(one, "/things/a/receipts", key="k-1")
    ledger.gates.opened["b"].set()

    duplicate = await late

    assert (first.status_code, duplicate.status_code) == (201, 201)
    assert duplicate.content == first.content
    assert duplicate.headers[IDEMPOTENT_REPLAYED_HEADER] == "true"
    assert len(ledger.applied) == 1


async def test_a_duplicate_with_another_body_is_a_conflict(
    store: InMemoryIdempotencyStore, ledger: Ledger
) -> None:
    one, two = replica(store, ledger), replica(store, ledger)
    late = asyncio.create_task(
        post_to(two, "/things/a/receipts", {"qty": 9}, key="k-1", X_Hold_Before_Check="b")
    )
    await ledger.gates.reached["b"].wait()
    await post_to(one, "/things/a/receipts", {"qty": 1}, key="k-1")
    ledger.gates.opened["b"].set()

    conflict = await late

    assert conflict.status_code == 409
    assert conflict.json()["type"] == "/problems/idempotency-key-reused"
    assert [a["qty"] for a in ledger.applied] == [1]


async def test_a_duplicate_without_a_stored_answer_is_a_409_to_retry_later(
    store: InMemoryIdempotencyStore, ledger: Ledger
) -> None:
    one, two = replica(store, ledger), replica(store, ledger)
    first = asyncio.create_task(
        post_to(one, "/things/a/receipts", key="k-1", X_Hold_After_Apply="a")
    )
    await ledger.gates.reached["a"].wait()  # applied on replica one, not yet answered

    in_flight = await post_to(two, "/things/a/receipts", key="k-1")
    ledger.gates.opened["a"].set()
    answered = await first
    retry = await post_to(two, "/things/a/receipts", key="k-1")

    assert in_flight.status_code == 409
    assert in_flight.json()["type"] == "/problems/idempotency-key-in-progress"
    assert "still being processed" in in_flight.json()["detail"]
    assert (answered.status_code, retry.status_code) == (201, 201)
    assert retry.content == answered.content
    assert len(ledger.applied) == 1


async def test_a_pruned_key_whose_effect_is_still_in_the_inbox_is_a_409(
    post: Post, store: InMemoryIdempotencyStore, ledger: Ledger
) -> None:
    await post("/things/a/receipts", key="k-1")
    assert await store.prune(float("inf")) == 1

    expired = await post("/things/a/receipts", key="k-1")

    assert expired.status_code == 409
    assert "expired" in expired.json()["detail"]
    assert len(ledger.applied) == 1


# ---------------------------------------------------------------- the pieces


def test_the_message_id_is_a_uuid5_over_the_scope_and_the_key() -> None:
    scope = f"{RECEIPTS}|service"

    assert idempotency_message_id(scope, "k-1") == str(
        uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{scope}\nk-1")
    )
    assert idempotency_message_id(scope, "k-1") != idempotency_message_id(
        "POST /internal/things|service", "k-1"
    )


def test_the_request_hash_length_prefixes_its_parts() -> None:
    a = idempotency_request_hash("POST", "/things/a", b"", b"b")
    b = idempotency_request_hash("POST", "/things/ab", b"", b"")

    assert a != b
    assert a == idempotency_request_hash("POST", "/things/a", b"", b"b")


def test_the_idempotency_rows_merge_into_an_error_table() -> None:
    table = ErrorTable({KeyError: (404, "Not found")}).update(IDEMPOTENCY_ERRORS)

    rows = [
        table.lookup(e) for e in (IdempotencyInProgressError, IdempotencyConflictError, KeyError)
    ]

    assert [(r.status, r.slug) if r else None for r in rows] == [
        (409, "idempotency-key-in-progress"),
        (409, "idempotency-key-reused"),
        (404, "key"),
    ]


@pytest.mark.parametrize("table", ["idem; DROP TABLE x", "1idem", "", "t" * 49])
def test_a_store_table_must_be_a_plain_identifier_that_leaves_room_for_its_index(
    table: str,
) -> None:
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        SqliteIdempotencyStore("unused.sqlite3", table=table)


def test_a_store_table_of_48_characters_is_accepted() -> None:
    assert SqliteIdempotencyStore("unused.sqlite3", table="t" * 48).table == "t" * 48
