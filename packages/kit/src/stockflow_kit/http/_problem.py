"""Problem details (RFC 9457) and the error table; public through :mod:`.problems`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final

from starlette.responses import Response

from stockflow_kit.observability.correlation import get_correlation_id

__all__ = [
    "ABOUT_BLANK",
    "PROBLEM_MEDIA_TYPE",
    "ErrorMapping",
    "ErrorTable",
    "Problem",
    "problem_response",
    "status_title",
]

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
"""The media type of problem details (RFC 9457, section 3)."""

ABOUT_BLANK: Final = "about:blank"
"""The problem type meaning "nothing more than the HTTP status" (RFC 9457, section 4.2.1)."""

# RFC 9110 renamed these; Python 3.11's HTTPStatus still has the old phrases.
_TITLES: Final = {413: "Content Too Large", 422: "Unprocessable Content"}
_MAX_DETAIL: Final = 1000


def status_title(status: int) -> str:
    """Return the RFC 9110 reason phrase of *status* (``"Error"`` for unknown codes)."""
    if status in _TITLES:
        return _TITLES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One problem details object (RFC 9457).

    Args:
        status: The HTTP status code.
        title: A short, human-readable summary of the problem *type*; the status's reason
            phrase when ``None`` (the default).
        type: A URI reference naming the problem type; :data:`ABOUT_BLANK` by default.
        detail: An explanation of this occurrence; the title when ``None`` (the default).
        instance: A URI reference naming this occurrence, such as the request path.
        correlation_id: The correlation id of the request; the one bound in the current
            context when ``None`` (the default).
        extra: Extension members; they never replace the standard members.
    """

    status: int
    title: str | None = None
    type: str = ABOUT_BLANK
    detail: str | None = None
    instance: str | None = None
    correlation_id: str | None = None
    extra: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """Return the JSON object, standard members first."""
        title = self.title or status_title(self.status)
        body: dict[str, object] = {
            "type": self.type,
            "title": title,
            "status": self.status,
            "detail": self.detail or title,
        }
        if self.instance is not None:
            body["instance"] = self.instance
        body["correlation_id"] = (
            self.correlation_id if self.correlation_id is not None else get_correlation_id()
        )
        for key, value in self.extra.items():
            body.setdefault(key, value)
        return body

    def to_response(self, *, headers: Mapping[str, str] | None = None) -> Response:
        """Return an ``application/problem+json`` response with this problem as its body.

        Args:
            headers: Extra response headers, such as ``Allow`` or ``Retry-After``.
        """
        content = json.dumps(self.to_dict(), ensure_ascii=False, default=str).encode()
        return Response(
            content, status_code=self.status, headers=headers, media_type=PROBLEM_MEDIA_TYPE
        )


def problem_response(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type: str = ABOUT_BLANK,  # noqa: A002 - the RFC 9457 member name
    instance: str | None = None,
    correlation_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, object] | None = None,
) -> Response:
    """Return an ``application/problem+json`` response; shorthand for :class:`Problem`.

    The arguments are those of :class:`Problem` (same defaults: the reason phrase as title,
    the title as detail, :data:`ABOUT_BLANK` as type, the bound correlation id), plus
    *headers* for extra response headers.
    """
    problem = Problem(
        status=status,
        title=title,
        type=type,
        detail=detail,
        instance=instance,
        correlation_id=correlation_id,
        extra=extra or {},
    )
    return problem.to_response(headers=headers)


@dataclass(frozen=True)
class ErrorMapping:
    """One row of an :class:`ErrorTable`: what an exception class becomes over HTTP.

    Attributes:
        status: The HTTP status code.
        title: The problem title, the same for every occurrence.
        slug: The last segment of the problem type URI, such as ``insufficient-stock``.
    """

    status: int
    title: str
    slug: str


_Row = tuple[int, str] | tuple[int, str, str]


class ErrorTable:
    """Which exceptions become which problems: one table per application.

    >>> table = ErrorTable({KeyError: (404, "Not found")}, type_base="/problems/")
    >>> table.add(PermissionError, 403, "Forbidden", slug="forbidden").lookup(KeyError())
    ErrorMapping(status=404, title='Not found', slug='key')

    The problem's ``detail`` is ``str(exception)``, so map only exceptions whose messages
    are meant for clients (domain errors that carry data, say); anything unmapped becomes a
    500 with a generic detail.

    Args:
        rows: Initial rows, ``{exception class: (status, title)}`` or
            ``(status, title, slug)``. Without a slug, it is made from the class name:
            ``InsufficientStockError`` gives ``insufficient-stock``.
        type_base: Prefix of the problem type URIs; ``/problems/`` (a relative reference,
            as RFC 9457 allows) by default. Pass an absolute URL if you document the types
            there.
    """

    def __init__(
        self,
        rows: Mapping[type[BaseException], _Row] | None = None,
        *,
        type_base: str = "/problems/",
    ) -> None:
        self.type_base = type_base
        self._rows: dict[type[BaseException], ErrorMapping] = {}
        self.update(rows or {})

    def update(self, rows: Mapping[type[BaseException], _Row]) -> ErrorTable:
        """Add *rows* (the form of the constructor's), replacing those of the same classes.

        This is how a service merges rows shipped by the kit into its own table:
        ``table.update(IDEMPOTENCY_ERRORS)``.

        Returns:
            The table, for chaining.
        """
        for exc_type, row in rows.items():
            self.add(exc_type, row[0], row[1], slug=row[2] if len(row) == 3 else None)
        return self

    def add(
        self, exc_type: type[BaseException], status: int, title: str, *, slug: str | None = None
    ) -> ErrorTable:
        """Map *exc_type* (and its subclasses without a row of their own) to a problem.

        Args:
            exc_type: The exception class.
            status: The HTTP status code.
            title: The problem title.
            slug: The type slug; derived from the class name when ``None`` (the default).

        Returns:
            The table, for chaining.
        """
        self._rows[exc_type] = ErrorMapping(status, title, slug or _slug(exc_type.__name__))
        return self

    def lookup(self, exc: BaseException | type[BaseException]) -> ErrorMapping | None:
        """Return the row for *exc*: the first class along its MRO that has one, or ``None``."""
        exc_type = exc if isinstance(exc, type) else type(exc)
        for cls in exc_type.__mro__:
            mapping = self._rows.get(cls)
            if mapping is not None:
                return mapping
        return None

    def type_uri(self, slug: str) -> str:
        """Return the problem type URI for *slug* (:attr:`type_base` + *slug*)."""
        return self.type_base + slug

    def problem_for(self, exc: BaseException, *, instance: str | None = None) -> Problem | None:
        """Return the problem for *exc* (detail ``str(exc)``), or ``None`` if it is unmapped.

        Args:
            exc: The exception raised.
            instance: The problem's ``instance``, typically the request path.
        """
        mapping = self.lookup(exc)
        if mapping is None:
            return None
        return Problem(
            status=mapping.status,
            title=mapping.title,
            type=self.type_uri(mapping.slug),
            detail=str(exc)[:_MAX_DETAIL] or None,
            instance=instance,
        )

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[type[BaseException]]:
        return iter(self._rows)


def _slug(class_name: str) -> str:
    name = re.sub(r"(Error|Exception)$", "", class_name) or class_name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name).lower()
