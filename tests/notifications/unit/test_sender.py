"""The HTTP sender: it connects to the checked address, never follows a redirect, and maps
every httpx failure to SendFailedError."""

from __future__ import annotations

import httpx
import pytest

from stockflow.notifications.adapters.sender import HttpxSender, pinned_url
from stockflow.notifications.service_layer.ports import SendFailedError


def test_the_url_is_pinned_to_the_checked_address_and_keeps_its_host_header() -> None:
    assert pinned_url("https://hooks.example.com:8443/in?x=1", "93.184.216.34") == (
        "https://93.184.216.34:8443/in?x=1",
        "hooks.example.com:8443",
    )
    assert pinned_url("http://example.com/in", "2606:2800::1") == (
        "http://[2606:2800::1]/in",
        "example.com",
    )


async def test_a_redirect_is_an_answer_not_followed() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"location": "http://169.254.169.254/latest"})

    sender = HttpxSender(httpx.MockTransport(answer))
    status = await sender.send(
        "http://hooks.example.com/in",
        address="93.184.216.34",
        headers={"webhook-id": "msg_1"},
        body=b"{}",
        time_limit=1.0,
    )
    await sender.close()
    assert status == 302
    assert len(seen) == 1
    assert seen[0].url.host == "93.184.216.34"
    assert seen[0].headers["host"] == "hooks.example.com"


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectTimeout("slow"), httpx.ConnectError("refused"), httpx.RemoteProtocolError("x")],
)
async def test_no_answer_is_a_send_failure(failure: httpx.HTTPError) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise failure

    sender = HttpxSender(httpx.MockTransport(answer))
    with pytest.raises(SendFailedError):
        await sender.send(
            "http://hooks.example.com/in",
            address="93.184.216.34",
            headers={},
            body=b"{}",
            time_limit=1.0,
        )
    await sender.close()
