"""Test helpers: a scripted downstream, and the Idempotency-Key store contract suite.

Use :class:`FakeDownstream` as an ``httpx.MockTransport`` handler::

    downstream = FakeDownstream(503, 503, 200)
    client = ResilientClient("inventory", "http://inventory", transport=httpx.MockTransport(downstream))

Subclass :class:`IdempotencyStoreContract` once per
:class:`~stockflow_kit.http.idempotency.IdempotencyStore` (its docstring lists the fixtures a
subclass provides); :func:`make_record` builds records for such tests. Importing this module
needs pytest.
"""

from __future__ import annotations

import httpx

from stockflow_kit.http._idempotency_contract import IdempotencyStoreContract, make_record

__all__ = ["FakeDownstream", "IdempotencyStoreContract", "Reply", "make_record"]

Reply = int | httpx.Response | Exception
"""A scripted answer: a status code, a whole response, or an exception to raise."""


class FakeDownstream:
    """A MockTransport handler: answers from a script (the last reply repeats), records requests.

    Args:
        replies: The answers, in order; ``200`` when none is given.
    """

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies) or [200]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        return httpx.Response(reply) if isinstance(reply, int) else reply

    def headers(self, name: str) -> list[str | None]:
        """The value of header *name* on every recorded request, in order."""
        return [r.headers.get(name) for r in self.requests]
