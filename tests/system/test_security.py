"""The system's security promises, tried against the running system (``stockflow up``, embedded).

One system for the module, started with a low edge rate limit (``EDGE_RATE_LIMIT``) so the
burst test can see it hold; every other test keeps well under it (its users are its own, and
the limit is per user). The last test scans every log line the system wrote for the secrets
the module used or saw: it runs last, after the others have filled the log.

Each check is listed in ``docs/security.md`` with the test that proves it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
from tests.system.system import SERVICES, System, embedded

from stockflow_kit.net import free_port

pytestmark = pytest.mark.slow

JWT_SHAPE = re.compile(r"eyJ[\w-]{4,}\.eyJ[\w-]{4,}\.")
OTLP_PASSWORD = "otlp-pass-in-a-url"
RATE_LIMIT = 15
"""Requests per second per user at edge for this module's system."""

SEEN_SECRETS: set[str] = set()
"""Every bearer token and webhook secret the module used or was given: none may be logged."""


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = embedded(tmp_path_factory.mktemp("security"))
    running.env = {
        "EDGE_RATE_LIMIT": f"{RATE_LIMIT}/second",
        # A collector that is not there, reached with a password in its URL: the exporter's
        # failures are logged, and the password must not be.
        "STOCKFLOW_OTLP_ENDPOINT": f"http://otel:{OTLP_PASSWORD}@127.0.0.1:{free_port()}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
    }
    try:
        asyncio.run(running.start())
        yield running
    finally:
        code = asyncio.run(running.stop())
    assert code == 0, f"stockflow up exited {code} on SIGTERM:\n{running.tail()}"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def auth(system: System, user: str, role: str = "customer") -> dict[str, str]:
    token = system.token(user, role)
    SEEN_SECRETS.add(token)
    return {"Authorization": f"Bearer {token}"}


def bearer(token: str) -> dict[str, str]:
    SEEN_SECRETS.add(token)
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response
    problem: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "correlation_id"} <= problem.keys(), problem
    assert problem["status"] == status
    return problem


async def receive(http: httpx.AsyncClient, system: System, sku: str, qty: int) -> None:
    response = await http.post(
        f"{system.url()}/inventory/{sku}/receipts",
        json={"qty": qty, "reference": "security"},
        headers={**auth(system, "staff-sec", "staff"), "Idempotency-Key": unique("r")},
    )
    assert response.status_code == 201, response.text


async def place(http: httpx.AsyncClient, system: System, user: str, sku: str) -> str:
    response = await http.post(
        f"{system.url()}/orders",
        json={"lines": [{"sku": sku, "qty": 1}]},
        headers={**auth(system, user), "Idempotency-Key": unique("o")},
    )
    assert response.status_code == 202, response.text
    order_id: str = response.json()["id"]
    return order_id


