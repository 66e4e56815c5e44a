"""Claim 1 of ``stockflow bench claims``: four fragmented profile services against the one
consolidated profiles service, under the same closed-loop load.

Three paths to ``GET /me`` / ``PUT /me``, all running at once, measured one after the other
with the same load (``concurrency`` closed-loop senders, each a customer of its own with its
own JWT; ``write_share`` of the requests are ``PUT /me``, the rest ``GET /me``):

* ``edge -> profiles``: the product, ``stockflow serve edge`` in front of ``stockflow serve
  profiles``;
* ``composer -> profiles``: the bench's edge-like composer (:mod:`.claims_apps`) making the
  one call to the same profiles service;
* ``composer -> 4 fragments``: the same composer making four calls at once (``asyncio.gather``,
  the kindest composition for the fragmented side), one to each fragment service, each its
  own process and SQLite database.

Edge cannot compose four calls without product changes, so the fragmented variant needs the
composer; the verdict compares the two composer rows (the same code, only the fan-out
differs), and the edge row shows where the product stands next to them. Before the load,
each path stores every user's profile once (a ``PUT /me``), and each row starts with a
warm-up of ``warmup`` seconds that is not measured.

The audit of this claim (``stockflow audit`` knows no profiles): after each row, every
user's ``GET /me`` through that path must be the profile of their last acknowledged
``PUT /me`` (a user's requests are sequential, so that is the last write); a lost or torn
write on any path makes the run FAILED.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from stockflow.bench.claims_apps import FRAGMENTS
from stockflow.bench.claims_processes import (
    Credentials,
    Tokens,
    edge_process,
    fixture_process,
    profiles_process,
    start_all,
    stop_all,
)
from stockflow.bench.closed_loop import LoopFigures, Request, change, ratio, run_closed_loop
from stockflow.bench.raw_http import RawResponse

__all__ = ["PATHS", "ProfilesClaimFigures", "measure_profiles_claim"]

PATHS: Final = ("edge -> profiles", "composer -> profiles", "composer -> 4 fragments")
_CONSOLIDATED: Final = "composer -> profiles"
_FRAGMENTED: Final = "composer -> 4 fragments"


class ProfilesClaimFigures(msgspec.Struct, kw_only=True):
    rows: dict[str, LoopFigures]
    """By path (:data:`PATHS`)."""
    throughput_ratio: float
    """Consolidated 2xx/s over fragmented 2xx/s (the seed: 2x)."""
    p99_change: float
    """Consolidated p99 relative to fragmented's, -0.65 = 65% lower (the seed: -65%)."""
    p50_change: float
    lost_writes: dict[str, int]
    """Per path: users whose ``GET /me`` after the load was not their last acknowledged
    ``PUT /me`` (the audit of this claim: every path must have 0)."""
    settings: dict[str, Any]

    @property
    def audit_ok(self) -> bool:
        return not any(self.lost_writes.values())


@dataclass(frozen=True)
class _Load:
    tokens: Tokens
    concurrency: int
    write_share: float
    run: str

    def user(self, sender: int) -> str:
        return f"claims-{self.run}-u{sender}"

    def headers(self, sender: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens(self.user(sender), 'customer')}"}

    def profile(self, sender: int, n: int) -> dict[str, Any]:
        return {
            "name": f"Customer {sender} v{n}",
            "email": f"{self.user(sender)}@example.com",
            "addresses": [
                {
                    "line1": f"{n} Main St",
                    "city": "Springfield",
                    "postal_code": "12345",
                    "country": "US",
                    "label": "home",
                }
            ],
            "preferences": {"newsletter": n % 2 == 0, "language": "en"},
        }


async def _drive(
    url: str, load: _Load, seconds: float, written: dict[str, Any] | None = None
) -> LoopFigures:
    """The load for *seconds*; each user's last acknowledged ``PUT /me`` body in *written*
    (by its ``Authorization`` header)."""
    headers = [load.headers(i) for i in range(load.concurrency)]
    every = max(1, round(1 / load.write_share)) if load.write_share > 0 else 0

    def make(sender: int, n: int) -> Request:
        if every and (n + sender) % every == 0:
            return Request("PUT", "/me", headers[sender], load.profile(sender, n))
        return Request("GET", "/me", headers[sender])

    def observe(request: Request, response: RawResponse) -> None:
        if written is not None and request.method == "PUT" and response.status_code == 200:
            written[request.headers["Authorization"]] = request.body

    return await run_closed_loop(
        url, make, concurrency=load.concurrency, seconds=seconds, observe=observe
    )


