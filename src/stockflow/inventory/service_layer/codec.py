"""Domain events and states <-> the bytes the event store keeps.

Domain events carry exactly the fields of their published contracts
(``stockflow.contracts.inventory``, same names, same class names), so encoding a domain event
with msgspec yields the published ``data`` at once: one C-level pass, no intermediate dict.
A test pins that equivalence.
"""

from __future__ import annotations

from typing import Final

import msgspec

from stockflow.inventory.domain.events import (
    Event,
    LowStockDetected,
    ReservationRejected,
    ReservationReleased,
    StockAdjusted,
    StockReceived,
    StockReserved,
    StockShipped,
)
from stockflow.inventory.domain.model import StockState

__all__ = ["EVENT_CLASSES", "decode_event", "decode_state", "encode_event", "encode_state"]

EVENT_CLASSES: Final[dict[str, type[Event]]] = {
    cls.__name__: cls
    for cls in (
        StockReceived,
        StockAdjusted,
        StockReserved,
        ReservationRejected,
        ReservationReleased,
        StockShipped,
        LowStockDetected,
    )
}
_DECODERS: Final = {name: msgspec.json.Decoder(cls) for name, cls in EVENT_CLASSES.items()}
_encoder: Final = msgspec.json.Encoder()
_state_decoder: Final = msgspec.json.Decoder(StockState)

encode_event = _encoder.encode
encode_state = _encoder.encode


def decode_event(event_type: str, data: bytes) -> Event:
    """The domain event stored as ``event_type`` with ``data``.

    Raises:
        KeyError: an unknown event type.
        msgspec.DecodeError: ``data`` does not fit the type.
    """
    decoded: Event = _DECODERS[event_type].decode(data)
    return decoded


def decode_state(data: bytes) -> StockState:
    return _state_decoder.decode(data)
