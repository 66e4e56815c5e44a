"""JetStreamBus across restarts of its NATS server: a private nats-server per test module.

The shared server on 4222 is never touched. Each test starts its own ``nats-server -js`` on a
free port with a store under ``tmp_path``, stops it (SIGTERM, or SIGKILL), and starts it again
on the same port and store, while one ``JetStreamBus`` instance stays open throughout.

What JetStream 2.9 guarantees here, and what these tests pin down:

* a graceful stop loses nothing: PubAcked messages are all there, acked ones are not delivered
  again, unacked ones are (``delivery_count`` 2);
* a SIGKILL loses no PubAcked message either (the store's writes are in the OS page cache),
  but the consumer state (acks, delivery counts) of the last moment may be lost, so acked
  messages can come back. At-least-once plus idempotent consumers absorbs that, and it is
  why ARCHITECTURE.md says nothing counts as done because the broker has it;
* while the server is down, publish raises ``PublishError`` (never a silent success), fetch
  returns ``[]`` and ack raises ``AckError``; the same bus instance recovers by itself.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import structlog

from stockflow_kit.lifecycle import free_port as _free_port
from stockflow_kit.messaging.bus import (
    DEAD_LETTER_REASON_HEADER,
    AckError,
    ConsumerConfig,
    Delivery,
    MessagingError,
    PublishError,
    SubscribeError,
    Subscription,
)
from stockflow_kit.messaging.envelope import Envelope
from stockflow_kit.messaging.jetstream import JetStreamBus
from stockflow_kit.messaging.testing import BusContract, make_envelopes

pytestmark = pytest.mark.integration

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class PrivateNatsServer:
    """A nats-server with JetStream on a free port and its own store directory."""

    def __init__(self, store: Path, *, jetstream: bool = True) -> None:
        store.mkdir(parents=True, exist_ok=True)
        self.store, self.jetstream = store, jetstream
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port)]
        if self.jetstream:
            command += ["-js", "-sd", str(self.store)]
        self.process = subprocess.Popen(
            [*command, "-l", str(self.store / "server.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = f"nats-server exited with {self.process.returncode}; see {self.store}"
                raise RuntimeError(msg)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        msg = f"nats-server did not listen on {self.port} within 10 s"
        raise RuntimeError(msg)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()


def _private_server(store: Path, *, jetstream: bool = True) -> Iterator[PrivateNatsServer]:
    if not os.access(NATS_SERVER, os.X_OK):
        if os.environ.get("STOCKFLOW_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{NATS_SERVER} is not installed (apt-get install nats-server)")
        pytest.skip(f"{NATS_SERVER} is not installed")
    server = PrivateNatsServer(store, jetstream=jetstream)
    server.start()
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateNatsServer]:
    yield from _private_server(tmp_path / "jetstream")


@pytest.fixture
async def bus(server: PrivateNatsServer) -> AsyncIterator[JetStreamBus]:
    bus = JetStreamBus(f"{server.url}?timeout=1&reconnect_wait=0.05", name="restart-test")
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


async def _consume(sub: Subscription, expected: int, *, within: float = 10.0) -> list[Delivery]:
    """Fetch and ack until *expected* deliveries came and the topic went quiet, or timeout."""
    got: list[Delivery] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        batch = await sub.fetch(500, max_wait=0.3)
        if batch:
            await sub.ack(batch)
            got.extend(batch)
        elif len(got) >= expected:
            break
    return got


def _sequence(delivery: Delivery) -> int:
    return delivery.envelope.sequence


async def _publish_and_settle(
    bus: JetStreamBus, topic: str
) -> tuple[Subscription, list[Envelope], list[Delivery], list[Delivery]]:
    """Publish 30, ack the first 10, hold the next 10 unacked; 10 stay undelivered."""
    sent = make_envelopes(30)
    await bus.publish(topic, sent)
    sub = await bus.subscribe(topic, "survivor", ConsumerConfig(ack_wait=1.0))
    acked = list(await sub.fetch(10, max_wait=1.0))
    await sub.ack(acked)
    unacked = list(await sub.fetch(10, max_wait=1.0))
    assert (len(acked), len(unacked)) == (10, 10)
    return sub, sent, acked, unacked


async def test_a_graceful_restart_keeps_acks_and_redelivers_only_unacked_messages(
    bus: JetStreamBus, server: PrivateNatsServer
) -> None:
    sub, sent, acked, unacked = await _publish_and_settle(bus, "orders.events")

    server.restart(signal.SIGTERM)

    got = await _consume(sub, 20)
    assert sorted(d.envelope.sequence for d in got) == list(range(11, 31))
    counts = {d.envelope.id: d.delivery_count for d in got}
    assert {counts[d.envelope.id] for d in unacked} == {2}
    assert not {d.envelope.id for d in acked} & set(counts)
    assert [d.envelope for d in [*acked, *sorted(got, key=_sequence)]] == sent


async def test_a_killed_server_loses_no_pubacked_message_and_redelivers_unacked_ones(
    bus: JetStreamBus, server: PrivateNatsServer
) -> None:
    sub, sent, _, unacked = await _publish_and_settle(bus, "orders.events")

    server.restart(signal.SIGKILL)

    got = await _consume(sub, 20)
    ids = [d.envelope.id for d in got]
    assert {e.id for e in sent[10:]} <= set(ids), "a PubAcked or an unacked message was lost"
    assert {d.envelope.id for d in unacked} <= set(ids)
    assert set(ids) <= {e.id for e in sent}
    assert len(ids) == len(set(ids))
    # Acks of the last moment before a SIGKILL may be lost (2.9 writes consumer state
    # asynchronously), so acked messages may come back: at-least-once, never at-most-once.


async def test_during_an_outage_publish_fails_fetch_is_empty_and_the_same_bus_recovers(
    bus: JetStreamBus, server: PrivateNatsServer
) -> None:
    topic = "orders.events"
    sub, _, _, unacked = await _publish_and_settle(bus, topic)
    server.stop(signal.SIGKILL)
    late = make_envelopes(5, start=31)

    with pytest.raises(PublishError):
        await bus.publish(topic, late)
    started = time.monotonic()
    assert list(await sub.fetch(10, max_wait=0.3)) == []
    assert time.monotonic() - started < 2.0
    with pytest.raises(AckError):
        await sub.ack(unacked)

    server.start()
    deadline = time.monotonic() + 10
    while True:  # the outbox relay's job: publish again (same ids) until it succeeds
        try:
            await bus.publish(topic, late)
            break
        except PublishError:
            assert time.monotonic() < deadline, "the bus did not reconnect within 10 s"
            await asyncio.sleep(0.1)
    await bus.publish(topic, late)  # a duplicate: dropped by the broker

    got = await _consume(sub, 25)
    sequences = [d.envelope.sequence for d in got]
    assert set(range(11, 36)) <= set(sequences)
    assert sorted(sequences) == sorted(set(sequences)), "a duplicate publish was delivered"


async def test_start_fails_with_a_messaging_error_on_a_server_without_jetstream(
    tmp_path: Path,
) -> None:
    for server in _private_server(tmp_path / "plain", jetstream=False):
        bus = JetStreamBus(f"{server.url}?timeout=1")
        with pytest.raises(MessagingError, match="cannot start"):
            await bus.start()
        await bus.close()


async def test_a_durable_name_cannot_be_rebound_to_another_topic(bus: JetStreamBus) -> None:
    await bus.subscribe("orders.events", "reader")
    with pytest.raises(SubscribeError, match="bound to"):
        await bus.subscribe("orders.>", "reader")
    assert (await bus.subscribe("orders.events", "reader", ConsumerConfig(ack_wait=5))).name


async def test_an_undecodable_message_is_dead_lettered_at_once(
    bus: JetStreamBus, server: PrivateNatsServer
) -> None:
    """Not an envelope: no fetch can hand it out, so it goes to the dead-letter stream, raw."""
    sub = await bus.subscribe("orders.events", "strict")
    nc = await nats.connect(server.url)
    try:
        await nc.jetstream().publish("orders.events", b"not an envelope")
        with structlog.testing.capture_logs() as logs:
            assert list(await sub.fetch(10, max_wait=0.5)) == []
        letter = await nc.jetstream().get_msg("deadletter", subject="deadletter.orders")
    finally:
        await nc.close()
    assert letter.data == b"not an envelope"
    assert letter.headers is not None
    assert letter.headers[DEAD_LETTER_REASON_HEADER].startswith("undecodable envelope")
    [line] = logs
    assert (line["event"], line["message_id"]) == ("messaging.dead_lettered", "orders#1")
    assert list(await sub.fetch(10, max_wait=0.2)) == []


class TestJetStreamBusOnAPrivateServer(BusContract):
    """The whole contract again on a private server, this time with its restart case."""

    supports_server_restart = True

    server: PrivateNatsServer

    @pytest.fixture
    def bus_url(self, server: PrivateNatsServer) -> str:
        self.server = server
        return f"{server.url}?prefix=p{uuid.uuid4().hex[:8]}&timeout=2&reconnect_wait=0.05"

    async def restart_server(self) -> None:
        await asyncio.to_thread(self.server.restart, signal.SIGTERM)
