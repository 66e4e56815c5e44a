"""The fault proxy against a real tiny HTTP server: each fault, switched while it runs."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator

import httpx
import pytest

import stockflow_kit.testing as testing
from stockflow_kit.net import free_port
from stockflow_kit.testing import PASS_THROUGH, BlackHole, FaultProxy, Latency, Reset


class TinyHttpServer:
    """An HTTP/1.1 server on a free port that answers every request ``200 ok`` (keep-alive)
    and counts the connections it accepted."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    break
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def upstream() -> AsyncIterator[TinyHttpServer]:
    server = TinyHttpServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def proxy(upstream: TinyHttpServer) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", upstream.port, seed=7) as started:
        yield started


async def fresh_get(proxy: FaultProxy, *, wait: float = 2.0) -> httpx.Response:
    """One GET on a new connection (a new client each time)."""
    async with httpx.AsyncClient(base_url=proxy.url, timeout=wait, trust_env=False) as http:
        return await http.get("/")


async def test_pass_through_forwards_requests_and_answers_and_counts_connections(
    proxy: FaultProxy, upstream: TinyHttpServer
) -> None:
    for _ in range(3):
        response = await fresh_get(proxy)
        assert (response.status_code, response.text) == (200, "ok")
    assert proxy.fault == PASS_THROUGH
    assert proxy.counts.connections == 3
    assert upstream.connections == 3
    assert proxy.counts.resets == proxy.counts.black_holed == 0


async def test_latency_delays_each_answer_by_the_delay_give_or_take_the_jitter(
    proxy: FaultProxy,
) -> None:
    started = time.monotonic()
    await fresh_get(proxy)
    baseline = time.monotonic() - started
    proxy.set_fault(Latency(0.3, jitter=0.1))
    elapsed = []
    for _ in range(3):
        started = time.monotonic()
        assert (await fresh_get(proxy)).status_code == 200
        elapsed.append(time.monotonic() - started)
    assert all(0.2 <= e <= 0.4 + baseline + 0.5 for e in elapsed), elapsed  # slack: 2 busy cores
    assert proxy.counts.delayed_chunks == 3


def test_seeded_jitter_repeats_and_a_negative_latency_is_refused() -> None:
    first, second = FaultProxy("127.0.0.1", 1, seed=3), FaultProxy("127.0.0.1", 1, seed=3)
    latency = Latency(0.05, jitter=0.05)
    assert [first._delay(latency) for _ in range(5)] == [second._delay(latency) for _ in range(5)]
    assert len({first._delay(latency) for _ in range(5)}) == 5
    assert all(0.0 <= first._delay(latency) <= 0.1 for _ in range(50))
    with pytest.raises(ValueError, match="negative"):
        Latency(-1)
    with pytest.raises(ValueError, match="negative"):
        Latency(1, jitter=-0.1)


async def test_reset_refuses_new_connections_with_a_tcp_reset(
    proxy: FaultProxy, upstream: TinyHttpServer
) -> None:
    proxy.set_fault(Reset())
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    with pytest.raises(ConnectionResetError):
        await reader.read(100)
    writer.close()
    with pytest.raises(httpx.TransportError):
        await fresh_get(proxy)
    assert upstream.connections == 0
    assert proxy.counts.resets == 2


async def test_setting_reset_cuts_the_connections_that_are_open(proxy: FaultProxy) -> None:
    async with httpx.AsyncClient(base_url=proxy.url, timeout=2, trust_env=False) as http:
        assert (await http.get("/")).status_code == 200  # keep-alive: the connection stays open
        assert proxy.counts.active == 1
        proxy.set_fault(Reset())
        await asyncio.sleep(0.05)
        assert proxy.counts.active == 0
        proxy.set_fault(PASS_THROUGH)
        # httpx finds its pooled connection dead, and a new one goes through again
        assert (await http.get("/")).status_code == 200
    assert proxy.counts.resets == 1


async def test_a_black_hole_accepts_and_never_answers_then_pass_through_heals(
    proxy: FaultProxy, upstream: TinyHttpServer
) -> None:
    proxy.set_fault(BlackHole())
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await fresh_get(proxy, wait=0.3)
    assert time.monotonic() - started >= 0.3
    assert upstream.connections == 0, "a black hole never calls the upstream"
    assert proxy.counts.black_holed == 1
    proxy.set_fault(PASS_THROUGH)
    assert (await fresh_get(proxy)).status_code == 200
    assert upstream.connections == 1


async def test_an_open_connection_goes_silent_in_a_black_hole(proxy: FaultProxy) -> None:
    async with httpx.AsyncClient(base_url=proxy.url, timeout=0.3, trust_env=False) as http:
        assert (await http.get("/")).status_code == 200
        proxy.set_fault(BlackHole())
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/")


async def test_an_unreachable_upstream_is_a_reset_and_stop_closes_everything() -> None:
    async with FaultProxy("127.0.0.1", free_port()) as proxy:
        with pytest.raises(httpx.TransportError):
            await fresh_get(proxy)
        assert proxy.counts.resets == 1
        proxy.set_fault(BlackHole())
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        await asyncio.sleep(0.05)
        assert proxy.counts.active == 1
    with pytest.raises(ConnectionResetError):  # stop resets what is open
        await reader.read(10)
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", proxy.port)


def test_the_public_api_is_pinned_and_documented() -> None:
    pinned = ["PASS_THROUGH", "BlackHole", "Fault", "FaultProxy", "Latency", "PassThrough"]
    pinned += ["ProxyCounts", "Reset"]
    assert sorted(testing.__all__) == sorted(pinned)
    for name in testing.__all__:
        value = getattr(testing, name)
        if inspect.isclass(value):
            assert (value.__doc__ or "").strip(), name