async def settled(http: httpx.AsyncClient, system: System, user: str, order_id: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        response = await http.get(f"{system.url()}/orders/{order_id}", headers=auth(system, user))
        assert response.status_code == 200, response.text
        status: str = response.json()["status"]
        if status != "PENDING":
            return status
        assert time.monotonic() < deadline, f"{order_id} still PENDING"
        await asyncio.sleep(0.2)


# --- cross-customer isolation


async def test_bob_can_neither_read_nor_cancel_nor_find_alices_order(
    system: System, http: httpx.AsyncClient
) -> None:
    sku = unique("ISO")
    await receive(http, system, sku, 5)
    alice, bob = unique("alice"), unique("bob")
    order_id = await place(http, system, alice, sku)
    assert await settled(http, system, alice, order_id) == "CONFIRMED"
    bobs = auth(system, bob)
    for method, path in [("GET", f"/orders/{order_id}"), ("POST", f"/orders/{order_id}/cancel")]:
        response = await http.request(method, f"{system.url()}{path}", headers=bobs)
        problem = assert_problem(response, 404)
        assert alice not in response.text, problem
        assert sku not in response.text, problem
    # No oracle: a real order of someone else answers exactly as an id that does not exist.
    ghost = str(uuid.uuid4())
    real = (await http.get(f"{system.url()}/orders/{order_id}", headers=bobs)).json()
    fake = (await http.get(f"{system.url()}/orders/{ghost}", headers=bobs)).json()
    assert (real["title"], real["type"]) == (fake["title"], fake["type"])
    # Guessing: neighbours of the real id (each hex digit changed) are all 404 as well.
    guesses = [
        order_id[:i] + ("0" if c != "0" else "1") + order_id[i + 1 :]
        for i, c in enumerate(order_id)
        if c in "0123456789abcdef"
    ][:6]
    for guess in guesses:
        response = await http.get(f"{system.url()}/orders/{guess}", headers=bobs)
        assert response.status_code in (404, 422), response.text
    # Enumerating: bob's listing, also with customer=<alice>, holds none of alice's orders.
    for query in ["", f"?customer={alice}", "?limit=100"]:
        listed = await http.get(f"{system.url()}/orders{query}", headers=bobs)
        assert listed.status_code in (200, 403, 422), listed.text
        assert order_id not in listed.text, (query, listed.text)
        assert alice not in listed.text, (query, listed.text)
    # Alice's order is untouched by bob's cancel; staff still sees it.
    assert await settled(http, system, alice, order_id) == "CONFIRMED"
    staff = await http.get(
        f"{system.url()}/orders?customer={alice}", headers=auth(system, "staff-sec", "staff")
    )
    assert order_id in staff.text


async def test_bob_cannot_read_alices_profile_or_notifications(
    system: System, http: httpx.AsyncClient
) -> None:
    sku = unique("ISOP")
    await receive(http, system, sku, 5)
    alice, bob = unique("alice"), unique("bob")
    put = await http.put(
        f"{system.url()}/me",
        json={"name": "Alice Secret", "email": f"{alice}@example.com"},
        headers=auth(system, alice),
    )
    assert put.status_code == 200, put.text
    order_id = await place(http, system, alice, sku)
    await settled(http, system, alice, order_id)
    deadline = time.monotonic() + 20
    while (
        order_id
        not in (
            theirs := await http.get(f"{system.url()}/notifications", headers=auth(system, alice))
        ).text
    ):
        assert time.monotonic() < deadline, theirs.text
        await asyncio.sleep(0.2)
    mine = await http.get(f"{system.url()}/me", headers=auth(system, bob))
    assert "Alice Secret" not in mine.text, mine.text
    assert alice not in mine.text, mine.text
    notes = await http.get(f"{system.url()}/notifications", headers=auth(system, bob))
    assert notes.status_code == 200, notes.text
    assert notes.json()["notifications"] == []
    # Identity headers sent by a client are not believed: edge sets them from the token.
    spoof = await http.get(
        f"{system.url()}/me",
        headers={**auth(system, bob), "X-Stockflow-User": alice, "X-Stockflow-Role": "staff"},
    )
    assert "Alice Secret" not in spoof.text
    # Behind edge, too: profiles with the service credential and bob's identity gives 404.
    service = (system.data_dir / "service-token").read_text().strip()
    direct = await http.get(
        f"{system.url('profiles')}/profiles/{alice}",
        headers={
            "Authorization": f"Bearer {service}",
            "X-Stockflow-User": bob,
            "X-Stockflow-Role": "customer",
        },
    )
    assert_problem(direct, 404)
    assert "Alice Secret" not in direct.text


# --- what customers may not do

CUSTOMER_FORBIDDEN: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/inventory/{sku}/receipts", {"qty": 5, "reference": "x"}),
    ("POST", "/inventory/{sku}/adjustments", {"delta": 5, "reason": "x"}),
    ("GET", "/inventory/{sku}/events", None),
    ("POST", "/orders/{order}/ship", None),
    ("POST", "/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["OrderConfirmed"]}),
    ("GET", "/webhooks", None),
    ("DELETE", "/webhooks/{uuid}", None),
    ("GET", "/webhooks/{uuid}/deliveries", None),
]


async def test_customers_cannot_touch_stock_ship_read_events_or_manage_webhooks(
    system: System, http: httpx.AsyncClient
) -> None:
    sku = unique("FORBID")
    await receive(http, system, sku, 5)
    customer = unique("cust")
    order_id = await place(http, system, customer, sku)
    assert await settled(http, system, customer, order_id) == "CONFIRMED"
    for method, template, body in CUSTOMER_FORBIDDEN:
        path = template.format(sku=sku, order=order_id, uuid=uuid.uuid4())
        response = await http.request(
            method,
            f"{system.url()}{path}",
            json=body,
            headers={**auth(system, customer), "Idempotency-Key": unique("f")},
        )
        assert_problem(response, 403)
    stock = await http.get(f"{system.url()}/inventory/{sku}", headers=auth(system, customer))
    assert (stock.json()["on_hand"], stock.json()["reserved"]) == (5, 1), stock.text
    assert await settled(http, system, customer, order_id) == "CONFIRMED"


# --- tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A JWT put together by hand (PyJWT refuses to sign some of these, which is the point)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def bad_tokens(system: System) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    secret = (system.data_dir / "jwt-secret").read_text().strip()
    now = int(time.time())
    good = {"sub": "mallory", "role": "customer", "iat": now, "exp": now + 600}
    hs = {"alg": "HS256", "typ": "JWT"}
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    valid = jwt.encode(good, secret, algorithm="HS256")
    head, body, signature = valid.split(".")
    tampered_claims = _b64(json.dumps({**good, "role": "staff"}).encode())
    return {
        "expired": jwt.encode({**good, "iat": now - 7200, "exp": now - 3600}, secret),
        "forged signature": f"{head}.{body}.{_b64(b'x' * 32)}",
        "tampered claims (role: staff, old signature)": f"{head}.{tampered_claims}.{signature}",
        "wrong key": jwt.encode(good, "not-the-deployment-secret-" * 2, algorithm="HS256"),
        "alg none": hand_made({"alg": "none", "typ": "JWT"}, good, None),
        "alg None": hand_made({"alg": "None", "typ": "JWT"}, good, None),
        "RS256 with an unknown key": jwt.encode(good, rsa_key, algorithm="RS256"),
        "algorithm confusion (HS256 keyed with the RSA public PEM)": hand_made(
            hs, good, public_pem
        ),
        "missing exp": jwt.encode({"sub": "mallory", "role": "customer"}, secret),
        "bad role": jwt.encode({**good, "role": "admin"}, secret),
        "no role": jwt.encode({k: v for k, v in good.items() if k != "role"}, secret),
        "bad sub": jwt.encode({**good, "sub": "../../etc/passwd"}, secret),
        "empty sub": jwt.encode({**good, "sub": ""}, secret),
        "not a JWT": "definitely-not-a-jwt",
    }


async def test_bad_tokens_of_every_kind_are_refused_with_401(
    system: System, http: httpx.AsyncClient
) -> None:
    for name, token in bad_tokens(system).items():
        for method, path in [("GET", "/orders"), ("GET", "/me"), ("POST", "/orders")]:
            response = await http.request(
                method,
                f"{system.url()}{path}",
                json={"lines": [{"sku": "X", "qty": 1}]} if method == "POST" else None,
                headers={**bearer(token), "Idempotency-Key": unique("t")},
            )
            assert response.status_code == 401, (name, path, response.text)
            await asyncio.sleep(1.5 / RATE_LIMIT)  # refused tokens count against the address
            assert_problem(response, 401)
            assert response.headers["www-authenticate"].lower().startswith("bearer")
    # The good token of the same shape passes (so the refusals above are about the token).
    ok = await http.get(f"{system.url()}/orders", headers=auth(system, "mallory"))
    assert ok.status_code == 200, ok.text


# --- internal services

INTERNAL: dict[str, list[tuple[str, str, dict[str, Any] | None]]] = {
    "profiles": [("GET", "/profiles/someone", None), ("PUT", "/profiles/someone", {"name": "x"})],
    "inventory": [
        ("POST", "/internal/reservations", {"order_id": "o-1", "lines": [{"sku": "A", "qty": 1}]}),
    ],
    "orders": [("GET", "/orders", None), ("POST", "/orders", {"lines": [{"sku": "A", "qty": 1}]})],
    "notifications": [
        ("GET", "/notifications", None),
        ("POST", "/webhooks", {"url": "http://127.0.0.1:9/", "events": ["OrderConfirmed"]}),
    ],
}


async def test_internal_services_refuse_calls_without_the_service_credential(
    system: System, http: httpx.AsyncClient
) -> None:
    customer_jwt = system.token("mallory")
    SEEN_SECRETS.add(customer_jwt)
    jwt_secret = (system.data_dir / "jwt-secret").read_text().strip()
    credentials: dict[str, dict[str, str]] = {
        "none": {},
        "wrong": {"Authorization": f"Bearer {'w' * 43}"},
        "another scheme": {"Authorization": "Basic c3RhZmY6c3RhZmY="},
        "a customer's JWT": {"Authorization": f"Bearer {customer_jwt}"},
        "the JWT secret": {"Authorization": f"Bearer {jwt_secret}"},
    }
    identity = {"X-Stockflow-User": "mallory", "X-Stockflow-Role": "staff"}
    assert set(INTERNAL) == set(SERVICES) - {"edge"}
    for service, calls in INTERNAL.items():
        for method, path, body in calls:
            for name, credential in credentials.items():
                response = await http.request(
                    method,
                    f"{system.url(service)}{path}",
                    json=body,
                    headers={**identity, **credential, "Idempotency-Key": unique("i")},
                )
                assert response.status_code in (401, 403), (service, path, name, response.text)
                assert_problem(response, response.status_code)
        for probe in ("/healthz", "/readyz"):
            response = await http.get(f"{system.url(service)}{probe}")
            assert response.status_code == 200, (service, probe, response.text)
    # The right credential is accepted on the same routes (the refusals are about it).
    service_token = (system.data_dir / "service-token").read_text().strip()
    response = await http.get(
        f"{system.url('orders')}/orders",
        headers={"Authorization": f"Bearer {service_token}", **identity},
    )
    assert response.status_code == 200, response.text


INVENTORY_PUBLIC: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/inventory/SKU-1", None),
    ("GET", "/inventory/SKU-1/events", None),
    ("POST", "/inventory/SKU-1/receipts", {"qty": 1}),
    ("POST", "/inventory/SKU-1/adjustments", {"delta": 1}),
]


