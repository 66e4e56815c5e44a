import uuid
from datetime import UTC, datetime, timedelta

from stockflow_kit.messaging import Envelope, new_message_id


def test_message_ids_are_uuid7_and_sort_by_time() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [new_message_id(start + timedelta(milliseconds=i)) for i in range(50)]
    parsed = [uuid.UUID(value) for value in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert ids == sorted(ids)
    assert len(set(ids)) == 50


def test_ids_made_in_the_same_millisecond_are_still_unique() -> None:
    now = datetime.now(UTC)
    assert len({new_message_id(now) for _ in range(10_000)}) == 10_000


def test_new_envelopes_get_time_ordered_ids() -> None:
    envelope = Envelope.new("Ping", {}, source="test", subject="s")
    assert uuid.UUID(envelope.id).version == 7
