"""What the notifications use cases need from the outside: a unit of work with its
repositories, the reads, a resolver and a sender (adapters implement them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from stockflow.notifications.domain.model import Attempt, Delivery, Notification, Webhook
from stockflow_kit.messaging import Delivery as BusDelivery

__all__ = [
    "DeliveryRepository",
    "NotificationRepository",
    "PageCursor",
    "Queries",
    "Resolver",
    "SendFailedError",
    "Sender",
    "UnitOfWork",
    "WebhookRepository",
]


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where a newest-first page ends: its last row's creation time and id."""

    created_at: float
    id: str


class SendFailedError(Exception):
    """An attempt got no HTTP answer (refused, timed out, broken); the message says how."""


class NotificationRepository(Protocol):
    async def add_many(self, notifications: Sequence[Notification]) -> int:
        """Insert those whose ids are free; return how many were inserted."""
        ...


class WebhookRepository(Protocol):
    async def add(self, webhook: Webhook) -> None: ...

    async def get(self, webhook_id: str) -> Webhook | None: ...

    async def live(self) -> list[Webhook]:
        """Every webhook not deleted."""
        ...

    async def delete(self, webhook_id: str, *, now: float) -> bool:
        """Mark it deleted and its unsettled deliveries dead; ``False`` when unknown."""
        ...


class DeliveryRepository(Protocol):
    async def add_many(self, deliveries: Sequence[Delivery]) -> int:
        """Queue those whose ids are free; return how many were queued."""
        ...

    async def claim(self, *, now: float, lease: float, limit: int) -> list[Delivery]:
        """Up to *limit* unsettled deliveries due at *now* (of live webhooks), oldest due
        first, leased: their ``next_attempt_at`` moves to ``now + lease`` so no other
        dispatcher takes them meanwhile (and a crashed one's are retried after it)."""
        ...

    async def reschedule(self, delivery_ids: Sequence[str], *, at: float) -> None:
        """Make those still unsettled due at *at* (no attempt spent; ends their lease)."""
        ...

    async def record(self, delivery: Delivery, attempt: Attempt) -> None:
        """Store the delivery's state after *attempt*, and the attempt in its log."""
        ...


class UnitOfWork(Protocol):
    """One transaction: ``async with uow: …; await uow.commit()``; leaving without a commit
    rolls back."""

    @property
    def notifications(self) -> NotificationRepository: ...

    @property
    def webhooks(self) -> WebhookRepository: ...

    @property
    def deliveries(self) -> DeliveryRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    async def new_messages(self, deliveries: Sequence[BusDelivery]) -> list[BusDelivery]:
        """Record the deliveries' ids (inbox) and return those never processed before."""
        ...

    async def commit(self) -> None: ...


class Queries(Protocol):
    """Reads outside any write transaction."""

    async def notification(self, notification_id: str) -> Notification | None: ...

    async def notifications(
        self, *, user_id: str, after: PageCursor | None, limit: int
    ) -> Sequence[Notification]: ...

    async def webhook(self, webhook_id: str) -> Webhook | None: ...

    async def webhooks(self) -> Sequence[Webhook]: ...

    async def delivery(self, delivery_id: str) -> Delivery | None: ...

    async def deliveries(
        self, *, webhook_id: str, after: PageCursor | None, limit: int
    ) -> Sequence[Delivery]: ...

    async def attempts(self, delivery_ids: Sequence[str]) -> Mapping[str, Sequence[Attempt]]:
        """The logged attempts of each delivery, oldest first."""
        ...

    async def backlog(self) -> int:
        """Deliveries not yet settled."""
        ...


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses *host* resolves to (none when it does not)."""
        ...


class Sender(Protocol):
    async def send(
        self,
        url: str,
        *,
        address: str,
        headers: Mapping[str, str],
        body: bytes,
        time_limit: float,
    ) -> int:
        """POST *body* to *url*, connecting to *address* (a checked IP); return the status.

        Raises:
            SendFailedError: no answer within *time_limit* seconds, or the connection failed.
        """
        ...
