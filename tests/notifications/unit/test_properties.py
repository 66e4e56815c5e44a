"""Properties: a delivery's attempts end in exactly one settled state, and no address of a
private network passes the SSRF rules unless allowlisted."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockflow.notifications.domain.model import Delivery, after_attempt
from stockflow.notifications.domain.targets import TargetPolicy, TargetRefusedError

_PRIVATE = [
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16")
]

outcomes = st.lists(st.one_of(st.none(), st.integers(100, 599)), min_size=1, max_size=20)


@given(outcomes, st.integers(1, 10))
def test_attempts_stop_at_the_first_2xx_or_at_the_maximum(
    statuses: list[int | None], max_attempts: int
) -> None:
    delivery = Delivery(
        id="msg_1",
        webhook_id="wh_1",
        event_id="e",
        event_type="OrderPlaced",
        body="{}",
        status="pending",
        attempts=0,
        next_attempt_at=0.0,
        created_at=0.0,
        updated_at=0.0,
    )
    for n, status in enumerate(statuses, start=1):
        error = "no answer" if status is None else None
        delivery = after_attempt(
            delivery, status, error, now=float(n), max_attempts=max_attempts, retry_in=1.0
        )
        assert delivery.attempts == n
        if delivery.settled:
            break
        assert delivery.status == "failed"
        assert delivery.next_attempt_at == n + 1.0
    ok = [i for i, s in enumerate(statuses) if s is not None and 200 <= s < 300]
    first_ok = ok[0] + 1 if ok else None
    if first_ok is not None and first_ok <= max_attempts:
        assert (delivery.status, delivery.attempts) == ("delivered", first_ok)
    elif len(statuses) >= max_attempts:
        assert (delivery.status, delivery.attempts) == ("dead", max_attempts)
    else:
        assert delivery.status == "failed"


@given(st.sampled_from(_PRIVATE), st.integers(0, 2**32 - 1), st.integers(1, 65_535))
def test_no_private_address_passes_unless_allowlisted(
    network: ipaddress.IPv4Network, offset: int, port: int
) -> None:
    address = network[offset % network.num_addresses]
    url = f"http://{address}:{port}/hook"
    with pytest.raises(TargetRefusedError):
        TargetPolicy().check_url(url)
    assert TargetPolicy([str(network)]).check_url(url).host == str(address)
    target = TargetPolicy().parse("https://public.example.com/hook")
    with pytest.raises(TargetRefusedError):
        TargetPolicy().check_addresses(target, [str(address)])
