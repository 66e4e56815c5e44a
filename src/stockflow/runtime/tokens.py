"""Dev tokens for the embedded deployment: HS256 JWTs signed with ``<data dir>/jwt-secret``.

What ``stockflow token`` prints and what ``stockflow load`` sends; edge checks them with the
same secret (``exp`` required, ``sub`` the user, ``role`` customer or staff).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import jwt

from stockflow.platform.data_dir import load_or_create_secret

__all__ = ["JWT_SECRET_FILE", "dev_token", "dev_tokens"]

JWT_SECRET_FILE: Final = "jwt-secret"
DEFAULT_TTL: Final = 3600.0


def dev_token(secret: str, *, user: str, role: str, ttl: float = DEFAULT_TTL) -> str:
    """An HS256 token for *user* in *role*, valid for *ttl* seconds."""
    now = int(time.time())
    claims = {"sub": user, "role": role, "iat": now, "exp": now + int(ttl)}
    return jwt.encode(claims, secret, algorithm="HS256")


def dev_tokens(data_dir: Path, *, ttl: float = 4 * DEFAULT_TTL) -> Callable[[str, str], str]:
    """``tokens(user, role)`` signed with *data_dir*'s JWT secret (created when missing)."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"no data dir {data_dir}")
    secret = load_or_create_secret(data_dir / JWT_SECRET_FILE)
    return lambda user, role: dev_token(secret, user=user, role=role, ttl=ttl)
