"""The platform's uvicorn server: one wake a second while idle, at once when told to exit."""

from __future__ import annotations

import asyncio
import time

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from stockflow.platform.http_server import HttpServer, bind_port


async def _hello(request: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def test_an_idle_server_ticks_once_a_second_keeps_its_date_and_exits_at_once() -> None:
    app = Starlette(routes=[Route("/", _hello)])
    server = HttpServer(app, bind_port("127.0.0.1", 0, service="test"))
    ticks: list[float] = []
    on_tick = server.on_tick

    async def counted(counter: int) -> bool:
        ticks.append(time.monotonic())
        return await on_tick(counter)

    server.on_tick = counted  # type: ignore[method-assign]
    task = asyncio.create_task(server.run_on_socket())
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/")
    assert response.text == "hello"
    assert "date" in response.headers
    await asyncio.sleep(2.2)
    idle_ticks = len(ticks)
    asked = time.monotonic()
    server.should_exit = True
    await asyncio.wait_for(task, 10)

    # uvicorn's own loop ticks every 0.1 s: ~22 ticks here; this one ~3.
    assert 2 <= idle_ticks <= 5, idle_ticks
    assert ticks[-1] - asked < 0.5  # the exit woke the loop; it did not wait out the second
