"""The profiles API's one error table: domain and service errors to problem+json statuses."""

from __future__ import annotations

from typing import Final

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from stockflow.profiles.domain.model import InvalidProfileError, PreconditionFailedError
from stockflow.profiles.service_layer.handlers import NotAllowedError, UnknownProfileError
from stockflow.profiles.service_layer.ports import ConcurrentUpdateError
from stockflow_kit.http import ErrorTable
from stockflow_kit.http.bodies import BODY_ERRORS
from stockflow_kit.http.credentials import NotReadyError, ServiceCredentialError

__all__ = ["ERRORS", "InvalidCallerError"]


class InvalidCallerError(Exception):
    """The forwarded identity headers are missing or malformed."""


ERRORS: Final = ErrorTable(
    {
        UnknownProfileError: (404, "Unknown profile"),
        NotAllowedError: (403, "Not allowed"),
        PreconditionFailedError: (412, "Precondition failed", "precondition-failed"),
        InvalidProfileError: (422, "Invalid profile", "invalid-profile"),
        ConcurrentUpdateError: (409, "The profile changed meanwhile: retry"),
        InvalidCallerError: (422, "Invalid caller identity"),
        ServiceCredentialError: (401, "Missing or invalid service credential"),
        NotReadyError: (503, "Not ready"),
        # The database failed or is out of reach (the pool's wait ended): retry later.
        DBAPIError: (503, "Storage unavailable", "storage-unavailable"),
        PoolTimeoutError: (503, "Storage unavailable", "storage-unavailable"),
        ConnectionError: (503, "Storage unavailable", "storage-unavailable"),
    }
)
ERRORS.update(BODY_ERRORS)
