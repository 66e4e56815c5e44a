"""Deliveries are signed the Standard Webhooks way: the package's verify accepts them."""

from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from stockflow.notifications.domain.model import new_secret
from stockflow.notifications.service_layer.signing import signed_headers


def test_a_signed_delivery_verifies_with_standardwebhooks() -> None:
    secret = new_secret()
    body = '{"type":"OrderPlaced","timestamp":"2026-12-02T00:00:00.000Z","data":{}}'
    headers = signed_headers(secret, "msg_abc", body, at=time.time())
    assert headers["webhook-id"] == "msg_abc"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == {
        "type": "OrderPlaced",
        "timestamp": "2026-12-02T00:00:00.000Z",
        "data": {},
    }


def test_another_secret_or_a_changed_body_does_not_verify() -> None:
    secret = new_secret()
    headers = signed_headers(secret, "msg_abc", "{}", at=time.time())
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify("{}", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify('{"x":1}', headers)


def test_the_timestamp_is_the_attempts_in_whole_seconds() -> None:
    headers = signed_headers(new_secret(), "msg_1", "{}", at=1_700_000_000.9)
    assert headers["webhook-timestamp"] == "1700000000"
