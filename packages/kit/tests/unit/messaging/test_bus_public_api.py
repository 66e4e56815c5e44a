"""The public API of ``stockflow_kit.messaging`` is pinned: changing it is a deliberate act."""

from __future__ import annotations

import stockflow_kit.messaging as messaging


def test_the_public_names_are_pinned_and_importable() -> None:
    assert sorted(messaging.__all__) == sorted(
        [
            "ACK_WAIT_EXPIRED_REASON",
            "DEAD_LETTER_DELIVERY_COUNT_HEADER",
            "DEAD_LETTER_PREFIX",
            "DEAD_LETTER_REASON_HEADER",
            "DEAD_LETTER_SUBSCRIPTION_HEADER",
            "DEAD_LETTER_TOPIC_HEADER",
            "AckError",
            "BatchHandler",
            "Bus",
            "BusClosedError",
            "Consumer",
            "ConsumerConfig",
            "Consumers",
            "ConsumerLag",
            "Delivery",
            "Envelope",
            "IdleWait",
            "InMemoryBroker",
            "InMemoryBus",
            "ItemsHandler",
            "MessageHandler",
            "MessagingError",
            "Outbox",
            "OutboxRecord",
            "OutboxRelay",
            "PermanentMessageError",
            "PostgresInbox",
            "PostgresOutbox",
            "PublishError",
            "SqliteInbox",
            "SqliteLogBus",
            "SqliteOutbox",
            "Source",
            "SubscribeError",
            "Subscription",
            "dead_letter_topic",
            "decode_envelope",
            "encode_envelope",
            "make_bus",
            "new_message_id",
            "per_message",
            "stream_of",
            "topic_matches",
            "trace_causes",
            "translated",
        ]
    )
    assert all(getattr(messaging, name, None) is not None for name in messaging.__all__)


def test_every_backend_satisfies_the_port() -> None:
    bus = messaging.SqliteLogBus("sqlite:///unused.sqlite3")
    assert isinstance(bus, messaging.Bus)
    assert isinstance(messaging.InMemoryBus(), messaging.Bus)