async def test_inventory_stock_routes_refuse_calls_without_the_service_credential(
    system: System, http: httpx.AsyncClient
) -> None:
    for method, path, body in INVENTORY_PUBLIC:
        response = await http.request(
            method,
            f"{system.url('inventory')}{path}",
            json=body,
            headers={"X-Stockflow-Role": "staff", "Idempotency-Key": unique("i")},
        )
        assert response.status_code in (401, 403), (path, response.status_code, response.text)


# --- webhooks - SSRF

REFUSED_TARGETS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/hook",
    "http://192.168.1.1/hook",
    "http://[::1]:8080/hook",
    "http://localhost:9/hook",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://0.0.0.0/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "ftp://127.0.0.1/hook",
    "http://hook-user:hunter2-in-a-url@127.0.0.1:9/hook",
]


async def test_webhook_targets_outside_the_allowlist_are_refused(
    system: System, http: httpx.AsyncClient
) -> None:
    staff = auth(system, "staff-sec", "staff")
    for url in REFUSED_TARGETS:
        response = await http.post(
            f"{system.url()}/webhooks",
            json={"url": url, "events": ["OrderConfirmed"]},
            headers={**staff, "Idempotency-Key": unique("w")},
        )
        assert 400 <= response.status_code < 500, (url, response.text)
        assert_problem(response, response.status_code)
    listed = await http.get(f"{system.url()}/webhooks", headers=staff)
    assert listed.status_code == 200, listed.text
    assert not any(part in listed.text for part in ("169.254", "10.0.0.1", "file:", "hunter2"))
    # An allowed target (the allowlist has 127.0.0.1) is accepted: its secret is shown once.
    created = await http.post(
        f"{system.url()}/webhooks",
        json={"url": "http://127.0.0.1:9/allowed", "events": ["OrderConfirmed"]},
        headers={**staff, "Idempotency-Key": unique("w")},
    )
    assert created.status_code == 201, created.text
    SEEN_SECRETS.add(created.json()["secret"])
    assert created.json()["secret"] not in listed.text


