"""``PooledTransport`` on real loopback sockets: exchanges whole, failures named for what they are.

The server is a few lines of asyncio that answer, stall, or hang up as each test needs, so the
transport's mapping of aiohttp's failures to httpx's (and so the resilient client's errors) is
seen on a real connection, not a mock.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from stockflow_kit.http import PooledTransport, ResilientClient
from stockflow_kit.http.client import (
    DownstreamTimeoutError,
    DownstreamTransportError,
    DownstreamUnavailableError,
)
from stockflow_kit.net import free_port

pytestmark = pytest.mark.timeout(30)

Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


def _answer(status: str, body: bytes, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _serve(behaviour: Behaviour) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await behaviour(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Behaviour], Awaitable[str]]]:
    servers: list[asyncio.Server] = []

    async def start(behaviour: Behaviour) -> str:
        server, url = await _serve(behaviour)
        servers.append(server)
        return url

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_requests_and_answers_go_through_whole_on_kept_alive_connections(
    serve: Callable[[Behaviour], Awaitable[str]],
) -> None:
    seen: list[tuple[bytes, bytes]] = []
    connections = 0

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            head, body = await _read_request(reader)
            seen.append((head, body))
            zipped = gzip.compress(b'{"echo": "' + body + b'"}')
            writer.write(
                _answer(
                    "201 Created",
                    zipped,
                    "Content-Type: application/json",
                    "Content-Encoding: gzip",
                    "Set-Cookie: a=1",
                    "Set-Cookie: b=2",
                )
            )
            await writer.drain()

    url = await serve(echo)
    async with httpx.AsyncClient(base_url=url, transport=PooledTransport()) as http:
        for n in range(3):
            response = await http.post(
                "/things?x=1", content=f"body-{n}".encode(), headers={"X-Thing": "t"}
            )
            assert response.status_code == 201
            assert response.json() == {"echo": f"body-{n}"}  # gzip decoded by httpx
            assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
            assert response.reason_phrase == "Created"
    assert connections == 1  # one connection, kept alive for all three
    head, body = seen[0]
    assert head.startswith(b"POST /things?x=1 HTTP/1.1\r\n")
    assert b"\r\nX-Thing: t\r\n" in head or b"\r\nx-thing: t\r\n" in head
    assert body == b"body-0"


async def test_a_streamed_request_body_arrives_whole(
    serve: Callable[[Behaviour], Awaitable[str]],
) -> None:
    received = asyncio.get_running_loop().create_future()

    async def read_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        body = b""
        while (size := int((await reader.readline()).strip(), 16)) > 0:
            body += await reader.readexactly(size + 2)
            body = body[:-2]
        await reader.readline()
        received.set_result((head, body))
        writer.write(_answer("200 OK", b"ok"))
        await writer.drain()

    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"a" * 10, b"b" * 20000, b"c"):
            yield part

    url = await serve(read_chunked)
    async with httpx.AsyncClient(base_url=url, transport=PooledTransport()) as http:
        assert (await http.post("/upload", content=chunks())).text == "ok"
    head, body = await received
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b"a" * 10 + b"b" * 20000 + b"c"


async def test_a_refused_connection_is_a_connect_error_and_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens
    async with httpx.AsyncClient(base_url=url, transport=PooledTransport()) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("/")
    async with ResilientClient("down", url, attempts=1) as client:
        with pytest.raises(DownstreamUnavailableError) as caught:
            await client.get("/")
        assert caught.value.reason == "connect_error"


async def test_a_hang_up_mid_answer_is_a_broken_exchange_not_a_timeout(
    serve: Callable[[Behaviour], Awaitable[str]],
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()

    async def hang_up_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)

    for behaviour, expected in (
        (hang_up, httpx.ReadError),
        (hang_up_at_once, httpx.RemoteProtocolError),
    ):
        url = await serve(behaviour)
        async with httpx.AsyncClient(base_url=url, transport=PooledTransport()) as http:
            with pytest.raises(expected):
                await http.get("/")
        async with ResilientClient("flaky", url, attempts=1) as client:
            with pytest.raises(DownstreamTransportError):
                await client.get("/")


async def test_a_stalled_answer_is_a_read_timeout(
    serve: Callable[[Behaviour], Awaitable[str]],
) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(10)

    url = await serve(stall)
    async with httpx.AsyncClient(
        base_url=url, transport=PooledTransport(), timeout=httpx.Timeout(0.3)
    ) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/")
    async with ResilientClient("slow", url, attempts=1, timeout=0.3) as client:
        with pytest.raises(DownstreamTimeoutError):
            await client.get("/")


async def test_connections_are_bounded_and_the_rest_wait(
    serve: Callable[[Behaviour], Awaitable[str]],
) -> None:
    open_now = peak = 0

    async def slow_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, peak
        open_now += 1
        peak = max(peak, open_now)
        try:
            while True:
                await _read_request(reader)
                await asyncio.sleep(0.02)
                writer.write(_answer("200 OK", b"{}"))
                await writer.drain()
        finally:
            open_now -= 1

    url = await serve(slow_answer)
    async with httpx.AsyncClient(
        base_url=url, transport=PooledTransport(max_connections=3)
    ) as http:
        answers = await asyncio.gather(*(http.get("/") for _ in range(20)))
    assert {a.status_code for a in answers} == {200}
    assert peak == 3
