"""The deployment's dev tokens for ``stockflow load``: HS256 JWTs signed with the secret edge
checks them with (``STOCKFLOW_JWT_SECRET`` when set, else ``<data dir>/jwt-secret``), as
``stockflow token`` prints them one at a time."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from stockflow.edge.adapters.tokens import issue_token
from stockflow.platform.data_dir import JWT_SECRET_ENV, DataDir

__all__ = ["deployment_jwt_secret", "dev_tokens"]


def deployment_jwt_secret(data_dir: Path) -> str:
    """The secret of the deployment at *data_dir* (read without its lock; created if missing).

    Raises:
        FileNotFoundError: *data_dir* does not exist (no deployment ever ran there).
    """
    if given := os.environ.get(JWT_SECRET_ENV):
        return given
    if not data_dir.is_dir():
        raise FileNotFoundError(f"no data dir {data_dir}")
    return DataDir(data_dir.resolve()).jwt_secret()


def dev_tokens(data_dir: Path, *, ttl: float = 4 * 3600) -> Callable[[str, str], str]:
    """``tokens(user, role)``: a token edge accepts, valid for *ttl* seconds."""
    secret = deployment_jwt_secret(data_dir)
    return lambda user, role: issue_token(secret, user=user, role=role, ttl_seconds=ttl)
