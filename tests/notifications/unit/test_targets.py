"""The SSRF rules: schemes, user info, private and local targets, the allowlist."""

from __future__ import annotations

import pytest

from stockflow.notifications.domain.targets import (
    TargetPolicy,
    TargetRefusedError,
    is_public_address,
)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http:///no-host",
        "http://user:secret@example.com/hook",
        "http://example.com:99999/hook",
    ],
)
def test_only_plain_http_and_https_urls_with_a_host_are_accepted(url: str) -> None:
    with pytest.raises(TargetRefusedError):
        TargetPolicy().check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.1.2.3:8080/hook",
        "http://10.0.0.1/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[fc00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://224.0.0.1/hook",
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "http://printer.local/hook",
        "http://db.internal/hook",
        "http://app.localhost/hook",
        "http://intranet/hook",
    ],
)
def test_private_and_local_targets_are_refused_by_default(url: str) -> None:
    with pytest.raises(TargetRefusedError):
        TargetPolicy().check_url(url)


def test_public_targets_are_accepted_by_default() -> None:
    policy = TargetPolicy()
    assert policy.check_url("https://hooks.example.com/in").port == 443
    assert policy.check_url("http://93.184.216.34:8080/x").port == 8080


def test_allowlisted_hosts_are_accepted_even_when_private() -> None:
    policy = TargetPolicy(["127.0.0.1", "localhost:9000", "*.corp.example", "10.1.0.0/16", "[::1]"])
    assert policy.check_url("http://127.0.0.1:1234/hook").host == "127.0.0.1"
    assert policy.check_url("http://localhost:9000/hook").port == 9000
    assert policy.check_url("https://a.b.corp.example/hook").host == "a.b.corp.example"
    assert policy.check_url("http://10.1.200.3/hook").host == "10.1.200.3"
    assert policy.check_url("http://[::1]:8080/hook").host == "::1"
    with pytest.raises(TargetRefusedError):
        policy.check_url("http://localhost:9001/hook")  # another port
    with pytest.raises(TargetRefusedError):
        policy.check_url("http://10.2.0.1/hook")  # outside the network
    with pytest.raises(TargetRefusedError):
        policy.check_url("http://corp.example.internal/hook")


def test_without_public_traffic_only_the_allowlist_passes() -> None:
    policy = TargetPolicy(["hooks.example.com"], allow_public=False)
    assert policy.check_url("https://hooks.example.com/x").host == "hooks.example.com"
    with pytest.raises(TargetRefusedError, match="not on the allowlist"):
        policy.check_url("https://other.example.com/x")


def test_a_public_name_resolving_to_a_private_address_is_refused_at_delivery() -> None:
    policy = TargetPolicy()
    target = policy.check_url("https://rebind.example.com/hook")
    policy.check_addresses(target, ["93.184.216.34"])
    with pytest.raises(TargetRefusedError, match="non-public"):
        policy.check_addresses(target, ["93.184.216.34", "10.0.0.7"])
    with pytest.raises(TargetRefusedError, match="non-public"):
        policy.check_addresses(target, ["169.254.169.254"])
    with pytest.raises(TargetRefusedError, match="no address"):
        policy.check_addresses(target, [])


def test_an_allowlisted_name_may_resolve_to_a_private_address() -> None:
    policy = TargetPolicy(["localhost"])
    target = policy.check_url("http://localhost:8080/hook")
    policy.check_addresses(target, ["127.0.0.1", "::1"])


def test_ipv4_mapped_addresses_are_judged_as_the_ipv4_inside() -> None:
    assert not is_public_address("::ffff:10.0.0.1")
    assert is_public_address("::ffff:93.184.216.34")
    assert not is_public_address("not an address")


def test_a_malformed_allowlist_pattern_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="port"):
        TargetPolicy(["example.com:0"])
    with pytest.raises(ValueError, match="empty"):
        TargetPolicy([" "])
