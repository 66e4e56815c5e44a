"""What a hostile user tried on the inventory, tried on every service (issue: hardening).

Every probe talks to a real ``stockflow serve <service>`` process over a real socket. No
answer may be a 5xx; every error is problem+json with a correlation id.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import httpx
import pytest
from tests.hostile.conftest import BODY_TIMEOUT, MAX_IN_FLIGHT, PROBES, TOKEN, Target

from stockflow.runtime.registry import SERVICES

pytestmark = pytest.mark.slow


def assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail", "correlation_id"} <= body.keys()
    assert response.headers["x-correlation-id"] == body["correlation_id"]


def raw_request(port: int, head: bytes, body: bytes = b"", *, wait: float = 5.0) -> bytes:
    """Send *head* and *body* on a fresh connection; return what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(head + body)
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def unfinished_post(target: Target, start: bytes, *, wait: float = 5.0) -> socket.socket:
    """A connection that sent a write (the probes' method) to the write route announcing a
    100-byte body, and only *start* of it: the request is admitted, and waits for the rest."""
    sock = socket.create_connection(("127.0.0.1", target.process.port), timeout=wait)
    extra = "".join(f"{name}: {value}\r\n" for name, value in target.probes.headers.items())
    sock.sendall(
        (
            f"{target.probes.method} {target.probes.write} HTTP/1.1\r\nHost: x\r\n{extra}"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        ).encode()
        + start
    )
    return sock


def test_every_service_has_probes() -> None:
    assert {spec.name for spec in SERVICES} == set(PROBES)


async def test_malformed_json_is_a_422_problem(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url) as client:
        response = await client.request(
            target.probes.method,
            target.probes.write,
            content=b'{"qty": ',
            headers={**target.probes.headers, "content-type": "application/json"},
        )
    assert_problem(response, 422)


async def test_a_body_that_is_not_json_is_a_415_problem(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url) as client:
        response = await client.request(
            target.probes.method,
            target.probes.write,
            content=b"qty=1",
            headers={**target.probes.headers, "content-type": "text/plain"},
        )
    assert_problem(response, 415)


async def test_an_oversized_body_is_a_413_problem(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url) as client:
        response = await client.request(
            target.probes.method,
            target.probes.write,
            content=b'{"pad": "' + b"x" * 10_000 + b'"}',
            headers={**target.probes.headers, "content-type": "application/json"},
        )
    assert_problem(response, 413)


async def test_unknown_routes_and_wrong_methods_are_problems(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url) as client:
        assert_problem(await client.get("/no/such/route"), 404)
        assert_problem(await client.delete(target.probes.write), 405)


async def test_internal_routes_refuse_calls_without_the_service_credential(
    target: Target,
) -> None:
    body = target.probes.internal_body
    others = {k: v for k, v in target.probes.headers.items() if k.lower() != "authorization"}
    async with httpx.AsyncClient(base_url=target.url) as client:
        method, url = target.probes.method, target.probes.internal
        assert_problem(await client.request(method, url, json=body, headers=others), 401)
        wrong = {**others, "Authorization": "Bearer not-the-credential"}
        assert_problem(await client.request(method, url, json=body, headers=wrong), 401)
        lower = {**others, "Authorization": f"bearer {target.probes.bearer or TOKEN}"}
        accepted = await client.request(method, url, json=body, headers=lower)
    assert accepted.status_code < 400, accepted.text


async def test_the_host_header_is_never_reflected(target: Target) -> None:
    async with httpx.AsyncClient(base_url=target.url) as client:
        response = await client.get(target.probes.read + "/", headers={"Host": "evil.example"})
    assert response.status_code < 500
    assert "evil.example" not in response.headers.get("location", "")


async def test_a_path_that_is_not_valid_utf8_is_refused(target: Target) -> None:
    answer = raw_request(target.process.port, b"GET /%FF%FE HTTP/1.1\r\nHost: x\r\n\r\n")
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:200]


async def test_a_trickled_body_times_out_with_a_408(target: Target) -> None:
    def trickle() -> bytes:
        with unfinished_post(target, b'{"qty": ', wait=10) as sock:
            started = time.monotonic()
            sock.settimeout(BODY_TIMEOUT * 4)
            answer = sock.recv(65536)
            assert time.monotonic() - started < BODY_TIMEOUT * 4
            return answer

    answer = await asyncio.to_thread(trickle)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


async def test_a_client_that_hangs_up_is_a_499_not_a_500(target: Target) -> None:
    def hang_up() -> None:
        with unfinished_post(target, b'{"qty": 1'):
            time.sleep(0.2)

    for _ in range(5):
        await asyncio.to_thread(hang_up)
    await asyncio.sleep(0.5)
    text = await target.process.metrics()
    statuses = [line for line in text.splitlines() if line.startswith("http_requests_total{")]
    assert any('status="499"' in line for line in statuses), statuses
    assert not any('status="500"' in line for line in statuses), statuses
    assert "Traceback" not in target.process.log_tail(100_000)


async def test_overload_is_shed_with_a_503_and_retry_after(target: Target) -> None:
    held = [unfinished_post(target, b"{") for _ in range(MAX_IN_FLIGHT)]  # admitted, stuck
    try:
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=target.url) as client:
            response = await client.request(
                target.probes.method,
                target.probes.write,
                json=target.probes.write_body,
                headers=target.probes.headers,
            )
            assert_problem(response, 503)
            assert int(response.headers["retry-after"]) >= 1
            assert (await client.get("/healthz")).status_code == 200  # never shed
    finally:
        for sock in held:
            sock.close()
    await asyncio.sleep(BODY_TIMEOUT + 0.5)
    async with httpx.AsyncClient(base_url=target.url) as client:
        again = await client.request(
            target.probes.method,
            target.probes.write,
            json=target.probes.write_body,
            headers=target.probes.headers,
        )
    assert again.status_code < 300, again.text
