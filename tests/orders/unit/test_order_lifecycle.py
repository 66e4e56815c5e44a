"""The order lifecycle as a pure state machine: transitions, idempotency, any delivery order."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockflow.orders.domain.model import (
    ALLOWED,
    Change,
    Fact,
    IllegalTransitionError,
    Order,
    Rejected,
    Reserved,
    apply_fact,
    cancel,
    place,
    ship,
    time_out,
)

LINES = (("SKU-A", 2), ("SKU-B", 1), ("SKU-A", 3))


def pending(lines: tuple[tuple[str, int], ...] = LINES) -> Order:
    return place("order-1", "alice", lines, now=100.0, timeout=30.0).order


def run(order: Order, facts: list[Fact], now: float = 101.0) -> tuple[Order, list[Change]]:
    changes = []
    for fact in facts:
        change = apply_fact(order, fact, now=now)
        changes.append(change)
        order = change.order
    return order, changes


def test_a_new_order_is_pending_until_its_deadline() -> None:
    order = pending()
    assert order.status == "PENDING"
    assert order.expires_at == 130.0
    assert order.wanted == {"SKU-A": 5, "SKU-B": 1}


def test_the_order_is_confirmed_when_every_sku_is_reserved() -> None:
    order, changes = run(pending(), [Reserved("SKU-A", 5), Reserved("SKU-B", 1)])
    assert order.status == "CONFIRMED"
    assert [type(e).__name__ for c in changes for e in c.events] == ["Confirmed"]


def test_a_reservation_of_another_quantity_does_not_confirm() -> None:
    order, _ = run(pending(), [Reserved("SKU-A", 2), Reserved("SKU-B", 1)])
    assert order.status == "PENDING"


def test_a_rejection_rejects_with_its_reason_and_releases_what_is_held() -> None:
    order, changes = run(pending(), [Reserved("SKU-B", 1), Rejected("insufficient_stock")])
    assert (order.status, order.reason) == ("REJECTED", "insufficient_stock")
    assert changes[-1].releases == ("SKU-B",)


def test_a_reservation_arriving_after_the_timeout_is_released() -> None:
    timed_out = time_out(pending(), now=131.0)
    assert (timed_out.order.status, timed_out.order.reason) == ("REJECTED", "timeout")
    assert timed_out.releases == ("SKU-A", "SKU-B")
    late = apply_fact(timed_out.order, Reserved("SKU-A", 5), now=132.0)
    assert late.releases == ("SKU-A",)
    assert not late.changed
    assert late.order.status == "REJECTED"


def test_the_timer_leaves_an_order_before_its_deadline_alone() -> None:
    assert not time_out(pending(), now=129.9).changed


def test_cancel_and_ship_are_idempotent_in_their_target_status() -> None:
    confirmed, _ = run(pending(), [Reserved("SKU-A", 5), Reserved("SKU-B", 1)])
    cancelled = cancel(confirmed, now=102.0)
    assert cancelled.order.status == "CANCELLED"
    assert not cancel(cancelled.order, now=103.0).changed
    shipped = ship(confirmed, now=102.0)
    assert shipped.order.status == "SHIPPED"
    assert not ship(shipped.order, now=103.0).changed


@pytest.mark.parametrize("status", ["PENDING", "REJECTED", "SHIPPED"])
def test_cancel_is_refused_unless_confirmed(status: str) -> None:
    order = pending()
    if status == "REJECTED":
        order = time_out(order, now=200.0).order
    elif status == "SHIPPED":
        order, _ = run(order, [Reserved("SKU-A", 5), Reserved("SKU-B", 1)])
        order = ship(order, now=102.0).order
    with pytest.raises(IllegalTransitionError, match="cannot be cancelled"):
        cancel(order, now=300.0)


def test_ship_is_refused_for_a_pending_order() -> None:
    with pytest.raises(IllegalTransitionError, match="cannot be shipped"):
        ship(pending(), now=101.0)


# ---- properties over random deliveries -------------------------------------------------

SKUS = ["SKU-A", "SKU-B", "SKU-C"]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Order, list[Fact], str]:
    """An order, the facts the inventory really produced for it, and the status they mean.

    Either every line was reserved (CONFIRMED), or the order was rejected, possibly after
    some of its SKUs were reserved on other replicas (REJECTED).
    """
    skus = draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=3, unique=True))
    lines = tuple((sku, draw(st.integers(1, 5))) for sku in skus)
    order = place("o", "c", lines, now=0.0, timeout=30.0).order
    reserved = [Reserved(sku, qty) for sku, qty in order.wanted.items()]
    if draw(st.booleans()):
        return order, reserved, "CONFIRMED"
    partial = draw(st.lists(st.sampled_from(reserved), max_size=len(reserved) - 1, unique=True))
    return order, [*partial, Rejected("insufficient_stock")], "REJECTED"


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[Order, list[Fact], str]:
    """A world's facts delivered in any order, some of them several times."""
    order, facts, expected = draw(worlds())
    copies = [fact for fact in facts for _ in range(draw(st.integers(1, 3)))]
    return order, draw(st.permutations(copies)), expected


@settings(max_examples=300)
@given(deliveries())
def test_any_delivery_order_and_duplicates_end_in_the_same_status(
    delivery: tuple[Order, list[Fact], str],
) -> None:
    order, facts, expected = delivery
    final, _ = run(order, facts)
    assert final.status == expected


@settings(max_examples=300)
@given(deliveries())
def test_a_rejected_order_asks_to_release_every_sku_it_was_reported_holding(
    delivery: tuple[Order, list[Fact], str],
) -> None:
    order, facts, expected = delivery
    _, changes = run(order, facts)
    released = {sku for change in changes for sku in change.releases}
    reported = {fact.sku for fact in facts if isinstance(fact, Reserved)}
    if expected == "REJECTED":
        assert released == reported
    else:
        assert released == set()


ACTIONS = st.lists(
    st.one_of(
        st.builds(Reserved, st.sampled_from(SKUS), st.integers(1, 5)),
        st.builds(Rejected, st.sampled_from(["insufficient_stock"])),
        st.sampled_from(["cancel", "ship", "time_out"]),
    ),
    max_size=12,
)


@settings(max_examples=300)
@given(ACTIONS)
def test_no_sequence_of_facts_and_commands_makes_an_illegal_transition(
    actions: list[Fact | str],
) -> None:
    order = place("o", "c", (("SKU-A", 2), ("SKU-B", 1)), now=0.0, timeout=30.0).order
    now = itertools.count(1.0, 5.0)
    for action in actions:
        before = order
        try:
            match action:
                case "cancel":
                    change = cancel(order, now=next(now))
                case "ship":
                    change = ship(order, now=next(now))
                case "time_out":
                    change = time_out(order, now=next(now))
                case _:
                    assert not isinstance(action, str)
                    change = apply_fact(order, action, now=next(now))
        except IllegalTransitionError:
            continue
        order = change.order
        if order.status != before.status:
            assert (before.status, order.status) in ALLOWED
            assert order.version > before.version
        if order.status in ("CONFIRMED", "SHIPPED", "CANCELLED"):
            assert set(order.wanted) <= order.reserved