def _same_profile(stored: dict[str, Any], written: dict[str, Any]) -> bool:
    return (
        stored.get("name") == written["name"]
        and stored.get("email") == written["email"]
        and stored.get("preferences") == written["preferences"]
        and [a.get("line1") for a in stored.get("addresses", [])]
        == [a["line1"] for a in written["addresses"]]
    )


async def _lost_writes(url: str, load: _Load, written: dict[str, Any]) -> int:
    """Users whose profile read through *url* now is not the one they last wrote."""
    headers = [load.headers(i) for i in range(load.concurrency)]
    lost = 0

    def observe(request: Request, response: RawResponse) -> None:
        nonlocal lost
        last = written.get(request.headers["Authorization"])
        if response.status_code != 200 or (
            last is not None and not _same_profile(response.json(), last)
        ):
            lost += 1

    figures = await run_closed_loop(
        url,
        lambda sender, _n: Request("GET", "/me", headers[sender]),
        concurrency=load.concurrency,
        seconds=0.0,
        per_sender=1,
        observe=observe,
    )
    return lost + sum(n for outcome, n in figures.outcomes.items() if not outcome.isdigit())


async def _seed(url: str, load: _Load) -> None:
    """Store every user's profile once through *url* (one PUT each)."""
    headers = [load.headers(i) for i in range(load.concurrency)]
    figures = await run_closed_loop(
        url,
        lambda sender, _n: Request("PUT", "/me", headers[sender], load.profile(sender, 0)),
        concurrency=load.concurrency,
        seconds=0.0,
        per_sender=1,
    )
    if figures.errors:
        raise RuntimeError(f"storing the profiles through {url} failed: {figures.outcomes}")


async def measure_profiles_claim(
    credentials: Credentials,
    *,
    seconds: float,
    warmup: float,
    concurrency: int,
    write_share: float,
    say: Callable[[str], None],
) -> ProfilesClaimFigures:
    """Start the three paths, load each in turn, stop them; the figures."""
    tokens, jwt_secret, token = (
        credentials.tokens,
        credentials.jwt_secret,
        credentials.service_token,
    )
    run = credentials.run
    load = _Load(tokens=tokens, concurrency=concurrency, write_share=write_share, run=run)
    with tempfile.TemporaryDirectory(prefix="stockflow-bench-claims-profiles-") as tmp:
        workdir = Path(tmp)
        profiles = profiles_process(token, workdir)
        fragments = {
            name: fixture_process(
                "fragment",
                token,
                ["--name", name, "--database", str(workdir / f"{name}.sqlite3")],
                name=f"fragment {name}",
            )
            for name in FRAGMENTS
        }
        edge = edge_process(
            token,
            jwt_secret,
            {"profiles": profiles.base_url},
            bus_url=f"sqlite:///{workdir / 'edge-bus.sqlite3'}",
        )
        single = fixture_process(
            "composer",
            token,
            ["--downstream", f"profiles={profiles.base_url}"],
            name="composer (profiles)",
            jwt_secret=jwt_secret,
        )
        split = [f"--downstream={name}={p.base_url}" for name, p in fragments.items()]
        fanout = fixture_process(
            "composer", token, split, name="composer (fragments)", jwt_secret=jwt_secret
        )
        processes = [profiles, *fragments.values(), edge, single, fanout]
        await start_all(processes)
        try:
            entries = {PATHS[0]: edge, PATHS[1]: single, PATHS[2]: fanout}
            rows: dict[str, LoopFigures] = {}
            lost: dict[str, int] = {}
            for path, entry in entries.items():
                await _seed(entry.base_url, load)
                written: dict[str, Any] = {}
                if warmup > 0:
                    await _drive(entry.base_url, load, warmup, written)
                rows[path] = await _drive(entry.base_url, load, seconds, written)
                lost[path] = await _lost_writes(entry.base_url, load, written)
                row = rows[path]
                say(
                    f"  {path}: {row.ok_per_s:,.0f} ok/s, p50 {row.p50_ms:g} ms,"
                    f" p99 {row.p99_ms:g} ms, errors {row.errors}, lost writes {lost[path]}"
                )
        finally:
            await stop_all(processes)
    consolidated, fragmented = rows[_CONSOLIDATED], rows[_FRAGMENTED]
    return ProfilesClaimFigures(
        rows=rows,
        throughput_ratio=ratio(consolidated.ok_per_s, fragmented.ok_per_s),
        p99_change=change(consolidated.p99_ms, fragmented.p99_ms),
        p50_change=change(consolidated.p50_ms, fragmented.p50_ms),
        lost_writes=lost,
        settings={
            "seconds": seconds,
            "warmup": warmup,
            "concurrency": concurrency,
            "write_share": write_share,
            "verdict_rows": [_CONSOLIDATED, _FRAGMENTED],
        },
    )
