"""ResilientClient builds its requests itself: what it sends, where, and what it never keeps."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry

from stockflow_kit.http.client import ResilientClient


class Recorder:
    """A downstream answering 200 (with a cookie) and keeping every request it got."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, headers={"Set-Cookie": "session=abc"}, json={"ok": True})


def make_client(recorder: Recorder, base_url: str, **options: str) -> ResilientClient:
    return ResilientClient(
        "svc",
        base_url,
        transport=httpx.MockTransport(recorder),
        registry=CollectorRegistry(),
        headers=options or None,
    )


async def test_paths_join_the_base_url_as_httpx_joins_them() -> None:
    recorder = Recorder()
    async with make_client(recorder, "http://svc.test:8001/api") as client:
        await client.get("/stock/SKU-1")
        await client.get("stock/SKU-1")
        await client.get("/stock/SKU-1")  # the parsed URL kept: the same answer
        await client.get("/stock/a%2Fb")
        await client.get("/stock?x=1", params={"y": 2})
        await client.get("http://other.test/absolute")
    reference = httpx.AsyncClient(base_url="http://svc.test:8001/api")
    expected = [
        reference.build_request("GET", path, params=params).url
        for path, params in [
            ("/stock/SKU-1", None),
            ("stock/SKU-1", None),
            ("/stock/SKU-1", None),
            ("/stock/a%2Fb", None),
            ("/stock?x=1", {"y": 2}),
            ("http://other.test/absolute", None),
        ]
    ]
    assert [r.url for r in recorder.requests] == expected


async def test_the_clients_headers_are_sent_and_a_calls_own_win() -> None:
    recorder = Recorder()
    async with make_client(recorder, "http://svc.test", **{"X-Service": "edge"}) as client:
        await client.get("/a", headers={"x-service": "mine", "X-Other": "1"})
        await client.get("/b")
    first, second = recorder.requests
    assert first.headers.get_list("X-Service") == ["mine"]
    assert first.headers["X-Other"] == "1"
    assert first.headers["Host"] == "svc.test"
    assert second.headers["X-Service"] == "edge"
    assert "X-Other" not in second.headers


async def test_no_cookie_is_kept_from_one_call_for_the_next() -> None:
    recorder = Recorder()
    async with make_client(recorder, "http://svc.test") as client:
        answer = await client.get("/a")
        await client.get("/b")
    assert answer.headers["Set-Cookie"] == "session=abc"
    assert answer.json() == {"ok": True}
    assert answer.elapsed.total_seconds() >= 0
    assert "Cookie" not in recorder.requests[1].headers
