"""The profiles HTTP API (internal: edge fronts it): read, write and list profiles.

Every route needs the service credential; the caller's identity comes in
:data:`~stockflow.contracts.identity.USER_HEADER` / ``ROLE_HEADER``, set by edge from the
verified JWT. Who may do what: :mod:`stockflow.profiles.service_layer.handlers`.

``PUT`` replaces the whole profile and is idempotent by nature (the same body twice is one
change). ``If-Match: "<version>"`` (or ``*``, or a list) makes it conditional: 412 when the
stored version is not one of those named, unless the body is what is stored already (the
write was applied; see :mod:`stockflow.profiles.domain.model`). Every profile answer carries
its version as a strong ``ETag`` (``"3"``), what ``If-Match`` takes back.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathRule
from prometheus_client import CollectorRegistry
from starlette.responses import Response

from stockflow.contracts.profiles import (
    USER_ID_PATTERN,
    Address,
    ProfilesPage,
    ProfileUpdate,
    ProfileView,
)
from stockflow.platform.identity import IDENTITY_PARAMETERS, InvalidIdentityError, read_identity
from stockflow.platform.internal_app import internal_app
from stockflow.profiles.domain import model
from stockflow.profiles.entrypoints.http_errors import ERRORS, InvalidCallerError
from stockflow.profiles.service_layer.handlers import Caller, ProfileHandlers
from stockflow.profiles.settings import ProfilesSettings
from stockflow_kit.http.bodies import decode_json, json_response
from stockflow_kit.http.openapi import (
    json_body,
    json_schema,
    problem_responses,
)
from stockflow_kit.observability import get_correlation_id

__all__ = ["caller_of", "create_app", "parse_if_match", "profile_view"]

_LIST_ITEM: Final = re.compile(r'[ \t]*(?:(W/)?"([\x21\x23-\x7e\x80-\xff]*)")?[ \t]*(,|$)')
"""One element of an ``If-Match`` list and what ends it: an entity-tag (RFC 9110, section
8.8.3: optionally weak, quoted), or nothing (empty elements are allowed, section 5.6.1)."""

UserIdPath = Annotated[
    str,
    PathRule(
        min_length=1,
        max_length=200,
        pattern=USER_ID_PATTERN,
        description="A user id (the JWT ``sub``): letters, digits and ._:@-, 1 to 200.",
    ),
]


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def profile_view(profile: model.Profile) -> ProfileView:
    contents = profile.contents
    return ProfileView(
        user_id=profile.user_id,
        name=contents.name,
        email=contents.email,
        addresses=[
            Address(
                label=a.label,
                line1=a.line1,
                line2=a.line2,
                city=a.city,
                postal_code=a.postal_code,
                country=a.country,
            )
            for a in contents.addresses
        ],
        preferences=dict(contents.preferences),
        version=profile.version,
        updated_at=_rfc3339(profile.updated_at),
    )


def _contents(update: ProfileUpdate) -> model.Contents:
    return model.Contents(
        name=update.name,
        email=update.email,
        addresses=tuple(
            model.Address(
                line1=a.line1,
                city=a.city,
                postal_code=a.postal_code,
                country=a.country,
                label=a.label,
                line2=a.line2,
            )
            for a in update.addresses
        ),
        preferences=dict(update.preferences),
    )


def _answer(profile: model.Profile) -> Response:
    response = json_response(profile_view(profile))
    response.headers["ETag"] = f'"{profile.version}"'
    return response


def _is_version(opaque: str) -> bool:
    """Whether an entity-tag's content is a version as an ``ETag`` writes it (``3``, not
    ``03``: strong comparison is character for character)."""
    return (
        opaque.isascii() and opaque.isdigit() and len(opaque) <= 18 and opaque == str(int(opaque))
    )


def parse_if_match(value: str | None) -> model.Precondition | None:
    """The precondition an ``If-Match`` header states (``None``: no header).

    ``*`` holds for any existing profile; a list of entity-tags for the versions among them:
    strong tags whose content is a version (``"3"``), as every profile answer's ``ETag``
    carries it. A weak tag never matches (``If-Match`` compares strongly), nor does another tag; a
    value that is no list of entity-tags at all matches nothing either (a 412 whose detail
    names the version and its ETag).
    """
    if value is None:
        return None
    if value.strip(" \t") == "*":
        return model.Precondition()
    versions: set[int] = set()
    position = 0
    while True:
        item = _LIST_ITEM.match(value, position)
        if item is None:  # not a list of entity-tags: nothing matches
            return model.Precondition(frozenset())
        weak, opaque, end = item.groups()
        if weak is None and opaque is not None and _is_version(opaque):
            versions.add(int(opaque))
        if not end:
            break
        position = item.end()
    return model.Precondition(frozenset(versions))


def caller_of(request: Request) -> Caller:
    """The identity edge forwarded. Raises :class:`InvalidCallerError` when malformed."""
    try:
        user, role = read_identity(request.headers)
    except InvalidIdentityError as error:
        raise InvalidCallerError(str(error)) from None
    return Caller(user, role)


def create_app(
    *,
    handlers: ProfileHandlers,
    settings: ProfilesSettings,
    readiness: Callable[[], Awaitable[str | None]],
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The profiles ASGI app. ``readiness()`` returns ``None`` when ready, else why not."""
    app, require_service = internal_app(
        "profiles",
        settings,
        errors=ERRORS,
        readiness=readiness,
        protected=["/profiles"],
        registry=registry,
    )
    identity = IDENTITY_PARAMETERS
    if_match = {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": 'Write only if the profile is at one of these versions (its ETag: "3"),'
        " or exists (*); else 412, unless the body is what is stored already.",
        "schema": {"type": "string"},
    }
    etag = {"ETag": {"description": "The profile's version, quoted.", "schema": {"type": "string"}}}
    profile_json = {
        "content": {"application/json": {"schema": json_schema(ProfileView)}},
        "headers": etag,
    }

    @app.get(
        "/profiles/{user_id}",
        tags=["profiles"],
        dependencies=require_service,
        openapi_extra={"parameters": identity},
        responses={200: profile_json, **problem_responses(401, 404, 422)},
    )
    async def get_profile(user_id: UserIdPath, request: Request) -> Response:
        return _answer(await handlers.get(user_id, caller_of(request)))

    @app.put(
        "/profiles/{user_id}",
        tags=["profiles"],
        dependencies=require_service,
        openapi_extra=json_body(ProfileUpdate, headers=[*identity, if_match]),
        responses={200: profile_json, **problem_responses(401, 403, 409, 412, 413, 415, 422)},
    )
    async def put_profile(user_id: UserIdPath, request: Request) -> Response:
        caller = caller_of(request)
        precondition = parse_if_match(request.headers.get("if-match"))
        update = decode_json(request, await request.body(), ProfileUpdate)
        profile = await handlers.put(
            user_id,
            _contents(update),
            caller,
            precondition=precondition,
            correlation_id=get_correlation_id(),
        )
        return _answer(profile)

    @app.get(
        "/profiles",
        tags=["profiles"],
        dependencies=require_service,
        openapi_extra={"parameters": identity},
        responses={
            200: {"content": {"application/json": {"schema": json_schema(ProfilesPage)}}},
            **problem_responses(401, 403, 422),
        },
    )
    async def list_profiles(
        request: Request,
        cursor: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=200,
                pattern=USER_ID_PATTERN,
                description="The `next` of the previous page: the user id it ended with.",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> Response:
        size = min(limit, settings.page_limit)
        page = await handlers.page(caller_of(request), after=cursor, limit=size + 1)
        profiles = list(page[:size])
        more = len(page) > size
        return json_response(
            ProfilesPage(
                profiles=[profile_view(p) for p in profiles],
                next=profiles[-1].user_id if more and profiles else None,
            )
        )

    return app
