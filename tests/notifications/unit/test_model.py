"""The domain's decisions: who is notified, delivery ids, and a delivery's attempts."""

from __future__ import annotations

import pytest

from stockflow.notifications.domain.model import (
    Delivery,
    after_attempt,
    delivery_id,
    new_secret,
    notification_for,
)


def _delivery(**changes: object) -> Delivery:
    values: dict[str, object] = {
        "id": "msg_1",
        "webhook_id": "wh_1",
        "event_id": "e-1",
        "event_type": "OrderPlaced",
        "body": "{}",
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": 0.0,
        "created_at": 0.0,
        "updated_at": 0.0,
    }
    values.update(changes)
    return Delivery(**values)  # type: ignore[arg-type]


def test_an_order_event_notifies_its_owner_with_the_event_id() -> None:
    note = notification_for(
        event_id="e-1", event_type="OrderConfirmed", customer_id="alice", order_id="o-1", at=5.0
    )
    assert note is not None
    assert (note.id, note.user_id, note.order_id, note.created_at) == ("e-1", "alice", "o-1", 5.0)
    assert "o-1" in note.message
    assert "confirmed" in note.message


def test_a_rejection_says_why_in_words() -> None:
    note = notification_for(
        event_id="e",
        event_type="OrderRejected",
        customer_id="a",
        order_id="o",
        reason="insufficient_stock",
        at=0,
    )
    assert note is not None
    assert note.message.endswith("not enough stock.")


@pytest.mark.parametrize(
    ("event_type", "customer_id"),
    [("LowStockDetected", "alice"), ("OrderPlaced", ""), ("StockReceived", "alice")],
)
def test_staff_events_events_without_an_owner_and_others_notify_nobody(
    event_type: str, customer_id: str
) -> None:
    assert (
        notification_for(
            event_id="e", event_type=event_type, customer_id=customer_id, order_id="o", at=0
        )
        is None
    )


def test_a_delivery_id_is_stable_per_webhook_and_event() -> None:
    assert delivery_id("wh_1", "e-1") == delivery_id("wh_1", "e-1")
    assert delivery_id("wh_1", "e-1") != delivery_id("wh_2", "e-1")
    assert delivery_id("wh_1", "e-1") != delivery_id("wh_1", "e-2")
    assert delivery_id("wh_1", "e-1").startswith("msg_")


def test_secrets_are_standard_webhooks_secrets_and_never_repeat() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_")
    assert first != second


def test_a_2xx_delivers() -> None:
    after = after_attempt(_delivery(), 204, None, now=3.0, max_attempts=3, retry_in=1.0)
    assert (after.status, after.attempts, after.next_attempt_at) == ("delivered", 1, None)
    assert after.settled


def test_a_failure_is_retried_later_until_the_attempts_are_used_up() -> None:
    first = after_attempt(_delivery(), 500, None, now=3.0, max_attempts=3, retry_in=1.5)
    assert (first.status, first.attempts, first.next_attempt_at) == ("failed", 1, 4.5)
    second = after_attempt(first, None, "timed out", now=5.0, max_attempts=3, retry_in=2.0)
    assert (second.status, second.last_error, second.last_status) == ("failed", "timed out", None)
    third = after_attempt(second, 302, None, now=8.0, max_attempts=3, retry_in=4.0)
    assert (third.status, third.attempts, third.next_attempt_at) == ("dead", 3, None)
    assert third.last_status == 302
