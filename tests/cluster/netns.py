"""A three-node NATS JetStream cluster on one machine: each node in a network namespace of its
own (``ip netns``), joined to the host by a veth pair on one bridge, so a test can cut a node
off the network (its link down) and heal it, as a switch port failing would.

Needs root (``CAP_NET_ADMIN``) and ``nats-server``; the names carry a run id so several runs
can coexist, and :meth:`NatsCluster.close` removes every namespace, link and process.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from stockflow_kit.lifecycle import ServiceProcess

CLIENT_PORT = 4222
ROUTE_PORT = 6222
MONITOR_PORT = 8222


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def netns_available() -> str | None:
    """``None`` when namespaces can be made here, else why not."""
    if shutil.which("ip") is None or shutil.which("nats-server") is None:
        return "needs ip (iproute2) and nats-server"
    probe = f"sfp{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as error:
        return f"cannot create a network namespace (root, CAP_NET_ADMIN): {error.stderr!r}"
    _ip("netns", "del", probe)
    return None


@dataclass
class Node:
    name: str
    namespace: str
    link: str
    """The host end of its veth pair: down = the node is cut off."""
    address: str
    process: ServiceProcess

    @property
    def url(self) -> str:
        return f"nats://{self.address}:{CLIENT_PORT}"


@dataclass
class NatsCluster:
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:4])
    size: int = 3
    nodes: list[Node] = field(default_factory=list)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="stockflow-nats-")))
    _made: list[tuple[str, str]] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"sfb{self.run}"

    def servers(self) -> str:
        """The client URL list of every node (``nats://a:4222,b:4222,c:4222``)."""
        hosts = ",".join(f"{n.address}:{CLIENT_PORT}" for n in self.nodes)
        return f"nats://{hosts}"

    def start(self) -> None:
        subnet = f"10.{random.randint(64, 127)}.{random.randint(1, 250)}"
        _ip("link", "add", self.bridge, "type", "bridge")
        self._made.append(("link", self.bridge))
        _ip("addr", "add", f"{subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        addresses = [f"{subnet}.{11 + i}" for i in range(self.size)]
        routes = ",".join(f"nats://{a}:{ROUTE_PORT}" for a in addresses)
        for i, address in enumerate(addresses):
            namespace, link = f"sf{self.run}n{i}", f"sfv{self.run}{i}"
            _ip("netns", "add", namespace)
            self._made.append(("netns", namespace))
            _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            self._made.append(("link", link))
            _ip("link", "set", link, "master", self.bridge, "up")
            inside = ["netns", "exec", namespace, "ip"]
            _ip(*inside, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip(*inside, "link", "set", "eth0", "up")
            _ip(*inside, "link", "set", "lo", "up")
            store = self.root / f"n{i}"
            process = ServiceProcess(
                [
                    "ip",
                    "netns",
                    "exec",
                    namespace,
                    "nats-server",
                    "-js",
                    "-sd",
                    str(store),
                    "-n",
                    f"n{i}",
                    "-a",
                    address,
                    "-p",
                    str(CLIENT_PORT),
                    "-m",
                    str(MONITOR_PORT),
                    "--cluster_name",
                    f"sf{self.run}",
                    "--cluster",
                    f"nats://{address}:{ROUTE_PORT}",
                    "--routes",
                    routes,
                ],
                name=f"nats-n{i}",
                host=address,
                port=MONITOR_PORT,
                ready_path="/healthz",
                log=self.root / f"n{i}.log",
            )
            self.nodes.append(Node(f"n{i}", namespace, link, address, process))
        for node in self.nodes:
            node.process.start()

    async def wait_ready(self, within: float = 60.0) -> None:
        """Every node up and the JetStream meta group with a leader."""
        await asyncio.gather(*(n.process.wait_ready(within) for n in self.nodes))
        deadline = asyncio.get_running_loop().time() + within
        async with httpx.AsyncClient(timeout=2, trust_env=False) as http:
            while True:
                leaders = set()
                for node in self.nodes:
                    try:
                        info = (await http.get(self.monitor(node, "/jsz"))).json()
                        leaders.add((info.get("meta_cluster") or {}).get("leader"))
                    except httpx.HTTPError:
                        leaders.add(None)
                if len(leaders) == 1 and None not in leaders:
                    return
                assert asyncio.get_running_loop().time() < deadline, leaders
                await asyncio.sleep(0.5)

    def monitor(self, node: Node, path: str) -> str:
        return f"http://{node.address}:{MONITOR_PORT}{path}"

    async def stream_leader(self, stream: str) -> Node:
        """The node leading *stream* (as the cluster's nodes report it)."""
        async with httpx.AsyncClient(timeout=2, trust_env=False) as http:
            for node in self.nodes:
                try:
                    info = (await http.get(self.monitor(node, "/jsz?streams=true"))).json()
                except httpx.HTTPError:
                    continue
                for account in info.get("account_details", []):
                    for detail in account.get("stream_detail", []):
                        if detail.get("name") == stream:
                            leader = (detail.get("cluster") or {}).get("leader")
                            for candidate in self.nodes:
                                if candidate.name == leader:
                                    return candidate
        raise AssertionError(f"no leader found for stream {stream!r}")

    def cut(self, node: Node) -> None:
        """Take *node* off the network (its link down): it runs on, alone."""
        _ip("link", "set", node.link, "down")

    def heal(self, node: Node) -> None:
        _ip("link", "set", node.link, "up")

    def close(self) -> None:
        for node in self.nodes:
            node.process.kill()
        for kind, name in reversed(self._made):
            subprocess.run(["ip", kind, "del", name], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
