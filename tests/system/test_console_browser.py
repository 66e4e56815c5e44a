"""The live console in a real browser (Playwright driving Debian's Chromium) against the real
system: the page loads clean, an order placed through the API shows up on the staff view and
turns CONFIRMED (with the flow: events/s, saga outcomes), the staff's button runs the audit
and its verdict shows, and (distributed: profiles is its own process) a stopped profiles opens
edge's breaker on the page, which closes again once profiles is back; the audit runs there
too, on PostgreSQL.

A screenshot of the staff view is saved under the test's ``tmp_path``; with
``STOCKFLOW_UPDATE_SCREENSHOT=1`` it also replaces ``docs/console.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, async_playwright, expect
from tests.system.system import (
    FAST_BREAKER,
    System,
    embedded,
    running,
    running_distributed,
)
from tests.system.test_through_edge import place, unique

from stockflow.audit import Check

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console.png"


def _checked(systems: Generator[System, None, None]) -> Iterator[System]:
    """The system of *systems* (a running fixture's body); after the module, no 5xx logged."""
    with contextlib.closing(systems):
        for system in systems:
            yield system
            assert system.server_errors() == [], system.server_errors()[:5]


@pytest.fixture(scope="module")
def embedded_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    yield from _checked(running(embedded(tmp_path_factory.mktemp("embedded"))))


@pytest.fixture(scope="module")
def distributed_system(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, nats_url: str
) -> Iterator[System]:
    root = tmp_path_factory.mktemp("distributed")
    yield from _checked(running_distributed(root, postgres_url, nats_url, FAST_BREAKER))


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        why = "no /usr/bin/chromium: `make test` installs it (apt-get install chromium)"
        if os.environ.get("CI") == "true":  # CI installs it: missing there is a failure
            pytest.fail(why)
        pytest.skip(why)
    return CHROMIUM


@pytest.fixture
async def browser_page(chromium: Path, tmp_path: Path) -> AsyncIterator[tuple[Page, list[str]]]:
    """A fresh Chromium page (its own user-data dir) and the errors it reports."""
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(chromium),
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page, errors
        finally:
            await context.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        yield client


async def test_the_console_loads_clean_and_shows_every_service_ready(
    embedded_system: System, browser_page: tuple[Page, list[str]]
) -> None:
    page, errors = browser_page
    await page.goto(embedded_system.url() + "/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("stockflow console")
    rows = page.locator("#services tbody tr")
    await expect(rows).to_have_count(5, timeout=10_000)
    for service in ("edge", "profiles", "inventory", "orders", "notifications"):
        ready = page.locator(f'#services tr[data-service="{service}"] td').nth(1)
        await expect(ready).to_have_text("yes", timeout=10_000)
    await expect(page.locator("#status")).to_contain_text("all services ready")
    for name in ("profiles", "inventory", "orders", "notifications"):
        await expect(page.locator(f"#breaker-{name}")).to_have_attribute("data-state", "closed")
    await expect(page.locator("#staff")).to_be_hidden()  # anonymous: no orders, no stock
    # Every consumer of the bus with its lag: inventory's of orders.events among them.
    consumers = page.locator("#consumers tbody tr")
    await expect(consumers.first).to_be_visible(timeout=10_000)
    assert await consumers.count() >= 3
    await expect(page.locator("#consumers tbody")).to_contain_text("inventory")
    first = await page.locator("#updated").text_content()
    await expect(page.locator("#updated")).not_to_have_text(first or "", timeout=5_000)  # live
    assert errors == []


async def test_an_order_placed_through_the_api_turns_confirmed_on_the_staff_view(
    embedded_system: System,
    browser_page: tuple[Page, list[str]],
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    page, errors = browser_page
    await page.goto(embedded_system.url() + "/")
    await page.get_by_label("Staff token").fill(embedded_system.token("sam", "staff"))
    await page.get_by_role("button", name="Watch as staff").click()
    await expect(page.locator("#staff")).to_be_visible(timeout=10_000)
    await expect(page.locator("#status")).to_contain_text("Staff view")
    placed = await place(http, embedded_system, "alice", [{"sku": "SKU-2", "qty": 3}], unique("c"))
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["id"]
    row = page.locator(f'#orders tr[data-order-id="{order_id}"]')
    await expect(row).to_have_attribute("data-status", "CONFIRMED", timeout=15_000)
    await expect(row).to_contain_text("SKU-2 × 3")
    await expect(page.locator("#stock tbody")).to_contain_text("SKU-2")
    await expect(page.locator("#saga-outcomes")).to_contain_text("CONFIRMED")
    await expect(page.locator("#events-rate")).to_have_text(re.compile(r"^\d+\.\d$"))
    await expect(page.locator("#events-trend svg polyline")).to_have_count(1)
    await expect(page.locator('#services tr[data-service="edge"] svg')).to_have_count(1)

    await page.get_by_role("button", name="Run the audit").click()
    verdict = page.locator("#audit-verdict")
    await expect(verdict).to_have_attribute("data-ok", "true", timeout=60_000)
    await expect(verdict).to_contain_text("Every invariant holds")
    await expect(page.locator("#audit-checks tbody tr")).to_have_count(len(Check))
    await expect(page.locator("#audit-checks tbody")).not_to_contain_text("not checked")
    shot = await page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("STOCKFLOW_UPDATE_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.write_bytes(shot)
    assert errors == []


@pytest.mark.integration
async def test_a_stopped_profiles_opens_its_breaker_on_the_page_and_it_closes_after(
    distributed_system: System, browser_page: tuple[Page, list[str]], http: httpx.AsyncClient
) -> None:
    system = distributed_system
    page, errors = browser_page
    await page.goto(system.url() + "/")
    breaker = page.locator("#breaker-profiles")
    await expect(breaker).to_have_attribute("data-state", "closed", timeout=10_000)
    headers = system.auth("alice")
    fresh = await http.get(f"{system.url()}/me", headers=headers)  # edge keeps a copy
    assert fresh.status_code == 200, fresh.text
    profiles = system.child("profiles")
    profiles.send_signal(signal.SIGSTOP)  # stopped, not dead: the supervisor leaves it
    try:
        answers = await asyncio.gather(
            *(http.get(f"{system.url()}/me", headers=headers) for _ in range(6))
        )
        assert all(a.status_code == 200 for a in answers)  # the degraded copy, no 5xx
        await expect(breaker).to_have_attribute("data-state", "open", timeout=10_000)
        await expect(page.locator("#status")).to_contain_text("breakers not closed: profiles")
    finally:
        profiles.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 30
    while await breaker.get_attribute("data-state") != "closed":
        assert time.monotonic() < deadline, "the profiles breaker did not close"
        await http.get(f"{system.url()}/me", headers=headers)  # the trial call, once half-open
        await asyncio.sleep(0.5)
    await expect(page.locator("#status")).not_to_contain_text("breakers not closed")

    # The audit, on the distributed deployment's PostgreSQL stores; its verdict is public.
    audit = await http.post(f"{system.url()}/console/audit", headers=system.auth("sam", "staff"))
    assert audit.status_code == 202, audit.text
    verdict = page.locator("#audit-verdict")
    await expect(verdict).to_have_attribute("data-ok", "true", timeout=60_000)
    assert errors == []
