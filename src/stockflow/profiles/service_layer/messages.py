"""A profile's change as its published event: ``ProfileUpdated`` on ``profiles.events``.

The payload is the published schema (:mod:`stockflow.contracts.profiles`); the envelope's
``subject`` is the user id and its ``sequence`` the profile's version, so a consumer keeps the
newest by comparing sequences and drops a redelivered older one.
"""

from __future__ import annotations

from stockflow.contracts.profiles import PROFILES_EVENTS_TOPIC, ProfileUpdated
from stockflow.profiles.domain.model import Profile
from stockflow.profiles.service_layer.ports import UnitOfWork
from stockflow_kit.messaging import Envelope

__all__ = ["SOURCE", "profile_updated", "publish_update"]

SOURCE = "profiles"


def profile_updated(profile: Profile, *, correlation_id: str | None) -> Envelope:
    payload = ProfileUpdated(
        user_id=profile.user_id,
        name=profile.contents.name,
        email=profile.contents.email,
        version=profile.version,
    )
    return Envelope.new(
        "ProfileUpdated",
        payload,
        source=SOURCE,
        subject=profile.user_id,
        sequence=profile.version,
        correlation_id=correlation_id,
    )


def publish_update(uow: UnitOfWork, profile: Profile, *, correlation_id: str | None) -> None:
    """Hand the profile's ``ProfileUpdated`` to the unit of work's outbox."""
    uow.publish(PROFILES_EVENTS_TOPIC, [profile_updated(profile, correlation_id=correlation_id)])
