import uuid

from stockflow_kit.observability.correlation import (
    bind_correlation,
    get_correlation_id,
    is_valid_correlation_id,
    new_correlation_id,
)


def test_a_bound_correlation_id_is_visible_inside_the_block_and_restored_after() -> None:
    assert get_correlation_id() is None
    with bind_correlation("order-1234-abcd"):
        assert get_correlation_id() == "order-1234-abcd"
    assert get_correlation_id() is None


def test_generated_ids_are_valid_and_hostile_ones_are_not() -> None:
    assert is_valid_correlation_id(new_correlation_id())
    for bad in ["", "short", "a" * 200, "abc def ghi", "abcdefgh\r\nSet-Cookie: x", None]:
        assert not is_valid_correlation_id(bad)


def test_new_correlation_ids_are_distinct_uuid4s_in_hex_form() -> None:
    ids = [new_correlation_id() for _ in range(200)]

    assert len(set(ids)) == len(ids)
    for value in ids:
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, value)
