"""``HttpPeers``: the other inventory replicas over their internal HTTP API.

One :class:`~stockflow_kit.http.ResilientClient` per peer (breaker, bulkhead, per-attempt
timeout, deadline, retry budget). Every call carries an ``Idempotency-Key``, so the client may
retry it: the peer records the part under that key as its message id and a repeat changes
nothing (``stockflow.inventory.service_layer.reservations``).

Answers: 2xx is definite (``holds`` says whether the order holds the lines); a 409 or 422
(a domain rule refused the part) is a definite "not held"; anything else (unreachable,
timeout, breaker open, 5xx, 401/421 misconfiguration) raises
:class:`~stockflow.inventory.service_layer.ports.PeerUnavailableError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Final

import httpx
from prometheus_client import CollectorRegistry

from stockflow.inventory.service_layer.ports import PeerUnavailableError
from stockflow_kit.http import DownstreamError, DownstreamStatusError, ResilientClient

__all__ = ["DEFINITE_REFUSALS", "HttpPeers", "LeasedPeers"]

DEFINITE_REFUSALS: Final = frozenset({409, 422})
"""Statuses by which a peer definitely refused a reservation part (it holds nothing)."""

MAX_IN_FLIGHT: Final = 32
"""Calls in flight to one member at most (its client's bulkhead is as large): a part waits for
the peer's next commit, so the rate to a peer is about this many per commit latency. 256 was
measured worse: the calls then outlived their 5 s attempt timeout, the breaker opened and
batches were redelivered until dead-lettered."""

TransportFactory = Callable[[int], httpx.AsyncBaseTransport | None]


class HttpPeers:
    """The replicas at ``urls`` (indexed by replica index; this one's entry is never called)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        replica_index: int,
        service_token: str,
        timeout: float = 5.0,
        total_timeout: float = 20.0,
        registry: CollectorRegistry | None = None,
        transport: TransportFactory | None = None,
    ) -> None:
        self._headers = {"Authorization": f"Bearer {service_token}"}
        self._timeouts = (timeout, total_timeout)
        self._registry = registry
        self.urls = list(urls)
        self._clients = {
            index: self._new_client(
                f"inventory-r{index}", url, transport(index) if transport is not None else None
            )
            for index, url in enumerate(urls)
            if index != replica_index
        }

    def _new_client(
        self,
        name: str,
        url: str,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        max_concurrent: int = 32,
    ) -> ResilientClient:
        timeout, total_timeout = self._timeouts
        return ResilientClient(
            name,
            url,
            transport=transport,
            headers=self._headers,
            timeout=timeout,
            total_timeout=total_timeout,
            attempts=4,
            reset_timeout=5.0,
            max_concurrent=max_concurrent,
            registry=self._registry,
        )

    def _client(self, replica: int) -> ResilientClient:
        client = self._clients.get(replica)
        if client is None:
            raise PeerUnavailableError(f"no peer URL for inventory replica {replica}")
        return client

    async def reserve(
        self,
        replica: int,
        order_id: str,
        lines: Sequence[tuple[str, int]],
        *,
        key: str,
        correlation_id: str | None = None,
    ) -> bool:
        body = {"order_id": order_id, "lines": [{"sku": s, "qty": q} for s, q in lines]}
        response = await self._post(
            replica, "/internal/reservations", body, key, correlation_id, refusals=True
        )
        if response is None:
            return False
        return bool(response.json().get("holds"))

    async def release(
        self,
        replica: int,
        order_id: str,
        skus: Sequence[str],
        *,
        key: str,
        correlation_id: str | None = None,
    ) -> None:
        await self._post(
            replica,
            f"/internal/reservations/{order_id}/release",
            {"skus": list(skus)},
            key,
            correlation_id,
            refusals=False,
            route="/internal/reservations/{order_id}/release",
        )

    async def _post(
        self,
        replica: int,
        path: str,
        body: object,
        key: str,
        correlation_id: str | None,
        *,
        refusals: bool,
        route: str | None = None,
    ) -> httpx.Response | None:
        headers = {"X-Correlation-ID": correlation_id} if correlation_id else {}
        try:
            return await self._client(replica).post(
                path, json=body, idempotency_key=key, headers=headers, route=route or path
            )
        except DownstreamStatusError as error:
            if refusals and error.status in DEFINITE_REFUSALS:
                return None
            raise PeerUnavailableError(f"inventory replica {replica}: {error}") from error
        except DownstreamError as error:
            raise PeerUnavailableError(f"inventory replica {replica}: {error}") from error

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


class LeasedPeers(HttpPeers):
    """The members owning partitions (dynamic mode, ADR 0010): ``replica`` is a partition,
    called at its owner's base URL as ``owner_url`` last saw it in the leases. An unknown or
    moved owner is no definite answer (:class:`PeerUnavailableError`, or the 421 of a member
    that no longer holds it): the batch is redelivered and the protocol re-driven."""

    def __init__(
        self,
        owner_url: Callable[[int], str | None],
        *,
        service_token: str,
        timeout: float = 5.0,
        total_timeout: float = 20.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        super().__init__(
            [],
            replica_index=-1,
            service_token=service_token,
            timeout=timeout,
            total_timeout=total_timeout,
            registry=registry,
        )
        self._owner_url = owner_url
        self._by_url: dict[str, ResilientClient] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}

    async def _post(self, replica: int, *args: Any, **kwargs: Any) -> httpx.Response | None:
        """Wait for one of the owner's ``MAX_IN_FLIGHT`` slots first: a batch full of
        spanning orders queues here instead of being refused by the client's bulkhead (each
        refusal would fail and redeliver the whole batch: measured, a collapse under load)."""
        url = self._owner_url(replica) or ""
        slot = self._slots.get(url)
        if slot is None:
            slot = self._slots[url] = asyncio.Semaphore(MAX_IN_FLIGHT)
        async with slot:
            return await super()._post(replica, *args, **kwargs)

    def _client(self, replica: int) -> ResilientClient:
        url = self._owner_url(replica)
        if url is None:
            raise PeerUnavailableError(f"no live owner known for inventory partition {replica}")
        client = self._by_url.get(url)
        if client is None:
            client = self._by_url[url] = self._new_client(
                f"inventory-{len(self._by_url)}", url, max_concurrent=MAX_IN_FLIGHT
            )
        return client

    async def aclose(self) -> None:
        for client in self._by_url.values():
            await client.aclose()
