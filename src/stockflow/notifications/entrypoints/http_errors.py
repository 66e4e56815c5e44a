"""The notifications API's one error table: domain and service errors to problem+json."""

from __future__ import annotations

from typing import Final

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from stockflow.notifications.domain.targets import TargetRefusedError
from stockflow.notifications.service_layer.handlers import NotAllowedError, UnknownWebhookError
from stockflow_kit.http import ErrorTable
from stockflow_kit.http.bodies import BODY_ERRORS
from stockflow_kit.http.credentials import NotReadyError, ServiceCredentialError

__all__ = ["ERRORS", "InvalidCallerError", "InvalidCursorError"]


class InvalidCallerError(Exception):
    """The forwarded identity headers are missing or malformed."""


class InvalidCursorError(Exception):
    """A page cursor that names nothing the caller may see."""


ERRORS: Final = ErrorTable(
    {
        UnknownWebhookError: (404, "Unknown webhook"),
        InvalidCursorError: (404, "Unknown cursor"),
        NotAllowedError: (403, "Not allowed"),
        TargetRefusedError: (422, "Webhook target refused", "webhook-target-refused"),
        InvalidCallerError: (422, "Invalid caller identity"),
        ServiceCredentialError: (401, "Missing or invalid service credential"),
        NotReadyError: (503, "Not ready"),
        DBAPIError: (503, "Storage unavailable", "storage-unavailable"),
        PoolTimeoutError: (503, "Storage unavailable", "storage-unavailable"),
        ConnectionError: (503, "Storage unavailable", "storage-unavailable"),
    }
)
ERRORS.update(BODY_ERRORS)
