"""The broker as a fault: SIGKILL the run's private nats-server and start it again on the same
port and JetStream store (``tests.inventory.crash.private_servers.PrivateNats``)."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from pathlib import Path

import httpx
from tests.inventory.crash.private_servers import PrivateNats

from stockflow_chaos import state
from stockflow_chaos.context import Configuration, described, system

RESTARTED_PID = "nats-restarted.pid"
"""In the run's root: the pid of the nats-server this process started (the runner stops it)."""


def _server(configuration: Configuration) -> tuple[PrivateNats, Path]:
    wanted = described(configuration)["nats"]
    server = PrivateNats(
        binary=Path(wanted["binary"]), root=Path(wanted["root"]), port=wanted["port"]
    )
    return server, Path(described(configuration)["system"]["root"]) / RESTARTED_PID


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


def kill_nats(configuration: Configuration) -> int:
    """SIGKILL the nats-server (the runner's, or the one this run restarted); its pid."""
    server, pid_file = _server(configuration)
    pid = (
        int(pid_file.read_text()) if pid_file.exists() else described(configuration)["nats"]["pid"]
    )
    os.kill(pid, signal.SIGKILL)
    state.marks["nats_killed"] = time.monotonic()
    while _accepting(server.port):
        time.sleep(0.05)
    return pid


def start_nats(configuration: Configuration) -> str:
    """Start the nats-server again on its port and store, unless it runs (also a rollback)."""
    server, pid_file = _server(configuration)
    if _accepting(server.port):
        return "running"
    server.start()  # waits until it accepts clients
    assert server.process is not None
    pid_file.write_text(str(server.process.pid))
    state.marks["nats_started"] = time.monotonic()
    state.figures["nats_outage_seconds"] = round(
        state.marks["nats_started"] - state.marks.get("nats_killed", state.marks["nats_started"]), 2
    )
    return f"started (pid {server.process.pid})"


def bus_recovery_seconds(configuration: Configuration, within: float = 60.0) -> float:
    """Seconds from the nats-server's restart until an order placed through edge is CONFIRMED
    (the saga works over the bus again); an order the saga timer rejected meanwhile is
    replaced by a new one. Kept in the figures."""
    target = system(configuration)
    sku = state.figures["_skus"][0]
    customer = target.auth("chaos-probe")
    deadline = state.marks["nats_started"] + within
    with httpx.Client(timeout=10, trust_env=False) as http:
        order = ""
        while time.monotonic() < deadline:
            if not order:
                placed = http.post(
                    f"{target.url()}/orders",
                    json={"lines": [{"sku": sku, "qty": 1}]},
                    headers={**customer, "Idempotency-Key": uuid.uuid4().hex},
                )
                assert placed.status_code == 202, placed.text
                order = f"{target.url()}/orders/{placed.json()['id']}"
            status = http.get(order, headers=customer).json()["status"]
            if status == "CONFIRMED":
                seconds = round(time.monotonic() - state.marks["nats_started"], 2)
                state.figures["bus_recovery_seconds"] = seconds
                return seconds
            if status != "PENDING":
                order = ""  # rejected by the saga timer while the bus was down: a new one
            time.sleep(0.1)
    raise AssertionError(f"no order confirmed within {within} s of the nats-server's restart")


def inject_duplicates(
    configuration: Configuration, streams: list[str], copies: int = 1
) -> dict[str, int]:
    """Publish *copies* more of every message now in the run's JetStream *streams* (stream
    tokens: ``orders``, ``inventory``), in a shuffled order (the run's seed), each under a new
    ``Nats-Msg-Id`` so the broker's dedupe window lets it through: what a relay that published
    twice, or a redelivery storm, would look like. Only the consumers' own dedupe (inbox,
    processed ids) stands between these copies and a second effect. Kept in the figures."""
    import asyncio
    import random
    from urllib.parse import parse_qs, urlsplit

    import nats

    bus_url = described(configuration)["system"]["bus_url"]
    parts = urlsplit(bus_url)
    prefix = parse_qs(parts.query)["prefix"][0]
    rng = random.Random(described(configuration).get("seed", 0))

    async def inject() -> dict[str, int]:
        client = await nats.connect(f"nats://{parts.hostname}:{parts.port}")
        try:
            jetstream = client.jetstream()
            messages = []
            for token in streams:
                stream = f"{prefix}_{token}"
                info = await jetstream.stream_info(stream)
                for sequence in range(info.state.first_seq, info.state.last_seq + 1):
                    messages.append(await jetstream.get_msg(stream, sequence))
            copies_out = [m for m in messages for _ in range(copies)]
            rng.shuffle(copies_out)
            for number, message in enumerate(copies_out):
                headers = dict(message.headers or {})
                headers["Nats-Msg-Id"] = f"{headers.get('Nats-Msg-Id', '')}-chaos-copy-{number}"
                await jetstream.publish(message.subject, message.data or b"", headers=headers)
            return {"messages_found": len(messages), "copies_published": len(copies_out)}
        finally:
            await client.close()

    report = asyncio.run(inject())
    state.figures["injected"] = report
    return report
