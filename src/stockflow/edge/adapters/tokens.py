"""Bearer JWTs checked with PyJWT: HS256 with the deployment's secret, RS256 (and the other
asymmetric algorithms) against a JWKS document.

What is refused, each a 401: no ``exp`` (or an expired one), ``alg: none``, an algorithm not
configured (``jwt_algorithms``) or without a key source (HS* without a secret, RS* without a
JWKS URL), a bad signature, a wrong ``iss``/``aud`` when those are configured, a ``sub`` that
is not a user id (:data:`~stockflow.contracts.profiles.USER_ID_PATTERN`), and a ``role``
other than ``customer`` or ``staff``. The algorithm is read from the token's header only to
pick the key source; the signature is then checked for that one configured algorithm, so a
token cannot choose how it is verified (the HS256-with-the-RSA-public-key confusion).

PyJWKClient fetches over blocking ``urllib``: the lookup runs in a worker thread, and the key
set is cached (``lifespan``) so most lookups never touch the network.

A token that passed is kept (:class:`~stockflow.edge.domain.verified_tokens.VerifiedTokens`)
until its ``exp`` plus the leeway, at most ``verified_cache_seconds``: a client's next
requests skip the ~50 us check. Refused tokens are never kept.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, cast

import jwt

from stockflow.contracts.identity import ROLES, Role
from stockflow.contracts.profiles import USER_ID_PATTERN
from stockflow.edge.domain.identity import (
    AuthenticationError,
    Principal,
    VerifierUnavailableError,
)
from stockflow.edge.domain.verified_tokens import VerifiedTokens

__all__ = ["HMAC_ALGORITHMS", "JwtVerifier", "issue_token"]

HMAC_ALGORITHMS: Final = frozenset({"HS256", "HS384", "HS512"})
_ASYMMETRIC: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_USER_ID: Final = re.compile(USER_ID_PATTERN)
_MAX_TOKEN: Final = 8192


class JwtVerifier:
    """Check bearer JWTs (see the module docstring).

    Args:
        secret: The HS* key; ``None``: HS* tokens are refused.
        jwks_url: The JWKS of the asymmetric keys; ``None``: RS*/ES*/PS* tokens are refused.
        algorithms: The accepted ``alg`` values (``none`` is never accepted).
        issuer, audience: Required ``iss`` / ``aud`` when given.
        leeway: Seconds of clock skew tolerated.
        jwks_cache_seconds: How long a fetched key set is trusted.
        jwks_client: A ready PyJWKClient instead of one for *jwks_url* (tests).
        verified_cache_size: Verified tokens kept (the oldest out first).
        verified_cache_seconds: The longest a verified token is kept (within its ``exp``).
        clock: Wall-clock seconds (``exp`` is one), for the verified tokens only.
    """

    def __init__(
        self,
        *,
        secret: str | None,
        jwks_url: str | None = None,
        algorithms: Sequence[str] = ("HS256", "RS256"),
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = 30.0,
        jwks_cache_seconds: float = 300.0,
        jwks_client: jwt.PyJWKClient | None = None,
        verified_cache_size: int = 10_000,
        verified_cache_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unknown = set(algorithms) - HMAC_ALGORITHMS - _ASYMMETRIC
        if unknown:
            raise ValueError(f"unsupported JWT algorithms: {', '.join(sorted(unknown))}")
        self._secret = secret
        self._jwks = jwks_client
        if self._jwks is None and jwks_url is not None:
            self._jwks = jwt.PyJWKClient(
                jwks_url, cache_keys=True, lifespan=jwks_cache_seconds, timeout=5
            )
        usable = {a for a in algorithms if a in HMAC_ALGORITHMS and secret is not None}
        usable |= {a for a in algorithms if a in _ASYMMETRIC and self._jwks is not None}
        if not usable:
            raise ValueError(
                "no JWT algorithm can be checked: configure jwt_secret (HS256) or"
                " jwt_jwks_url (RS256) for one of " + ", ".join(algorithms)
            )
        self.algorithms: frozenset[str] = frozenset(usable)
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self.verified = VerifiedTokens(
            size=verified_cache_size, max_age=verified_cache_seconds, clock=clock
        )

    async def verify(self, token: str) -> Principal:
        if len(token) > _MAX_TOKEN:
            raise AuthenticationError("the token is too long")
        known = self.verified.get(token)
        if known is not None:
            return known
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("the token is not a JWT") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            raise AuthenticationError(f"the token's algorithm {algorithm!r} is not accepted")
        key: Any
        if algorithm in HMAC_ALGORITHMS:
            key = self._secret
        else:
            key = await self._signing_key(token)
        required = (
            ["exp", "sub"] + (["iss"] if self._issuer else []) + (["aud"] if self._audience else [])
        )
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": required, "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("the token has expired") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthenticationError(f"the token has no {error.claim!r} claim") from None
        except jwt.PyJWTError as error:
            raise AuthenticationError(f"the token is not valid ({type(error).__name__})") from None
        principal = _principal(claims)
        # PyJWT accepts the token while exp > now - leeway (exp is checked numeric).
        self.verified.put(token, principal, accepted_until=float(claims["exp"]) + self._leeway)
        return principal

    async def _signing_key(self, token: str) -> Any:
        assert self._jwks is not None  # an asymmetric algorithm is usable only with one
        try:
            signing = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError:
            raise VerifierUnavailableError("the JWKS cannot be fetched now") from None
        except jwt.PyJWTError:  # no such kid, a malformed key set or header
            raise AuthenticationError("the token's key is not in the JWKS") from None
        return signing.key


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 1 <= len(sub) <= 200 or not _USER_ID.match(sub):
        raise AuthenticationError("the token's 'sub' is not a user id")
    role = claims.get("role")
    if role not in ROLES:
        raise AuthenticationError(f"the token's 'role' must be one of {', '.join(ROLES)}")
    return Principal(sub, cast(Role, role))


def issue_token(
    secret: str,
    *,
    user: str,
    role: str,
    ttl_seconds: float = 3600,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
) -> str:
    """A dev HS256 token for *user* with *role* (what ``stockflow token`` prints).

    Raises:
        ValueError: *user* is not a user id, or *role* not a role.
    """
    if not 1 <= len(user) <= 200 or not _USER_ID.match(user):
        raise ValueError(f"--user must be a user id (letters, digits and ._:@-), not {user!r}")
    if role not in ROLES:
        raise ValueError(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": user,
        "role": role,
        "iat": issued,
        "exp": issued + int(ttl_seconds),
    }
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
