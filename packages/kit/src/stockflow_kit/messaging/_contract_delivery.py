"""Contract cases: delivery, order, batches, acks, naks, dedupe and subscriptions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from stockflow_kit.messaging._contract_base import ContractBase, counted, drain, make_envelopes
from stockflow_kit.messaging.bus import (
    Bus,
    ConsumerConfig,
    Delivery,
)
from stockflow_kit.messaging.consumer import Consumer

__all__ = ["DeliveryCases"]


class DeliveryCases(ContractBase):
    """What every bus does on a good day."""

    # ------------------------------------------------------------------ delivery
    async def test_published_envelopes_are_delivered_whole(self, bus: Bus, topic: str) -> None:
        sent = make_envelopes(3)
        await bus.publish(topic, sent, headers={"X-Test": "yes"})
        sub = await bus.subscribe(topic, "reader", self.config())
        got = await drain(sub, 3)
        assert [d.envelope for d in got] == sent
        assert all(d.topic == topic and d.delivery_count == 1 for d in got)
        assert all(d.headers.get("X-Test") == "yes" for d in got)

    async def test_messages_of_a_topic_arrive_in_publish_order(self, bus: Bus, topic: str) -> None:
        for start in range(1, 51, 10):
            await bus.publish(topic, make_envelopes(10, start=start))
        sub = await bus.subscribe(topic, "reader", self.config())
        got = await drain(sub, 50, batch=7)
        assert [d.envelope.sequence for d in got] == list(range(1, 51))

    async def test_fetch_returns_at_most_max_messages(self, bus: Bus, topic: str) -> None:
        await bus.publish(topic, make_envelopes(10))
        sub = await bus.subscribe(topic, "reader", self.config())
        sizes = []
        for _ in range(3):
            batch = await sub.fetch(4, max_wait=1.0)
            await sub.ack(batch)
            sizes.append(len(batch))
        assert sizes == [4, 4, 2]

    async def test_fetch_returns_empty_after_max_wait(self, bus: Bus, topic: str) -> None:
        sub = await bus.subscribe(topic, "reader", self.config())
        started = time.monotonic()
        assert list(await sub.fetch(10, max_wait=0.2)) == []
        assert time.monotonic() - started < 1.0

    async def test_a_waiting_fetch_returns_soon_after_a_publish(self, bus: Bus, topic: str) -> None:
        sub = await bus.subscribe(topic, "reader", self.config())

        async def publish_later() -> None:
            await asyncio.sleep(0.1)
            await bus.publish(topic, make_envelopes(1))

        started = time.monotonic()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(publish_later())
            got = await sub.fetch(10, max_wait=2.0)
        assert len(got) == 1
        assert time.monotonic() - started < 1.0

    async def test_acked_messages_are_not_delivered_again(self, bus: Bus, topic: str) -> None:
        await bus.publish(topic, make_envelopes(2))
        sub = await bus.subscribe(topic, "reader", self.config())
        await drain(sub, 2)
        assert list(await sub.fetch(10, max_wait=self.ack_wait * 2)) == []

    async def test_unacked_message_is_redelivered_after_ack_wait(
        self, bus: Bus, topic: str
    ) -> None:
        [sent] = make_envelopes(1)
        await bus.publish(topic, [sent])
        sub = await bus.subscribe(topic, "reader", self.config())
        [first] = await sub.fetch(10, max_wait=1.0)
        assert list(await sub.fetch(10, max_wait=self.ack_wait / 4)) == []
        [again] = await sub.fetch(10, max_wait=self.ack_wait * 3)
        assert (first.delivery_count, again.delivery_count) == (1, 2)
        assert again.envelope.id == sent.id

    async def test_nakked_message_is_redelivered_before_ack_wait(
        self, bus: Bus, topic: str
    ) -> None:
        await bus.publish(topic, make_envelopes(1))
        sub = await bus.subscribe(topic, "reader", ConsumerConfig(ack_wait=30.0))
        first = await sub.fetch(10, max_wait=1.0)
        await sub.nak(first, reason="try again")
        again = await sub.fetch(10, max_wait=1.0)
        assert [d.envelope.id for d in again] == [d.envelope.id for d in first]
        assert again[0].delivery_count == 2

    async def test_nak_with_delay_holds_the_message_back(self, bus: Bus, topic: str) -> None:
        await bus.publish(topic, make_envelopes(1))
        sub = await bus.subscribe(topic, "reader", ConsumerConfig(ack_wait=30.0))
        await sub.nak(await sub.fetch(10, max_wait=1.0), delay=0.5)
        assert list(await sub.fetch(10, max_wait=0.1)) == []
        assert len(await sub.fetch(10, max_wait=2.0)) == 1

    async def test_one_nak_counts_the_delivery_as_nakked_exactly_once(
        self, bus: Bus, topic: str
    ) -> None:
        """The backend's ``nak`` counts; nothing else adds to ``outcome="nakked"``."""
        await bus.publish(topic, make_envelopes(1))
        sub = await bus.subscribe(topic, "reader", ConsumerConfig(ack_wait=30.0))
        before = counted(topic, "reader", "nakked")
        await sub.nak(await sub.fetch(10, max_wait=1.0), reason="counted once")
        assert counted(topic, "reader", "nakked") - before == 1
        await sub.ack(await sub.fetch(10, max_wait=1.0))
        assert counted(topic, "reader", "acked") == 1

    async def test_a_batch_failed_in_the_consumer_runner_is_counted_nakked_once(
        self, bus: Bus, topic: str
    ) -> None:
        """The runner naks through the bus and adds no count of its own."""
        await bus.publish(topic, make_envelopes(1))
        sub = await bus.subscribe(topic, "runner", ConsumerConfig(ack_wait=30.0))

        async def fail(batch: Sequence[Delivery]) -> None:
            raise RuntimeError("handler down")

        consumer = Consumer(sub, fail, retry_delay=30.0)
        before = counted(topic, "runner", "nakked")
        await consumer.handle(await sub.fetch(10, max_wait=1.0))
        assert counted(topic, "runner", "nakked") - before == 1

    async def test_an_envelope_id_is_delivered_once(self, bus: Bus, topic: str) -> None:
        first, second = make_envelopes(2)
        await bus.publish(topic, [first, first, second])
        await bus.publish(topic, [first])
        await bus.publish(topic, [second, first])
        sub = await bus.subscribe(topic, "reader", self.config())
        got = await drain(sub, 2)
        assert [d.envelope.id for d in got] == [first.id, second.id]
        assert list(await sub.fetch(10, max_wait=0.1)) == []

    # ------------------------------------------------------------------ subscriptions
    async def test_each_durable_subscription_gets_every_message(self, bus: Bus, topic: str) -> None:
        await bus.publish(topic, make_envelopes(5))
        first = await bus.subscribe(topic, "first", self.config())
        second = await bus.subscribe(topic, "second", self.config())
        assert len(await drain(first, 5)) == 5
        assert len(await drain(second, 5)) == 5

    async def test_consumers_of_one_durable_share_its_messages(
        self, bus: Bus, bus_url: str, topic: str
    ) -> None:
        await bus.publish(topic, make_envelopes(20))
        one = await bus.subscribe(topic, "shared", self.config())
        async with self.started_bus(bus_url) as other_bus:
            other = await other_bus.subscribe(topic, "shared", self.config())
            a = await one.fetch(10, max_wait=1.0)
            b = await other.fetch(10, max_wait=1.0)
            await one.ack(a)
            await other.ack(b)
        ids = [d.envelope.id for d in [*a, *b]]
        assert len(ids) == len(set(ids)) == 20

    async def test_stream_wildcard_subscription_gets_every_topic_of_the_stream(
        self, bus: Bus, stream: str
    ) -> None:
        await bus.publish(f"{stream}.a", make_envelopes(1, start=1))
        await bus.publish(f"{stream}.b.c", make_envelopes(1, start=2))
        await bus.publish(f"x{stream}.a", make_envelopes(1, start=3))
        sub = await bus.subscribe(f"{stream}.>", "all", self.config())
        got = await drain(sub, 2)
        assert sorted(d.topic for d in got) == [f"{stream}.a", f"{stream}.b.c"]
        assert list(await sub.fetch(10, max_wait=0.1)) == []
