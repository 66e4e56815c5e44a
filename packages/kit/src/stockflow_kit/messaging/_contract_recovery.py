"""Contract cases: dead letters, restarts, crashed consumers, backpressure, lag and tracing."""

from __future__ import annotations

import asyncio
import signal
import sys
import tracemalloc

import pytest
from opentelemetry.sdk.trace import TracerProvider
from structlog.testing import capture_logs

from stockflow_kit.messaging._contract_base import ContractBase, counted, drain, make_envelopes
from stockflow_kit.messaging.bus import (
    DEAD_LETTER_DELIVERY_COUNT_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_SUBSCRIPTION_HEADER,
    DEAD_LETTER_TOPIC_HEADER,
    Bus,
    BusClosedError,
    ConsumerConfig,
    dead_letter_topic,
)
from stockflow_kit.messaging.envelope import decode_envelope, encode_envelope

__all__ = ["RecoveryCases"]


class RecoveryCases(ContractBase):
    """What every bus does when things go wrong, and how it shows."""

    # ------------------------------------------------------------------ dead letters
    async def test_message_is_dead_lettered_after_max_deliver(
        self, bus: Bus, topic: str, stream: str
    ) -> None:
        [sent] = make_envelopes(1)
        await bus.publish(topic, [sent])
        sub = await bus.subscribe(topic, "picky", ConsumerConfig(ack_wait=30.0, max_deliver=2))
        with capture_logs() as logs:
            for _ in range(2):
                await sub.nak(await sub.fetch(10, max_wait=1.0), reason="boom")
            assert list(await sub.fetch(10, max_wait=0.2)) == []
        dead_sub = await bus.subscribe(dead_letter_topic(topic), "dlq", self.config())
        [dead] = await dead_sub.fetch(10, max_wait=1.0)
        assert (dead.topic, dead.envelope) == (f"deadletter.{stream}", sent)
        assert dead.headers[DEAD_LETTER_TOPIC_HEADER] == topic
        assert dead.headers[DEAD_LETTER_SUBSCRIPTION_HEADER] == "picky"
        assert dead.headers[DEAD_LETTER_DELIVERY_COUNT_HEADER] == "2"
        assert dead.headers[DEAD_LETTER_REASON_HEADER] == "boom"
        assert counted(topic, "picky", "dead_lettered") == 1.0
        [line] = [e for e in logs if e["event"] == "messaging.dead_lettered"]
        assert (line["message_id"], line["delivery_count"], line["reason"]) == (sent.id, 2, "boom")
        assert (line["topic"], line["subscription"]) == (topic, "picky")
        assert list(await sub.fetch(10, max_wait=self.ack_wait)) == []

    async def test_position_survives_a_restart_of_the_consumer(
        self, bus_url: str, topic: str
    ) -> None:
        async with self.started_bus(bus_url) as bus:
            await bus.publish(topic, make_envelopes(4))
            sub = await bus.subscribe(topic, "durable", self.config())
            await sub.ack(await sub.fetch(2, max_wait=1.0))
            await sub.close()
        async with self.started_bus(bus_url) as bus:
            sub = await bus.subscribe(topic, "durable", self.config())
            got = await drain(sub, 2)
        assert [(d.envelope.sequence, d.delivery_count) for d in got] == [(3, 1), (4, 1)]

    async def test_messages_and_positions_survive_a_server_restart(
        self, bus_url: str, topic: str
    ) -> None:
        if not self.supports_server_restart:
            pytest.skip(self.no_server_restart_reason)
        async with self.started_bus(bus_url) as bus:
            await bus.publish(topic, make_envelopes(3))
            sub = await bus.subscribe(topic, "durable", self.config())
            await sub.ack(await sub.fetch(1, max_wait=1.0))
        await self.restart_server()
        async with self.started_bus(bus_url) as bus:
            sub = await bus.subscribe(topic, "durable", self.config())
            assert [d.envelope.sequence for d in await drain(sub, 2)] == [2, 3]

    async def test_lag_counts_pending_messages_and_the_oldest_age(
        self, bus: Bus, topic: str
    ) -> None:
        sub = await bus.subscribe(topic, "slow", self.config())
        await bus.publish(topic, make_envelopes(3))
        await asyncio.sleep(0.2)
        lag = await sub.lag()
        assert lag.pending == 3
        assert 0.15 <= lag.oldest_age_seconds < 30
        await sub.ack(await sub.fetch(1, max_wait=1.0))
        assert (await sub.lag()).pending == 2
        await drain(sub, 2)
        lag = await sub.lag()
        assert (lag.pending, lag.oldest_age_seconds) == (0, 0.0)

    # ------------------------------------------------------------------ robustness
    async def test_message_is_redelivered_when_its_consumer_process_dies(
        self, bus: Bus, bus_url: str, topic: str
    ) -> None:
        if not self.supports_subprocess:
            pytest.skip("this backend's storage lives in one process")
        [sent] = make_envelopes(1)
        await bus.publish(topic, [sent])
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stockflow_kit.messaging.testing",
            bus_url,
            topic,
            "crashy",
            str(self.ack_wait),
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert worker.stdout is not None
            line = await asyncio.wait_for(worker.stdout.readline(), timeout=10)
            assert line.decode().strip() == sent.id
        finally:
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
        sub = await bus.subscribe(topic, "crashy", self.config())
        [again] = await sub.fetch(10, max_wait=self.ack_wait * 4)
        assert (again.envelope.id, again.delivery_count) == (sent.id, 2)

    async def test_memory_stays_bounded_under_backpressure(self, bus: Bus, topic: str) -> None:
        """A slow consumer of a fast producer never holds more than one batch in memory."""
        total, limit = self.backpressure_messages, 50
        sub = await bus.subscribe(topic, "slow", ConsumerConfig(ack_wait=30.0))

        envelopes = make_envelopes(total)

        async def produce() -> None:
            for start in range(0, total, 1000):
                await bus.publish(topic, envelopes[start : start + 1000])

        seen, last = 0, 0
        producer = asyncio.create_task(produce())
        while not producer.done():
            batch = await sub.fetch(limit, max_wait=0.05)
            assert len(batch) <= limit
            assert all(d.envelope.sequence > last for d in batch)
            last = batch[-1].envelope.sequence if batch else last
            await sub.ack(batch)
            seen += len(batch)
            await asyncio.sleep(0.01)
        await producer
        remaining = total - seen
        assert remaining >= total // 4, "the producer was too slow to build a backlog"
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            for _ in range(10):
                batch = await sub.fetch(limit, max_wait=1.0)
                assert 0 < len(batch) <= limit
                await sub.ack(batch)
                del batch
            peak = tracemalloc.get_traced_memory()[1] - baseline
            # What holding the whole backlog decoded would cost, measured on a sample:
            sample = min(remaining, 1000)
            before = tracemalloc.get_traced_memory()[0]
            holding = [decode_envelope(encode_envelope(e)) for e in envelopes[:sample]]
            reference = (tracemalloc.get_traced_memory()[0] - before) * remaining / sample
            del holding
        finally:
            tracemalloc.stop()
        assert peak < max(reference / 4, 1 << 20), (peak, reference)

    async def test_publish_carries_the_trace_context(self, bus: Bus, topic: str) -> None:
        tracer = TracerProvider().get_tracer("stockflow.contract")
        with tracer.start_as_current_span("produce") as span:
            await bus.publish(topic, make_envelopes(1))
        sub = await bus.subscribe(topic, "traced", self.config())
        [got] = await sub.fetch(1, max_wait=1.0)
        trace_id = format(span.get_span_context().trace_id, "032x")
        assert got.headers["traceparent"].split("-")[1] == trace_id

    async def test_publish_continues_the_trace_of_each_message_cause(
        self, bus: Bus, topic: str
    ) -> None:
        """``causes``: an outbox's stored trace contexts; one trace is continued, several are
        each carried by their own messages (a message without a cause gets the span's)."""
        one = "00-" + "a" * 32 + "-" + "1" * 16 + "-01"
        same_trace = "00-" + "a" * 32 + "-" + "2" * 16 + "-01"
        other = "00-" + "b" * 32 + "-" + "3" * 16 + "-01"
        await bus.publish(topic, make_envelopes(2), causes=[one, same_trace])
        await bus.publish(topic, make_envelopes(3, start=3), causes=[one, None, other])
        sub = await bus.subscribe(topic, "caused", self.config())
        got = await sub.fetch(5, max_wait=1.0)
        while len(got) < 5:
            got = [*got, *await sub.fetch(5 - len(got), max_wait=1.0)]
        traces = [d.headers["traceparent"].split("-")[1] for d in got[:2]]
        assert traces == ["a" * 32] * 2
        assert got[2].headers["traceparent"] == one
        assert got[4].headers["traceparent"] == other
        uncaused = got[3].headers.get("traceparent")  # the span's: none without a tracer
        assert uncaused is None or uncaused.split("-")[1] not in {"a" * 32, "b" * 32}

    async def test_a_closed_bus_refuses_to_publish(self, bus_url: str, topic: str) -> None:
        bus = self.open_bus(bus_url)
        with pytest.raises(BusClosedError):
            await bus.publish(topic, make_envelopes(1))
        await bus.start()
        await bus.close()
        await bus.close()
        with pytest.raises(BusClosedError):
            await bus.publish(topic, make_envelopes(1))
