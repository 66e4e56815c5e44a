"""An order and its lifecycle, as values: every transition returns a :class:`Change`.

Lifecycle (``API.md``)::

    PENDING ──all lines reserved──▶ CONFIRMED ──ship──▶ SHIPPED
       │                               └──────cancel──▶ CANCELLED
       └──rejected / saga timeout──▶ REJECTED (reason)

What arrives from the inventory is a *fact* (:class:`Reserved` per SKU, :class:`Rejected`
for the order). Facts may come in any order, twice, or late, and the order ends in the same
status whatever their order:

- a :class:`Reserved` while PENDING marks its SKU; the last missing SKU confirms the order;
- a :class:`Reserved` for an order that is REJECTED or CANCELLED (it arrived after the saga
  timeout, or after a rejection) is *compensated*: the change asks to release that SKU, so no
  stock stays held for an order that will never ship;
- a :class:`Reserved` for a CONFIRMED or SHIPPED order, or any second :class:`Rejected`, is a
  duplicate: no change;
- a :class:`Rejected` while PENDING rejects the order and releases whatever SKUs it already
  holds (the inventory reserves all lines or none, so normally none: a defensive no-op).

Commands (:func:`time_out`, :func:`cancel`, :func:`ship`) are idempotent in their target
status (cancelling a CANCELLED order changes nothing) and raise
:class:`IllegalTransitionError` from any other status.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final, Literal

__all__ = [
    "ALLOWED",
    "INSUFFICIENT_STOCK",
    "TIMEOUT",
    "Cancelled",
    "Change",
    "Confirmed",
    "DomainEvent",
    "Fact",
    "IllegalTransitionError",
    "Line",
    "Order",
    "Placed",
    "Rejected",
    "RejectedOrder",
    "Reserved",
    "Shipped",
    "Status",
    "apply_fact",
    "cancel",
    "place",
    "ship",
    "time_out",
]

Status = Literal["PENDING", "CONFIRMED", "REJECTED", "SHIPPED", "CANCELLED"]
Line = tuple[str, int]
"""``(sku, qty)``."""

ALLOWED: Final[frozenset[tuple[Status, Status]]] = frozenset(
    {
        ("PENDING", "CONFIRMED"),
        ("PENDING", "REJECTED"),
        ("CONFIRMED", "SHIPPED"),
        ("CONFIRMED", "CANCELLED"),
    }
)
"""Every status change the lifecycle allows."""

INSUFFICIENT_STOCK: Final = "insufficient_stock"
TIMEOUT: Final = "timeout"


class IllegalTransitionError(Exception):
    """The command does not apply to the order in its current status."""

    def __init__(self, order: Order, action: str) -> None:
        super().__init__(f"order {order.id!r} is {order.status}: it cannot be {action}")
        self.order_id, self.status, self.action = order.id, order.status, action


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """One order. Times are Unix seconds; ``expires_at`` is the saga deadline of a PENDING order.

    ``reserved`` holds the SKUs the inventory reported reserved while the order was PENDING.
    ``version`` grows by one per stored change (so it has gaps as a stream position: marking
    one SKU reserved publishes nothing); an event's ``sequence`` is the version it produced.
    """

    id: str
    customer_id: str
    lines: tuple[Line, ...]
    status: Status = "PENDING"
    reason: str | None = None
    reserved: frozenset[str] = frozenset()
    created_at: float
    updated_at: float
    expires_at: float
    version: int = 1

    @property
    def wanted(self) -> dict[str, int]:
        """Quantity per SKU (lines naming one SKU are summed, as the inventory reserves)."""
        wanted: dict[str, int] = {}
        for sku, qty in self.lines:
            wanted[sku] = wanted.get(sku, 0) + qty
        return wanted

    @property
    def skus(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(sku for sku, _ in self.lines))


# ---- facts from the inventory ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reserved:
    """The inventory holds ``qty`` of ``sku`` for the order."""

    sku: str
    qty: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """The inventory reserved nothing of the order."""

    reason: str = INSUFFICIENT_STOCK


Fact = Reserved | Rejected

# ---- what a change publishes -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placed:
    pass


@dataclass(frozen=True, slots=True)
class Confirmed:
    pass


@dataclass(frozen=True, slots=True)
class RejectedOrder:
    reason: str


@dataclass(frozen=True, slots=True)
class Cancelled:
    pass


@dataclass(frozen=True, slots=True)
class Shipped:
    pass


DomainEvent = Placed | Confirmed | RejectedOrder | Cancelled | Shipped


@dataclass(frozen=True, slots=True)
class Change:
    """The order after a transition, what it publishes, and the SKUs to release.

    ``changed`` is false for a no-op (a duplicate); then nothing is stored or published,
    though ``releases`` may still ask for a compensation.
    """

    order: Order
    events: tuple[DomainEvent, ...] = ()
    releases: tuple[str, ...] = field(default=())
    changed: bool = False


def place(
    order_id: str, customer_id: str, lines: tuple[Line, ...], *, now: float, timeout: float
) -> Change:
    """A new PENDING order that the saga must settle before ``now + timeout``."""
    if not lines:
        raise ValueError("an order needs at least one line")
    order = Order(
        id=order_id,
        customer_id=customer_id,
        lines=lines,
        created_at=now,
        updated_at=now,
        expires_at=now + timeout,
    )
    return Change(order, (Placed(),), changed=True)


def _moved(
    order: Order,
    status: Status,
    now: float,
    *,
    reason: str | None = None,
    reserved: frozenset[str] | None = None,
) -> Order:
    assert (order.status, status) in ALLOWED, (order.status, status)
    return replace(
        order,
        status=status,
        updated_at=now,
        version=order.version + 1,
        reason=reason if reason is not None else order.reason,
        reserved=reserved if reserved is not None else order.reserved,
    )


def apply_fact(order: Order, fact: Fact, *, now: float) -> Change:
    """React to one inventory fact; see the module docstring."""
    match fact:
        case Reserved(sku=sku, qty=qty):
            if order.status in ("REJECTED", "CANCELLED"):
                return Change(order, releases=(sku,))
            if order.status != "PENDING" or sku in order.reserved:
                return Change(order)
            if order.wanted.get(sku) != qty:
                # Not this order's line (a conflicting reservation): never confirm on it.
                return Change(order)
            reserved = order.reserved | {sku}
            if reserved.issuperset(order.wanted):
                confirmed = _moved(order, "CONFIRMED", now, reserved=reserved)
                return Change(confirmed, (Confirmed(),), changed=True)
            marked = replace(order, reserved=reserved, updated_at=now, version=order.version + 1)
            return Change(marked, changed=True)
        case Rejected(reason=reason):
            if order.status != "PENDING":
                return Change(order)
            held = tuple(sku for sku in order.skus if sku in order.reserved)
            rejected = _moved(order, "REJECTED", now, reason=reason, reserved=frozenset())
            return Change(rejected, (RejectedOrder(reason),), releases=held, changed=True)
    raise TypeError(f"not an inventory fact: {fact!r}")


def time_out(order: Order, *, now: float) -> Change:
    """Reject a PENDING order whose deadline passed, releasing every SKU it may hold."""
    if order.status != "PENDING" or now < order.expires_at:
        return Change(order)
    rejected = _moved(order, "REJECTED", now, reason=TIMEOUT, reserved=frozenset())
    return Change(rejected, (RejectedOrder(TIMEOUT),), releases=order.skus, changed=True)


def cancel(order: Order, *, now: float) -> Change:
    """CONFIRMED -> CANCELLED (the inventory releases on ``OrderCancelled``); idempotent."""
    if order.status == "CANCELLED":
        return Change(order)
    if order.status != "CONFIRMED":
        raise IllegalTransitionError(order, "cancelled")
    return Change(_moved(order, "CANCELLED", now), (Cancelled(),), changed=True)


def ship(order: Order, *, now: float) -> Change:
    """CONFIRMED -> SHIPPED (the inventory ships on ``OrderShipped``); idempotent."""
    if order.status == "SHIPPED":
        return Change(order)
    if order.status != "CONFIRMED":
        raise IllegalTransitionError(order, "shipped")
    return Change(_moved(order, "SHIPPED", now), (Shipped(),), changed=True)
