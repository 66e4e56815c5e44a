"""Contract cases: dead-lettering at once (``Subscription.dead_letter``), through the port only."""

from __future__ import annotations

from structlog.testing import capture_logs

from stockflow_kit.messaging._contract_base import ContractBase, counted, make_envelopes
from stockflow_kit.messaging.bus import (
    DEAD_LETTER_DELIVERY_COUNT_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_SUBSCRIPTION_HEADER,
    DEAD_LETTER_TOPIC_HEADER,
    Bus,
    Delivery,
    dead_letter_topic,
)

__all__ = ["DeadLetterCases"]


class DeadLetterCases(ContractBase):
    """A message that can never succeed is dead-lettered at once, and its batch settles."""

    async def dead_letters(self, bus: Bus, topic: str, expected: int) -> list[Delivery]:
        """Read the dead-letter topic of *topic*: *expected* messages, then nothing more."""
        dlq = await bus.subscribe(dead_letter_topic(topic), "dlq", self.config())
        got: list[Delivery] = []
        while len(got) < expected and (batch := await dlq.fetch(10, max_wait=1.0)):
            got.extend(batch)
            await dlq.ack(batch)
        assert list(await dlq.fetch(10, max_wait=0.2)) == []
        return got

    async def test_a_message_dead_lettered_at_once_carries_the_headers_and_its_reason(
        self, bus: Bus, topic: str, stream: str
    ) -> None:
        bad, good = make_envelopes(2)
        await bus.publish(topic, [bad, good])
        sub = await bus.subscribe(topic, "strict", self.config(max_deliver=5))
        batch = await sub.fetch(10, max_wait=1.0)
        assert [d.envelope.id for d in batch] == [bad.id, good.id]
        with capture_logs() as logs:
            await sub.dead_letter(batch[:1], reason="malformed: no sku")
        await sub.ack(batch)  # the batch ack skips the dead-lettered one, and does not fail
        [dead] = await self.dead_letters(bus, topic, 1)
        assert (dead.topic, dead.envelope) == (f"deadletter.{stream}", bad)
        assert dead.headers[DEAD_LETTER_TOPIC_HEADER] == topic
        assert dead.headers[DEAD_LETTER_SUBSCRIPTION_HEADER] == "strict"
        assert dead.headers[DEAD_LETTER_DELIVERY_COUNT_HEADER] == "1"
        assert dead.headers[DEAD_LETTER_REASON_HEADER] == "malformed: no sku"
        assert counted(topic, "strict", "dead_lettered") == 1
        assert counted(topic, "strict", "acked") == 1
        [line] = [e for e in logs if e["event"] == "messaging.dead_lettered"]
        assert (line["message_id"], line["delivery_count"]) == (bad.id, 1)
        assert (line["topic"], line["subscription"]) == (topic, "strict")
        assert line["reason"] == "malformed: no sku"
        assert list(await sub.fetch(10, max_wait=self.ack_wait * 2)) == []

    async def test_nakking_the_batch_of_a_dead_lettered_message_does_not_bring_it_back(
        self, bus: Bus, topic: str
    ) -> None:
        bad, good = make_envelopes(2)
        await bus.publish(topic, [bad, good])
        sub = await bus.subscribe(topic, "strict", self.config(max_deliver=5))
        batch = await sub.fetch(10, max_wait=1.0)
        await sub.dead_letter(batch[:1], reason="malformed")
        await sub.nak(batch, reason="the effect failed")
        again = await sub.fetch(10, max_wait=1.0)
        assert [(d.envelope.id, d.delivery_count) for d in again] == [(good.id, 2)]
        await sub.ack(again)
        assert counted(topic, "strict", "nakked") == 1
        assert list(await sub.fetch(10, max_wait=self.ack_wait * 2)) == []
        assert [d.envelope.id for d in await self.dead_letters(bus, topic, 1)] == [bad.id]
        assert counted(topic, "strict", "dead_lettered") == 1

    async def test_a_redelivered_message_is_dead_lettered_with_its_delivery_count(
        self, bus: Bus, topic: str
    ) -> None:
        await bus.publish(topic, make_envelopes(1))
        sub = await bus.subscribe(topic, "strict", self.config(max_deliver=5))
        await sub.nak(await sub.fetch(10, max_wait=1.0), reason="transient")
        again = await sub.fetch(10, max_wait=1.0)
        assert [d.delivery_count for d in again] == [2]
        await sub.dead_letter(again, reason="malformed after all")
        await sub.ack(again)
        [dead] = await self.dead_letters(bus, topic, 1)
        assert dead.headers[DEAD_LETTER_DELIVERY_COUNT_HEADER] == "2"
        assert dead.headers[DEAD_LETTER_REASON_HEADER] == "malformed after all"
