"""What edge's OpenAPI document says about parameters and answers (the fuzzers' contract)."""

from __future__ import annotations

from typing import Any, Final

from stockflow_kit.http.openapi import json_schema, problem_responses

__all__ = ["PUBLIC_PATHS", "answers", "json_answer"]

PUBLIC_PATHS: Final = ("/me", "/inventory", "/orders", "/notifications", "/webhooks")
"""Every route under these needs ``Authorization: Bearer <JWT>``."""

# Every route may say: no or bad token, wrong role, too many requests, a downstream down.
_ALWAYS: Final = (401, 403, 429, 503)


def json_answer(kind: Any, description: str = "OK") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": json_schema(kind)}},
    }


def answers(ok: dict[int | str, dict[str, Any]], *statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=``: the success answers *ok*, then *statuses* and the ones every route has,
    as problems."""
    return {**ok, **problem_responses(*sorted({*statuses, *_ALWAYS}))}
