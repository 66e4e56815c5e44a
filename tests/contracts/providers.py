"""Provider-side helpers: a real service as a process, a proxy that mutates its answers, and a
verification that returns the verifier's output instead of a bare ``RuntimeError``."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pact import Verifier

from stockflow.runtime.registry import SERVICES
from stockflow_kit.lifecycle import ServiceProcess, free_port
from stockflow_kit.messaging import Envelope

STOCKFLOW = str(Path(sys.executable).with_name("stockflow"))
SERVICE_TOKEN = "test-service-credential"


@contextmanager
def serving(name: str, directory: Path, env: Mapping[str, str]) -> Iterator[ServiceProcess]:
    """``stockflow serve <name>`` on a free port, its stores and the bus in *directory*."""
    spec = next(s for s in SERVICES if s.name == name)
    process = ServiceProcess(
        [STOCKFLOW, "serve", name],
        name=name,
        env={
            "BUS_URL": f"sqlite:///{directory / 'bus.sqlite3'}",
            "STOCKFLOW_SERVICE_TOKEN": SERVICE_TOKEN,
            "STOCKFLOW_LOG_FORMAT": "json",
            **env,
        },
        port_env=spec.env_name("port"),
        log=directory / f"{name}.log",
    )
    process.start()
    try:
        asyncio.run(process.wait_ready(within=60))
        yield process
    finally:
        process.terminate()


JsonEdit = Callable[[Any], Any]


@contextmanager
def mutating_proxy(upstream: str, edit: JsonEdit) -> Iterator[str]:
    """A tiny ASGI app on a free port (uvicorn, in a thread) that forwards every request to
    *upstream* and passes each JSON answer through *edit*: the provider with a changed schema."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k != b"host"]
        query = scope.get("query_string", b"").decode()
        path = scope["path"] + (f"?{query}" if query else "")
        async with httpx.AsyncClient(base_url=upstream) as client:
            answer = await client.request(scope["method"], path, headers=headers, content=body)
        content = answer.content
        if answer.headers.get("content-type", "").startswith("application/json"):
            content = httpx.Response(200, json=edit(answer.json())).content
        out = [
            (k.encode(), v.encode())
            for k, v in answer.headers.items()
            if k not in {"content-length", "content-encoding", "transfer-encoding"}
        ]
        out.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": answer.status_code, "headers": out})
        await send({"type": "http.response.body", "body": content})

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, name="mutating-proxy", daemon=True)
    thread.start()
    try:
        for _ in range(1000):
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "the mutating proxy did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def verify(verifier: Verifier) -> tuple[bool, str]:
    """Run *verifier*: whether every interaction passed, and the output (ANSI stripped)."""
    try:
        verifier.verify()
    except RuntimeError:
        return False, verifier.output(strip_ansi=True)
    return True, verifier.output(strip_ansi=True)


class Outbox:
    """What orders' unit of work is handed to publish (only ``publish`` is used)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, Sequence[Envelope]]] = []

    def publish(self, topic: str, envelopes: Sequence[Envelope], **_: object) -> None:
        self.published.append((topic, envelopes))
