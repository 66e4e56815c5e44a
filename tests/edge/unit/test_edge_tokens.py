"""Bearer tokens: what edge accepts and everything it refuses."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from stockflow.edge.adapters.tokens import JwtVerifier, issue_token
from stockflow.edge.domain.identity import AuthenticationError, Principal, VerifierUnavailableError

SECRET = "unit-test-secret-unit-test-secret-unit-test-secret"
JWKS_FETCHES: dict[str, int] = {}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {"sub": "alice", "role": "customer", "iat": now, "exp": now + 60}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


def verifier(**options: Any) -> JwtVerifier:
    return JwtVerifier(secret=SECRET, leeway=0, **options)


async def refused(token: str, verifier: JwtVerifier, match: str) -> None:
    with pytest.raises(AuthenticationError, match=match):
        await verifier.verify(token)


async def test_a_valid_hs256_token_names_its_caller() -> None:
    assert await verifier().verify(hs256()) == Principal("alice", "customer")
    staff = await verifier().verify(issue_token(SECRET, user="sam", role="staff"))
    assert staff == Principal("sam", "staff")


async def test_an_expired_token_is_refused() -> None:
    await refused(hs256(exp=int(time.time()) - 10), verifier(), "expired")


async def test_a_token_without_exp_is_refused() -> None:
    await refused(hs256(exp=None), verifier(), "'exp'")


async def test_a_token_without_sub_is_refused() -> None:
    await refused(hs256(sub=None), verifier(), "'sub'")


async def test_alg_none_is_refused() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=").decode()
    await refused(f"{header}.{body}.", verifier(), "'none' is not accepted")


async def test_an_algorithm_not_configured_is_refused() -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS384")
    await refused(token, verifier(algorithms=("HS256",)), "'HS384' is not accepted")


async def test_rs256_without_a_jwks_is_refused() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), key, algorithm="RS256")
    await refused(token, verifier(), "'RS256' is not accepted")


async def test_a_token_signed_with_another_key_is_refused() -> None:
    token = jwt.encode(claims(), "another-secret-another-secret-another-secret", algorithm="HS256")
    await refused(token, verifier(), "InvalidSignatureError")


@pytest.mark.parametrize("role", ["admin", "", None, 7])
async def test_a_role_that_is_not_customer_or_staff_is_refused(role: object) -> None:
    await refused(hs256(role=role), verifier(), "'role'")


@pytest.mark.parametrize("sub", ["../etc", "", "a b", 5])
async def test_a_sub_that_is_not_a_user_id_is_refused(sub: object) -> None:
    await refused(hs256(sub=sub), verifier(), "sub|Subject")


async def test_garbage_is_refused() -> None:
    for token in ("", "x", "a.b.c", "x" * 10_000):
        with pytest.raises(AuthenticationError):
            await verifier().verify(token)


async def test_issuer_and_audience_are_checked_when_configured() -> None:
    strict = verifier(issuer="https://id.example", audience="stockflow")
    good = hs256(iss="https://id.example", aud="stockflow")
    assert (await strict.verify(good)).user_id == "alice"
    await refused(hs256(iss="https://evil.example", aud="stockflow"), strict, "InvalidIssuer")
    await refused(hs256(iss="https://id.example", aud="other"), strict, "InvalidAudience")
    await refused(hs256(aud="stockflow"), strict, "'iss'")


def test_a_verifier_with_no_key_source_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="jwt_secret"):
        JwtVerifier(secret=None, jwks_url=None)
    with pytest.raises(ValueError, match="unsupported"):
        JwtVerifier(secret=SECRET, algorithms=("none",))


def test_issue_token_refuses_what_edge_would_refuse() -> None:
    with pytest.raises(ValueError, match="--role"):
        issue_token(SECRET, user="alice", role="admin")
    with pytest.raises(ValueError, match="--user"):
        issue_token(SECRET, user="a b", role="customer")


# ---------------------------------------------------------------- RS256 against a JWKS


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_url(rsa_key: rsa.RSAPrivateKey) -> Iterator[str]:
    """A JWKS document served on a local port (with the key id ``k1``); counts its fetches."""
    jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
    document = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            JWKS_FETCHES[url] = JWKS_FETCHES.get(url, 0) + 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document.encode())

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/jwks.json"
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_an_rs256_token_is_checked_against_the_jwks_and_the_keys_are_cached(
    rsa_key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    checker = JwtVerifier(secret=None, jwks_url=jwks_url, algorithms=("RS256",))
    token = jwt.encode(claims(role="staff"), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    for _ in range(3):
        assert await checker.verify(token) == Principal("alice", "staff")
    assert JWKS_FETCHES[jwks_url] == 1  # cached: one fetch for three tokens
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims(), other, algorithm="RS256", headers={"kid": "k1"})
    await refused(forged, checker, "InvalidSignatureError")
    unknown = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "nope"})
    await refused(unknown, checker, "not in the JWKS")


async def test_hs256_signed_with_the_public_key_is_refused_when_only_rs256_is_accepted(
    rsa_key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    checker = JwtVerifier(secret=None, jwks_url=jwks_url, algorithms=("RS256",))
    token = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "k1"})
    await refused(token, checker, "'HS256' is not accepted")


async def test_an_unreachable_jwks_is_a_verifier_outage_not_a_bad_token(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    from stockflow_kit.lifecycle import free_port

    checker = JwtVerifier(
        secret=None, jwks_url=f"http://127.0.0.1:{free_port()}/jwks.json", algorithms=("RS256",)
    )
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    with pytest.raises(VerifierUnavailableError):
        await checker.verify(token)


class FakeWallClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_a_verified_token_is_answered_from_the_cache_until_its_expiry() -> None:
    clock = FakeWallClock()
    checker = JwtVerifier(secret=SECRET, leeway=5, clock=clock)
    exp = int(clock.now) + 30
    token = hs256(exp=exp)
    assert await checker.verify(token) == Principal("alice", "customer")
    assert checker.verified.expires_at(token) == exp + 5  # what PyJWT accepts: exp + leeway
    assert await checker.verify(token) == Principal("alice", "customer")
    assert checker.verified.hits == 1
    clock.now = exp + 5  # past what PyJWT would accept: the entry is gone
    assert checker.verified.get(token) is None
    assert checker.verified.hits == 1


async def test_a_verified_token_is_kept_no_longer_than_the_cache_allows() -> None:
    clock = FakeWallClock()
    checker = JwtVerifier(secret=SECRET, leeway=0, clock=clock, verified_cache_seconds=10)
    token = hs256(exp=int(clock.now) + 3600)
    await checker.verify(token)
    assert checker.verified.expires_at(token) == clock.now + 10


async def test_a_refused_token_is_not_kept_and_is_refused_again() -> None:
    checker = verifier()
    forged = jwt.encode(claims(), "another-secret-another-secret-another", algorithm="HS256")
    for _ in range(2):
        await refused(forged, checker, "not valid")
    assert len(checker.verified) == 0


async def test_the_verified_tokens_are_bounded_oldest_out_first() -> None:
    checker = verifier(verified_cache_size=2)
    tokens = [hs256(sub=f"user{n}") for n in range(3)]
    for token in tokens:
        await checker.verify(token)
    assert len(checker.verified) == 2
    assert checker.verified.expires_at(tokens[0]) is None
    assert checker.verified.expires_at(tokens[2]) is not None
