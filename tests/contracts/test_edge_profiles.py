"""edge -> profiles (HTTP): a customer reads and replaces their own profile (``/me``).

Consumer side: edge built through its bootstrap with ``profiles_url`` at the pact mock server,
called as alice (her JWT): ``GET /me`` and ``PUT /me``; edge's own answer adds
``"degraded": false``. Provider side (``slow``): ``stockflow serve profiles`` as a process on
a free port (SQLite database, SQLite bus), the state set up through profiles' own API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pact import Pact, Verifier, match
from tests.contracts.edge_consumer import edge_in_front_of
from tests.contracts.pactfiles import assert_committed, committed
from tests.contracts.providers import SERVICE_TOKEN, serving, verify
from tests.edge.conftest import bearer

CONSUMER = "edge"
PROVIDER = "profiles"
STATE_HAS = "alice has a profile"
STATE_ANY = "alice may have a profile or not"
READ = "alice reads her profile"
WRITE = "alice replaces her profile"
TIMESTAMP = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
PROFILE = {"name": "Alice", "email": "alice@example.com"}


def profile_view() -> dict[str, object]:
    return {
        "user_id": match.str("alice"),
        "name": match.str("Alice"),
        "email": match.str("alice@example.com"),
        "addresses": match.type([]),
        "preferences": match.type({}),
        "version": match.int(1),
        "updated_at": match.regex("2026-01-01T00:00:00.000Z", regex=TIMESTAMP),
    }


def service_headers() -> dict[str, object]:
    return {
        "Authorization": match.regex(f"Bearer {SERVICE_TOKEN}", regex=r"^Bearer \S+$"),
        "X-Stockflow-User": match.regex("alice", regex=r"^\S+$"),
        "X-Stockflow-Role": match.regex("customer", regex=r"^(customer|staff)$"),
    }


def edge_profiles_pact() -> Pact:
    pact = Pact(CONSUMER, PROVIDER).with_specification("V4")
    (
        pact.upon_receiving(READ)
        .given(STATE_HAS)
        .with_request("GET", "/profiles/alice")
        .with_headers(service_headers())
        .will_respond_with(200)
        .with_body(profile_view(), content_type="application/json")
    )
    (
        pact.upon_receiving(WRITE)
        .given(STATE_ANY)
        .with_request("PUT", "/profiles/alice")
        .with_headers(service_headers())
        .with_body(
            {"name": match.str("Alice"), "email": match.str("alice@example.com")},
            content_type="application/json",
        )
        .will_respond_with(200)
        .with_body(profile_view(), content_type="application/json")
    )
    return pact


@pytest.fixture
async def pact_and_edge() -> AsyncIterator[tuple[Pact, httpx.AsyncClient]]:
    pact = edge_profiles_pact()
    async with edge_in_front_of(pact, "profiles") as http:
        yield pact, http


async def test_edge_profiles_pact_consumer(
    pact_and_edge: tuple[Pact, httpx.AsyncClient], tmp_path: Path
) -> None:
    pact, http = pact_and_edge
    alice = bearer("alice")
    read = await http.get("/me", headers=alice)
    assert read.status_code == 200, read.text
    assert read.json()["degraded"] is False
    written = await http.put("/me", json=PROFILE, headers=alice)
    assert written.status_code == 200, written.text
    assert written.json()["user_id"] == "alice"
    assert_committed(pact, tmp_path, CONSUMER, PROVIDER)


@pytest.fixture(scope="module")
def profiles_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("pact-profiles")
    env = {"PROFILES_DATABASE_URL": f"sqlite:///{directory / 'profiles.sqlite3'}"}
    with serving("profiles", directory, env) as process:
        yield process.base_url


@pytest.mark.slow
def test_profiles_honours_the_edge_pact(profiles_url: str) -> None:
    def has_profile(action: str, parameters: dict[str, Any] | None = None) -> None:
        del parameters
        if action == "setup":
            answer = httpx.put(
                f"{profiles_url}/profiles/alice",
                json=PROFILE,
                headers={
                    "Authorization": f"Bearer {SERVICE_TOKEN}",
                    "X-Stockflow-User": "alice",
                    "X-Stockflow-Role": "customer",
                },
            )
            assert answer.status_code == 200, answer.text

    def anything(action: str, parameters: dict[str, Any] | None = None) -> None:
        del action, parameters  # a PUT creates or replaces: 200 either way

    verifier = (
        Verifier(PROVIDER, host="127.0.0.1")
        .add_transport(url=profiles_url)
        .add_source(committed(CONSUMER, PROVIDER))
        .state_handler({STATE_HAS: has_profile, STATE_ANY: anything}, teardown=True)
    )
    passed, output = verify(verifier)
    assert passed, output
    assert READ in output
    assert WRITE in output
