"""The exceptions raised by the resilience toolkit itself (the tree is in the package docstring).

Errors raised *through* a breaker, a bulkhead or a retry loop are never wrapped: callers see
their own exceptions unchanged, and only the toolkit's own refusals come from here.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

BulkheadRejection: TypeAlias = Literal["queue_full", "queue_timeout"]


class ResilienceError(Exception):
    """Base class of every exception that the resilience toolkit raises on its own."""


class CircuitOpenError(ResilienceError):
    """A circuit breaker refused a call without making it.

    Attributes:
        name: The breaker's name.
        retry_after: Seconds until the breaker admits a trial call again; ``0.0`` when it is
            half-open and all trial slots are taken.
    """

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(name, retry_after)
        self.name = name
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"circuit breaker {self.name!r} is open; retry in {self.retry_after:.3f}s"


class BulkheadFullError(ResilienceError):
    """A bulkhead refused a call because its queue was full or the wait timed out.

    Attributes:
        name: The bulkhead's name.
        reason: ``"queue_full"`` or ``"queue_timeout"``.
    """

    def __init__(self, name: str, reason: BulkheadRejection) -> None:
        super().__init__(name, reason)
        self.name = name
        self.reason: BulkheadRejection = reason

    def __str__(self) -> str:
        return f"bulkhead {self.name!r} rejected the call ({self.reason})"


class DeadlineExceededError(ResilienceError):
    """The deadline for this piece of work passed before the work could (re)start."""
