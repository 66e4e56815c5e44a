"""Standard Webhooks signatures (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from standardwebhooks import Webhook as Signer

__all__ = ["USER_AGENT", "signed_headers"]

USER_AGENT: Final = "stockflow-notifications/1"


def signed_headers(secret: str, message_id: str, body: str, *, at: float) -> dict[str, str]:
    """The headers of one attempt: *message_id* is the delivery's id (the same on every
    retry), the timestamp the attempt's (whole seconds), the signature
    ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` with *secret* (``whsec_…``)."""
    moment = datetime.fromtimestamp(int(at), UTC)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at)),
        "webhook-signature": Signer(secret).sign(message_id, moment, body),
    }