# --- rate limits


async def test_a_burst_meets_429_with_retry_after_and_other_clients_are_not_affected(
    system: System, http: httpx.AsyncClient
) -> None:
    greedy, polite = auth(system, unique("greedy")), auth(system, unique("polite"))
    burst = await asyncio.gather(
        *(http.get(f"{system.url()}/orders", headers=greedy) for _ in range(RATE_LIMIT * 4))
    )
    codes = [r.status_code for r in burst]
    assert set(codes) <= {200, 429}, codes
    assert 1 <= codes.count(200) <= RATE_LIMIT, codes
    limited = [r for r in burst if r.status_code == 429]
    assert len(limited) >= RATE_LIMIT * 2, codes
    for response in limited[:3]:
        assert_problem(response, 429)
        assert int(response.headers["retry-after"]) >= 1, response.headers
    others = [await http.get(f"{system.url()}/orders", headers=polite) for _ in range(3)]
    assert [r.status_code for r in others] == [200] * 3
    await asyncio.sleep(int(limited[0].headers["retry-after"]) + 0.2)
    again = await http.get(f"{system.url()}/orders", headers=greedy)
    assert again.status_code == 200, again.text


# --- secrets in logs - last


async def test_no_secret_appears_in_any_log_line_of_any_service(
    system: System, http: httpx.AsyncClient
) -> None:
    """Varied traffic (failures too), then every line of every service is scanned."""
    staff = auth(system, "staff-sec", "staff")
    sku = unique("LOGS")
    await receive(http, system, sku, 2)
    created = await http.post(
        f"{system.url()}/webhooks",
        json={"url": "http://127.0.0.1:9/logs", "events": ["OrderConfirmed", "OrderRejected"]},
        headers={**staff, "Idempotency-Key": unique("w")},
    )
    assert created.status_code == 201, created.text
    SEEN_SECRETS.add(created.json()["secret"])
    buyer = unique("buyer")
    for _ in range(3):  # two confirmed, one rejected; the webhook target refuses connections
        await settled(http, system, buyer, await place(http, system, buyer, sku))
    service_token = (system.data_dir / "service-token").read_text().strip()
    jwt_secret = (system.data_dir / "jwt-secret").read_text().strip()
    failing: list[tuple[str, str, dict[str, str]]] = [
        ("edge", "/orders", {"Authorization": f"Bearer {jwt_secret}"}),
        ("edge", "/orders", {"Authorization": f"Basic {jwt_secret}"}),
        ("edge", "/orders", {"Cookie": f"session={jwt_secret}"}),
        ("orders", "/orders", {"Authorization": f"Bearer {jwt_secret}"}),
        ("inventory", "/inventory/X", {"Authorization": f"Bearer {service_token}x"}),
        ("profiles", "/profiles/x", {"Authorization": f"Bearer {service_token[::-1]}"}),
        ("notifications", "/notifications", {"X-Api-Key": service_token}),
    ]
    canary = f"canary-{uuid.uuid4().hex}"  # proves the failing calls' lines were captured
    for service, path, headers in failing:
        with contextlib.suppress(httpx.HTTPError):
            await http.get(
                f"{system.url(service)}{path}", headers={**headers, "X-Correlation-ID": canary}
            )
    await http.post(  # a refused webhook whose URL carries a password
        f"{system.url()}/webhooks",
        json={"url": "http://u:hunter2-in-a-url@127.0.0.1:9/", "events": ["OrderConfirmed"]},
        headers={**staff, "Idempotency-Key": unique("w")},
    )
    await asyncio.sleep(1.0)  # webhook attempts and the access log lines of the above
    secrets = {
        "the JWT secret": jwt_secret,
        "the service credential": service_token,
        "the service credential reversed (sent)": service_token[::-1],
        "a password in a URL": "hunter2-in-a-url",
        "a password in the OTLP endpoint's URL": OTLP_PASSWORD,
        **{f"token/secret #{i}": s for i, s in enumerate(sorted(SEEN_SECRETS))},
    }
    assert len(secrets) >= 7, secrets.keys()
    lines = system.tail(10**9).splitlines()
    assert len(lines) > 100, len(lines)
    services_seen = {json.loads(line).get("service") for line in lines if line.startswith("{")}
    assert set(SERVICES) <= services_seen, services_seen
    logged = {json.loads(line).get("service") for line in lines if canary in line}
    assert {service for service, _, _ in failing} <= logged, logged
    leaks = [
        (name, line[:300]) for line in lines for name, secret in secrets.items() if secret in line
    ]
    assert leaks == [], leaks[:5]
    # JWTs are also caught by shape: three base64url parts starting with the '{"' header.
    jwts = [line[:300] for line in lines if JWT_SHAPE.search(line)]
    assert jwts == [], jwts[:3]
