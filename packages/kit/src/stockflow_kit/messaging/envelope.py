"""The message envelope: one shape for every event and command on the bus.

Fields follow ``API.md``: ``id`` (UUID, the dedupe key), ``type``, ``schema_version``,
``source`` (the producing service), ``subject`` (the aggregate id, e.g. a SKU or an order id),
``sequence`` (position in that aggregate's stream, 0 when not applicable), ``occurred_at``
(RFC 3339 UTC), ``correlation_id``, ``causation_id`` and ``data``.

Encoding is msgspec JSON: one C-level pass per envelope, no per-field Python objects.
"""

from __future__ import annotations

import builtins
import os
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from stockflow_kit.observability.correlation import get_causation_id, get_correlation_id

__all__ = ["Envelope", "decode_envelope", "encode_envelope", "new_message_id"]

_T = TypeVar("_T")


def new_message_id(at: datetime | None = None) -> str:
    """Return a new message id: a UUIDv7 (RFC 9562), time-ordered to the millisecond.

    Time-ordered ids keep the dedupe indexes of consumers (inbox tables, the SQLite log) append
    mostly at their right edge instead of dirtying a random page per insert, which roughly
    doubles SQLite insert throughput compared with UUID4 (measured on the event store).

    Layout: 48-bit Unix milliseconds, version 7, 12 random bits, variant, 62 random bits.

    Args:
        at: The timestamp to encode; now when omitted.
    """
    millis = int((at or datetime.now(UTC)).timestamp() * 1000) & 0xFFFF_FFFF_FFFF
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64
    value |= (0b10 << 62) | (rand & 0x3FFF_FFFF_FFFF_FFFF)
    return str(uuid.UUID(int=value))


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """One message: metadata for routing, dedupe and tracing, plus the ``data`` payload."""

    id: str
    type: str
    source: str
    subject: str
    data: dict[str, Any]
    sequence: int = 0
    schema_version: int = 1
    occurred_at: datetime
    correlation_id: str | None = None
    causation_id: str | None = None

    @classmethod
    def new(
        cls,
        type: str,  # noqa: A002 - the envelope field is called "type" in the public contract
        data: dict[str, Any] | msgspec.Struct,
        *,
        source: str,
        subject: str,
        sequence: int = 0,
        schema_version: int = 1,
        id: str | None = None,  # noqa: A002 - same: the contract's field name
        occurred_at: datetime | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Envelope:
        """Build an envelope, taking correlation and causation from the current context.

        Args:
            type: The message type, e.g. ``"StockReserved"``.
            data: The payload: a dict, or a msgspec Struct converted to builtins.
            source: The producing service, e.g. ``"inventory"``.
            subject: The aggregate id the message is about.
            sequence: Position in the subject's stream (0 when not applicable).
            schema_version: Version of ``data``'s schema for this ``type``.
            id: The message id; a new time-ordered UUIDv7 (:func:`new_message_id`) when omitted. Re-publishing with the same id is
                how duplicates are recognised, so derive it deterministically when a message
                may be produced twice.
            occurred_at: When it happened; now (UTC) when omitted.
            correlation_id: Defaults to the correlation id bound in the current context
                (:func:`stockflow_kit.observability.correlation.bind_correlation`), else a new id.
            causation_id: Defaults to the causation id bound in the current context.
        """
        payload = data if isinstance(data, dict) else msgspec.to_builtins(data)
        return cls(
            id=id or new_message_id(),
            type=type,
            schema_version=schema_version,
            source=source,
            subject=subject,
            sequence=sequence,
            occurred_at=occurred_at or datetime.now(UTC),
            correlation_id=correlation_id or get_correlation_id() or uuid.uuid4().hex,
            causation_id=causation_id or get_causation_id(),
            data=payload,
        )

    def data_as(self, kind: builtins.type[_T]) -> _T:
        """Return ``data`` validated and converted into *kind* (a msgspec Struct or type).

        Raises:
            msgspec.ValidationError: when ``data`` does not fit *kind*.
        """
        return msgspec.convert(self.data, kind)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Envelope)


def encode_envelope(envelope: Envelope) -> bytes:
    """Encode *envelope* as compact JSON bytes."""
    return _encoder.encode(envelope)


def decode_envelope(raw: bytes | memoryview) -> Envelope:
    """Decode JSON bytes into an :class:`Envelope`.

    Raises:
        msgspec.DecodeError: when *raw* is not a valid envelope (bad JSON or bad fields).
    """
    return _decoder.decode(raw)
