"""The distributed system on a three-node NATS JetStream cluster whose nodes live in network
namespaces of their own (tests/cluster/netns.py), every stream with three replicas
(``?replicas=3``): mid-load, one follower is cut off the network and healed, then the leader
of the orders stream. No acknowledged (202) order may be lost or left PENDING, and the audit
(every reservation applied once, no phantom stock) must be clean.

Marked ``cluster`` (and ``slow``, ``integration``): it needs root for ``ip netns``; it skips
without it, and fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from tests.cluster.netns import NatsCluster, Node, netns_available
from tests.system.system import System, running_distributed
from tests.system.test_through_edge import place, receive, unique

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.integration]

OUTAGE_SECONDS = 5.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[NatsCluster]:
    why = netns_available()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    nats = NatsCluster()
    try:
        nats.start()
        asyncio.run(nats.wait_ready())
        yield nats
    finally:
        nats.close()


@pytest.fixture(scope="module")
def system(
    cluster: NatsCluster, tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[System]:
    root = tmp_path_factory.mktemp("cluster")
    # A saga timeout longer than an outage: orders wait the faults out instead of timing out.
    env = {"ORDERS_SAGA_TIMEOUT_SECONDS": "30"}
    yield from running_distributed(root, postgres_url, f"{cluster.servers()}?replicas=3", env)


async def _load(
    http: httpx.AsyncClient, system: System, skus: list[str], stop: asyncio.Event
) -> list[str]:
    """Place orders (one unit of a random SKU each, 8 at a time) until *stop*; the ids of
    every one answered 202. Anything else than 202 or a 503 (shed, retried by a client) fails."""
    accepted: list[str] = []
    count = 0
    while not stop.is_set():
        wave = [
            place(
                http,
                system,
                f"c{(count + i) % 9}",
                [{"sku": skus[(count + i) % len(skus)], "qty": 1}],
            )
            for i in range(8)
        ]
        count += len(wave)
        for answer in await asyncio.gather(*wave):
            assert answer.status_code in (202, 503), answer.text
            if answer.status_code == 202:
                accepted.append(answer.json()["id"])
        await asyncio.sleep(0.2)  # about 30 orders/s: well below the system's ceiling
    return accepted


async def _settled(http: httpx.AsyncClient, system: System, staff: str, order_id: str) -> str:
    """The order's status (and reason) once it is not PENDING (read as staff, who may read
    any order; a 503 is edge shedding the read: read again)."""
    deadline = time.monotonic() + 90
    while True:
        answer = await http.get(
            f"{system.url()}/orders/{order_id}", headers=system.auth(staff, "staff")
        )
        assert answer.status_code in (200, 503), (order_id, answer.text)  # 404: lost
        body = answer.json() if answer.status_code == 200 else {"status": "PENDING"}
        status: str = body["status"]
        if status != "PENDING":
            return f"{status}: {body['reason']}" if body.get("reason") else status
        assert time.monotonic() < deadline, f"{order_id} still PENDING"
        await asyncio.sleep(0.5)


async def _outage(cluster: NatsCluster, node: Node) -> None:
    cluster.cut(node)
    try:
        await asyncio.sleep(OUTAGE_SECONDS)
    finally:
        cluster.heal(node)


async def test_a_cut_follower_and_then_a_cut_leader_lose_no_acknowledged_order(
    cluster: NatsCluster, system: System
) -> None:
    async with httpx.AsyncClient(timeout=30, trust_env=False) as http:
        skus = [unique("CL") for _ in range(4)]
        for sku in skus:
            await receive(http, system, sku, 60)
        stop = asyncio.Event()
        load = asyncio.create_task(_load(http, system, skus, stop))
        await asyncio.sleep(2)
        orders_stream = f"s{system.run}_orders"
        leader = await cluster.stream_leader(orders_stream)
        follower = next(n for n in cluster.nodes if n is not leader)
        began = time.monotonic()
        await _outage(cluster, follower)
        await asyncio.sleep(3)
        leader = await cluster.stream_leader(orders_stream)
        await _outage(cluster, leader)
        await asyncio.sleep(3)
        stop.set()
        accepted = await load
        faults = time.monotonic() - began

        assert len(accepted) > 50, accepted
        # Every acknowledged order settles: none lost, none left PENDING.
        staff, reading = "cluster-staff", asyncio.Semaphore(16)  # within edge's bulkhead

        async def final(order_id: str) -> str:
            async with reading:
                return await _settled(http, system, staff, order_id)

        finals = await asyncio.gather(*(final(o) for o in accepted))
        outcomes = Counter(finals)
        # The saga's answers: confirmed, out of stock, or (should the faults outlast the saga
        # timeout) timed out and released.
        allowed = {"CONFIRMED", "REJECTED: insufficient_stock", "REJECTED: timeout"}
        assert set(outcomes) <= allowed, outcomes
        assert 0 < outcomes["CONFIRMED"] <= 4 * 60
    report = system.audit(quiet_within=60)  # the timed-out orders' releases travel too
    assert report["ok"] is True, report
    assert report["orders"]["orders"] >= len(accepted)
    print(  # noqa: T201 - the measured figures (-s)
        f"cluster: {len(accepted)} orders accepted over {faults:.1f} s of faults (a follower,"
        f" then the orders stream's leader, each cut {OUTAGE_SECONDS:g} s): {dict(outcomes)},"
        " none lost, audit clean"
    )
