"""Edge as the consumer of a pact: built through its bootstrap with one downstream at the
pact's mock server, called through its public API (in process)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from pact import Pact
from tests.edge.conftest import edge_settings

from stockflow.edge.bootstrap import build as build_edge

__all__ = ["edge_in_front_of"]


@asynccontextmanager
async def edge_in_front_of(pact: Pact, downstream: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of edge whose *downstream* (``orders``, ``inventory``…) is *pact*'s mock
    server; on exit, the mock server must have seen no request it did not expect."""
    with pact.serve() as server:
        urls = {f"{downstream}_url": str(server.url).rstrip("/")}
        service = build_edge(edge_settings(**urls))
        await service.start()
        try:
            transport = httpx.ASGITransport(app=service.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://edge") as http:
                yield http
        finally:
            await service.stop()
        assert not server.mismatches, server.mismatches
