"""The orders <- inventory message contract: the envelopes of ``StockReserved`` and
``ReservationRejected`` on ``inventory.events`` that orders' saga consumes.

The message body is the whole wire envelope (the kit's ``encode_envelope``): what orders'
consumer decodes, with ``type``/``source`` exact and everything else matched by type.
"""

from __future__ import annotations

from typing import Final

CONSUMER: Final = "orders"
PROVIDER: Final = "inventory"

ORDER_ID: Final = "order-pact-1"
SKU: Final = "SKU-1"
QTY: Final = 2

RESERVED: Final = "a StockReserved event"
REJECTED: Final = "a ReservationRejected event"
STATE_IN_STOCK: Final = f"{SKU} has 5 on hand"
STATE_SHORT: Final = f"{SKU} has 1 on hand"
ON_HAND: Final = {STATE_IN_STOCK: 5, STATE_SHORT: 1}
