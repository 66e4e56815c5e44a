"""The gate every public request passes: who is it, and is it within its rate limit.

The limit is counted before the token's verdict is given, so a client sending bad tokens is
limited too (by its address, since it proved no identity): brute force costs it its quota.
"""

from __future__ import annotations

from dataclasses import dataclass

from stockflow.edge.domain.identity import AuthenticationError, Principal
from stockflow.edge.service_layer.ports import RateLimiter, TokenVerifier

__all__ = ["Gate"]


@dataclass(frozen=True)
class Gate:
    verifier: TokenVerifier
    limiter: RateLimiter

    async def admit(self, token: str | None, *, address: str) -> Principal:
        """The verified caller of a request with bearer *token* from *address*.

        Raises:
            RateLimitedError: the client (its ``sub``, else *address*) is over its limit.
            AuthenticationError: no token, or not a valid one.
            VerifierUnavailableError: tokens cannot be checked now.
        """
        if token is None:
            await self.limiter.hit(f"addr:{address}")
            raise AuthenticationError("send Authorization: Bearer <token>")
        try:
            principal = await self.verifier.verify(token)
        except AuthenticationError:
            await self.limiter.hit(f"addr:{address}")
            raise
        await self.limiter.hit(f"user:{principal.user_id}")
        return principal
