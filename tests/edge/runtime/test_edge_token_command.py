"""``stockflow token`` as a user runs it, against ``stockflow up``: the token it prints on its
last line is one the embedded edge accepts, and edge reaches the services behind it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import jwt
import pytest

from stockflow.runtime.registry import SERVICES
from stockflow_kit.lifecycle import ServiceProcess, free_port

STOCKFLOW = str(Path(sys.executable).with_name("stockflow"))
pytestmark = pytest.mark.slow


def stockflow_token(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STOCKFLOW_JWT_SECRET"}
    return subprocess.run(
        [STOCKFLOW, "token", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_token_prints_a_signed_jwt_on_its_last_line_and_keeps_the_secret_private(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    result = stockflow_token(
        "--user", "alice", "--role", "staff", "--data-dir", str(data), "--ttl", "120"
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    secret = (data / "jwt-secret").read_text().strip()
    assert oct((data / "jwt-secret").stat().st_mode)[-3:] == "600"
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert (claims["sub"], claims["role"]) == ("alice", "staff")
    assert claims["exp"] - claims["iat"] == 120
    again = stockflow_token("--user", "bob", "--data-dir", str(data))
    assert (
        jwt.decode(again.stdout.strip().splitlines()[-1], secret, algorithms=["HS256"])["role"]
        == "customer"
    )


def test_token_refuses_an_unknown_role_and_explains_its_options() -> None:
    result = stockflow_token("--user", "alice", "--role", "admin")
    assert result.returncode == 2
    assert "customer, staff" in result.stderr
    assert "Traceback" not in result.stderr
    helped = stockflow_token("--help")
    assert helped.returncode == 0
    for option in ("--user", "--role", "--data-dir", "--ttl"):
        assert option in helped.stdout


async def test_the_printed_token_is_accepted_by_the_edge_of_stockflow_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    printed = stockflow_token("--user", "sam", "--role", "staff", "--data-dir", str(data))
    token = printed.stdout.strip().splitlines()[-1]
    base = free_port() // 10 * 10
    while not all(_free(base + n) for n in range(5)):
        base = free_port() // 10 * 10
    edge = next(s for s in SERVICES if s.name == "edge")
    system = ServiceProcess(
        [STOCKFLOW, "up", "--data-dir", str(data), "--port-base", str(base)],
        name="stockflow up",
        port=base + edge.port_offset,
        log=tmp_path / "up.log",
    )
    system.start()
    try:
        await system.wait_ready(within=60)
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{base}", timeout=5) as client:
            assert (await client.get("/inventory/SKU-1")).status_code == 401
            for _ in range(200):  # the demo seed follows once every service has started
                stock = await client.get("/inventory/SKU-1", headers=auth)
                if stock.status_code == 200:
                    break
                assert stock.status_code == 404, stock.text
                await asyncio.sleep(0.05)
            assert stock.json()["on_hand"] == 100, stock.text
            orders = await client.get("/orders", headers=auth)
            assert orders.status_code == 200, orders.text
    finally:
        assert system.terminate() == 0


def _free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
