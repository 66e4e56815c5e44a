"""``HttpPeers``: the other inventory replicas over their internal HTTP API.

One :class:`~stockflow_kit.http.ResilientClient` per peer (breaker, bulkhead, per-attempt
timeout, deadline, retry budget). :meth:`HttpPeers.call` sends all the parts for one peer in
ONE request to its batch route (:mod:`stockflow.contracts.inventory_parts`): the peer decides
them in its next commit, so a consumed batch full of spanning orders costs one round trip
and one peer commit per peer, not one per part. Every part carries its ``Idempotency-Key``,
so the client may retry the request: the peer records each part under that key's message id
and a repeat changes nothing (``stockflow.inventory.service_layer.reservations``).

Answers, per part: 2xx is definite (``holds`` says whether the order holds the lines); a 409
or 422 (a domain rule refused the part) is a definite "not held"; anything else (the request
unreachable, timed out, breaker open, 5xx, 401; a part's 421 or 503) is a
:class:`~stockflow.inventory.service_layer.ports.PeerUnavailableError` for that part.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from typing import Final

import httpx
import msgspec
from prometheus_client import CollectorRegistry

from stockflow.contracts.inventory_commands import CommandLine
from stockflow.contracts.inventory_parts import (
    MAX_PARTS,
    PARTS_ROUTE,
    PartAnswer,
    PartAnswers,
    ReleasePart,
    ReservationParts,
    ReservePart,
)
from stockflow.inventory.service_layer.ports import PartResult, PeerPart, PeerUnavailableError
from stockflow_kit.http import DownstreamError, ResilientClient

__all__ = ["DEFINITE_REFUSALS", "HttpPeers", "LeasedPeers"]

DEFINITE_REFUSALS: Final = frozenset({409, 422})
"""Statuses by which a peer definitely refused a reservation part (it holds nothing)."""

MAX_IN_FLIGHT: Final = 32
"""Requests in flight to one member at most (its client's bulkhead is as large). Before the
batch call, with one request per part, 256 was measured worse than 32: the calls outlived
their 5 s attempt timeout, the breaker opened and batches were redelivered until
dead-lettered."""

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

    async def call(self, parts: Sequence[PeerPart]) -> list[PartResult]:
        """All ``parts`` of one owner in one request (in requests of :data:`MAX_PARTS`),
        the owners concurrently; see :class:`~.ports.Peers`."""
        results: list[PartResult | None] = [None] * len(parts)
        by_client: dict[ResilientClient, list[int]] = {}
        for index, part in enumerate(parts):
            try:
                client = self._client(part.unit)
            except PeerUnavailableError as error:
                results[index] = error
                continue
            by_client.setdefault(client, []).append(index)
        chunks = [
            (client, indexes[i : i + MAX_PARTS])
            for client, indexes in by_client.items()
            for i in range(0, len(indexes), MAX_PARTS)
        ]
        answers = await asyncio.gather(
            *(self._send(client, [parts[i] for i in chunk]) for client, chunk in chunks)
        )
        for (_, chunk), chunk_answers in zip(chunks, answers, strict=True):
            for index, answer in zip(chunk, chunk_answers, strict=True):
                results[index] = answer
        return [r if r is not None else PeerUnavailableError("no answer") for r in results]

    async def _send(self, client: ResilientClient, parts: Sequence[PeerPart]) -> list[PartResult]:
        """One request; a request without an answer leaves every part of it undecided."""
        body = msgspec.json.encode(ReservationParts(parts=[_part_body(p) for p in parts]))
        # Every part carries its own key; the request's key (their digest) lets the client
        # retry the request (a retry is the same parts, each applied at most once).
        key = hashlib.sha256(b"\n".join(p.key.encode() for p in parts)).hexdigest()
        try:
            response = await client.post(
                PARTS_ROUTE,
                content=body,
                headers={"Content-Type": "application/json"},
                idempotency_key=key,
                route=PARTS_ROUTE,
            )
            answers = msgspec.json.decode(response.content, type=PartAnswers).parts
        except DownstreamError as error:
            return [PeerUnavailableError(f"{client.name}: {error}") for _ in parts]
        except msgspec.DecodeError as error:
            return [PeerUnavailableError(f"{client.name}: bad answer: {error}") for _ in parts]
        if len(answers) != len(parts):
            failure = PeerUnavailableError(f"{client.name}: {len(answers)} answers to {len(parts)}")
            return [failure for _ in parts]
        return [_result(client.name, p, a) for p, a in zip(parts, answers, strict=True)]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


def _part_body(part: PeerPart) -> ReservePart | ReleasePart:
    if part.op == "reserve":
        return ReservePart(
            key=part.key,
            order_id=part.order_id,
            lines=[CommandLine(sku=sku, qty=qty) for sku, qty in part.lines],
            correlation_id=part.correlation_id,
        )
    return ReleasePart(
        key=part.key,
        order_id=part.order_id,
        skus=list(part.skus),
        correlation_id=part.correlation_id,
    )


def _result(peer: str, part: PeerPart, answer: PartAnswer) -> PartResult:
    if answer.key != part.key:
        return PeerUnavailableError(f"{peer}: answer for {answer.key!r}, not {part.key!r}")
    if 200 <= answer.status < 300:
        return bool(answer.holds) if part.op == "reserve" else True
    if part.op == "reserve" and answer.status in DEFINITE_REFUSALS:
        return False
    return PeerUnavailableError(f"{peer}: part {part.key!r}: {answer.status} {answer.detail}")


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
        self._slots: dict[ResilientClient, asyncio.Semaphore] = {}

    async def _send(self, client: ResilientClient, parts: Sequence[PeerPart]) -> list[PartResult]:
        """Wait for one of the owner's ``MAX_IN_FLIGHT`` slots first: requests queue here
        instead of being refused by the client's bulkhead (each refusal would fail and
        redeliver whole partition batches: measured, a collapse under load)."""
        slot = self._slots.get(client)
        if slot is None:
            slot = self._slots[client] = asyncio.Semaphore(MAX_IN_FLIGHT)
        async with slot:
            return await super()._send(client, parts)

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
