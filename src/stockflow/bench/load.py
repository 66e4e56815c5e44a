"""``stockflow load``: realistic order traffic against a running system, through edge.

Open loop, like wrk2 or k6's constant-arrival-rate executor: each kind of request arrives on
its own fixed schedule, whatever the system answers, and a request's latency counts from when
it was *due*, so a slow system cannot hide its slowness by slowing the generator down
(coordinated omission). A request due while ``max_in_flight`` are outstanding is not sent
and is counted as ``skipped``: the generator (or the system) could not keep up, and the
summary says so.

The traffic, per step of ``rates`` (orders/s), for ``duration`` seconds each:

* ``place``: ``POST /orders`` from one of ``customers`` load customers, 1-3 lines of the
  load's own SKUs (20% of the SKUs get 80% of the lines), a fresh ``Idempotency-Key`` each;
* ``replay``: ``replay_fraction`` of the accepted placements are sent again with the same key
  and body: the answer must be the same order (a different id is an error);
* ``browse``: ``GET /inventory/{sku}``, ``browse_per_order`` per order;
* ``receipt``: a staff user receives stock (``POST /inventory/{sku}/receipts`` with an
  ``Idempotency-Key``) for every SKU once a second, about what was ordered of it;
* ``cancel``: ``cancel_fraction`` of the confirmed orders are cancelled by their owner;
* settlement: each customer's newest orders are read (``GET /orders``) every
  ``poll_seconds``; an order's placement-to-settled time is its ``updated_at`` when first
  seen CONFIRMED or REJECTED minus when its placement was due (both this machine's clock).

Before the first step the staff user receives the initial stock. After the last step the
generator waits up to ``settle_timeout`` seconds for every accepted order to settle; the
audit is the caller's (the CLI runs it against the same deployment).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from stockflow.bench.load_figures import LoadFigures, StepFigures, compute_step
from stockflow.bench.raw_http import RawHttp, RawResponse

__all__ = ["LoadConfig", "Tokens", "run_load"]

Tokens = Callable[[str, str], str]
"""``tokens(user_id, role)``: a bearer token edge accepts for that user."""

HOT_SHARE: Final = 0.8
"""Share of the order lines that go to the hottest 20% of the SKUs."""
POLL_PAGE: Final = 100
TRANSPORT_ERRORS: Final = (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError)
"""What a request may fail with short of an answer (recorded by the exception's name)."""


@dataclass(frozen=True)
class LoadConfig:
    url: str = "http://127.0.0.1:8000"
    rates: tuple[float, ...] = (50.0,)
    """Orders/s of each step."""
    duration: float = 30.0
    """Seconds per step."""
    customers: int = 50
    skus: int = 20
    initial_stock: int = 1000
    browse_per_order: float = 2.0
    cancel_fraction: float = 0.05
    replay_fraction: float = 0.02
    restock_factor: float = 1.0
    """Each second's receipts as a multiple of what was ordered of the SKU that second."""
    max_in_flight: int = 256
    poll_seconds: float = 0.5
    settle_timeout: float = 30.0
    timeout: float = 10.0
    """Per-request timeout (seconds)."""
    seed: int = 7
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


@dataclass
class _Order:
    customer: str
    due: float
    body: dict[str, Any]
    key: str
    id: str = ""


@dataclass
class _Recorder:
    """Latencies (ms) and outcomes per kind of request, for the current step."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    replay_mismatches: int = 0

    def record(self, kind: str, outcome: str, due: float) -> None:
        self.latencies.setdefault(kind, []).append((time.time() - due) * 1000.0)
        self.outcomes.setdefault(kind, Counter())[outcome] += 1


class _Traffic:
    def __init__(self, config: LoadConfig, http: RawHttp, tokens: Tokens) -> None:
        self.config = config
        self.http = http
        self.rng = random.Random(config.seed)
        self.customers = [f"load-{config.run}-c{i}" for i in range(config.customers)]
        self.auth = {
            user: {"Authorization": f"Bearer {tokens(user, 'customer')}"} for user in self.customers
        }
        self.staff = {"Authorization": f"Bearer {tokens(f'load-{config.run}-staff', 'staff')}"}
        self.skus = [f"LOAD-{config.run}-{i:03d}" for i in range(config.skus)]
        self.hot = self.skus[: max(1, len(self.skus) // 5)]
        self.recorder = _Recorder()
        self.in_flight = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.pending: dict[str, _Order] = {}
        """Accepted orders not yet seen settled, by id."""
        self.all_settled = asyncio.Event()
        self.settled_ms: list[float] = []
        self.settled_late = 0
        self.statuses: Counter[str] = Counter()
        self.ordered: Counter[str] = Counter()
        """Units ordered per SKU since the last receipts."""
        self.sequence = 0
        self.accepted = 0

    # ------------------------------------------------------------------ requests
    async def _send(
        self, kind: str, due: float, request: Coroutine[Any, Any, RawResponse]
    ) -> RawResponse | None:
        try:
            response = await request
        except TRANSPORT_ERRORS as error:
            self.recorder.record(kind, type(error).__name__, due)
            return None
        self.recorder.record(kind, str(response.status_code), due)
        return response

    def _sku(self) -> str:
        return self.rng.choice(self.hot if self.rng.random() < HOT_SHARE else self.skus)

    async def browse(self, due: float) -> None:
        user = self.rng.choice(self.customers)
        request = self.http.get(f"/inventory/{self._sku()}", headers=self.auth[user])
        await self._send("browse", due, request)

    async def place(self, due: float) -> None:
        lines: dict[str, int] = {}
        for _ in range(self.rng.randint(1, 3)):
            lines[self._sku()] = self.rng.randint(1, 3)
        self.sequence += 1
        order = _Order(
            customer=self.rng.choice(self.customers),
            due=due,
            body={"lines": [{"sku": sku, "qty": qty} for sku, qty in lines.items()]},
            key=f"load-{self.config.run}-{self.sequence}",
        )
        response = await self._post_order("place", order, due)
        if response is None or response.status_code != 202:
            return
        order.id = response.json()["id"]
        self.pending[order.id] = order
        self.all_settled.clear()
        self.accepted += 1
        self.ordered.update(lines)
        if self.rng.random() < self.config.replay_fraction:
            replay = await self._post_order("replay", order, time.time())
            if replay is not None and replay.status_code == 202 and replay.json()["id"] != order.id:
                self.recorder.replay_mismatches += 1

    async def _post_order(self, kind: str, order: _Order, due: float) -> RawResponse | None:
        headers = {**self.auth[order.customer], "Idempotency-Key": order.key}
        request = self.http.post("/orders", json_body=order.body, headers=headers)
        return await self._send(kind, due, request)

    async def receive(self, due: float, sku: str, qty: int) -> None:
        headers = {**self.staff, "Idempotency-Key": f"load-{self.config.run}-r{due:.3f}-{sku}"}
        body = {"qty": qty, "reference": f"load {self.config.run}"}
        url = f"/inventory/{sku}/receipts"
        await self._send("receipt", due, self.http.post(url, json_body=body, headers=headers))

    async def cancel(self, order: _Order) -> None:
        url = f"/orders/{order.id}/cancel"
        await self._send(
            "cancel", time.time(), self.http.post(url, headers=self.auth[order.customer])
        )

    # ------------------------------------------------------------------ scheduling
    def spawn(self, kind: str, work: Callable[[], Awaitable[None]]) -> None:
        """Start *work* now, unless ``max_in_flight`` requests are outstanding."""
        if self.in_flight >= self.config.max_in_flight:
            self.recorder.skipped[kind] += 1
            return
        self.in_flight += 1

        async def run() -> None:
            try:
                await work()
            finally:
                self.in_flight -= 1

        task = asyncio.create_task(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def paced(
        self, kind: str, rate: float, until: float, work: Callable[[float], Awaitable[None]]
    ) -> None:
        """Start ``work(due)`` *rate* times a second until *until* (wall clock), on schedule."""
        if rate <= 0:
            return
        start, index = time.time(), 0
        while (due := start + index / rate) < until:
            if (wait := due - time.time()) > 0:
                await asyncio.sleep(wait)
            self.spawn(kind, functools.partial(work, due))
            index += 1

    async def restock(self, until: float) -> None:
        while time.time() < until:
            await asyncio.sleep(1.0)
            due = time.time()
            ordered, self.ordered = self.ordered, Counter()
            for sku, qty in ordered.items():
                amount = round(qty * self.config.restock_factor)
                if amount > 0:
                    self.spawn("receipt", functools.partial(self.receive, due, sku, amount))

    async def watch(self) -> None:
        """Read each customer's newest orders every ``poll_seconds``; settle what changed."""
        while True:
            waiting = {order.customer for order in self.pending.values()}
            await asyncio.gather(*(self._poll(customer) for customer in waiting))
            await asyncio.sleep(self.config.poll_seconds)

    async def _poll(self, customer: str) -> None:
        """Page through *customer*'s orders, newest first, until each of their pending orders
        was seen (at most 10 pages a poll)."""
        looking = {i for i, order in self.pending.items() if order.customer == customer}
        cursor: str | None = None
        for _page in range(10):
            params: dict[str, str | int] = {"limit": POLL_PAGE}
            if cursor:
                params["cursor"] = cursor
            try:
                response = await self.http.get(
                    "/orders", params=params, headers=self.auth[customer]
                )
            except TRANSPORT_ERRORS:
                return
            if response.status_code != 200:
                return
            page = response.json()
            for view in page["orders"]:
                looking.discard(view["id"])
                order = self.pending.get(view["id"])
                if order is not None and view["status"] != "PENDING":
                    self._settled(order, view)
            cursor = page.get("next")
            if not looking or cursor is None:
                return

    def _settled(self, order: _Order, view: dict[str, Any]) -> None:
        del self.pending[order.id]
        if not self.pending:
            self.all_settled.set()
        status = view["status"]
        self.statuses[status] += 1
        if status in ("CONFIRMED", "REJECTED"):
            at = datetime.fromisoformat(view["updated_at"].replace("Z", "+00:00")).timestamp()
            self.settled_ms.append((at - order.due) * 1000.0)
        if status == "CONFIRMED" and self.rng.random() < self.config.cancel_fraction:
            self.spawn("cancel", functools.partial(self.cancel, order))

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.wait(list(self.tasks))


async def _prepare(traffic: _Traffic, say: Callable[[str], None]) -> None:
    config = traffic.config
    response = await traffic.http.get("/healthz")
    if response.status_code != 200:
        raise RuntimeError(f"{config.url}/healthz answered {response.status_code}")
    now = time.time()
    await asyncio.gather(*(traffic.receive(now, sku, config.initial_stock) for sku in traffic.skus))
    failed = {
        k: n for k, n in traffic.recorder.outcomes.get("receipt", Counter()).items() if k != "201"
    }
    if failed:
        raise RuntimeError(
            f"the initial receipts failed ({dict(failed)}): is the staff token accepted, and is"
            " edge the right URL?"
        )
    say(
        f"{len(traffic.skus)} SKUs with {config.initial_stock} units each,"
        f" {len(traffic.customers)} customers (run {config.run})"
    )


async def _step(traffic: _Traffic, rate: float, progress: Progress) -> StepFigures:
    config = traffic.config
    traffic.recorder = _Recorder()
    traffic.settled_ms, traffic.statuses, traffic.settled_late = [], Counter(), 0
    accepted_before = traffic.accepted
    cpu_before, started = time.process_time(), time.time()
    until = started + config.duration
    task = progress.add_task(f"{rate:g} orders/s", total=config.duration)

    async def show() -> None:
        while True:
            progress.update(
                task,
                completed=min(time.time() - started, config.duration),
                description=(
                    f"{rate:g} orders/s: {traffic.accepted - accepted_before} accepted,"
                    f" {len(traffic.pending)} pending, {traffic.in_flight} in flight"
                ),
            )
            await asyncio.sleep(0.25)

    shower = asyncio.create_task(show())
    try:
        await asyncio.gather(
            traffic.paced("place", rate, until, traffic.place),
            traffic.paced("browse", rate * config.browse_per_order, until, traffic.browse),
            traffic.restock(until),
        )
        sent_until = time.time()
        await traffic.drain()
        if traffic.pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(config.settle_timeout):
                    await traffic.all_settled.wait()
        await traffic.drain()  # the cancels of the last settlements
    finally:
        shower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await shower
    progress.update(task, completed=config.duration)
    unsettled = len(traffic.pending)
    traffic.pending.clear()
    return compute_step(
        rate=rate,
        seconds=sent_until - started,
        latencies=traffic.recorder.latencies,
        outcomes=traffic.recorder.outcomes,
        skipped=dict(traffic.recorder.skipped),
        replay_mismatches=traffic.recorder.replay_mismatches,
        accepted=traffic.accepted - accepted_before,
        settled_ms=traffic.settled_ms,
        statuses=dict(traffic.statuses),
        unsettled=unsettled,
        client_cpu_s=time.process_time() - cpu_before,
    )


async def run_load(config: LoadConfig, tokens: Tokens, console: Console) -> LoadFigures:
    """Run every step of *config* against the system at ``config.url``."""

    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False)

    connections = config.max_in_flight + config.customers
    async with RawHttp(config.url, max_connections=connections, timeout=config.timeout) as http:
        traffic = _Traffic(config, http, tokens)
        await _prepare(traffic, say)
        watcher = asyncio.create_task(traffic.watch())
        steps: list[StepFigures] = []
        columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        try:
            with Progress(*columns, console=console) as progress:
                for rate in config.rates:
                    steps.append(await _step(traffic, rate, progress))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    return LoadFigures(url=config.url, run=config.run, duration_s=config.duration, steps=steps)
