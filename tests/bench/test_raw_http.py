"""``RawHttp``, the load generator's client, against a real uvicorn server: bodies by length
and chunked, connections reused, ``Connection: close`` honoured, the timeout kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from stockflow.bench.raw_http import RawHttp
from stockflow.platform.http_server import HttpServer, bind_port


def app() -> FastAPI:
    api = FastAPI()
    peers: set[object] = set()

    @api.post("/echo")
    async def echo(request: Request) -> JSONResponse:
        peers.add(request.client)
        return JSONResponse({"got": await request.json(), "q": request.url.query}, status_code=201)

    @api.get("/echo")
    async def query(request: Request) -> JSONResponse:
        peers.add(request.client)
        return JSONResponse({"q": request.url.query, "auth": request.headers.get("x-token")})

    @api.get("/chunked")
    async def chunked() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for part in (b'{"a":', b" 1", b"}"):
                yield part

        return StreamingResponse(parts(), media_type="application/json")

    @api.get("/close")
    async def close() -> Response:
        return Response(b"bye", headers={"Connection": "close"})

    @api.get("/slow")
    async def slow() -> Response:
        await asyncio.sleep(2)
        return Response(b"late")

    @api.get("/peers")
    async def count() -> dict[str, int]:
        return {"peers": len(peers)}

    return api


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    server = HttpServer(app(), bind_port("127.0.0.1", 0, service="test"))
    task = asyncio.create_task(server.run_on_socket())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{server.port}"
    server.should_exit = True
    await task


async def test_json_bodies_queries_and_headers_go_and_come_back(base_url: str) -> None:
    async with RawHttp(base_url) as http:
        posted = await http.post("/echo", json_body={"x": [1, 2]}, headers={"X-Token": "t"})
        got = await http.get("/echo", params={"limit": 5}, headers={"X-Token": "t"})
    assert posted.status_code == 201
    assert posted.json()["got"] == {"x": [1, 2]}
    assert got.json() == {"q": "limit=5", "auth": "t"}


async def test_a_chunked_body_is_read_whole(base_url: str) -> None:
    async with RawHttp(base_url) as http:
        assert (await http.get("/chunked")).json() == {"a": 1}
        assert (await http.get("/echo")).status_code == 200  # the connection is still usable


async def test_sequential_requests_reuse_one_connection_and_close_is_honoured(
    base_url: str,
) -> None:
    async with RawHttp(base_url) as http:
        for _ in range(5):
            await http.get("/echo")
        assert (await http.get("/peers")).json() == {"peers": 1}
        assert (await http.get("/close")).text == "bye"
        await http.get("/echo")
        assert (await http.get("/peers")).json() == {"peers": 2}


async def test_a_request_longer_than_the_timeout_raises_timeout(base_url: str) -> None:
    async with RawHttp(base_url, timeout=0.2) as http:
        with pytest.raises(TimeoutError):
            await http.get("/slow")
        assert (await http.get("/echo")).status_code == 200  # a fresh connection


async def test_a_refused_connection_is_an_os_error() -> None:
    from stockflow_kit.lifecycle import free_port

    async with RawHttp(f"http://127.0.0.1:{free_port()}") as http:
        with pytest.raises(ConnectionRefusedError):
            await http.get("/")
