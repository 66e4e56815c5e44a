"""The orders API's one error table: domain and service errors to problem+json statuses."""

from __future__ import annotations

from typing import Final

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from stockflow.orders.domain.model import IllegalTransitionError
from stockflow.orders.service_layer.handlers import NotAllowedError, UnknownOrderError
from stockflow.orders.service_layer.ports import ConcurrentUpdateError
from stockflow_kit.http import IDEMPOTENCY_ERRORS, ErrorTable
from stockflow_kit.http.bodies import BODY_ERRORS
from stockflow_kit.http.credentials import NotReadyError, ServiceCredentialError
from stockflow_kit.lifecycle import GroupCommitStoppedError

__all__ = ["ERRORS", "InvalidCallerError"]


class InvalidCallerError(Exception):
    """The forwarded identity headers are missing or malformed."""


ERRORS: Final = ErrorTable(
    {
        UnknownOrderError: (404, "Unknown order"),
        IllegalTransitionError: (409, "Not possible in the order's status"),
        ConcurrentUpdateError: (409, "The order changed meanwhile: retry"),
        NotAllowedError: (403, "Not allowed"),
        InvalidCallerError: (422, "Invalid caller identity"),
        ServiceCredentialError: (401, "Missing or invalid service credential"),
        NotReadyError: (503, "Not ready"),
        GroupCommitStoppedError: (503, "Not ready"),
        # The database failed or is out of reach (the pool's wait ended): retry later.
        DBAPIError: (503, "Storage unavailable", "storage-unavailable"),
        PoolTimeoutError: (503, "Storage unavailable", "storage-unavailable"),
        ConnectionError: (503, "Storage unavailable", "storage-unavailable"),
    }
)
ERRORS.update(IDEMPOTENCY_ERRORS).update(BODY_ERRORS)
