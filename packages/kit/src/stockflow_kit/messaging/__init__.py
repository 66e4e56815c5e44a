"""Messaging: envelopes, the bus port and its backends, the consumer runner, outbox and inbox.

Start with :func:`make_bus` (``memory://``, ``sqlite:///<path>``, ``nats://``, ``kafka://``), publish
:class:`Envelope` objects, and consume durable subscriptions with :class:`Consumer`, or declare
:class:`Source` values and run them with :class:`Consumers` (:mod:`.sources`: translation,
:class:`PermanentMessageError`). The bus semantics (ordering, acks, redelivery, dead letters,
errors) are in :mod:`.bus`.
"""

from stockflow_kit.messaging._telemetry import trace_causes
from stockflow_kit.messaging.bus import (
    ACK_WAIT_EXPIRED_REASON,
    DEAD_LETTER_DELIVERY_COUNT_HEADER,
    DEAD_LETTER_PREFIX,
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_SUBSCRIPTION_HEADER,
    DEAD_LETTER_TOPIC_HEADER,
    AckError,
    Bus,
    BusClosedError,
    ConsumerConfig,
    ConsumerLag,
    Delivery,
    MessagingError,
    PublishError,
    SubscribeError,
    Subscription,
    dead_letter_topic,
    stream_of,
    topic_matches,
)
from stockflow_kit.messaging.consumer import BatchHandler, Consumer, MessageHandler, per_message
from stockflow_kit.messaging.envelope import (
    Envelope,
    decode_envelope,
    encode_envelope,
    new_message_id,
)
from stockflow_kit.messaging.factory import make_bus
from stockflow_kit.messaging.idle import IdleWait
from stockflow_kit.messaging.inbox import PostgresInbox, SqliteInbox
from stockflow_kit.messaging.memory import InMemoryBroker, InMemoryBus
from stockflow_kit.messaging.outbox import Outbox, OutboxRecord, PostgresOutbox, SqliteOutbox
from stockflow_kit.messaging.outbox_relay import OutboxRelay
from stockflow_kit.messaging.sources import (
    Consumers,
    ItemsHandler,
    PermanentMessageError,
    Source,
    translated,
)
from stockflow_kit.messaging.sqlite_log import SqliteLogBus

__all__ = [
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
    "ConsumerLag",
    "Consumers",
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
    "Source",
    "SqliteInbox",
    "SqliteLogBus",
    "SqliteOutbox",
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
